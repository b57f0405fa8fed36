//! Every redb table vigil uses, defined in one place so the schema can be read at a glance.
//! Tables of plain values are [`PlainTable`]s here; tables of encoded rows are raw
//! definitions here, wrapped in a typed [`JsonTable`](super::JsonTable) by the module that
//! owns their row type (named in each doc line), so `store` needs no higher module.

use redb::{TableDefinition, WriteTransaction};

use super::{PlainTable, StoreError};

/// A table of encoded rows (bytes), typed by its owner.
pub type RowTable<K> = TableDefinition<'static, K, &'static [u8]>;

/// Store metadata: `schema_version`, counters and other single values.
pub const META: PlainTable<&str, u64> = PlainTable::new(TableDefinition::new("meta"));

/// Mails waiting for delivery or given up on (dead letters): mail id → `outbox::StoredMail`.
/// Kept small: a delivered mail moves to `OUTBOX_SENT` in the commit that records it.
pub const OUTBOX: RowTable<u64> = TableDefinition::new("outbox");

/// Delivered mails: mail id → `outbox::StoredMail`; pruned after `daemon.retention_days`.
pub const OUTBOX_SENT: RowTable<u64> = TableDefinition::new("outbox_sent");

/// Active queue tasks (Queued or Running): queue sequence number →
/// `queue::rows::StoredQueueTask`. The sequence number orders the FIFO.
pub const QUEUE: RowTable<u64> = TableDefinition::new("queue");

/// Terminal scan tasks: log sequence number → `queue::rows::StoredLogRow`.
pub const SCAN_LOG: RowTable<u64> = TableDefinition::new("scan_log");

/// Terminal audit tasks: log sequence number → `queue::rows::StoredLogRow`.
pub const AUDIT_LOG: RowTable<u64> = TableDefinition::new("audit_log");

/// Scan/Audit log rows by node: (log, node, log sequence number) → the row's final status.
/// `log` is "scans" or "audits"; statuses are named as on the wire ("Failed"). Lets
/// `GET /v1/logs/*?node=` page through one node's rows without decoding anyone else's.
pub const LOG_BY_NODE: PlainTable<(&str, &str, u64), &str> =
    PlainTable::new(TableDefinition::new("log_by_node"));

/// Scan/Audit log rows by final status: (log, status, log sequence number).
pub const LOG_BY_STATUS: PlainTable<(&str, &str, u64), ()> =
    PlainTable::new(TableDefinition::new("log_by_status"));

/// Scan/Audit log row counts: (log, node, status) → rows; node `None` counts every node.
/// The `total` of a filtered log page without a scan.
pub const LOG_COUNTS: PlainTable<(&str, Option<&str>, &str), u64> =
    PlainTable::new(TableDefinition::new("log_counts"));

/// Schedules: name → the due time (unix seconds, UTC) of its last run.
pub const SCHEDULE_FIRED: PlainTable<&str, i64> =
    PlainTable::new(TableDefinition::new("schedule_fired"));

/// Snapshot values, content-addressed: BLAKE3 → 8 unused bytes (a reference count until
/// values were collected by sweeping; see `snapshot::refs`) + value.
pub const VALUES: PlainTable<&[u8; 32], &[u8]> =
    PlainTable::new(TableDefinition::new("snapshot_values"));

/// The live values found by one value sweep, empty between sweeps (see `snapshot::refs`).
pub const VALUE_MARKS: PlainTable<&[u8; 32], ()> =
    PlainTable::new(TableDefinition::new("snapshot_value_marks"));

/// Snapshot chunks, content-addressed: BLAKE3 → 8 unused bytes (the reference count until
/// schema 3 moved it to [`CHUNK_COUNTS`]) + entries. Written once, never rewritten.
pub const CHUNKS: PlainTable<&[u8; 32], &[u8]> =
    PlainTable::new(TableDefinition::new("snapshot_chunks"));

/// Snapshot chunks stored as the edits of another chunk (see `snapshot::delta`): BLAKE3
/// of the chunk's full entries → base chunk's BLAKE3 + edits. A chunk is in this table or
/// in [`CHUNKS`], never both. Written once, never rewritten.
pub const CHUNK_DELTAS: PlainTable<&[u8; 32], &[u8]> =
    PlainTable::new(TableDefinition::new("snapshot_chunk_deltas"));

/// How many snapshots (and deltas, of their base) list each chunk: BLAKE3 → count (≥ 1). A
/// chunk without a row is listed by none: written by a scan in progress, or left by an
/// interrupted one (see `snapshot::refs`). Kept apart from the chunk's entries so that counting a chunk, which
/// every snapshot does for every chunk it lists, writes a few bytes instead of the chunk.
pub const CHUNK_COUNTS: PlainTable<&[u8; 32], u64> =
    PlainTable::new(TableDefinition::new("snapshot_chunk_counts"));

/// Snapshots: (node, plugin, day number) → `snapshot::SnapshotMeta` (its chunk list).
pub const SNAPSHOTS: RowTable<(&str, &str, i32)> = TableDefinition::new("snapshots");

/// Drift: (node, plugin, day number) → `drift::StoredDrift`, that day against its baseline.
pub const DRIFT: RowTable<(&str, &str, i32)> = TableDefinition::new("drift");

/// Per node: the last scan task's log row summary (`queue::rows::StoredLastScan`).
pub const NODE_LAST_SCAN: RowTable<&str> = TableDefinition::new("node_last_scan");

/// User tasks: id → `tasks::rows::StoredUserTask`.
pub const USER_TASKS: RowTable<u64> = TableDefinition::new("user_tasks");

/// User task events: (task id, event number) → `tasks::rows::StoredEvent`.
pub const TASK_EVENTS: RowTable<(u64, u64)> = TableDefinition::new("task_events");

/// Events per node of a task: (task id, node) → events.
pub const TASK_NODES: PlainTable<(u64, &str), u64> =
    PlainTable::new(TableDefinition::new("task_nodes"));

/// One event per task, node and day: (task id, node, day number) → event number.
pub const TASK_EVENT_DAYS: PlainTable<(u64, &str, i32), u64> =
    PlainTable::new(TableDefinition::new("task_event_days"));

/// Open tasks by finding fingerprint: fingerprint → task id.
pub const OPEN_FINGERPRINTS: PlainTable<&str, u64> =
    PlainTable::new(TableDefinition::new("open_fingerprints"));

/// The newest task of each fingerprint, open or closed: fingerprint → task id.
pub const LAST_FINGERPRINTS: PlainTable<&str, u64> =
    PlainTable::new(TableDefinition::new("last_fingerprints"));

/// Nodes of a task whose finding a later audit found fixed: (task id, node) → `Audit #N`.
pub const TASK_NODE_RESOLVED: PlainTable<(u64, &str), &str> =
    PlainTable::new(TableDefinition::new("task_node_resolved"));

/// Every change of a drift task: (task id, change id) → ().
pub const TASK_CHANGE_IDS: PlainTable<(u64, &str), ()> =
    PlainTable::new(TableDefinition::new("task_change_ids"));

/// The changes of open drift tasks by destination: (destination, change id, task id) → ().
/// Finds the open tasks a single node's drift could join.
pub const OPEN_DRIFT_CHANGES: PlainTable<(&str, &str, u64), ()> =
    PlainTable::new(TableDefinition::new("open_drift_changes"));

/// Nodes of open scan-failure tasks: (node, plugin, task id) → (). A clean scan of that
/// plugin on that node resolves the node in those tasks.
pub const SCAN_FAILURE_NODES: PlainTable<(&str, &str, u64), ()> =
    PlainTable::new(TableDefinition::new("scan_failure_nodes"));

/// Runs: run id → `queue::runs::StoredRun`.
pub const RUNS: RowTable<u64> = TableDefinition::new("runs");

/// The findings of a run's ended tasks until the run ends: (run id, node) →
/// `tasks::NodeFindings`.
pub const RUN_FINDINGS: RowTable<(u64, &str)> = TableDefinition::new("run_findings");

/// The event log: sequence number → `events::rows::StoredLogEvent`; pruned after
/// `daemon.retention_days`.
pub const EVENT_LOG: RowTable<u64> = TableDefinition::new("event_log");

/// Webhook endpoints in force and the event kinds each receives: name → kinds
/// (`task.opened,task.closed`). Written by the webhook service at start and at each reload;
/// read by the event log as it records each event, to queue a delivery per endpoint.
pub const WEBHOOK_ROUTES: PlainTable<&str, &str> =
    PlainTable::new(TableDefinition::new("webhook_routes"));

/// Webhook deliveries not yet made, and dead letters: (endpoint, event seq) →
/// `events::deliveries::StoredDelivery`. Written beside the event, in its transaction.
pub const WEBHOOK_QUEUE: RowTable<(&str, u64)> = TableDefinition::new("webhook_queue");

/// Webhook deliveries made: (endpoint, event seq) → when (unix seconds); pruned after
/// `daemon.retention_days`.
pub const WEBHOOK_DONE: PlainTable<(&str, u64), i64> =
    PlainTable::new(TableDefinition::new("webhook_done"));

/// Latest audit result per check and node: (policy, check, node) →
/// `audits::StoredCheckRecord`.
pub const POLICY_RESULTS: RowTable<(&str, &str, &str)> = TableDefinition::new("policy_results");

/// Opens every table once so that read transactions never meet a missing table.
pub(super) fn create_all(tx: &WriteTransaction) -> Result<(), StoreError> {
    META.write(tx)?;
    LOG_BY_NODE.write(tx)?;
    LOG_BY_STATUS.write(tx)?;
    LOG_COUNTS.write(tx)?;
    SCHEDULE_FIRED.write(tx)?;
    VALUES.write(tx)?;
    VALUE_MARKS.write(tx)?;
    CHUNKS.write(tx)?;
    CHUNK_DELTAS.write(tx)?;
    CHUNK_COUNTS.write(tx)?;
    TASK_NODES.write(tx)?;
    TASK_EVENT_DAYS.write(tx)?;
    OPEN_FINGERPRINTS.write(tx)?;
    LAST_FINGERPRINTS.write(tx)?;
    TASK_NODE_RESOLVED.write(tx)?;
    TASK_CHANGE_IDS.write(tx)?;
    OPEN_DRIFT_CHANGES.write(tx)?;
    SCAN_FAILURE_NODES.write(tx)?;
    tx.open_table(RUNS)?;
    tx.open_table(RUN_FINDINGS)?;
    for rows in [OUTBOX, OUTBOX_SENT, QUEUE, SCAN_LOG, AUDIT_LOG, USER_TASKS] {
        tx.open_table(rows)?;
    }
    for rows in [SNAPSHOTS, DRIFT] {
        tx.open_table(rows)?;
    }
    tx.open_table(NODE_LAST_SCAN)?;
    tx.open_table(TASK_EVENTS)?;
    tx.open_table(POLICY_RESULTS)?;
    tx.open_table(EVENT_LOG)?;
    WEBHOOK_ROUTES.write(tx)?;
    tx.open_table(WEBHOOK_QUEUE)?;
    WEBHOOK_DONE.write(tx)?;
    Ok(())
}
