//! Active tasks: the bounded queue of scan and audit tasks and its slots.
//!
//! Every state change (queued, running, terminal) is committed to the store before it is
//! acted on or acknowledged; the in-memory index only mirrors what is committed. One async
//! mutex serialises changes, so ids, FIFO order and capacity checks never race. At most
//! `daemon.slots` tasks run at once: the commit that records a task's end also starts the
//! oldest Queued task in the slot it frees, and the dispatcher fills slots that free up any
//! other way (new work, more slots after a reload). Terminal tasks leave the queue and
//! become Scan log / Audit log rows.

mod audit_task;
mod cancel;
mod complete;
mod inner;
mod outcome;
pub mod persist;
mod request;
pub(crate) mod rows;
mod runner;
mod runs;
mod scan_task;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use persist::LogFilter;

use crate::config::ScheduleConfig;
use crate::plugin::supervisor::WorkerCommand;
use crate::proto::{
    CancelOutcome, CancelResult, EnqueueRequest, LogPage, LogRow, QueueFigures, QueueTask,
    QueueTaskId, QueueTaskKind, QueueTaskState, QueueTaskStatus, QueueWork, SCHEDULE_INITIATOR,
};
use crate::setup::{Setup, SetupCell};
use crate::store::{Store, StoreError};
use crate::tasks::{Ingested, UserTasks};
use inner::{Figures, Inner};
use outcome::{cancelled_result, findings_of, interrupted_result, log_row};
use request::check_request;
use runner::{RunEnd, Stop};

/// Its tables of encoded rows, for `vigild check` (every row decoded).
pub(crate) const STORED_ROWS: &[&dyn crate::store::RowCheck] = &[
    &rows::QUEUE,
    &rows::SCAN_LOG,
    &rows::AUDIT_LOG,
    &rows::NODE_LAST_SCAN,
];
/// The tables of runs, likewise.
pub(crate) use runs::STORED_ROWS as RUN_ROWS;

/// A scheduled run on its way into the store: the claim of its due time (made in the
/// transaction that queues it; false when that due time already ran) and its drop count.
struct ScheduleRun {
    claim: Claim,
    dropped: u64,
}

/// Claims a scheduled run's due time inside the transaction that queues it (see
/// `schedule::fired::claim`): true if this due time has not run yet.
pub type Claim = Box<dyn FnOnce(&redb::WriteTransaction) -> Result<bool, StoreError> + Send>;

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
    pub status: Option<QueueTaskStatus>,
    pub node: Option<String>,
    pub kind: Option<QueueTaskKind>,
}

/// Handle to the queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    config: Arc<SetupCell>,
    worker: WorkerCommand,
    /// Findings of ending tasks become user tasks.
    tasks: UserTasks,
    /// Taken through [`Shared::lock`] only.
    inner: Mutex<Inner>,
    /// The queue's figures as of the last release of `inner` (see `inner.rs`).
    figures: std::sync::Mutex<Figures>,
    /// Tasks that ended and wait for their end to be committed (see `complete`).
    ended_tasks: std::sync::Mutex<Vec<(u64, RunEnd)>>,
    /// Wakes the dispatcher: something was queued, or a slot freed up.
    wake: Notify,
    /// Signals every waiter that some task reached its end.
    ended: Notify,
    /// Cancelled when the daemon stops: no new starts, running tasks are interrupted.
    shutdown: CancellationToken,
    runners: TaskTracker,
    /// Runs to group as soon as the queue starts (see `Queue::start`).
    due_runs: std::sync::Mutex<Vec<u64>>,
    /// Stored queue tasks that did not decode when the queue was loaded: every list of the
    /// queue is missing them, and says so.
    left_out_at_open: u64,
}

impl Queue {
    /// Loads the queue from the store. Tasks that were Running when the daemon stopped are
    /// queued again with their attempt count raised; after [`MAX_ATTEMPTS`] they fail.
    pub async fn open(
        store: Store,
        config: Arc<SetupCell>,
        worker: WorkerCommand,
        tasks: UserTasks,
    ) -> Result<Queue, StoreError> {
        let opened = crate::store::counting_left_out(store.write(|tx| -> Result<_, StoreError> {
                let indexed = persist::ensure_log_index(tx)?;
                if indexed > 0 {
                    tracing::info!(rows = indexed, "indexed the Scan and Audit logs by node and status");
                }
                let mut kept = Vec::new();
                for (seq, mut task) in persist::load_tasks(tx)? {
                    if let QueueTaskState::Running { attempt, .. } = task.state {
                        if attempt >= MAX_ATTEMPTS {
                            // The row keeps the last attempt's number and start time.
                            let row = log_row(&task, interrupted_result(&task), Utc::now());
                            persist::remove_task(tx, seq)?;
                            let log_seq = persist::append_log(tx, &row)?;
                            if let Some(run) = task.run {
                                runs::task_ended(tx, run, &task.target, log_seq, None)?;
                            }
                            tracing::warn!(id = %task.id(), attempt, "task interrupted {MAX_ATTEMPTS} times, marked Failed");
                            continue;
                        }
                        task.state = QueueTaskState::Queued { attempt: attempt + 1 };
                        persist::put_task(tx, seq, &task)?;
                        tracing::info!(id = %task.id(), attempt = attempt + 1, "requeued a task interrupted by a daemon stop");
                    }
                    kept.push((seq, task));
                }
                let dropped = persist::add(tx, persist::DROPPED_SCHEDULED, 0)?;
                // Runs interrupted while being grouped, or left with no task to wait for.
                let in_queue = |run: u64| kept.iter().filter(|(_, t)| t.run == Some(run)).count();
                let mut due = runs::orphaned(tx, in_queue)?;
                for run in runs::due_in(tx)? {
                    if !due.contains(&run) {
                        due.push(run);
                    }
                }
                Ok((kept, dropped, due))
            }))
            .await;
        let ((active, dropped, due), left_out_at_open) = (opened.0?, opened.1);
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
                figures: std::sync::Mutex::new(inner.figures()),
                inner: Mutex::new(inner),
                ended_tasks: std::sync::Mutex::new(Vec::new()),
                wake: Notify::new(),
                ended: Notify::new(),
                shutdown: CancellationToken::new(),
                runners: TaskTracker::new(),
                due_runs: std::sync::Mutex::new(due),
                left_out_at_open,
            }),
        })
    }

    /// Starts the dispatcher, and the grouping of runs a stop interrupted. Call once.
    pub fn start(&self) {
        let queue = self.clone();
        tokio::spawn(async move { queue.dispatch_loop().await });
        for run in std::mem::take(&mut *crate::sync::lock(&self.shared.due_runs)) {
            tracing::info!(run, "grouping a run whose tasks ended before the last stop");
            self.group_run(run);
        }
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
        let loaded = self.shared.config.current();
        let mut inner = self.shared.lock().await;
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
    fn launch(&self, inner: &mut Inner, started: Vec<(u64, QueueTask)>, loaded: &Setup) {
        for (seq, task) in started {
            if inner.fifo.front() == Some(&seq) {
                inner.fifo.pop_front();
            } else {
                inner.fifo.retain(|s| *s != seq);
            }
            let cancel = self.shared.shutdown.child_token();
            inner.running.insert(seq, cancel.clone());
            inner.tasks.insert(seq, task.clone());
            tracing::info!(id = %task.id(), node = %task.target, attempt = task.state.attempt(), "task Running");
            let queue = self.clone();
            let config = loaded.config.clone();
            let policies = loaded.policies.clone();
            let loaded_at = loaded.loaded_at;
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
                    loaded_at,
                };
                let end = match &task.work {
                    QueueWork::Scan { plugins } => {
                        scan_task::scan(&task, plugins.as_deref(), &env, &stop).await
                    }
                    QueueWork::Audit { policies } => {
                        audit_task::audit(&task, policies.as_deref(), &env, &stop).await
                    }
                };
                queue.complete(seq, end).await;
            });
        }
    }

    /// Queues an ad-hoc request: one task per node of the scope, all or none.
    /// Returns the new tasks' ids, and their run when they form one.
    pub async fn enqueue(
        &self,
        req: EnqueueRequest,
        initiator: String,
    ) -> Result<(Vec<QueueTaskId>, Option<u64>), QueueError> {
        let loaded = self.shared.config.current();
        let config = loaded.config;
        let nodes = check_request(&config, &loaded.policies, &req)?;
        let mut inner = self.shared.lock().await;
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
            number: 0,
            target: String::new(),
            scope: req.scope.clone(),
            initiator,
            schedule: None,
            work: work_of(req.kind, req.plugins.clone(), req.policies.clone()),
            queued_at: Utc::now(),
            state: QueueTaskState::Queued { attempt: 1 },
            run: None,
        };
        let created = self
            .commit_new(template, nodes, None)
            .await?
            .unwrap_or_default();
        let ids = created.iter().map(|(_, t)| t.id()).collect();
        let run = created.first().and_then(|(_, t)| t.run);
        for (seq, task) in created {
            tracing::info!(id = %task.id(), node = %task.target, initiator = %task.initiator, "task Queued");
            inner.insert(seq, task);
        }
        drop(inner);
        self.shared.wake.notify_one();
        Ok((ids, run))
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
        claim: Claim,
    ) -> Result<bool, QueueError> {
        let config = self.shared.config.config();
        let mut inner = self.shared.lock().await;
        if inner.stopping {
            return Err(QueueError::Stopping);
        }
        let mut nodes: Vec<String> = Vec::new();
        let mut coalesced = 0;
        // Nodes whose task from this schedule is still Queued: one pass over the FIFO.
        let pending: std::collections::HashSet<&str> = inner
            .fifo
            .iter()
            .map(|seq| &inner.tasks[seq])
            .filter(|t| t.schedule.as_deref() == Some(&schedule.name))
            .map(|t| t.target.as_str())
            .collect();
        for node in config.nodes_in(&schedule.scope) {
            if pending.contains(node.name.as_str()) {
                coalesced += 1;
            } else {
                nodes.push(node.name.clone());
            }
        }
        let room = (config.daemon.queue_capacity as usize).saturating_sub(inner.fifo.len());
        let dropped = nodes.len().saturating_sub(room);
        nodes.truncate(room);
        let template = QueueTask {
            number: 0,
            target: String::new(),
            scope: schedule.scope.clone(),
            initiator: SCHEDULE_INITIATOR.to_owned(),
            schedule: Some(schedule.name.clone()),
            work: work_of(
                schedule.kind,
                schedule.plugins.clone(),
                schedule.policies.clone(),
            ),
            queued_at: Utc::now(),
            state: QueueTaskState::Queued { attempt: 1 },
            run: None,
        };
        let run = ScheduleRun {
            claim,
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
                if let Some(run) = run {
                    if !(run.claim)(tx)? {
                        return Ok(None);
                    }
                    persist::add(tx, persist::DROPPED_SCHEDULED, run.dropped)?;
                }
                // More than one node: the tasks form a run, whose findings become user tasks
                // together when its last task ends.
                let mut template = template;
                if nodes.len() > 1 {
                    template.run = Some(runs::create(
                        tx,
                        runs::NewRun {
                            kind: template.work.kind(),
                            scope: &template.scope,
                            initiator: &template.initiator,
                            schedule: template.schedule.as_deref(),
                            tasks: nodes.len() as u32,
                        },
                    )?);
                }
                let mut out = Vec::with_capacity(nodes.len());
                for node in nodes {
                    let seq = persist::next(tx, persist::NEXT_SEQ)?;
                    let mut task = template.clone();
                    task.number = persist::next_task_number(tx, task.work.kind())?;
                    task.target = node;
                    persist::put_task(tx, seq, &task)?;
                    out.push((seq, task));
                }
                Ok(Some(out))
            })
            .await
    }

    /// Active tasks, newest queue time first.
    pub async fn list(&self, filter: &QueueFilter) -> Vec<QueueTask> {
        crate::store::note_left_out(self.shared.left_out_at_open);
        let inner = self.shared.lock().await;
        let mut out: Vec<QueueTask> = inner
            .tasks
            .values()
            .filter(|t| filter.status.is_none_or(|s| s == t.status()))
            .filter(|t| filter.kind.is_none_or(|k| k == t.work.kind()))
            .filter(|t| filter.node.as_ref().is_none_or(|n| n == &t.target))
            .cloned()
            .collect();
        out.sort_by(|a, b| b.queued_at.cmp(&a.queued_at).then(b.id().cmp(&a.id())));
        out
    }

    /// A run as the API shows it.
    pub async fn run_info(&self, run: u64) -> Result<Option<crate::proto::RunInfo>, StoreError> {
        self.shared.store.read(move |tx| runs::info(tx, run)).await
    }

    /// The store the queue commits to (the schedules claim their due times in it).
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The queue's figures for `/v1/status`. Never waits for the queue's lock, which a
    /// commit of task ends may hold for a while: the figures are those of the last change.
    pub async fn status(&self) -> QueueFigures {
        let config = self.shared.config.config();
        let f = *crate::sync::lock(&self.shared.figures);
        QueueFigures {
            queued: f.queued,
            running: f.running,
            slots: config.daemon.slots,
            capacity: config.daemon.queue_capacity,
            dropped_scheduled: f.dropped_scheduled,
            oldest_running_secs: f
                .oldest_started
                .map(|t| (Utc::now() - t).num_seconds().max(0) as u64),
        }
    }

    pub async fn log(&self, kind: QueueTaskKind, filter: LogFilter) -> Result<LogPage, StoreError> {
        self.shared
            .store
            .read(move |tx| persist::read_log(tx, kind, &filter))
            .await
    }

    /// Stops taking and starting work, gives running tasks `grace` to finish, then kills
    /// them; killed tasks stay in the store as Running and are requeued at the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.shared.lock().await.stopping = true;
        self.shared.runners.close();
        let running = self.shared.lock().await.running.len();
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

/// The work of a request or schedule of `kind`: its plugins or its policies (the request
/// was checked to name only the one that fits).
fn work_of(
    kind: QueueTaskKind,
    plugins: Option<Vec<String>>,
    policies: Option<Vec<String>>,
) -> QueueWork {
    match kind {
        QueueTaskKind::Scan => QueueWork::Scan { plugins },
        QueueTaskKind::Audit => QueueWork::Audit { policies },
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
            t.state = QueueTaskState::Running {
                started_at: now,
                attempt: t.state.attempt(),
            };
            (*seq, t)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
