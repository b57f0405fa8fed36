//! User tasks: the lightweight ticketing system. Findings (drift, scan failures, policy
//! failures) become tasks with one event per node and day: a run's drift grouped into the
//! change sets that happened together on the same nodes, per destination (the owner group
//! of each node); new tasks are auto-assigned to the destination's owner, and every
//! assignment mails the assignee through the outbox in the same transaction.
//!
//! The store is the truth: rights are checked, and actions decided, on the task as read in
//! the write transaction that changes it. [`UserTasks`] keeps an in-memory [`index`] of every
//! task so that filtered lists and counts never scan the store; it takes each task's copy
//! after the commit, and never an older copy than it holds.

mod change;
pub mod finding;
pub mod grouping;
mod index;
pub mod ingest;
mod log;
mod mail;
pub mod persist;
mod rights;
mod rows;
mod upgrade;

use std::collections::HashSet;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use change::task_change;
pub use finding::{CheckRef, FailedCheck, NodeFindings, PluginFailed};
use index::{Filter, TaskIndex};
pub use ingest::Ingested;

use crate::caller::Caller;
use crate::config::Config;
use crate::events::EventLog;
use crate::proto::{
    CloseAllResponse, ClosedHow, ExportedUserTask, UserTask, UserTaskDetail, UserTaskFilter,
    UserTaskKind, UserTaskList, UserTaskNodeReport, UserTaskReport, UserTaskStatus,
};
use crate::setup::SetupCell;
use crate::store::{Store, StoreError};

pub use mail::MailWaker;
use rights::{check_assign, check_close, check_reopen, closable, may_close, role_of};

/// Its tables of encoded rows, for `vigild check` (every row decoded).
pub(crate) const STORED_ROWS: &[&dyn crate::store::RowCheck] =
    &[&rows::USER_TASKS, &rows::TASK_EVENTS];

/// Why a user-task request was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserTaskError {
    #[error("there is no task #{0}")]
    NotFound(u64),
    /// The caller's role does not allow it; nothing was changed.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    /// Reopening a task while another one is open for the same finding.
    #[error("task #{other} is already open for the same finding; work on that one")]
    Conflict { other: u64 },
    /// Assigning to an address that is neither a configured user nor a group owner.
    #[error(
        "{0} is not a vigil user or a group owner: add a [[user]] with email = \"{0}\" (or add \
         it to a [[group]]'s owners) to the config and reload, then assign again"
    )]
    UnknownAssignee(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the task index lookup failed: {0}")]
    Internal(String),
}

/// Whether `email` is someone vigil knows: a configured user or a group owner.
fn knows(config: &Config, email: &str) -> bool {
    let same = |a: &str| a.eq_ignore_ascii_case(email);
    config.users.iter().any(|u| same(&u.email))
        || config
            .groups
            .iter()
            .any(|g| g.owners.iter().any(|o| same(o)))
}

/// The user-task service; cheap to clone.
#[derive(Clone)]
pub struct UserTasks {
    store: Store,
    index: Arc<RwLock<TaskIndex>>,
    /// Stored user tasks that did not decode when the index was loaded: every list is
    /// missing them, and says so.
    left_out_of_index: u64,
    /// Scans over the whole index running at once: one per core. More would only share
    /// the cores, making every one of them (and everything else) slower.
    scans: Arc<tokio::sync::Semaphore>,
    mail: MailWaker,
    /// The config in force: who may be assigned.
    setup: Arc<SetupCell>,
    /// The event log every change here writes to; its feed is woken after each commit.
    events: EventLog,
}

impl UserTasks {
    /// Loads the index from the store (after bringing the fingerprints of open tasks
    /// written before tasks were grouped per destination up to date).
    pub async fn open(
        store: Store,
        mail: MailWaker,
        setup: Arc<SetupCell>,
    ) -> Result<UserTasks, StoreError> {
        let config = setup.config();
        let upgraded = store
            .write(move |tx| upgrade::per_destination(tx, &config))
            .await?;
        if upgraded > 0 {
            tracing::info!(
                tasks = upgraded,
                "open tasks from before per-destination grouping now have their destination"
            );
        }
        let keyed = store.write(upgrade::dedup_keys).await?;
        if keyed > 0 {
            tracing::info!(
                tasks = keyed,
                "tasks from before dedup keys now have theirs"
            );
        }
        let (index, left_out) = crate::store::counting_left_out(store.read(|tx| {
            let mut index = TaskIndex::loading();
            persist::load_into(tx, &mut index)?;
            Ok::<_, StoreError>(index.loaded())
        }))
        .await;
        let index = index?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(UserTasks {
            events: EventLog::new(store.clone()),
            store,
            index: Arc::new(RwLock::new(index)),
            left_out_of_index: left_out,
            scans: Arc::new(tokio::sync::Semaphore::new(cores)),
            mail,
            setup,
        })
    }

    /// The event log (its reads and its feed).
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    fn read_index(&self) -> RwLockReadGuard<'_, TaskIndex> {
        crate::sync::read(&self.index)
    }

    fn write_index(&self) -> RwLockWriteGuard<'_, TaskIndex> {
        crate::sync::write(&self.index)
    }

    /// Runs `f` on the index on the blocking pool (a filter over every task is too long a
    /// computation for the async executor), at most one per core at once.
    async fn with_index<T, F>(&self, f: F) -> Result<T, UserTaskError>
    where
        F: FnOnce(&TaskIndex) -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = self
            .scans
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| UserTaskError::Internal(e.to_string()))?;
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&crate::sync::read(&index))
        })
        .await
        .map_err(|e| UserTaskError::Internal(e.to_string()))
    }

    /// Ingests the findings of a single-node scan or audit inside the caller's
    /// transaction: tasks, events and mails commit with it. Call [`UserTasks::committed`]
    /// after the commit.
    pub fn ingest_single(
        tx: &redb::WriteTransaction,
        config: &Config,
        findings: &NodeFindings,
    ) -> Result<Ingested, StoreError> {
        let out = ingest::ingest_single(tx, config, findings)?;
        Self::mail(tx, &out)?;
        log::ingested(tx, &out, Some(findings.source))?;
        Ok(out)
    }

    /// Ingests the findings of a whole run inside the caller's transaction (see
    /// [`UserTasks::ingest_single`]).
    pub fn ingest_run(
        tx: &redb::WriteTransaction,
        config: &Config,
        findings: &[NodeFindings],
    ) -> Result<Ingested, StoreError> {
        let out = ingest::ingest_run(tx, config, findings)?;
        Self::mail(tx, &out)?;
        log::ingested(tx, &out, None)?;
        Ok(out)
    }

    /// Queues the mails of what an ingest did: assignments, and tasks that closed themselves.
    fn mail(tx: &redb::WriteTransaction, out: &Ingested) -> Result<(), StoreError> {
        for a in &out.assignments {
            mail::assignment(tx, &a.task, &a.assigned_by)?;
        }
        for c in &out.closed {
            mail::closed_itself(tx, &c.task, &c.by, c.why)?;
        }
        Ok(())
    }

    /// Brings the index up to date after a commit that ingested findings.
    pub fn committed(&self, ingested: &Ingested) {
        let mut index = self.write_index();
        for task in &ingested.changed {
            index.apply(task.clone());
        }
        for (id, node) in &ingested.new_nodes {
            index.add_node(*id, node);
        }
        drop(index);
        if !ingested.assignments.is_empty() || !ingested.closed.is_empty() {
            self.mail.wake();
        }
        if !ingested.changed.is_empty() {
            self.events.published();
        }
    }

    /// Gives the index the copies of tasks an API action committed.
    fn update_index(&self, tasks: &[UserTask]) {
        let mut index = self.write_index();
        for t in tasks {
            index.apply(t.clone());
        }
    }

    pub fn get(&self, id: u64) -> Option<UserTask> {
        self.read_index().get(id).cloned()
    }

    /// Tasks matching the filter, sorted by last event (newest first), paged.
    pub async fn list(
        &self,
        filter: &UserTaskFilter,
        caller: &Caller,
        offset: usize,
        limit: usize,
    ) -> Result<UserTaskList, UserTaskError> {
        let f = Filter::resolve(filter, caller)?;
        let (tasks, total) = self
            .with_index(move |index| index.page(&f, offset, limit))
            .await?;
        crate::store::note_left_out(self.left_out_of_index);
        Ok(UserTaskList { tasks, total })
    }

    /// The open tasks matching the filter that the caller may close, as Close All would
    /// pick them: its preview.
    pub async fn list_closable(
        &self,
        filter: &UserTaskFilter,
        caller: &Caller,
        offset: usize,
        limit: usize,
    ) -> Result<UserTaskList, UserTaskError> {
        let (f, me, role) = closable(filter, caller)?;
        let (tasks, total) = self
            .with_index(move |index| {
                index.page_where(&f, offset, limit, |t| may_close(t, me.as_deref(), role))
            })
            .await?;
        crate::store::note_left_out(self.left_out_of_index);
        Ok(UserTaskList { tasks, total })
    }

    /// (organisation's open tasks, the caller's open tasks).
    pub fn open_counts(&self, email: Option<&str>) -> (u64, u64) {
        self.read_index().open_counts(email)
    }

    pub async fn detail(
        &self,
        id: u64,
        offset: usize,
        limit: usize,
    ) -> Result<UserTaskDetail, UserTaskError> {
        let task = self.get(id).ok_or(UserTaskError::NotFound(id))?;
        let (nodes, events) = self
            .store
            .read(move |tx| -> Result<_, StoreError> {
                Ok((
                    persist::node_counts(tx, id)?,
                    persist::events(tx, id, offset, limit)?,
                ))
            })
            .await?;
        let events_total = task.events;
        Ok(UserTaskDetail {
            task,
            nodes,
            events,
            events_total,
        })
    }

    /// Per node: the drift it found (drift tasks) or its message (other kinds), from the
    /// node's newest event.
    pub async fn report(
        &self,
        id: u64,
        config: Arc<Config>,
    ) -> Result<UserTaskReport, UserTaskError> {
        let task = self.get(id).ok_or(UserTaskError::NotFound(id))?;
        let kind = task.kind;
        // Drift tasks of today's grouping know their changes: a node's report shows those
        // alone. Tasks from before show the node's whole drift of that day.
        let ids = self
            .store
            .read(move |tx| persist::change_ids(tx, id))
            .await?;
        let ids: Option<HashSet<String>> = (!ids.is_empty()).then(|| ids.into_iter().collect());
        let nodes = self
            .store
            .read(move |tx| -> Result<_, StoreError> {
                let events = persist::events(tx, id, 0, usize::MAX)?;
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                for e in events {
                    if !seen.insert(e.node.clone()) {
                        continue;
                    }
                    let (mut drift, message) = if kind == UserTaskKind::Drift {
                        let rules =
                            |p: &str| config.plugin(p).map(crate::drift::DiffRules::for_plugin);
                        (crate::drift::of_day_now(tx, &e.node, e.day, rules)?, None)
                    } else {
                        (Vec::new(), Some(e.details.clone()))
                    };
                    let mut missing = 0;
                    if let Some(ids) = &ids {
                        let mut found = 0;
                        for d in &mut drift {
                            let plugin = d.plugin.clone();
                            d.changes.retain(|c| {
                                ids.contains(crate::drift::ChangeId::of(&plugin, c).as_str())
                            });
                            found += d.changes.len();
                        }
                        drift.retain(|d| !d.changes.is_empty());
                        missing = ids.len().saturating_sub(found);
                    }
                    let note = (kind == UserTaskKind::Drift && missing > 0).then(|| {
                        format!(
                            "{missing} of this task's changes are no longer in the drift stored \
                             for {} on {} (a later scan that day replaced the snapshot, or the \
                             ignore rules changed); shown: what is still there",
                            e.node, e.day
                        )
                    });
                    out.push(UserTaskNodeReport {
                        node: e.node,
                        day: e.day,
                        source: e.source,
                        drift,
                        message,
                        note,
                    });
                }
                out.sort_by(|a, b| a.node.cmp(&b.node));
                Ok(out)
            })
            .await?;
        Ok(UserTaskReport { task, nodes })
    }

    /// Assigns a task (admins: any; a Site User: an unassigned task, to themselves) and
    /// mails the assignee in the same commit. Rights are checked on the task as the write
    /// transaction reads it; a refusal writes nothing.
    pub async fn assign(
        &self,
        id: u64,
        assignee: String,
        caller: &Caller,
    ) -> Result<UserTask, UserTaskError> {
        let role = role_of(caller)?;
        crate::config::email::check_address(&assignee).map_err(UserTaskError::BadRequest)?;
        if !knows(&self.setup.config(), &assignee) {
            return Err(UserTaskError::UnknownAssignee(assignee));
        }
        let by = caller.name();
        let me = caller.email.clone();
        let task = self
            .store
            .write(move |tx| -> Result<UserTask, UserTaskError> {
                let mut task = persist::get(tx, id)?.ok_or(UserTaskError::NotFound(id))?;
                check_assign(&task, &assignee, me.as_deref(), role)?;
                task.assignee = Some(assignee);
                persist::put(tx, &mut task)?;
                mail::assignment(tx, &task, &by)?;
                log::assigned(tx, &task, &by)?;
                Ok(task)
            })
            .await?;
        self.events.published();
        tracing::info!(task = id, assignee = ?task.assignee, by = %caller.name(), "user task assigned");
        self.update_index(std::slice::from_ref(&task));
        self.mail.wake();
        Ok(task)
    }

    /// Closes (admins: any task; a Site User: tasks assigned to them) or reopens (admins
    /// only) one task. Rights are checked on the task as the write transaction reads it; a
    /// refusal writes nothing.
    pub async fn set_open(
        &self,
        id: u64,
        open: bool,
        caller: &Caller,
    ) -> Result<UserTask, UserTaskError> {
        let role = role_of(caller)?;
        if open {
            check_reopen(caller, role)?;
        }
        let by = caller.name();
        let me = caller.email.clone();
        let task = self
            .store
            .write(move |tx| -> Result<UserTask, UserTaskError> {
                let mut task = persist::get(tx, id)?.ok_or(UserTaskError::NotFound(id))?;
                check_close(&task, me.as_deref(), role)?;
                let want = if open {
                    UserTaskStatus::Open
                } else {
                    UserTaskStatus::Closed
                };
                if task.status() == want {
                    return Ok(task);
                }
                let mut t = persist::Tables::open(tx)?;
                if open {
                    if let Some(other) = t.open_with_fingerprint(&task.fingerprint)? {
                        return Err(UserTaskError::Conflict { other });
                    }
                }
                t.set_open(&mut task, open, &by)?;
                drop(t);
                log::set_open(tx, std::slice::from_ref(&task), &by, ClosedHow::User)?;
                Ok(task)
            })
            .await?;
        self.events.published();
        tracing::info!(task = id, by = %caller.name(), open, "user task {}", if open { "reopened" } else { "closed" });
        self.update_index(std::slice::from_ref(&task));
        Ok(task)
    }

    /// Closes every open task that matches (for a Site User: only those assigned to them),
    /// in one commit. Each task is checked again, as the write transaction reads it, against
    /// the filter and the caller's rights.
    pub async fn close_all(
        &self,
        filter: &UserTaskFilter,
        caller: &Caller,
    ) -> Result<CloseAllResponse, UserTaskError> {
        let (f, me, role) = closable(filter, caller)?;
        let ids = {
            let (f, me) = (f.clone(), me.clone());
            self.with_index(move |index| index.ids(&f, |t| may_close(t, me.as_deref(), role)))
                .await?
        };
        let by = caller.name();
        let closed = self
            .store
            .write(move |tx| -> Result<Vec<UserTask>, StoreError> {
                let closed = persist::close_many(tx, &ids, &by, |t| {
                    f.matches_task(t) && may_close(t, me.as_deref(), role)
                })?;
                log::set_open(tx, &closed, &by, ClosedHow::CloseAll)?;
                Ok(closed)
            })
            .await?;
        self.events.published();
        tracing::info!(count = closed.len(), by = %caller.name(), "user tasks closed by Close All");
        self.update_index(&closed);
        Ok(CloseAllResponse {
            count: closed.len(),
            ids: closed.iter().map(|t| t.id).collect(),
        })
    }

    /// Tasks matching the filter with all their events, oldest task first.
    /// The tasks an export of `filter` holds, by id: what [`UserTasks::export_events`] then
    /// fills in, a batch at a time, so an export never holds every event at once.
    pub async fn export_tasks(
        &self,
        filter: &UserTaskFilter,
        caller: &Caller,
    ) -> Result<Vec<UserTask>, UserTaskError> {
        let mut tasks = self.list(filter, caller, 0, usize::MAX).await?.tasks;
        tasks.sort_by_key(|t| t.id);
        Ok(tasks)
    }

    /// `tasks` with their events, oldest first, read in one transaction.
    pub async fn export_events(
        &self,
        tasks: Vec<UserTask>,
    ) -> Result<Vec<ExportedUserTask>, UserTaskError> {
        let out = self
            .store
            .read(move |tx| -> Result<Vec<ExportedUserTask>, StoreError> {
                let mut out = Vec::with_capacity(tasks.len());
                for task in tasks {
                    let mut event_list = persist::events(tx, task.id, 0, usize::MAX)?;
                    event_list.reverse();
                    out.push(ExportedUserTask { task, event_list });
                }
                Ok(out)
            })
            .await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
