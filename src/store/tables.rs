//! Every redb table vigil uses, defined in one place so the schema can be read at a glance.

use redb::{TableDefinition, WriteTransaction};

use super::StoreError;

/// Store metadata: `schema_version` and other single values.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Active queue tasks (Queued or Running): queue sequence number → `proto::QueueTask` JSON.
/// The sequence number orders the FIFO.
pub const QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue");

/// Terminal scan tasks: log sequence number → `proto::LogRow` JSON.
pub const SCAN_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("scan_log");

/// Terminal audit tasks: log sequence number → `proto::LogRow` JSON.
pub const AUDIT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_log");

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

/// Opens every table once so that read transactions never meet a missing table.
pub(super) fn create_all(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(META)?;
    tx.open_table(QUEUE)?;
    tx.open_table(SCAN_LOG)?;
    tx.open_table(AUDIT_LOG)?;
    tx.open_table(SCHEDULE_FIRED)?;
    tx.open_table(VALUES)?;
    tx.open_table(CHUNKS)?;
    tx.open_table(SNAPSHOTS)?;
    tx.open_table(DRIFT)?;
    tx.open_table(NODE_LAST_SCAN)?;
    Ok(())
}
