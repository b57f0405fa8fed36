//! Active tasks: the bounded queue of scan and audit tasks and its slots.
//!
//! Every state change (queued, running, terminal) is committed to the store before it is
//! acted on or acknowledged; the in-memory index only mirrors what is committed. One async
//! mutex serialises changes, so ids, FIFO order and capacity checks never race. At most
//! `daemon.slots` tasks run at once: the commit that records a task's end also starts the
//! oldest Queued task in the slot it frees, and the dispatcher fills slots that free up any
//! other way (new work, more slots after a reload). Terminal tasks leave the queue and
//! become Scan log / Audit log rows.

mod audit;
pub mod persist;
mod runner;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use persist::LogFilter;

use crate::config::{Config, ScheduleConfig, Scope, TaskKind};
use crate::daemon::state::{ConfigCell, Loaded};
use crate::plugin::supervisor::WorkerCommand;
use crate::proto::{
    ActiveStatus, CancelOutcome, CancelResult, CheckOutcome, EnqueueRequest, FinalStatus, LogPage,
    LogRow, QueueStatus, QueueTask, TaskId, SCHEDULE_INITIATOR,
};
use crate::store::{Store, StoreError};
use crate::tasks::{finding, Finding, UserTasks};
use runner::{Stop, TaskResult};

/// A scheduled run on its way into the store.
struct ScheduleRun {
    name: String,
    /// Unix seconds (UTC).
    due: i64,
    dropped: u64,
}

/// A task interrupted this many times (daemon stopped or crashed while it ran) fails.
pub const MAX_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(
        "the queue is full: capacity {capacity} (daemon.queue_capacity), {queued} task(s) queued, \
         this request needs {needed}; wait for the queue to drain or narrow the scope"
    )]
    Full {
        capacity: u32,
        queued: usize,
        needed: usize,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("the daemon is stopping and takes no new work")]
    Stopping,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which active tasks to list.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    pub status: Option<ActiveStatus>,
    pub node: Option<String>,
    pub kind: Option<TaskKind>,
}

/// Handle to the queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    config: Arc<ConfigCell>,
    worker: WorkerCommand,
    /// Findings of ending tasks become user tasks.
    tasks: UserTasks,
    inner: Mutex<Inner>,
    /// Wakes the dispatcher: something was queued, or a slot freed up.
    wake: Notify,
    /// Signals every waiter that some task reached its end.
    ended: Notify,
    /// Cancelled when the daemon stops: no new starts, running tasks are interrupted.
    shutdown: CancellationToken,
    runners: TaskTracker,
}

#[derive(Default)]
struct Inner {
    /// Every active task by queue sequence number.
    tasks: BTreeMap<u64, QueueTask>,
    /// Queued tasks, oldest first.
    fifo: VecDeque<u64>,
    /// Running tasks and the token that cancels each.
    running: HashMap<u64, CancellationToken>,
    by_id: HashMap<TaskId, u64>,
    dropped_scheduled: u64,
    stopping: bool,
}

impl Inner {
    fn insert(&mut self, seq: u64, task: QueueTask) {
        if task.status == ActiveStatus::Queued {
            self.fifo.push_back(seq);
        }
        self.by_id.insert(task.id, seq);
        self.tasks.insert(seq, task);
    }

    fn remove(&mut self, seq: u64) -> Option<QueueTask> {
        let task = self.tasks.remove(&seq)?;
        self.by_id.remove(&task.id);
        if task.status == ActiveStatus::Queued {
            self.fifo.retain(|s| *s != seq);
        }
        self.running.remove(&seq);
        Some(task)
    }
}

impl Queue {
    /// Loads the queue from the store. Tasks that were Running when the daemon stopped are
    /// queued again with their attempt count raised; after [`MAX_ATTEMPTS`] they fail.
    pub async fn open(
        store: Store,
        config: Arc<ConfigCell>,
        worker: WorkerCommand,
        tasks: UserTasks,
    ) -> Result<Queue, StoreError> {
        let (active, dropped) = store
            .write(|tx| -> Result<_, StoreError> {
                let indexed = persist::ensure_log_index(tx)?;
                if indexed > 0 {
                    tracing::info!(rows = indexed, "indexed the Scan and Audit logs by node and status");
                }
                let mut kept = Vec::new();
                for (seq, mut task) in persist::load_tasks(tx)? {
                    if task.status == ActiveStatus::Running {
                        if task.attempt >= MAX_ATTEMPTS {
                            // The row keeps the last attempt's number and start time.
                            let row = log_row(&task, interrupted_result(&task), Utc::now());
                            persist::remove_task(tx, seq)?;
                            persist::append_log(tx, &row)?;
                            tracing::warn!(id = %task.id, attempt = task.attempt, "task interrupted {MAX_ATTEMPTS} times, marked Failed");
                            continue;
                        }
                        task.attempt += 1;
                        task.status = ActiveStatus::Queued;
                        task.started_at = None;
                        persist::put_task(tx, seq, &task)?;
                        tracing::info!(id = %task.id, attempt = task.attempt, "requeued a task interrupted by a daemon stop");
                    }
                    kept.push((seq, task));
                }
                let dropped = persist::add(tx, persist::DROPPED_SCHEDULED, 0)?;
                Ok((kept, dropped))
            })
            .await?;
        let mut inner = Inner {
            dropped_scheduled: dropped,
            ..Inner::default()
        };
        for (seq, task) in active {
            inner.insert(seq, task);
        }
        Ok(Queue {
            shared: Arc::new(Shared {
                store,
                config,
                worker,
                tasks,
                inner: Mutex::new(inner),
                wake: Notify::new(),
                ended: Notify::new(),
                shutdown: CancellationToken::new(),
                runners: TaskTracker::new(),
            }),
        })
    }

    /// Starts the dispatcher. Call once.
    pub fn start(&self) {
        let queue = self.clone();
        tokio::spawn(async move { queue.dispatch_loop().await });
        self.shared.wake.notify_one();
    }

    /// Wakes the dispatcher, e.g. after a reload changed `daemon.slots`.
    pub fn poke(&self) {
        self.shared.wake.notify_one();
    }

    async fn dispatch_loop(&self) {
        loop {
            tokio::select! {
                _ = self.shared.wake.notified() => {}
                _ = self.shared.shutdown.cancelled() => return,
            }
            if let Err(e) = self.start_ready().await {
                tracing::error!("cannot start queued tasks: {e}; retrying when the queue changes");
            }
        }
    }

    /// Starts as many of the oldest Queued tasks as there are free slots, committing their
    /// Running state in one transaction before any of them starts.
    async fn start_ready(&self) -> Result<(), StoreError> {
        let loaded = self.shared.config.loaded();
        let mut inner = self.shared.inner.lock().await;
        let ready = pick_ready(&inner, loaded.config.daemon.slots, 0);
        if ready.is_empty() {
            return Ok(());
        }
        let started = self
            .shared
            .store
            .write(move |tx| -> Result<_, StoreError> {
                for (seq, t) in &ready {
                    persist::put_task(tx, *seq, t)?;
                }
                Ok(ready)
            })
            .await?;
        self.launch(&mut inner, started, &loaded);
        Ok(())
    }

    /// Runs tasks whose Running state is committed.
    fn launch(&self, inner: &mut Inner, started: Vec<(u64, QueueTask)>, loaded: &Loaded) {
        for (seq, task) in started {
            if inner.fifo.front() == Some(&seq) {
                inner.fifo.pop_front();
            } else {
                inner.fifo.retain(|s| *s != seq);
            }
            let cancel = self.shared.shutdown.child_token();
            inner.running.insert(seq, cancel.clone());
            inner.tasks.insert(seq, task.clone());
            tracing::info!(id = %task.id, node = %task.target, attempt = task.attempt, "task Running");
            let queue = self.clone();
            let config = loaded.config.clone();
            let policies = loaded.policies.clone();
            self.shared.runners.spawn(async move {
                let stop = Stop {
                    cancel,
                    shutdown: queue.shared.shutdown.clone(),
                };
                let env = runner::Env {
                    config: &config,
                    policies: &policies,
                    store: &queue.shared.store,
                    worker: &queue.shared.worker,
                };
                let result = runner::run(&task, &env, &stop).await;
                queue.complete(seq, result).await;
            });
        }
    }

    /// Records a task's end: removes it from the queue and appends its log row, in one
    /// commit. The same commit starts the next Queued task(s) in the slot it frees, so a
    /// busy queue pays one durable commit per task rather than two.
    async fn complete(&self, seq: u64, result: TaskResult) {
        let mut inner = self.shared.inner.lock().await;
        let Some(task) = inner.tasks.get(&seq).cloned() else {
            return;
        };
        if result.interrupted {
            // The stored row stays Running: the next start requeues it (attempt + 1).
            inner.remove(seq);
            tracing::info!(id = %task.id, "task interrupted by shutdown; it will run again at the next start");
        } else {
            let loaded = self.shared.config.loaded();
            let config = loaded.config.clone();
            let today = crate::snapshot::today(config.daemon.tz());
            let findings = findings_of(&task, &result, today, &loaded.policies);
            let passing = passing_of(&task, &result);
            let mut row = log_row(&task, result, Utc::now());
            let (id, status, errors) = (row.id, row.status, row.errors);
            let next = pick_ready(&inner, config.daemon.slots, 1);
            // The log row, the findings' user tasks and events, their mails, and the next
            // tasks' Running state: one commit.
            let committed = self
                .shared
                .store
                .write(move |tx| -> Result<_, StoreError> {
                    persist::remove_task(tx, seq)?;
                    let mut ingested = UserTasks::ingest(tx, &config, &findings)?;
                    UserTasks::resolve(tx, &passing, &row.id.to_string(), &mut ingested)?;
                    persist::record_checks(tx, &row.checks)?;
                    row.user_tasks_created = ingested.created.len() as u64;
                    row.user_tasks_updated =
                        (ingested.updated.len() + ingested.closed_by_audit.len()) as u64;
                    persist::append_log(tx, &row)?;
                    for (seq, t) in &next {
                        persist::put_task(tx, *seq, t)?;
                    }
                    Ok((ingested, next))
                })
                .await;
            inner.remove(seq);
            match committed {
                Ok((ingested, next)) => {
                    self.shared.tasks.committed(&ingested);
                    tracing::info!(%id, status = ?status, errors, "task ended");
                    self.launch(&mut inner, next, &loaded);
                }
                Err(e) => {
                    tracing::error!(%id, "cannot record the end of the task ({e}); it will run again at the next start")
                }
            }
        }
        drop(inner);
        self.shared.ended.notify_waiters();
        self.shared.wake.notify_one();
    }

    /// Queues an ad-hoc request: one task per node of the scope, all or none.
    pub async fn enqueue(
        &self,
        req: EnqueueRequest,
        initiator: String,
    ) -> Result<Vec<TaskId>, QueueError> {
        let loaded = self.shared.config.loaded();
        let config = loaded.config;
        let nodes = check_request(&config, &loaded.policies, &req)?;
        let mut inner = self.shared.inner.lock().await;
        if inner.stopping {
            return Err(QueueError::Stopping);
        }
        let capacity = config.daemon.queue_capacity;
        let queued = inner.fifo.len();
        if queued + nodes.len() > capacity as usize {
            return Err(QueueError::Full {
                capacity,
                queued,
                needed: nodes.len(),
            });
        }
        let template = QueueTask {
            id: TaskId {
                kind: req.kind,
                number: 0,
            },
            target: String::new(),
            scope: req.scope.clone(),
            initiator,
            schedule: None,
            plugins: req.plugins.clone(),
            policies: req.policies.clone(),
            queued_at: Utc::now(),
            started_at: None,
            status: ActiveStatus::Queued,
            attempt: 1,
        };
        let created = self
            .commit_new(template, nodes, None)
            .await?
            .unwrap_or_default();
        let ids = created.iter().map(|(_, t)| t.id).collect();
        for (seq, task) in created {
            tracing::info!(id = %task.id, node = %task.target, initiator = %task.initiator, "task Queued");
            inner.insert(seq, task);
        }
        drop(inner);
        self.shared.wake.notify_one();
        Ok(ids)
    }

    /// Queues a scheduled run due at `due`, unless that due time already ran: the check and
    /// the new tasks are one transaction (compare-and-set on the schedule's last due time),
    /// so two fires racing for one due time (a catch-up on reload and the job itself, jobs
    /// re-created across a DST change) queue it once. A node whose task from the same
    /// schedule is still Queued is coalesced; nodes that do not fit are dropped, counted and
    /// logged. Returns whether this call ran the due time.
    pub async fn enqueue_scheduled(
        &self,
        schedule: &ScheduleConfig,
        due: DateTime<Utc>,
    ) -> Result<bool, QueueError> {
        let config = self.shared.config.get();
        let mut inner = self.shared.inner.lock().await;
        if inner.stopping {
            return Err(QueueError::Stopping);
        }
        let mut nodes: Vec<String> = Vec::new();
        let mut coalesced = 0;
        for node in config.nodes_in(&schedule.scope) {
            let pending = inner.fifo.iter().any(|seq| {
                let t = &inner.tasks[seq];
                t.schedule.as_deref() == Some(&schedule.name) && t.target == node.name
            });
            if pending {
                coalesced += 1;
            } else {
                nodes.push(node.name.clone());
            }
        }
        let room = (config.daemon.queue_capacity as usize).saturating_sub(inner.fifo.len());
        let dropped = nodes.len().saturating_sub(room);
        nodes.truncate(room);
        let template = QueueTask {
            id: TaskId {
                kind: schedule.kind,
                number: 0,
            },
            target: String::new(),
            scope: schedule.scope.clone(),
            initiator: SCHEDULE_INITIATOR.to_owned(),
            schedule: Some(schedule.name.clone()),
            plugins: schedule.plugins.clone(),
            policies: schedule.policies.clone(),
            queued_at: Utc::now(),
            started_at: None,
            status: ActiveStatus::Queued,
            attempt: 1,
        };
        let run = ScheduleRun {
            name: schedule.name.clone(),
            due: due.timestamp(),
            dropped: dropped as u64,
        };
        let Some(created) = self.commit_new(template, nodes, Some(run)).await? else {
            tracing::debug!(schedule = %schedule.name, %due, "this due time already ran");
            return Ok(false);
        };
        if dropped > 0 {
            inner.dropped_scheduled += dropped as u64;
            tracing::warn!(
                schedule = %schedule.name,
                dropped,
                capacity = config.daemon.queue_capacity,
                "queue full: scheduled tasks dropped (counted in status as dropped_scheduled)"
            );
        }
        tracing::info!(schedule = %schedule.name, %due, queued = created.len(), coalesced, "schedule fired");
        for (seq, task) in created {
            inner.insert(seq, task);
        }
        drop(inner);
        self.shared.wake.notify_one();
        Ok(true)
    }

    /// Commits one task per node built from `template`, allocating sequence numbers and ids
    /// in the same transaction. For a scheduled run, the same transaction first claims its
    /// due time and adds its drop count; `None` means the due time had already run and
    /// nothing was queued.
    async fn commit_new(
        &self,
        template: QueueTask,
        nodes: Vec<String>,
        run: Option<ScheduleRun>,
    ) -> Result<Option<Vec<(u64, QueueTask)>>, StoreError> {
        self.shared
            .store
            .write(move |tx| -> Result<_, StoreError> {
                if let Some(run) = &run {
                    if !persist::claim_due(tx, &run.name, run.due)? {
                        return Ok(None);
                    }
                    persist::add(tx, persist::DROPPED_SCHEDULED, run.dropped)?;
                }
                let mut out = Vec::with_capacity(nodes.len());
                for node in nodes {
                    let seq = persist::next(tx, persist::NEXT_SEQ)?;
                    let mut task = template.clone();
                    task.id.number = persist::next_task_number(tx, task.id.kind)?;
                    task.target = node;
                    persist::put_task(tx, seq, &task)?;
                    out.push((seq, task));
                }
                Ok(Some(out))
            })
            .await
    }

    /// Cancels tasks by id. Queued ones end at once; Running ones have their worker killed
    /// and are answered once they have ended. Each id gets its own result.
    pub async fn cancel(&self, ids: &[String]) -> Result<Vec<CancelResult>, QueueError> {
        let mut results = Vec::with_capacity(ids.len());
        let mut queued_now: Vec<u64> = Vec::new();
        let mut running: Vec<(usize, u64)> = Vec::new();
        let mut inner = self.shared.inner.lock().await;
        let counters = self
            .shared
            .store
            .read(|tx| -> Result<_, StoreError> {
                Ok((
                    persist::counter(tx, persist::NEXT_SCAN)?,
                    persist::counter(tx, persist::NEXT_AUDIT)?,
                ))
            })
            .await?;
        for raw in ids {
            let result = |outcome, message: String| CancelResult {
                id: raw.clone(),
                outcome,
                message,
            };
            let id: TaskId = match raw.parse() {
                Ok(id) => id,
                Err(e) => {
                    results.push(result(CancelOutcome::Invalid, e));
                    continue;
                }
            };
            match inner.by_id.get(&id).copied() {
                Some(seq) if inner.tasks[&seq].status == ActiveStatus::Queued => {
                    if !queued_now.contains(&seq) {
                        queued_now.push(seq);
                    }
                    results.push(result(CancelOutcome::Cancelled, format!("{id} cancelled")));
                }
                Some(seq) => {
                    if let Some(token) = inner.running.get(&seq) {
                        token.cancel();
                    }
                    running.push((results.len(), seq));
                    results.push(result(
                        CancelOutcome::Cancelled,
                        format!("{id} cancelled; its worker was killed"),
                    ));
                }
                None => {
                    let issued = if id.kind == TaskKind::Scan {
                        counters.0
                    } else {
                        counters.1
                    };
                    if id.number >= 1 && id.number <= issued {
                        results.push(result(
                            CancelOutcome::AlreadyFinished,
                            format!("{id} has already ended; see `vigil log`"),
                        ));
                    } else {
                        results.push(result(
                            CancelOutcome::NotFound,
                            format!("there is no task {id}"),
                        ));
                    }
                }
            }
        }
        if !queued_now.is_empty() {
            let now = Utc::now();
            let rows: Vec<(u64, LogRow)> = queued_now
                .iter()
                .map(|seq| (*seq, log_row(&inner.tasks[seq], cancelled_result(), now)))
                .collect();
            self.shared
                .store
                .write(move |tx| -> Result<(), StoreError> {
                    for (seq, row) in &rows {
                        persist::remove_task(tx, *seq)?;
                        persist::append_log(tx, row)?;
                    }
                    Ok(())
                })
                .await?;
            for seq in queued_now {
                if let Some(t) = inner.remove(seq) {
                    tracing::info!(id = %t.id, "queued task Cancelled");
                }
            }
        }
        drop(inner);
        // Answer for running tasks once their end is committed (worker killed, row written).
        for (index, seq) in running {
            if !self.wait_ended(seq, Duration::from_secs(30)).await {
                results[index].message = format!(
                    "{}: cancel requested; the worker is still stopping",
                    results[index].id
                );
            }
        }
        Ok(results)
    }

    /// Waits until the task `seq` has left the queue; false on timeout.
    async fn wait_ended(&self, seq: u64, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let ended = self.shared.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if !self.shared.inner.lock().await.tasks.contains_key(&seq) {
                return true;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return false;
            }
        }
    }

    /// Active tasks, newest queue time first.
    pub async fn list(&self, filter: &QueueFilter) -> Vec<QueueTask> {
        let inner = self.shared.inner.lock().await;
        let mut out: Vec<QueueTask> = inner
            .tasks
            .values()
            .filter(|t| filter.status.is_none_or(|s| s == t.status))
            .filter(|t| filter.kind.is_none_or(|k| k == t.id.kind))
            .filter(|t| filter.node.as_ref().is_none_or(|n| n == &t.target))
            .cloned()
            .collect();
        out.sort_by(|a, b| b.queued_at.cmp(&a.queued_at).then(b.id.cmp(&a.id)));
        out
    }

    pub async fn status(&self) -> QueueStatus {
        let config = self.shared.config.get();
        let inner = self.shared.inner.lock().await;
        let now = Utc::now();
        let oldest = inner
            .running
            .keys()
            .filter_map(|seq| inner.tasks.get(seq).and_then(|t| t.started_at))
            .min();
        QueueStatus {
            queued: inner.fifo.len(),
            running: inner.running.len(),
            slots: config.daemon.slots,
            capacity: config.daemon.queue_capacity,
            dropped_scheduled: inner.dropped_scheduled,
            oldest_running_secs: oldest.map(|t| (now - t).num_seconds().max(0) as u64),
        }
    }

    pub async fn log(&self, kind: TaskKind, filter: LogFilter) -> Result<LogPage, StoreError> {
        self.shared
            .store
            .read(move |tx| persist::read_log(tx, kind, &filter))
            .await
    }

    /// The due time of a schedule's last run, if it ever ran.
    pub async fn schedule_fired(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let name = name.to_owned();
        let secs = self
            .shared
            .store
            .read(move |tx| persist::schedule_fired(tx, &name))
            .await?;
        Ok(secs.and_then(|s| DateTime::from_timestamp(s, 0)))
    }

    /// Records a schedule seen for the first time as having run at `now`, without queueing
    /// anything (so that adding a schedule does not start a run at once). A schedule that
    /// has a recorded run keeps it.
    pub async fn schedule_seen(&self, name: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.shared
            .store
            .write(move |tx| persist::schedule_seen(tx, &name, now.timestamp()))
            .await
    }

    /// Stops taking and starting work, gives running tasks `grace` to finish, then kills
    /// them; killed tasks stay in the store as Running and are requeued at the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.shared.inner.lock().await.stopping = true;
        self.shared.runners.close();
        let running = self.shared.inner.lock().await.running.len();
        if running > 0 {
            tracing::info!(
                running,
                "waiting up to {} for running tasks",
                humantime::format_duration(grace)
            );
            if tokio::time::timeout(grace, self.shared.runners.wait())
                .await
                .is_err()
            {
                tracing::warn!("running tasks did not finish in time; stopping them for requeue at the next start");
            }
        }
        self.shared.shutdown.cancel();
        self.shared.runners.wait().await;
    }
}

/// The oldest Queued tasks that fit in the free slots (`ending` running tasks are about to
/// free theirs), marked Running as of now; nothing while the daemon is stopping.
fn pick_ready(inner: &Inner, slots: u32, ending: usize) -> Vec<(u64, QueueTask)> {
    if inner.stopping {
        return Vec::new();
    }
    let busy = inner.running.len().saturating_sub(ending);
    let free = (slots as usize).saturating_sub(busy);
    let now = Utc::now();
    inner
        .fifo
        .iter()
        .take(free)
        .map(|seq| {
            let mut t = inner.tasks[seq].clone();
            t.status = ActiveStatus::Running;
            t.started_at = Some(now);
            (*seq, t)
        })
        .collect()
}

/// Checks an ad-hoc request against the config; returns the nodes it covers.
fn check_request(
    config: &Config,
    policies: &[crate::policy::Policy],
    req: &EnqueueRequest,
) -> Result<Vec<String>, QueueError> {
    let bad = |m: String| Err(QueueError::BadRequest(m));
    match &req.scope {
        Scope::Group(g) if config.group(g).is_none() => {
            return bad(format!("unknown group {g:?} in scope"))
        }
        Scope::Node(n) if config.node(n).is_none() => {
            return bad(format!("unknown node {n:?} in scope"))
        }
        _ => {}
    }
    match req.kind {
        TaskKind::Scan => {
            if req.policies.is_some() {
                return bad("a scan takes `plugins`, not `policies`".into());
            }
            for p in req.plugins.iter().flatten() {
                if config.plugin(p).is_none() {
                    return bad(format!(
                        "unknown plugin {p:?}; configured: {}",
                        names(config)
                    ));
                }
            }
            if req.plugins.as_ref().is_some_and(Vec::is_empty) {
                return bad(
                    "`plugins` is empty: name at least one, or leave it out for all".into(),
                );
            }
        }
        TaskKind::Audit => {
            if req.plugins.is_some() {
                return bad("an audit takes `policies`, not `plugins`".into());
            }
            for name in req.policies.iter().flatten() {
                if !policies.iter().any(|p| &p.name == name) {
                    let loaded: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
                    return bad(format!(
                        "unknown policy {name:?}; loaded: {}",
                        if loaded.is_empty() {
                            "none".to_owned()
                        } else {
                            loaded.join(", ")
                        }
                    ));
                }
            }
            if req.policies.as_ref().is_some_and(Vec::is_empty) {
                return bad(
                    "`policies` is empty: name at least one, or leave it out for all".into(),
                );
            }
            if policies.is_empty() {
                return bad(
                    "no policies are loaded: put *.toml policy files in the config's policy_dir"
                        .into(),
                );
            }
        }
    }
    let nodes: Vec<String> = config
        .nodes_in(&req.scope)
        .into_iter()
        .map(|n| n.name.clone())
        .collect();
    if nodes.is_empty() {
        return bad(format!("scope {} covers no node", req.scope));
    }
    Ok(nodes)
}

fn names(config: &Config) -> String {
    config
        .plugins
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an ended task found: its drift (one finding for the node's whole change set) and
/// each plugin that failed. Cancelled tasks find nothing.
fn findings_of(
    task: &QueueTask,
    result: &TaskResult,
    today: chrono::NaiveDate,
    policies: &[crate::policy::Policy],
) -> Vec<Finding> {
    if result.status == FinalStatus::Cancelled {
        return Vec::new();
    }
    let day = result.drifts.first().map_or(today, |d| d.day);
    let mut out: Vec<Finding> = finding::from_drift(&task.target, task.id, day, &result.drifts)
        .into_iter()
        .collect();
    for c in result
        .checks
        .iter()
        .filter(|c| c.outcome == CheckOutcome::Fail)
    {
        let policy_description = policies
            .iter()
            .find(|p| p.name == c.policy)
            .map_or("", |p| p.description.as_str());
        let failed = finding::FailedCheck {
            policy: &c.policy,
            policy_description,
            check: &c.check,
            check_description: &c.description,
            plugin: &c.plugin,
            evidence: &c.evidence,
        };
        out.push(finding::from_policy(&task.target, task.id, day, &failed));
    }
    for run in &result.plugins {
        if let Some(error) = &run.error {
            out.push(finding::from_scan_failure(
                &task.target,
                task.id,
                day,
                &run.plugin,
                error,
            ));
        }
    }
    out
}

/// The (fingerprint, node) of every policy check an audit found passing.
fn passing_of(task: &QueueTask, result: &TaskResult) -> Vec<(String, String)> {
    result
        .checks
        .iter()
        .filter(|c| c.outcome == CheckOutcome::Pass)
        .map(|c| {
            (
                finding::policy_fingerprint(&c.policy, &c.check),
                task.target.clone(),
            )
        })
        .collect()
}

fn cancelled_result() -> TaskResult {
    TaskResult {
        status: FinalStatus::Cancelled,
        messages: vec!["cancelled while queued".into()],
        summary: None,
        items: 0,
        plugins: Vec::new(),
        drifts: Vec::new(),
        checks: Vec::new(),
        interrupted: false,
    }
}

fn interrupted_result(task: &QueueTask) -> TaskResult {
    TaskResult {
        status: FinalStatus::Failed,
        messages: vec![format!(
            "interrupted {} times by daemon stops or crashes; not retried again",
            task.attempt
        )],
        summary: None,
        items: 0,
        plugins: Vec::new(),
        drifts: Vec::new(),
        checks: Vec::new(),
        interrupted: false,
    }
}

fn log_row(task: &QueueTask, result: TaskResult, finished_at: DateTime<Utc>) -> LogRow {
    let errors = if result.status == FinalStatus::Failed {
        result.messages.len().max(1) as u32
    } else {
        0
    };
    let changes_found = result.changes();
    let drift_fingerprint = result.fingerprint();
    LogRow {
        id: task.id,
        target: task.target.clone(),
        scope: task.scope.clone(),
        initiator: task.initiator.clone(),
        schedule: task.schedule.clone(),
        queued_at: task.queued_at,
        started_at: task.started_at,
        finished_at,
        status: result.status,
        errors,
        messages: result.messages,
        summary: result.summary,
        attempt: task.attempt,
        items_scanned: result.items,
        changes_found,
        checks: result.checks,
        drift_fingerprint,
        user_tasks_created: 0,
        user_tasks_updated: 0,
        plugins: result.plugins,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Outbox;
    use crate::setup::Setup;

    /// A queue on a fresh store whose dispatcher never starts: tasks stay Queued.
    async fn idle_queue(dir: &std::path::Path) -> (Queue, Arc<Config>) {
        let path = dir.join("config.toml");
        std::fs::write(
            &path,
            "[daemon]\nstate_dir = \"state\"\n\n[[node]]\nname = \"n1\"\nroot = \"/\"\n\n\
             [[schedule]]\nname = \"often\"\nkind = \"scan\"\ncron = \"0 */15 * * * *\"\n",
        )
        .unwrap();
        let config = crate::config::load(&path).unwrap();
        let store = Store::open(&config.daemon.state_dir).unwrap();
        let cell = Arc::new(ConfigCell::new(Setup {
            config,
            policies: Vec::new(),
        }));
        let tasks = UserTasks::open(store.clone(), Outbox::new(store.clone(), cell.clone()))
            .await
            .unwrap();
        let worker = WorkerCommand::new("/nonexistent/vigild");
        let queue = Queue::open(store, cell.clone(), worker, tasks)
            .await
            .unwrap();
        (queue, cell.get())
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Regression: a fire that checked the last due time before another fire for the same
    /// due time committed (a catch-up on reload racing the job) queued that due time again
    /// once the first run's task had left Queued (so coalescing did not catch it).
    #[tokio::test]
    async fn a_due_time_runs_once_even_when_fires_race() {
        let tmp = tempfile::tempdir().unwrap();
        let (queue, config) = idle_queue(tmp.path()).await;
        let schedule = &config.schedules[0];
        let due = at("2026-10-25T01:15:00Z");
        assert!(queue.enqueue_scheduled(schedule, due).await.unwrap());
        // The run's task leaves Queued, as if it had started and ended.
        let cancelled = queue.cancel(&["Scan #1".to_owned()]).await.unwrap();
        assert_eq!(cancelled[0].outcome, CancelOutcome::Cancelled);

        // The racing fire: same due time, and an older one (a slow fire from before).
        assert!(!queue.enqueue_scheduled(schedule, due).await.unwrap());
        assert!(!queue
            .enqueue_scheduled(schedule, at("2026-10-25T01:00:00Z"))
            .await
            .unwrap());
        assert!(queue.list(&QueueFilter::default()).await.is_empty());
        assert_eq!(queue.schedule_fired("often").await.unwrap(), Some(due));

        // Two fires at once for the next due time: one run.
        let next = at("2026-10-25T01:30:00Z");
        let (a, b) = tokio::join!(
            queue.enqueue_scheduled(schedule, next),
            queue.enqueue_scheduled(schedule, next)
        );
        assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|r| **r).count(), 1);
        let queued = queue.list(&QueueFilter::default()).await;
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].id.to_string(), "Scan #2");

        // First sight of a schedule records it; later sightings keep the recorded run.
        queue
            .schedule_seen("often", at("2026-10-26T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(queue.schedule_fired("often").await.unwrap(), Some(next));
    }
}
