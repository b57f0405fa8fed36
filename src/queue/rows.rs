//! The queue's stored rows: active tasks, Scan/Audit log rows and each node's last scan.
//! They are their own types, separate from the wire types in `proto`, so that the database
//! format and the API can change apart; both keep the JSON shape vigil has always stored.
//! Small value types whose text form is fixed (ids, statuses, scopes) are shared.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audits::StoredCheckRecord;
use crate::proto::{
    FinalStatus, LastScan, LogRow, PluginRun, QueueTask, QueueTaskId, QueueTaskKind,
    QueueTaskState, QueueTaskStatus, QueueWork, Scope,
};
use crate::store::tables;
use crate::store::JsonTable;

pub const QUEUE: JsonTable<u64, StoredQueueTask> = JsonTable::new(tables::QUEUE, "queue task");
pub const SCAN_LOG: JsonTable<u64, StoredLogRow> = JsonTable::new(tables::SCAN_LOG, "scan log row");
pub const AUDIT_LOG: JsonTable<u64, StoredLogRow> =
    JsonTable::new(tables::AUDIT_LOG, "audit log row");
pub const NODE_LAST_SCAN: JsonTable<&str, StoredLastScan> =
    JsonTable::new(tables::NODE_LAST_SCAN, "last scan");

/// An active queue task as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredQueueTask {
    id: QueueTaskId,
    target: String,
    scope: Scope,
    initiator: String,
    schedule: Option<String>,
    plugins: Option<Vec<String>>,
    policies: Option<Vec<String>>,
    queued_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    status: QueueTaskStatus,
    attempt: u32,
    /// Absent in rows written before runs existed: a task of no run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run: Option<u64>,
}

impl From<&QueueTask> for StoredQueueTask {
    fn from(t: &QueueTask) -> Self {
        let (plugins, policies) = match &t.work {
            QueueWork::Scan { plugins } => (plugins.clone(), None),
            QueueWork::Audit { policies } => (None, policies.clone()),
        };
        StoredQueueTask {
            id: t.id(),
            target: t.target.clone(),
            scope: t.scope.clone(),
            initiator: t.initiator.clone(),
            schedule: t.schedule.clone(),
            plugins,
            policies,
            queued_at: t.queued_at,
            started_at: t.state.started_at(),
            status: t.state.status(),
            attempt: t.state.attempt(),
            run: t.run,
        }
    }
}

impl TryFrom<StoredQueueTask> for QueueTask {
    type Error = String;
    fn try_from(t: StoredQueueTask) -> Result<Self, String> {
        let work = match (t.id.kind, t.plugins, t.policies) {
            (QueueTaskKind::Scan, plugins, None) => QueueWork::Scan { plugins },
            (QueueTaskKind::Audit, None, policies) => QueueWork::Audit { policies },
            _ => {
                return Err(format!(
                    "{}: plugins and policies do not fit its kind",
                    t.id
                ))
            }
        };
        let state = match (t.status, t.started_at) {
            (QueueTaskStatus::Queued, _) => QueueTaskState::Queued { attempt: t.attempt },
            (QueueTaskStatus::Running, Some(started_at)) => QueueTaskState::Running {
                started_at,
                attempt: t.attempt,
            },
            (QueueTaskStatus::Running, None) => {
                return Err(format!("{}: Running without a start time", t.id))
            }
        };
        Ok(QueueTask {
            number: t.id.number,
            target: t.target,
            scope: t.scope,
            initiator: t.initiator,
            schedule: t.schedule,
            work,
            queued_at: t.queued_at,
            state,
            run: t.run,
        })
    }
}

/// A Scan log / Audit log row as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredLogRow {
    id: QueueTaskId,
    pub(super) target: String,
    scope: Scope,
    initiator: String,
    schedule: Option<String>,
    queued_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: DateTime<Utc>,
    pub(super) status: FinalStatus,
    errors: u32,
    messages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
    attempt: u32,
    items_scanned: u64,
    changes_found: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    checks: Vec<StoredCheckRecord>,
    #[serde(default)]
    drift_fingerprint: Option<String>,
    pub(super) user_tasks_created: u64,
    pub(super) user_tasks_updated: u64,
    plugins: Vec<StoredPluginRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) run: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPluginRun {
    plugin: String,
    items: u64,
    notes: Vec<String>,
    error: Option<String>,
}

impl From<&LogRow> for StoredLogRow {
    fn from(r: &LogRow) -> Self {
        StoredLogRow {
            id: r.id,
            target: r.target.clone(),
            scope: r.scope.clone(),
            initiator: r.initiator.clone(),
            schedule: r.schedule.clone(),
            queued_at: r.queued_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            status: r.status,
            errors: r.errors,
            messages: r.messages.clone(),
            summary: r.summary.clone(),
            attempt: r.attempt,
            items_scanned: r.items_scanned,
            changes_found: r.changes_found,
            checks: r.checks.iter().map(StoredCheckRecord::from).collect(),
            drift_fingerprint: r.drift_fingerprint.clone(),
            user_tasks_created: r.user_tasks_created,
            user_tasks_updated: r.user_tasks_updated,
            plugins: r
                .plugins
                .iter()
                .map(|p| StoredPluginRun {
                    plugin: p.plugin.clone(),
                    items: p.items,
                    notes: p.notes.clone(),
                    error: p.error.clone(),
                })
                .collect(),
            run: r.run,
        }
    }
}

impl From<StoredLogRow> for LogRow {
    fn from(r: StoredLogRow) -> Self {
        LogRow {
            id: r.id,
            target: r.target,
            scope: r.scope,
            initiator: r.initiator,
            schedule: r.schedule,
            queued_at: r.queued_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            status: r.status,
            errors: r.errors,
            messages: r.messages,
            summary: r.summary,
            attempt: r.attempt,
            items_scanned: r.items_scanned,
            changes_found: r.changes_found,
            checks: r.checks.into_iter().map(Into::into).collect(),
            drift_fingerprint: r.drift_fingerprint,
            user_tasks_created: r.user_tasks_created,
            user_tasks_updated: r.user_tasks_updated,
            plugins: r
                .plugins
                .into_iter()
                .map(|p| PluginRun {
                    plugin: p.plugin,
                    items: p.items,
                    notes: p.notes,
                    error: p.error,
                })
                .collect(),
            run: r.run,
        }
    }
}

/// A node's last scan as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredLastScan {
    id: QueueTaskId,
    finished_at: DateTime<Utc>,
    status: FinalStatus,
    items_scanned: u64,
    changes_found: u64,
    /// The scan could not reach its (remote) node; rows from before say nothing: reached.
    #[serde(default)]
    unreachable: bool,
}

impl From<&LogRow> for StoredLastScan {
    fn from(r: &LogRow) -> Self {
        StoredLastScan {
            id: r.id,
            finished_at: r.finished_at,
            status: r.status,
            items_scanned: r.items_scanned,
            changes_found: r.changes_found,
            // The connection's failure is the "ssh" pseudo-plugin's (queue::runner::TRANSPORT).
            unreachable: r.messages.iter().any(|m| m.starts_with("ssh: ")),
        }
    }
}

impl From<StoredLastScan> for LastScan {
    fn from(s: StoredLastScan) -> Self {
        LastScan {
            id: s.id,
            finished_at: s.finished_at,
            status: s.status,
            items_scanned: s.items_scanned,
            changes_found: s.changes_found,
            reached: !s.unreachable,
        }
    }
}
