//! Wire types of the event log (`GET /v1/events`): one [`LogEvent`] per user-task change
//! or failed queue task, and the heartbeat line a followed stream sends while it is quiet.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{QueueTaskId, UserTaskKind, UserTaskStatus};

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A new user task.
    #[serde(rename = "task.opened")]
    TaskOpened,
    /// New findings (events on nodes) on a task that existed before: one per task per run
    /// or single-node scan, whatever the number of its nodes.
    #[serde(rename = "task.updated")]
    TaskUpdated,
    #[serde(rename = "task.assigned")]
    TaskAssigned,
    #[serde(rename = "task.closed")]
    TaskClosed,
    #[serde(rename = "task.reopened")]
    TaskReopened,
    /// A scan queue task ended Failed.
    #[serde(rename = "scan.failed")]
    ScanFailed,
    /// An audit queue task ended Failed.
    #[serde(rename = "audit.failed")]
    AuditFailed,
}

impl EventKind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [EventKind; 7] = [
        EventKind::TaskOpened,
        EventKind::TaskUpdated,
        EventKind::TaskAssigned,
        EventKind::TaskClosed,
        EventKind::TaskReopened,
        EventKind::ScanFailed,
        EventKind::AuditFailed,
    ];

    /// `task.opened`, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::TaskOpened => "task.opened",
            EventKind::TaskUpdated => "task.updated",
            EventKind::TaskAssigned => "task.assigned",
            EventKind::TaskClosed => "task.closed",
            EventKind::TaskReopened => "task.reopened",
            EventKind::ScanFailed => "scan.failed",
            EventKind::AuditFailed => "audit.failed",
        }
    }

    /// The kind named `name` (`task.opened`).
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a task was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClosedHow {
    /// `vigil tasks close` (or its API call) by the user in `by`.
    User,
    /// Close All by the user in `by`.
    CloseAll,
    /// An audit found the check passing on every node (`by` is `Audit #N`).
    Audit,
    /// A later scan found every node scanning cleanly (`by` is `Scan #N`).
    Scan,
}

/// Nodes named in one event at most (`nodes_in_event` counts them all).
pub const MAX_EVENT_NODES: usize = 100;

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    /// Monotonic, from 1, never reused: `GET /v1/events?after=SEQ` resumes after it.
    pub seq: u64,
    /// Unique across every vigil instance: `<instance>-<seq>` (the Standard Webhooks
    /// `webhook-id`).
    pub id: String,
    pub time: DateTime<Utc>,
    pub kind: EventKind,
    /// The user task; `null` for `scan.failed`/`audit.failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<u64>,
    /// The task's stable key (`vigil/<instance>/task/<id>`) to match tickets by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_kind: Option<UserTaskKind>,
    /// The task's title, or a failed queue task's first error.
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<UserTaskStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// The task's events and distinct nodes after this change.
    #[serde(default)]
    pub events: u64,
    #[serde(default)]
    pub nodes: u64,
    /// The nodes this change concerns (the first [`MAX_EVENT_NODES`], by name).
    pub event_nodes: Vec<String>,
    /// How many nodes this change concerns.
    pub nodes_in_event: u64,
    /// Who: the closing or reopening user, the assigner (or the auto-assign rule), the
    /// queue task that closed a task by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// `task.closed`: how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<ClosedHow>,
    /// The queue task behind the change, when one is (`Scan #12`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<QueueTaskId>,
}

/// A line of `GET /v1/events`: an event, or (while following) a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EventLine {
    Heartbeat(Heartbeat),
    Event(LogEvent),
}

/// Sent every few seconds while a followed stream has nothing new, so that the client and
/// any proxy notice a dead peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub heartbeat: DateTime<Utc>,
    /// The newest event committed so far.
    pub last_seq: u64,
}

/// The query of `GET /v1/events`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventsQuery {
    /// Events after this sequence number (default 0: from the oldest kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Keep the response open and stream new events as they commit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow: bool,
    /// Seconds between heartbeats while following and nothing happens (1–300, default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<u64>,
}
