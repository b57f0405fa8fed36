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

/// Schedules: name → the due time (unix seconds, UTC) of its last run.
pub const SCHEDULE_FIRED: TableDefinition<&str, i64> = TableDefinition::new("schedule_fired");

/// Opens every table once so that read transactions never meet a missing table.
pub(super) fn create_all(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(META)?;
    tx.open_table(OUTBOX)?;
    tx.open_table(OUTBOX_SENT)?;
    tx.open_table(QUEUE)?;
    tx.open_table(SCAN_LOG)?;
    tx.open_table(AUDIT_LOG)?;
    tx.open_table(SCHEDULE_FIRED)?;
    Ok(())
}
