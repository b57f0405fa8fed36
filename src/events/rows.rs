//! Events as stored: their own type, apart from the wire's, so the two can change apart.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::proto::{ClosedHow, EventKind, LogEvent, QueueTaskId, UserTaskKind, UserTaskStatus};
use crate::store::{tables, JsonTable};

pub const EVENT_LOG: JsonTable<u64, StoredLogEvent> =
    JsonTable::new(tables::EVENT_LOG, "log event");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredLogEvent {
    seq: u64,
    id: String,
    time: DateTime<Utc>,
    kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    task: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dedup_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    task_kind: Option<UserTaskKind>,
    title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<UserTaskStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    assignee: Option<String>,
    #[serde(default)]
    events: u64,
    #[serde(default)]
    nodes: u64,
    #[serde(default)]
    event_nodes: Vec<String>,
    #[serde(default)]
    nodes_in_event: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    how: Option<ClosedHow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<QueueTaskId>,
}

impl StoredLogEvent {
    pub fn time(&self) -> DateTime<Utc> {
        self.time
    }
}

impl From<&LogEvent> for StoredLogEvent {
    fn from(e: &LogEvent) -> Self {
        StoredLogEvent {
            seq: e.seq,
            id: e.id.clone(),
            time: e.time,
            kind: e.kind,
            task: e.task,
            dedup_key: e.dedup_key.clone(),
            task_kind: e.task_kind,
            title: e.title.clone(),
            status: e.status,
            assignee: e.assignee.clone(),
            events: e.events,
            nodes: e.nodes,
            event_nodes: e.event_nodes.clone(),
            nodes_in_event: e.nodes_in_event,
            by: e.by.clone(),
            how: e.how,
            source: e.source,
        }
    }
}

impl From<StoredLogEvent> for LogEvent {
    fn from(e: StoredLogEvent) -> Self {
        LogEvent {
            seq: e.seq,
            id: e.id,
            time: e.time,
            kind: e.kind,
            task: e.task,
            dedup_key: e.dedup_key,
            task_kind: e.task_kind,
            title: e.title,
            status: e.status,
            assignee: e.assignee,
            events: e.events,
            nodes: e.nodes,
            event_nodes: e.event_nodes,
            nodes_in_event: e.nodes_in_event,
            by: e.by,
            how: e.how,
            source: e.source,
        }
    }
}
