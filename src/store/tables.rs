//! Every redb table vigil uses, defined in one place so the schema can be read at a glance.

use redb::{TableDefinition, WriteTransaction};

use super::StoreError;

/// Store metadata: `schema_version` and other single values.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Mails waiting for delivery or given up on (dead letters): mail id → `outbox::StoredMail`
/// JSON. Kept small: a delivered mail moves to `OUTBOX_SENT` in the commit that records it.
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");

/// Delivered mails: mail id → `outbox::StoredMail` JSON; pruned after `daemon.retention_days`.
pub const OUTBOX_SENT: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox_sent");

/// Active queue tasks (Queued or Running): queue sequence number → `proto::QueueTask` JSON.
/// The sequence number orders the FIFO.
pub const QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue");

/// Terminal scan tasks: log sequence number → `proto::LogRow` JSON.
pub const SCAN_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("scan_log");

/// Terminal audit tasks: log sequence number → `proto::LogRow` JSON.
pub const AUDIT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_log");

/// Scan/Audit log rows by node: (log, node, log sequence number) → the row's final status.
/// `log` is "scans" or "audits"; statuses are named as on the wire ("Failed"). Lets
/// `GET /v1/logs/*?node=` page through one node's rows without decoding anyone else's.
pub const LOG_BY_NODE: TableDefinition<(&str, &str, u64), &str> =
    TableDefinition::new("log_by_node");

/// Scan/Audit log rows by final status: (log, status, log sequence number).
pub const LOG_BY_STATUS: TableDefinition<(&str, &str, u64), ()> =
    TableDefinition::new("log_by_status");

/// Scan/Audit log row counts: (log, node, status) → rows; node `None` counts every node.
/// The `total` of a filtered log page without a scan.
pub const LOG_COUNTS: TableDefinition<(&str, Option<&str>, &str), u64> =
    TableDefinition::new("log_counts");

/// Schedules: name → the due time (unix seconds, UTC) of its last run.
pub const SCHEDULE_FIRED: TableDefinition<&str, i64> = TableDefinition::new("schedule_fired");

/// Snapshot values, content-addressed: BLAKE3 → refcount (u64 LE, chunks using it) + value.
pub const VALUES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("snapshot_values");

/// Snapshot chunks, content-addressed: BLAKE3 → refcount (u64 LE, snapshots using it) + entries.
pub const CHUNKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("snapshot_chunks");

/// Snapshots: (node, plugin, day number) → `snapshot::SnapshotMeta` JSON (its chunk list).
pub const SNAPSHOTS: TableDefinition<(&str, &str, i32), &[u8]> = TableDefinition::new("snapshots");

/// Drift: (node, plugin, day number) → `proto::PluginDrift` JSON, that day against its baseline.
pub const DRIFT: TableDefinition<(&str, &str, i32), &[u8]> = TableDefinition::new("drift");

/// Per node: the last scan task's log row summary (`proto::LastScan` JSON).
pub const NODE_LAST_SCAN: TableDefinition<&str, &[u8]> = TableDefinition::new("node_last_scan");

/// User tasks: id → `proto::UserTask` JSON.
pub const USER_TASKS: TableDefinition<u64, &[u8]> = TableDefinition::new("user_tasks");

/// User task events: (task id, event number) → `proto::UserTaskEvent` JSON.
pub const TASK_EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("task_events");

/// Events per node of a task: (task id, node) → events.
pub const TASK_NODES: TableDefinition<(u64, &str), u64> = TableDefinition::new("task_nodes");

/// One event per task, node and day: (task id, node, day number) → event number.
pub const TASK_EVENT_DAYS: TableDefinition<(u64, &str, i32), u64> =
    TableDefinition::new("task_event_days");

/// Open tasks by finding fingerprint: fingerprint → task id.
pub const OPEN_FINGERPRINTS: TableDefinition<&str, u64> = TableDefinition::new("open_fingerprints");

/// The newest task of each fingerprint, open or closed: fingerprint → task id.
pub const LAST_FINGERPRINTS: TableDefinition<&str, u64> = TableDefinition::new("last_fingerprints");

/// Nodes of a task whose finding a later audit found fixed: (task id, node) → `Audit #N`.
pub const TASK_NODE_RESOLVED: TableDefinition<(u64, &str), &str> =
    TableDefinition::new("task_node_resolved");

/// Latest audit result per check and node: (policy, check, node) → `proto::CheckRecord` JSON.
pub const POLICY_RESULTS: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("policy_results");

/// Opens every table once so that read transactions never meet a missing table.
pub(super) fn create_all(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(META)?;
    tx.open_table(OUTBOX)?;
    tx.open_table(OUTBOX_SENT)?;
    tx.open_table(QUEUE)?;
    tx.open_table(SCAN_LOG)?;
    tx.open_table(AUDIT_LOG)?;
    tx.open_table(LOG_BY_NODE)?;
    tx.open_table(LOG_BY_STATUS)?;
    tx.open_table(LOG_COUNTS)?;
    tx.open_table(SCHEDULE_FIRED)?;
    tx.open_table(VALUES)?;
    tx.open_table(CHUNKS)?;
    tx.open_table(SNAPSHOTS)?;
    tx.open_table(DRIFT)?;
    tx.open_table(NODE_LAST_SCAN)?;
    tx.open_table(USER_TASKS)?;
    tx.open_table(TASK_EVENTS)?;
    tx.open_table(TASK_NODES)?;
    tx.open_table(TASK_EVENT_DAYS)?;
    tx.open_table(OPEN_FINGERPRINTS)?;
    tx.open_table(LAST_FINGERPRINTS)?;
    tx.open_table(TASK_NODE_RESOLVED)?;
    tx.open_table(POLICY_RESULTS)?;
    Ok(())
}
