//! User tasks: the lightweight ticketing system. Findings (drift, scan failures, policy
//! failures) with equal fingerprints become one task with one event per node and day; new
//! tasks are auto-assigned to the owner of the node's group, and every assignment mails the
//! assignee through the outbox in the same transaction.
//!
//! The store is the truth: rights are checked, and actions decided, on the task as read in
//! the write transaction that changes it. [`UserTasks`] keeps an in-memory [`index`] of every
//! task so that filtered lists and counts never scan the store; it takes each task's copy
//! after the commit, and never an older copy than it holds.

pub mod finding;
mod index;
mod mail;
pub mod persist;
mod rights;
mod rows;

use std::collections::HashSet;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use finding::Finding;
use index::{Filter, TaskIndex};
pub use persist::Ingested;

use crate::caller::Caller;
use crate::config::Config;
use crate::proto::{
    CloseAllResponse, ExportedUserTask, UserTask, UserTaskDetail, UserTaskFilter, UserTaskKind,
    UserTaskList, UserTaskNodeReport, UserTaskReport, UserTaskStatus,
};
use crate::store::{Store, StoreError};

pub use mail::MailWaker;
use rights::{check_assign, check_close, check_reopen, closable, may_close, role_of};

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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the task index lookup failed: {0}")]
    Internal(String),
}

/// The user-task service; cheap to clone.
#[derive(Clone)]
pub struct UserTasks {
    store: Store,
    index: Arc<RwLock<TaskIndex>>,
    /// Scans over the whole index running at once: one per core. More would only share
    /// the cores, making every one of them (and everything else) slower.
    scans: Arc<tokio::sync::Semaphore>,
    mail: MailWaker,
}

impl UserTasks {
    /// Loads the index from the store.
    pub async fn open(store: Store, mail: MailWaker) -> Result<UserTasks, StoreError> {
        let index = store
            .read(|tx| {
                let mut index = TaskIndex::loading();
                persist::load_into(tx, &mut index)?;
                Ok::<_, StoreError>(index.loaded())
            })
            .await?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(UserTasks {
            store,
            index: Arc::new(RwLock::new(index)),
            scans: Arc::new(tokio::sync::Semaphore::new(cores)),
            mail,
        })
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

    /// Ingests findings inside the caller's transaction: tasks, events and assignment mails
    /// commit with it. Call [`UserTasks::committed`] after the commit.
    pub fn ingest(
        tx: &redb::WriteTransaction,
        config: &Config,
        findings: &[Finding],
    ) -> Result<Ingested, StoreError> {
        let out = persist::ingest(tx, config, findings)?;
        for a in &out.assignments {
            mail::assignment(tx, &a.task, &a.assigned_by)?;
        }
        Ok(out)
    }

    /// Inside the caller's transaction: each (fingerprint, node) found passing again resolves
    /// that node in the finding's open task; tasks whose nodes all pass close themselves and
    /// their assignees are mailed. Closed tasks are added to `out` for the index.
    pub fn resolve(
        tx: &redb::WriteTransaction,
        passing: &[(String, String)],
        audit: &str,
        out: &mut Ingested,
    ) -> Result<(), StoreError> {
        for (fingerprint, node) in passing {
            if let Some(task) = persist::resolve(tx, fingerprint, node, audit)? {
                mail::closed_by_audit(tx, &task, audit)?;
                out.closed_by_audit.push(task.id);
                out.changed.retain(|t| t.id != task.id);
                out.changed.push(task);
            }
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
        if !ingested.assignments.is_empty() || !ingested.closed_by_audit.is_empty() {
            self.mail.wake();
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
        let fingerprint = task.fingerprint.clone();
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
                    let (drift, message) = if kind == UserTaskKind::Drift {
                        let rules =
                            |p: &str| config.plugin(p).map(crate::drift::DiffRules::for_plugin);
                        (crate::drift::of_day_now(tx, &e.node, e.day, rules)?, None)
                    } else {
                        (Vec::new(), Some(e.details.clone()))
                    };
                    let now = finding::drift_fingerprint(&drift);
                    let note = (kind == UserTaskKind::Drift
                        && !drift.is_empty()
                        && now.as_deref() != Some(fingerprint.as_str()))
                    .then(|| {
                        format!(
                            "the drift stored for {} on {} is no longer this task's change set \
                             (a later scan that day replaced the snapshot, or the ignore rules \
                             changed); shown: the changes as they are now",
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
                Ok(task)
            })
            .await?;
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
                if open {
                    if let Some(other) = persist::open_with_fingerprint(tx, &task.fingerprint)? {
                        return Err(UserTaskError::Conflict { other });
                    }
                }
                persist::set_open(tx, &mut task, open, &by)?;
                Ok(task)
            })
            .await?;
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
                persist::close_many(tx, &ids, &by, |t| {
                    f.matches_task(t) && may_close(t, me.as_deref(), role)
                })
            })
            .await?;
        tracing::info!(count = closed.len(), by = %caller.name(), "user tasks closed by Close All");
        self.update_index(&closed);
        Ok(CloseAllResponse {
            count: closed.len(),
            ids: closed.iter().map(|t| t.id).collect(),
        })
    }

    /// Tasks matching the filter with all their events, oldest task first.
    pub async fn export(
        &self,
        filter: &UserTaskFilter,
        caller: &Caller,
    ) -> Result<Vec<ExportedUserTask>, UserTaskError> {
        let mut tasks = self.list(filter, caller, 0, usize::MAX).await?.tasks;
        tasks.sort_by_key(|t| t.id);
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
