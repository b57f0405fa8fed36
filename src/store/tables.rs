//! Every redb table vigil uses, defined in one place so the schema can be read at a glance.

use redb::{TableDefinition, WriteTransaction};

use super::StoreError;

/// Store metadata: `schema_version` and other single values.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Opens every table once so that read transactions never meet a missing table.
pub(super) fn create_all(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(META)?;
    Ok(())
}
