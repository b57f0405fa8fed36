//! Reference counting of content-addressed chunks and values, plus pruning and sweeping.
//!
//! A chunk's count is the number of snapshots that list it; a value's count is the number of
//! chunk entries that point at it. A chunk is written with count 0 while its scan runs and
//! counted only when the snapshot commits, so a failed scan leaves unreferenced chunks that
//! `sweep_unreferenced` removes at the next start.

use redb::{ReadableTable, TableHandle, WriteTransaction};

use super::chunk::{self, split_refcount, with_refcount, Entries, Hash, StoredValue};
use super::{decode_meta, ChunkRef};
use crate::store::tables::{CHUNKS, DRIFT, SNAPSHOTS, VALUES};
use crate::store::StoreError;

type BlobTable = redb::TableDefinition<'static, &'static [u8; 32], &'static [u8]>;

/// Stores a chunk (and its values) unless it already exists.
pub fn put_chunk(
    tx: &WriteTransaction,
    bytes: &[u8],
    first: &str,
    items: usize,
    values: &[(Hash, Vec<u8>)],
) -> Result<ChunkRef, StoreError> {
    let h = chunk::hash(bytes);
    let mut chunks = tx.open_table(CHUNKS)?;
    if chunks.get(&h)?.is_none() {
        chunks.insert(&h, with_refcount(0, bytes).as_slice())?;
        let mut vt = tx.open_table(VALUES)?;
        for (vh, vb) in values {
            let existing = vt.get(vh)?.map(|g| g.value().to_vec());
            let row = match existing {
                Some(row) => {
                    let (count, rest) = split_refcount(&row);
                    with_refcount(count + 1, rest)
                }
                None => with_refcount(1, vb),
            };
            vt.insert(vh, row.as_slice())?;
        }
    }
    Ok(ChunkRef {
        first: first.to_owned(),
        hash: h,
        items: items as u32,
    })
}

fn adjust(
    tx: &WriteTransaction,
    def: BlobTable,
    h: &Hash,
    delta: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut table = tx.open_table(def)?;
    let Some(row) = table.get(h)?.map(|g| g.value().to_vec()) else {
        return Err(StoreError::Corrupt(format!(
            "{} {} is referenced but missing",
            def.name(),
            chunk::hex(h)
        )));
    };
    let (count, rest) = split_refcount(&row);
    let count = (count as i64 + delta).max(0) as u64;
    if count == 0 && delta < 0 {
        table.remove(h)?;
        return Ok(Some(rest.to_vec()));
    }
    table.insert(h, with_refcount(count, rest).as_slice())?;
    Ok(None)
}

/// One more snapshot lists this chunk.
pub fn retain_chunk(tx: &WriteTransaction, h: &Hash) -> Result<(), StoreError> {
    adjust(tx, CHUNKS, h, 1).map(|_| ())
}

/// One snapshot fewer lists this chunk; the last one takes it (and its value refs) away.
pub fn release_chunk(tx: &WriteTransaction, h: &Hash) -> Result<(), StoreError> {
    if let Some(bytes) = adjust(tx, CHUNKS, h, -1)? {
        release_values(tx, &bytes)?;
    }
    Ok(())
}

fn release_values(tx: &WriteTransaction, chunk_bytes: &[u8]) -> Result<(), StoreError> {
    for (_, vh) in Entries::new(chunk_bytes) {
        adjust(tx, VALUES, &vh, -1)?;
    }
    Ok(())
}

/// Reads a chunk's entries from any readable chunk table.
pub fn chunk_from<T: ReadableTable<&'static [u8; 32], &'static [u8]>>(
    table: &T,
    h: &Hash,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(table.get(h)?.map(|g| split_refcount(g.value()).1.to_vec()))
}

/// Reads a value from any readable value table.
pub fn value_from<T: ReadableTable<&'static [u8; 32], &'static [u8]>>(
    table: &T,
    h: &Hash,
) -> Result<Option<StoredValue>, StoreError> {
    Ok(table
        .get(h)?
        .and_then(|g| StoredValue::decode(split_refcount(g.value()).1)))
}

pub fn chunk_bytes(tx: &redb::ReadTransaction, h: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
    chunk_from(&tx.open_table(CHUNKS)?, h)
}

pub fn value(tx: &redb::ReadTransaction, h: &Hash) -> Result<Option<StoredValue>, StoreError> {
    value_from(&tx.open_table(VALUES)?, h)
}

/// Prunes up to `limit` snapshots from before day `cutoff` that are not their plugin's
/// newest on their node, and drift rows from before `cutoff`.
pub fn prune_some(tx: &WriteTransaction, cutoff: i32, limit: usize) -> Result<usize, StoreError> {
    let mut victims: Vec<((String, String, i32), Vec<u8>)> = Vec::new();
    {
        let table = tx.open_table(SNAPSHOTS)?;
        let mut prev: Option<((String, String, i32), Vec<u8>)> = None;
        for entry in table.iter()? {
            let (k, v) = entry?;
            let (node, plugin, day) = k.value();
            if let Some(((pn, pp, pd), bytes)) = prev.take() {
                // The previous row has a newer row of the same node and plugin: prunable.
                if pn == node && pp == plugin && pd < cutoff {
                    victims.push(((pn, pp, pd), bytes));
                    if victims.len() >= limit {
                        break;
                    }
                }
            }
            prev = Some((
                (node.to_owned(), plugin.to_owned(), day),
                v.value().to_vec(),
            ));
        }
    }
    let mut snapshots = tx.open_table(SNAPSHOTS)?;
    for ((node, plugin, day), _) in &victims {
        snapshots.remove((node.as_str(), plugin.as_str(), *day))?;
    }
    drop(snapshots);
    for (_, bytes) in &victims {
        if let Some(meta) = decode_meta(bytes) {
            for c in &meta.chunks {
                release_chunk(tx, &c.hash)?;
            }
        }
    }
    let mut drift = tx.open_table(DRIFT)?;
    let old: Vec<(String, String, i32)> = drift
        .iter()?
        .filter_map(|e| e.ok())
        .map(|(k, _)| {
            let (n, p, d) = k.value();
            (n.to_owned(), p.to_owned(), d)
        })
        .filter(|(_, _, d)| *d < cutoff)
        .collect();
    for (n, p, d) in &old {
        drift.remove((n.as_str(), p.as_str(), *d))?;
    }
    Ok(victims.len())
}

/// Removes chunks no snapshot lists, with their value references.
pub fn sweep_unreferenced(tx: &WriteTransaction) -> Result<usize, StoreError> {
    let orphans: Vec<(Hash, Vec<u8>)> = {
        let table = tx.open_table(CHUNKS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let (count, rest) = split_refcount(v.value());
            if count == 0 {
                out.push((*k.value(), rest.to_vec()));
            }
        }
        out
    };
    for (h, bytes) in &orphans {
        tx.open_table(CHUNKS)?.remove(h)?;
        release_values(tx, bytes)?;
    }
    Ok(orphans.len())
}
