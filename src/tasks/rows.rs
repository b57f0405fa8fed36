//! User tasks and their events as stored: their own types, apart from the wire's, in the
//! JSON shape vigil has always stored (a task's state flat as `status`, `closed_by`,
//! `closed_at`).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::proto::{
    ChangeKind, QueueTaskId, TaskChange, UserTask, UserTaskEvent, UserTaskKind, UserTaskState,
    UserTaskStatus,
};
use crate::store::{tables, JsonTable};

pub const USER_TASKS: JsonTable<u64, StoredUserTask> =
    JsonTable::new(tables::USER_TASKS, "user task");
pub const TASK_EVENTS: JsonTable<(u64, u64), StoredEvent> =
    JsonTable::new(tables::TASK_EVENTS, "user task event");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredUserTask {
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
    /// 0 in rows written before revisions existed.
    #[serde(default)]
    revision: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    changes: Vec<StoredTaskChange>,
    #[serde(default, skip_serializing_if = "is_zero")]
    change_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    destination: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    siblings: Vec<u64>,
    /// Empty in rows written before dedup keys (`upgrade::dedup_keys` fills it in).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    dedup_key: String,
}

impl StoredUserTask {
    pub fn dedup_key(&self) -> &str {
        &self.dedup_key
    }

    pub fn set_dedup_key(&mut self, key: String) {
        self.dedup_key = key;
    }

    pub fn id(&self) -> u64 {
        self.id
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredTaskChange {
    id: String,
    plugin: String,
    key: String,
    kind: ChangeKind,
    summary: String,
}

impl From<&TaskChange> for StoredTaskChange {
    fn from(c: &TaskChange) -> Self {
        StoredTaskChange {
            id: c.id.clone(),
            plugin: c.plugin.clone(),
            key: c.key.clone(),
            kind: c.kind,
            summary: c.summary.clone(),
        }
    }
}

impl From<StoredTaskChange> for TaskChange {
    fn from(c: StoredTaskChange) -> Self {
        TaskChange {
            id: c.id,
            plugin: c.plugin,
            key: c.key,
            kind: c.kind,
            summary: c.summary,
        }
    }
}

impl From<&UserTask> for StoredUserTask {
    fn from(t: &UserTask) -> Self {
        let (status, closed_by, closed_at) = match &t.state {
            UserTaskState::Open => (UserTaskStatus::Open, None, None),
            UserTaskState::Closed { by, at } => {
                (UserTaskStatus::Closed, Some(by.clone()), Some(*at))
            }
        };
        StoredUserTask {
            id: t.id,
            kind: t.kind,
            title: t.title.clone(),
            description: t.description.clone(),
            status,
            assignee: t.assignee.clone(),
            created_at: t.created_at,
            last_event_at: t.last_event_at,
            closed_by,
            closed_at,
            events: t.events,
            nodes: t.nodes,
            first_nodes: t.first_nodes.clone(),
            fingerprint: t.fingerprint.clone(),
            recurrence_of: t.recurrence_of,
            revision: t.revision,
            changes: t.changes.iter().map(StoredTaskChange::from).collect(),
            change_count: t.change_count,
            destination: t.destination.clone(),
            siblings: t.siblings.clone(),
            dedup_key: t.dedup_key.clone(),
        }
    }
}

impl From<StoredUserTask> for UserTask {
    /// A closed row without who or when (written by no version of vigil, but possible in a
    /// damaged store) reads as closed by "unknown" at its last event.
    fn from(t: StoredUserTask) -> Self {
        let state = match t.status {
            UserTaskStatus::Open => UserTaskState::Open,
            UserTaskStatus::Closed => UserTaskState::Closed {
                by: t.closed_by.unwrap_or_else(|| "unknown".to_owned()),
                at: t.closed_at.unwrap_or(t.last_event_at),
            },
        };
        UserTask {
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
            changes: t.changes.into_iter().map(TaskChange::from).collect(),
            change_count: t.change_count,
            destination: t.destination,
            siblings: t.siblings,
            dedup_key: t.dedup_key,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredEvent {
    node: String,
    time: DateTime<Utc>,
    source: QueueTaskId,
    day: NaiveDate,
    details: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    changes: u64,
}

impl From<&UserTaskEvent> for StoredEvent {
    fn from(e: &UserTaskEvent) -> Self {
        StoredEvent {
            node: e.node.clone(),
            time: e.time,
            source: e.source,
            day: e.day,
            details: e.details.clone(),
            changes: e.changes,
        }
    }
}

impl From<StoredEvent> for UserTaskEvent {
    fn from(e: StoredEvent) -> Self {
        UserTaskEvent {
            node: e.node,
            time: e.time,
            source: e.source,
            day: e.day,
            details: e.details,
            changes: e.changes,
        }
    }
}
