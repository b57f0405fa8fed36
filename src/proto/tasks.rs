//! Wire types of user tasks: tasks, events, filters, reports, export.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ChangeKind, PluginDrift, QueueTaskId};

/// What produced a user task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserTaskKind {
    Drift,
    Policy,
    ScanFailure,
}

impl std::fmt::Display for UserTaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UserTaskKind::Drift => "drift",
            UserTaskKind::Policy => "policy",
            UserTaskKind::ScanFailure => "scan-failure",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserTaskStatus {
    Open,
    Closed,
}

/// A user task: one finding, seen on one or more nodes (its events).
///
/// On the wire `state` is the flat `status`, `closed_by`, `closed_at` it always was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "flat::UserTask", try_from = "flat::UserTask")]
pub struct UserTask {
    pub id: u64,
    pub kind: UserTaskKind,
    pub title: String,
    pub description: String,
    pub state: UserTaskState,
    pub assignee: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_event_at: DateTime<Utc>,
    pub events: u64,
    /// Distinct nodes among the events.
    pub nodes: u64,
    /// Up to the first 10 nodes, in the order they were seen.
    pub first_nodes: Vec<String>,
    /// What groups findings into this task.
    pub fingerprint: String,
    /// The closed task this one recurs (same finding seen again after it was closed).
    pub recurrence_of: Option<u64>,
    /// Raised by every stored change of the task: of two copies, the higher revision is
    /// the newer.
    pub revision: u64,
    /// Drift tasks: the changes the task stands for — the same on every one of its nodes —
    /// the first 1,000 of `change_count`.
    pub changes: Vec<TaskChange>,
    pub change_count: u64,
    /// Whose nodes the task is about: the owner group (`null`: nodes with no owner group,
    /// or the whole organisation with `[tasks] group_across_owners`).
    pub destination: Option<String>,
    /// Tasks for the same change set on other owners' nodes.
    pub siblings: Vec<u64>,
    /// The task's stable key, `vigil/<instance>/task/<id>` (the instance is created once per
    /// state dir): in replies, exports, mails, events and webhooks, to match tickets by.
    pub dedup_key: String,
}

/// One change of a drift task: what changed, in one line, the same on each of its nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskChange {
    /// The change's identity (plugin, key, kind, previous and current value).
    pub id: String,
    pub plugin: String,
    pub key: String,
    pub kind: ChangeKind,
    /// The attributes that changed, previous → current, hashes shortened:
    /// `version 3.0.19-1~deb12u2 → 3.0.20-1~deb12u1`.
    pub summary: String,
}

impl UserTask {
    pub fn status(&self) -> UserTaskStatus {
        self.state.status()
    }

    pub fn is_open(&self) -> bool {
        self.state == UserTaskState::Open
    }
}

/// Open, or closed by someone (a user, Close All, an audit) at some time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserTaskState {
    Open,
    Closed { by: String, at: DateTime<Utc> },
}

impl UserTaskState {
    /// Who closed it; `None` while open.
    pub fn closed_by(&self) -> Option<&str> {
        match self {
            UserTaskState::Open => None,
            UserTaskState::Closed { by, .. } => Some(by),
        }
    }

    /// When it was closed; `None` while open.
    pub fn closed_at(&self) -> Option<DateTime<Utc>> {
        match self {
            UserTaskState::Open => None,
            UserTaskState::Closed { at, .. } => Some(*at),
        }
    }

    pub fn status(&self) -> UserTaskStatus {
        match self {
            UserTaskState::Open => UserTaskStatus::Open,
            UserTaskState::Closed { .. } => UserTaskStatus::Closed,
        }
    }
}

/// The flat JSON form of [`UserTask`].
mod flat {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};

    use super::{TaskChange, UserTaskKind, UserTaskState, UserTaskStatus};

    #[derive(Serialize, Deserialize)]
    pub struct UserTask {
        id: u64,
        kind: UserTaskKind,
        title: String,
        description: String,
        status: UserTaskStatus,
        assignee: Option<String>,
        created_at: DateTime<Utc>,
        last_event_at: DateTime<Utc>,
        closed_by: Option<String>,
        closed_at: Option<DateTime<Utc>>,
        events: u64,
        nodes: u64,
        first_nodes: Vec<String>,
        fingerprint: String,
        recurrence_of: Option<u64>,
        #[serde(default)]
        revision: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changes: Vec<TaskChange>,
        #[serde(default, skip_serializing_if = "is_zero")]
        change_count: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        destination: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        siblings: Vec<u64>,
        #[serde(default)]
        dedup_key: String,
    }

    fn is_zero(n: &u64) -> bool {
        *n == 0
    }

    impl From<super::UserTask> for UserTask {
        fn from(t: super::UserTask) -> Self {
            let (status, closed_by, closed_at) = match t.state {
                UserTaskState::Open => (UserTaskStatus::Open, None, None),
                UserTaskState::Closed { by, at } => (UserTaskStatus::Closed, Some(by), Some(at)),
            };
            UserTask {
                id: t.id,
                kind: t.kind,
                title: t.title,
                description: t.description,
                status,
                assignee: t.assignee,
                created_at: t.created_at,
                last_event_at: t.last_event_at,
                closed_by,
                closed_at,
                events: t.events,
                nodes: t.nodes,
                first_nodes: t.first_nodes,
                fingerprint: t.fingerprint,
                recurrence_of: t.recurrence_of,
                revision: t.revision,
                changes: t.changes,
                change_count: t.change_count,
                destination: t.destination,
                siblings: t.siblings,
                dedup_key: t.dedup_key,
            }
        }
    }

    impl TryFrom<UserTask> for super::UserTask {
        type Error = String;
        fn try_from(t: UserTask) -> Result<Self, String> {
            let state = match (t.status, t.closed_by, t.closed_at) {
                (UserTaskStatus::Open, _, _) => UserTaskState::Open,
                (UserTaskStatus::Closed, Some(by), Some(at)) => UserTaskState::Closed { by, at },
                (UserTaskStatus::Closed, _, _) => {
                    return Err(format!(
                        "task #{}: closed without `closed_by` and `closed_at`",
                        t.id
                    ))
                }
            };
            Ok(super::UserTask {
                id: t.id,
                kind: t.kind,
                title: t.title,
                description: t.description,
                state,
                assignee: t.assignee,
                created_at: t.created_at,
                last_event_at: t.last_event_at,
                events: t.events,
                nodes: t.nodes,
                first_nodes: t.first_nodes,
                fingerprint: t.fingerprint,
                recurrence_of: t.recurrence_of,
                revision: t.revision,
                changes: t.changes,
                change_count: t.change_count,
                destination: t.destination,
                siblings: t.siblings,
                dedup_key: t.dedup_key,
            })
        }
    }
}

/// One occurrence of a task's finding on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserTaskEvent {
    pub node: String,
    pub time: DateTime<Utc>,
    /// `Scan #N` / `Audit #N`.
    pub source: QueueTaskId,
    /// The calendar day of the finding (drift: the snapshot day).
    pub day: chrono::NaiveDate,
    /// One line: what was found on this node.
    pub details: String,
    /// Drift tasks: how many of the task's changes this event carries. A task is exactly
    /// the change set its nodes share, so an event carries all of them: the first
    /// `changes` of the task's change list.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub changes: u64,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// `GET /v1/tasks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserTaskList {
    pub tasks: Vec<UserTask>,
    /// Tasks matching the filter, all pages together.
    pub total: usize,
}

/// `GET /v1/tasks/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserTaskDetail {
    pub task: UserTask,
    /// Every node with its number of events.
    pub nodes: Vec<UserTaskNode>,
    /// Events, newest first, paged.
    pub events: Vec<UserTaskEvent>,
    pub events_total: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserTaskNode {
    pub node: String,
    pub events: u64,
    /// The audit that found this node's finding fixed (policy tasks); `null` while it fails.
    #[serde(default)]
    pub resolved_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserTaskReport {
    pub task: UserTask,
    pub nodes: Vec<UserTaskNodeReport>,
}

impl UserTaskReport {
    /// Hides private files' content diffs (for callers who are not admins).
    pub fn redact_private(&mut self) {
        for n in &mut self.nodes {
            n.drift.iter_mut().for_each(PluginDrift::redact_private);
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserTaskNodeReport {
    pub node: String,
    pub day: chrono::NaiveDate,
    pub source: QueueTaskId,
    /// Drift tasks: the node's changes (previous → current, content diffs).
    pub drift: Vec<PluginDrift>,
    /// Scan-failure and policy tasks: the message on this node.
    pub message: Option<String>,
    /// Drift tasks: set when the node's drift of that day is no longer this task's change
    /// set (a later scan the same day replaced the snapshot, or the ignore rules changed);
    /// `drift` then shows the changes as they are now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    pub assignee: String,
}

/// Which tasks a filter takes by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserTaskStatusFilter {
    #[default]
    Open,
    Closed,
    All,
}

impl UserTaskStatusFilter {
    /// The status a task must have; `None` for every task.
    pub fn status(self) -> Option<UserTaskStatus> {
        match self {
            UserTaskStatusFilter::Open => Some(UserTaskStatus::Open),
            UserTaskStatusFilter::Closed => Some(UserTaskStatus::Closed),
            UserTaskStatusFilter::All => None,
        }
    }
}

/// Filters of `GET /v1/tasks`, `POST /v1/tasks/close` and export: one definition, encoded
/// as JSON in a body and as a query string in a URL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserTaskFilter {
    /// `open` (default), `closed` or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<UserTaskStatusFilter>,
    /// An email, `me` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// Case-insensitive text in title or description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<UserTaskKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Query of `GET /v1/tasks`: the filter, paging and `closable`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "wire::UserTaskQuery")]
pub struct UserTaskQuery {
    #[serde(flatten)]
    pub filter: UserTaskFilter,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: usize,
    /// Default 100, at most 10,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Lists only the open tasks the caller may close: what Close All would close.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closable: bool,
}

/// Query of `GET /v1/tasks/export`: the filter and the format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "wire::ExportQuery")]
pub struct ExportQuery {
    #[serde(flatten)]
    pub filter: UserTaskFilter,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ExportFormat>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Json,
    Csv,
}

/// Query of `GET /v1/tasks/{id}`: a page of the task's events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsPage {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub events_offset: usize,
    /// Default 100, at most 10,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_limit: Option<usize>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Query strings that flatten the filter cannot use `deny_unknown_fields`; these mirrors
/// take the rest and refuse it, so that a misspelt parameter is an error, not ignored.
mod wire {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::{ExportFormat, UserTaskFilter};

    fn refuse(rest: BTreeMap<String, String>, known: &str) -> Result<(), String> {
        match rest.keys().next() {
            None => Ok(()),
            Some(k) => Err(format!("unknown field `{k}`, expected one of {known}")),
        }
    }

    const FILTER: &str = "`status`, `assignee`, `q`, `kind`, `node`";

    #[derive(Deserialize)]
    pub struct UserTaskQuery {
        #[serde(flatten)]
        filter: UserTaskFilter,
        #[serde(default)]
        offset: usize,
        #[serde(default)]
        limit: Option<usize>,
        #[serde(default)]
        closable: bool,
        #[serde(flatten)]
        rest: BTreeMap<String, String>,
    }

    impl TryFrom<UserTaskQuery> for super::UserTaskQuery {
        type Error = String;
        fn try_from(q: UserTaskQuery) -> Result<Self, String> {
            refuse(q.rest, &format!("{FILTER}, `offset`, `limit`, `closable`"))?;
            Ok(super::UserTaskQuery {
                filter: q.filter,
                offset: q.offset,
                limit: q.limit,
                closable: q.closable,
            })
        }
    }

    #[derive(Deserialize)]
    pub struct ExportQuery {
        #[serde(flatten)]
        filter: UserTaskFilter,
        #[serde(default)]
        format: Option<ExportFormat>,
        #[serde(flatten)]
        rest: BTreeMap<String, String>,
    }

    impl TryFrom<ExportQuery> for super::ExportQuery {
        type Error = String;
        fn try_from(q: ExportQuery) -> Result<Self, String> {
            refuse(q.rest, &format!("{FILTER}, `format`"))?;
            Ok(super::ExportQuery {
                filter: q.filter,
                format: q.format,
            })
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloseAllResponse {
    pub count: usize,
    pub ids: Vec<u64>,
}

/// A task with its events, as exported.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedUserTask {
    #[serde(flatten)]
    pub task: UserTask,
    pub event_list: Vec<UserTaskEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_tasks_keep_their_flat_json_form() {
        let closed = r#"{"id":3,"kind":"policy","title":"t","description":"d","status":"closed","assignee":"alice@example.com","created_at":"2026-03-01T02:00:00Z","last_event_at":"2026-03-02T02:00:00Z","closed_by":"Audit #4","closed_at":"2026-03-02T03:00:00Z","events":2,"nodes":2,"first_nodes":["n1","n2"],"fingerprint":"policy:p/c","recurrence_of":null,"revision":5,"dedup_key":"vigil/00000000000000ab/task/3"}"#;
        let t: UserTask = serde_json::from_str(closed).unwrap();
        assert!(matches!(&t.state, UserTaskState::Closed { by, .. } if by == "Audit #4"));
        assert_eq!(serde_json::to_string(&t).unwrap(), closed);
        let open = closed
            .replace(r#""status":"closed""#, r#""status":"open""#)
            .replace(
                r#""closed_by":"Audit #4","closed_at":"2026-03-02T03:00:00Z""#,
                r#""closed_by":null,"closed_at":null"#,
            );
        let t: UserTask = serde_json::from_str(&open).unwrap();
        assert_eq!(t.state, UserTaskState::Open);
        assert_eq!(serde_json::to_string(&t).unwrap(), open);
        // Rows written before revisions existed.
        let old = open.replace(r#","revision":5"#, "");
        assert_eq!(serde_json::from_str::<UserTask>(&old).unwrap().revision, 0);
    }

    #[test]
    fn a_closed_task_needs_who_and_when() {
        let bad = r#"{"id":3,"kind":"policy","title":"t","description":"d","status":"closed","assignee":null,"created_at":"2026-03-01T02:00:00Z","last_event_at":"2026-03-02T02:00:00Z","closed_by":null,"closed_at":null,"events":2,"nodes":2,"first_nodes":[],"fingerprint":"f","recurrence_of":null}"#;
        assert!(serde_json::from_str::<UserTask>(bad).is_err());
    }

    #[test]
    fn the_filter_is_one_definition_in_a_body_and_in_a_query_string() {
        let filter = UserTaskFilter {
            status: Some(UserTaskStatusFilter::All),
            q: Some("openssl 3".into()),
            kind: Some(UserTaskKind::ScanFailure),
            ..UserTaskFilter::default()
        };
        let query = UserTaskQuery {
            filter: filter.clone(),
            limit: Some(5),
            ..UserTaskQuery::default()
        };
        let encoded = serde_urlencoded::to_string(&query).unwrap();
        assert_eq!(encoded, "status=all&q=openssl+3&kind=scan-failure&limit=5");
        let back: UserTaskQuery = serde_urlencoded::from_str(&encoded).unwrap();
        assert_eq!(back, query);
        let json = serde_json::to_string(&filter).unwrap();
        assert_eq!(
            serde_json::from_str::<UserTaskFilter>(&json).unwrap(),
            filter
        );
        // A misspelt parameter is refused, not ignored.
        let err = serde_urlencoded::from_str::<UserTaskQuery>("stauts=all").unwrap_err();
        assert!(err.to_string().contains("unknown field `stauts`"), "{err}");
        assert!(serde_urlencoded::from_str::<UserTaskQuery>("limit=-1").is_err());
        assert!(serde_urlencoded::from_str::<UserTaskQuery>("status=maybe").is_err());
    }
}
