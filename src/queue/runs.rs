//! Runs: the queue tasks of one request or schedule fire that covers more than one node.
//! Each task's end is committed with its log row and its node's findings, kept here; the
//! commit that ends the run's last task marks it for grouping, and one transaction of its
//! own (outside the queue's lock) then makes the run's user tasks from all of its findings
//! together — so titles, counters and mails describe every node of the run — fills in the
//! counts of its log rows, and drops the findings. A run that was being grouped when the
//! daemon stopped is grouped at the next start.

use chrono::{DateTime, Utc};
use redb::{ReadTransaction, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::persist;
use crate::config::Config;
use crate::proto::{QueueTaskKind, RunInfo, RunState, Scope};
use crate::store::{tables, JsonTable, StoreError};
use crate::tasks::{Ingested, NodeFindings, UserTasks};

const RUNS: JsonTable<u64, StoredRun> = JsonTable::new(tables::RUNS, "run");
const RUN_FINDINGS: JsonTable<(u64, &str), StoredEnd> =
    JsonTable::new(tables::RUN_FINDINGS, "run finding");
/// Its tables of encoded rows, for `vigild check`.
pub(crate) const STORED_ROWS: &[&dyn crate::store::RowCheck] = &[&RUNS, &RUN_FINDINGS];

/// Meta counter of run ids.
const NEXT_RUN: &str = "queue.next_run";

/// A run as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredRun {
    id: u64,
    kind: QueueTaskKind,
    scope: Scope,
    initiator: String,
    schedule: Option<String>,
    created_at: DateTime<Utc>,
    tasks: u32,
    ended: u32,
    state: RunState,
    #[serde(default)]
    completed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    user_tasks_created: u64,
    #[serde(default)]
    user_tasks_updated: u64,
    #[serde(default)]
    user_tasks_closed: u64,
}

impl From<StoredRun> for RunInfo {
    fn from(r: StoredRun) -> Self {
        RunInfo {
            id: r.id,
            kind: r.kind,
            scope: r.scope,
            initiator: r.initiator,
            schedule: r.schedule,
            created_at: r.created_at,
            tasks: r.tasks,
            ended: r.ended,
            state: r.state,
            completed_at: r.completed_at,
            user_tasks_created: r.user_tasks_created,
            user_tasks_updated: r.user_tasks_updated,
            user_tasks_closed: r.user_tasks_closed,
        }
    }
}

/// One ended task of a run: where its log row is, and what it found.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredEnd {
    log_seq: u64,
    findings: Option<NodeFindings>,
}

/// What a new run covers.
pub struct NewRun<'a> {
    pub kind: QueueTaskKind,
    pub scope: &'a Scope,
    pub initiator: &'a str,
    pub schedule: Option<&'a str>,
    pub tasks: u32,
}

/// Records a new run of `tasks` tasks and returns its id.
pub fn create(tx: &WriteTransaction, run: NewRun<'_>) -> Result<u64, StoreError> {
    let id = persist::next(tx, NEXT_RUN)?;
    let stored = StoredRun {
        id,
        kind: run.kind,
        scope: run.scope.clone(),
        initiator: run.initiator.to_owned(),
        schedule: run.schedule.map(str::to_owned),
        created_at: Utc::now(),
        tasks: run.tasks,
        ended: 0,
        state: RunState::Running,
        completed_at: None,
        user_tasks_created: 0,
        user_tasks_updated: 0,
        user_tasks_closed: 0,
    };
    RUNS.write(tx)?.put(id, &stored)?;
    Ok(id)
}

/// Records the end of a run's task on `node` (its log row at `log_seq`, what it found).
/// Returns true when that was the run's last task: the run is then due for grouping.
pub fn task_ended(
    tx: &WriteTransaction,
    run: u64,
    node: &str,
    log_seq: u64,
    findings: Option<NodeFindings>,
) -> Result<bool, StoreError> {
    let mut runs = RUNS.write(tx)?;
    let Some(mut r) = runs.get(run)? else {
        tracing::warn!(
            run,
            node,
            "a task's run is not in the store; its findings are lost"
        );
        return Ok(false);
    };
    RUN_FINDINGS
        .write(tx)?
        .put((run, node), &StoredEnd { log_seq, findings })?;
    r.ended += 1;
    let last = r.ended >= r.tasks && r.state == RunState::Running;
    if last {
        r.state = RunState::Grouping;
    }
    runs.put(run, &r)?;
    Ok(last)
}

/// Runs whose every task ended but whose user tasks are not made yet.
pub fn due_in(tx: &WriteTransaction) -> Result<Vec<u64>, StoreError> {
    let mut out = Vec::new();
    for entry in RUNS.write(tx)?.iter()? {
        let (k, r) = entry?;
        if r.state == RunState::Grouping {
            out.push(k.value());
        }
    }
    Ok(out)
}

/// Runs still collecting whose tasks are all gone from the queue (`in_queue` counts a run's
/// active tasks): a task row that did not decode, or a run from a crash between two
/// commits. They are due for grouping with what they have.
pub fn orphaned(
    tx: &WriteTransaction,
    in_queue: impl Fn(u64) -> usize,
) -> Result<Vec<u64>, StoreError> {
    let mut runs = RUNS.write(tx)?;
    let mut out = Vec::new();
    let open: Vec<StoredRun> = runs
        .iter()?
        .filter_map(|e| e.ok().map(|(_, r)| r))
        .filter(|r| r.state == RunState::Running)
        .collect();
    for mut r in open {
        if in_queue(r.id) == 0 {
            tracing::warn!(
                run = r.id,
                ended = r.ended,
                tasks = r.tasks,
                "a run has no task left to wait for; grouping what it found"
            );
            r.state = RunState::Grouping;
            runs.put(r.id, &r)?;
            out.push(r.id);
        }
    }
    Ok(out)
}

/// Makes the user tasks of a run due for grouping, in the caller's transaction: all its
/// findings together, the counts of its log rows, the run marked complete. `None` if the
/// run is not due (done already).
pub fn complete(
    tx: &WriteTransaction,
    config: &Config,
    run: u64,
) -> Result<Option<(Ingested, RunInfo)>, StoreError> {
    let Some(mut r) = RUNS.write(tx)?.get(run)? else {
        return Ok(None);
    };
    if r.state != RunState::Grouping {
        return Ok(None);
    }
    let mut ends: Vec<(String, StoredEnd)> = Vec::new();
    for entry in RUN_FINDINGS
        .write(tx)?
        .range((run, "")..=(run, "\u{10ffff}"))?
    {
        let (k, end) = entry?;
        ends.push((k.value().1.to_owned(), end));
    }
    let findings: Vec<NodeFindings> = ends
        .iter()
        .filter_map(|(_, e)| e.findings.clone())
        .collect();
    let ingested = UserTasks::ingest_run(tx, config, &findings)?;
    for (node, end) in &ends {
        let (created, updated) = ingested
            .per_node
            .get(node)
            .map_or((0, 0), |(c, u)| (c.len() as u64, u.len() as u64));
        if created + updated > 0 {
            persist::set_log_counts(tx, r.kind, end.log_seq, created, updated)?;
        }
    }
    {
        let mut table = RUN_FINDINGS.write(tx)?;
        for (node, _) in &ends {
            table.remove((run, node.as_str()))?;
        }
    }
    r.state = RunState::Complete;
    r.completed_at = Some(Utc::now());
    r.user_tasks_created = ingested.created.len() as u64;
    r.user_tasks_updated = ingested.updated.len() as u64;
    r.user_tasks_closed = ingested.closed.len() as u64;
    RUNS.write(tx)?.put(run, &r)?;
    Ok(Some((ingested, r.into())))
}

/// A run as the API shows it.
pub fn info(tx: &ReadTransaction, run: u64) -> Result<Option<RunInfo>, StoreError> {
    Ok(RUNS.read(tx)?.get(run)?.map(RunInfo::from))
}
