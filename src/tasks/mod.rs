//! User tasks: the lightweight ticketing system. Findings (drift, scan failures, policy
//! failures) with equal fingerprints become one task with one event per node and day; new
//! tasks are auto-assigned to the owner of the node's group, and every assignment mails the
//! assignee through the outbox in the same transaction.
//!
//! The store is the truth; [`UserTasks`] keeps an in-memory index of every task (title,
//! description in lower case, nodes) so that filtered lists and counts never scan the store.
//! The index is updated only after a commit succeeded.

pub mod finding;
mod mail;
pub mod persist;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use axum::http::StatusCode;

pub use finding::Finding;
pub use persist::Ingested;

use crate::api::{ApiError, Caller};
use crate::config::{Config, Role};
use crate::proto::{
    CloseAllResponse, ExportedTask, NodeReport, TaskDetail, TaskFilter, TaskList, TaskReport,
    UserTask, UserTaskKind, UserTaskStatus,
};
use crate::snapshot;
use crate::store::{Store, StoreError};

pub use mail::MailWaker;

struct Indexed {
    task: UserTask,
    text: String,
    nodes: HashSet<String>,
}

impl Indexed {
    fn new(task: UserTask, nodes: impl IntoIterator<Item = String>) -> Self {
        let text = format!("{}\n{}", task.title, task.description).to_lowercase();
        Indexed {
            task,
            text,
            nodes: nodes.into_iter().collect(),
        }
    }
}

/// The user-task service; cheap to clone.
#[derive(Clone)]
pub struct UserTasks {
    store: Store,
    index: Arc<RwLock<HashMap<u64, Indexed>>>,
    mail: MailWaker,
}

/// A filter resolved against the caller (`me`).
struct Filter {
    status: Option<UserTaskStatus>,
    assignee: Option<Option<String>>,
    q: Option<String>,
    kind: Option<UserTaskKind>,
    node: Option<String>,
}

impl Filter {
    fn resolve(f: &TaskFilter, caller: &Caller) -> Result<Filter, ApiError> {
        let status = match f.status.as_deref() {
            None | Some("open") => Some(UserTaskStatus::Open),
            Some("closed") => Some(UserTaskStatus::Closed),
            Some("all") => None,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "status {other:?}: use open, closed or all"
                )))
            }
        };
        let assignee = match f.assignee.as_deref() {
            None => None,
            Some("none") => Some(None),
            Some("me") => Some(Some(caller.email.clone().ok_or_else(|| {
                ApiError::bad_request(
                    "`me` needs a caller with an email: this uid is not a configured user",
                )
            })?)),
            Some(email) => Some(Some(email.to_owned())),
        };
        Ok(Filter {
            status,
            assignee,
            q: f.q
                .as_ref()
                .filter(|q| !q.is_empty())
                .map(|q| q.to_lowercase()),
            kind: f.kind,
            node: f.node.clone(),
        })
    }

    fn matches(&self, t: &Indexed) -> bool {
        self.status.is_none_or(|s| s == t.task.status)
            && self
                .assignee
                .as_ref()
                .is_none_or(|a| a.as_deref() == t.task.assignee.as_deref())
            && self.kind.is_none_or(|k| k == t.task.kind)
            && self.node.as_ref().is_none_or(|n| t.nodes.contains(n))
            && self.q.as_ref().is_none_or(|q| t.text.contains(q.as_str()))
    }
}

fn not_found(id: u64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("there is no task #{id}"),
    )
}

impl UserTasks {
    /// Loads the index from the store.
    pub async fn open(store: Store, mail: MailWaker) -> Result<UserTasks, StoreError> {
        let all = store.read(persist::load_all).await?;
        let index = all
            .into_iter()
            .map(|(t, n)| (t.id, Indexed::new(t, n)))
            .collect();
        Ok(UserTasks {
            store,
            index: Arc::new(RwLock::new(index)),
            mail,
        })
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
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for task in &ingested.changed {
            let entry = index
                .entry(task.id)
                .or_insert_with(|| Indexed::new(task.clone(), std::iter::empty()));
            entry.task = task.clone();
        }
        for (id, node) in &ingested.new_nodes {
            if let Some(e) = index.get_mut(id) {
                e.nodes.insert(node.clone());
            }
        }
        drop(index);
        if !ingested.assignments.is_empty() || !ingested.closed_by_audit.is_empty() {
            self.mail.wake();
        }
    }

    fn update_index(&self, tasks: &[UserTask]) {
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for t in tasks {
            if let Some(e) = index.get_mut(&t.id) {
                e.task = t.clone();
            }
        }
    }

    pub fn get(&self, id: u64) -> Option<UserTask> {
        self.index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(|e| e.task.clone())
    }

    /// Tasks matching the filter, sorted by last event (newest first), paged.
    pub fn list(
        &self,
        filter: &TaskFilter,
        caller: &Caller,
        offset: usize,
        limit: usize,
    ) -> Result<TaskList, ApiError> {
        let f = Filter::resolve(filter, caller)?;
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let mut hits: Vec<&Indexed> = index.values().filter(|t| f.matches(t)).collect();
        let total = hits.len();
        hits.sort_by(|a, b| {
            b.task
                .last_event_at
                .cmp(&a.task.last_event_at)
                .then(b.task.id.cmp(&a.task.id))
        });
        let tasks = hits
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|e| e.task.clone())
            .collect();
        Ok(TaskList { tasks, total })
    }

    /// (organisation's open tasks, the caller's open tasks).
    pub fn open_counts(&self, email: Option<&str>) -> (u64, u64) {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let open = index
            .values()
            .filter(|e| e.task.status == UserTaskStatus::Open);
        let (mut all, mut mine) = (0, 0);
        for e in open {
            all += 1;
            if email.is_some() && e.task.assignee.as_deref() == email {
                mine += 1;
            }
        }
        (all, mine)
    }

    pub async fn detail(
        &self,
        id: u64,
        offset: usize,
        limit: usize,
    ) -> Result<TaskDetail, ApiError> {
        let task = self.get(id).ok_or_else(|| not_found(id))?;
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
        Ok(TaskDetail {
            task,
            nodes,
            events,
            events_total,
        })
    }

    /// Per node: the drift it found (drift tasks) or its message (other kinds), from the
    /// node's newest event.
    pub async fn report(&self, id: u64, config: Arc<Config>) -> Result<TaskReport, ApiError> {
        let task = self.get(id).ok_or_else(|| not_found(id))?;
        let kind = task.kind;
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
                        (snapshot::drift_of_day_now(tx, &e.node, e.day, rules)?, None)
                    } else {
                        (Vec::new(), Some(e.details.clone()))
                    };
                    out.push(NodeReport {
                        node: e.node,
                        day: e.day,
                        source: e.source,
                        drift,
                        message,
                    });
                }
                out.sort_by(|a, b| a.node.cmp(&b.node));
                Ok(out)
            })
            .await?;
        Ok(TaskReport { task, nodes })
    }

    /// Assigns a task (admins: any; a Site User: an unassigned task, to themselves) and
    /// mails the assignee in the same commit.
    pub async fn assign(
        &self,
        id: u64,
        assignee: String,
        caller: &Caller,
    ) -> Result<UserTask, ApiError> {
        let role = caller.require_user()?;
        if !crate::config::looks_like_email(&assignee) {
            return Err(ApiError::bad_request(format!(
                "{assignee:?} is not an email address"
            )));
        }
        let current = self.get(id).ok_or_else(|| not_found(id))?;
        if role != Role::Admin {
            let me = caller.email.as_deref();
            if current.assignee.is_some() || me != Some(assignee.as_str()) {
                return Err(ApiError::forbidden(
                    "a Site User may only take an unassigned task for themselves; ask an administrator to reassign it",
                ));
            }
        }
        let by = caller.name();
        let task = self
            .store
            .write(move |tx| -> Result<UserTask, StoreError> {
                let mut task = persist::get(tx, id)?
                    .ok_or_else(|| StoreError::Corrupt(format!("task #{id} vanished")))?;
                task.assignee = Some(assignee.clone());
                persist::put(tx, &task)?;
                mail::assignment(tx, &task, &by)?;
                Ok(task)
            })
            .await?;
        tracing::info!(task = id, assignee = ?task.assignee, by = %caller.name(), "user task assigned");
        self.update_index(std::slice::from_ref(&task));
        self.mail.wake();
        Ok(task)
    }

    fn may_close(task: &UserTask, caller: &Caller, role: Role) -> bool {
        role == Role::Admin || (caller.email.is_some() && task.assignee == caller.email)
    }

    /// Closes or reopens one task.
    pub async fn set_open(
        &self,
        id: u64,
        open: bool,
        caller: &Caller,
    ) -> Result<UserTask, ApiError> {
        let role = caller.require_user()?;
        let current = self.get(id).ok_or_else(|| not_found(id))?;
        if !Self::may_close(&current, caller, role) {
            return Err(ApiError::forbidden(format!(
                "task #{id} is not assigned to you; a Site User may only {} tasks assigned to them",
                if open { "reopen" } else { "close" }
            )));
        }
        let by = caller.name();
        let task = self
            .store
            .write(move |tx| -> Result<Result<UserTask, ApiError>, StoreError> {
                let mut task = persist::get(tx, id)?.ok_or_else(|| StoreError::Corrupt(format!("task #{id} vanished")))?;
                if open {
                    if task.status == UserTaskStatus::Open {
                        return Ok(Ok(task));
                    }
                    if let Some(other) = persist::open_with_fingerprint(tx, &task.fingerprint)? {
                        return Ok(Err(ApiError::new(
                            StatusCode::CONFLICT,
                            "conflict",
                            format!("task #{other} is already open for the same finding; work on that one"),
                        )));
                    }
                } else if task.status == UserTaskStatus::Closed {
                    return Ok(Ok(task));
                }
                persist::set_open(tx, &mut task, open, &by)?;
                Ok(Ok(task))
            })
            .await??;
        tracing::info!(task = id, by = %caller.name(), open, "user task {}", if open { "reopened" } else { "closed" });
        self.update_index(std::slice::from_ref(&task));
        Ok(task)
    }

    /// Closes every open task that matches (for a Site User: only those assigned to them).
    pub async fn close_all(
        &self,
        filter: &TaskFilter,
        caller: &Caller,
    ) -> Result<CloseAllResponse, ApiError> {
        let role = caller.require_user()?;
        let mut f = Filter::resolve(filter, caller)?;
        f.status = Some(UserTaskStatus::Open);
        let ids: Vec<u64> = {
            let index = self.index.read().unwrap_or_else(|e| e.into_inner());
            let mut ids: Vec<u64> = index
                .values()
                .filter(|t| f.matches(t) && Self::may_close(&t.task, caller, role))
                .map(|t| t.task.id)
                .collect();
            ids.sort_unstable();
            ids
        };
        let by = caller.name();
        let todo = ids.clone();
        let closed = self
            .store
            .write(move |tx| -> Result<Vec<UserTask>, StoreError> {
                let mut out = Vec::with_capacity(todo.len());
                for id in todo {
                    if let Some(mut task) = persist::get(tx, id)? {
                        if task.status == UserTaskStatus::Open {
                            persist::set_open(tx, &mut task, false, &by)?;
                            out.push(task);
                        }
                    }
                }
                Ok(out)
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
        filter: &TaskFilter,
        caller: &Caller,
    ) -> Result<Vec<ExportedTask>, ApiError> {
        let mut tasks = self.list(filter, caller, 0, usize::MAX)?.tasks;
        tasks.sort_by_key(|t| t.id);
        let out = self
            .store
            .read(move |tx| -> Result<Vec<ExportedTask>, StoreError> {
                let mut out = Vec::with_capacity(tasks.len());
                for task in tasks {
                    let mut event_list = persist::events(tx, task.id, 0, usize::MAX)?;
                    event_list.reverse();
                    out.push(ExportedTask { task, event_list });
                }
                Ok(out)
            })
            .await?;
        Ok(out)
    }
}
