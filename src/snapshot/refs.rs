//! Reference counting of content-addressed chunks and values, plus pruning and sweeping.
//!
//! A chunk's count is the number of snapshots that list it; a value's count is the number of
//! chunk entries that point at it. A chunk is written with count 0 while its scan runs and
//! counted only when the snapshot commits, so a failed scan leaves unreferenced chunks that
//! `sweep_unreferenced` removes at the next start.
//!
//! A scan in progress also relies on chunks it found already stored (unchanged data): those
//! are *pinned* (in `Store::pins`) from before the scan's first transaction that looks for
//! them until its snapshot commits, and a release that takes a pinned chunk's count to 0
//! keeps the chunk.
//! Without that, pruning an old snapshot in the middle of a scan could delete a chunk the
//! scan is about to list.

use redb::{ReadableTable, WriteTransaction};

use super::chunk::{self, split_refcount, with_refcount, Entries, Hash, StoredValue};
use super::{ChunkRef, SNAPSHOTS};
use crate::store::tables::{CHUNKS, VALUES};
use crate::store::{Pins, PlainTable, StoreError};

type BlobTable = PlainTable<&'static [u8; 32], &'static [u8]>;

/// Stores a chunk (and its values) unless it already exists; `h` is the chunk's hash.
pub fn put_chunk(
    tx: &WriteTransaction,
    h: Hash,
    bytes: &[u8],
    first: &str,
    items: usize,
    values: &[(Hash, Vec<u8>)],
) -> Result<ChunkRef, StoreError> {
    let mut chunks = CHUNKS.write(tx)?;
    if chunks.get(&h)?.is_none() {
        chunks.insert(&h, with_refcount(0, bytes).as_slice())?;
        let mut vt = VALUES.write(tx)?;
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

/// Stores a chunk made of values that are stored already (a snapshot merged with entries
/// kept from its baseline), unless the chunk exists; each value gains a reference.
pub fn put_chunk_of_stored(
    tx: &WriteTransaction,
    h: Hash,
    bytes: &[u8],
    first: &str,
    items: usize,
    values: &[Hash],
) -> Result<ChunkRef, StoreError> {
    let mut chunks = CHUNKS.write(tx)?;
    if chunks.get(&h)?.is_none() {
        chunks.insert(&h, with_refcount(0, bytes).as_slice())?;
        drop(chunks);
        for vh in values {
            adjust(tx, (VALUES, "value"), vh, 1, false)?;
        }
    }
    Ok(ChunkRef {
        first: first.to_owned(),
        hash: h,
        items: items as u32,
    })
}

/// Changes a row's count by `delta`. A row whose count drops to 0 is removed and its bytes
/// returned, unless `keep_at_zero`.
fn adjust(
    tx: &WriteTransaction,
    (def, what): (BlobTable, &str),
    h: &Hash,
    delta: i64,
    keep_at_zero: bool,
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut table = def.write(tx)?;
    let Some(row) = table.get(h)?.map(|g| g.value().to_vec()) else {
        return Err(StoreError::Corrupt(format!(
            "snapshot {what} {} is referenced but missing",
            chunk::hex(h)
        )));
    };
    let (count, rest) = split_refcount(&row);
    let count = (count as i64 + delta).max(0) as u64;
    if count == 0 && delta < 0 && !keep_at_zero {
        table.remove(h)?;
        return Ok(Some(rest.to_vec()));
    }
    table.insert(h, with_refcount(count, rest).as_slice())?;
    Ok(None)
}

/// One more snapshot lists this chunk.
pub fn retain_chunk(tx: &WriteTransaction, h: &Hash) -> Result<(), StoreError> {
    adjust(tx, (CHUNKS, "chunk"), h, 1, false).map(|_| ())
}

/// One snapshot fewer lists this chunk; the last one takes it (and its value refs) away,
/// unless a scan in progress has pinned it.
pub fn release_chunk(tx: &WriteTransaction, pins: &Pins, h: &Hash) -> Result<(), StoreError> {
    if let Some(bytes) = adjust(tx, (CHUNKS, "chunk"), h, -1, pins.is_pinned(h))? {
        release_values(tx, &bytes)?;
    }
    Ok(())
}

fn release_values(tx: &WriteTransaction, chunk_bytes: &[u8]) -> Result<(), StoreError> {
    for (_, vh) in Entries::new(chunk_bytes) {
        adjust(tx, (VALUES, "value"), &vh, -1, false)?;
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

/// Where [`prune_some`] goes on: the first snapshot key the next batch looks at.
pub type PruneCursor = Option<(String, String, i32)>;

/// Prunes up to `limit` snapshots from before day `cutoff` that are not their plugin's
/// newest on their node, starting at `cursor` and leaving it where the next batch should
/// start (`None` once the table has been gone through). Only keys are read while looking;
/// a pruned snapshot's record is read once, as it is removed.
pub fn prune_some(
    tx: &WriteTransaction,
    pins: &Pins,
    cutoff: i32,
    limit: usize,
    cursor: &mut PruneCursor,
) -> Result<usize, StoreError> {
    let mut victims: Vec<(String, String, i32)> = Vec::new();
    {
        let rows = SNAPSHOTS.write(tx)?;
        let table = rows.undecoded();
        let start = cursor.take();
        let rows = match &start {
            Some((n, p, d)) => table.range((n.as_str(), p.as_str(), *d)..)?,
            None => table.range::<(&str, &str, i32)>(..)?,
        };
        let mut prev: Option<(String, String, i32)> = None;
        // Keys only: a pruned snapshot's record is read once, as it is removed.
        for entry in rows {
            let (k, _) = entry?;
            let (node, plugin, day) = k.value();
            if let Some((pn, pp, pd)) = prev.take() {
                // The previous row has a newer row of the same node and plugin: prunable.
                if pn == node && pp == plugin && pd < cutoff {
                    victims.push((pn, pp, pd));
                }
            }
            prev = Some((node.to_owned(), plugin.to_owned(), day));
            if victims.len() >= limit {
                *cursor = prev.take();
                break;
            }
        }
    }
    let mut snapshots = SNAPSHOTS.write(tx)?;
    for (node, plugin, day) in &victims {
        if let Some(meta) = snapshots.remove((node.as_str(), plugin.as_str(), *day))? {
            for c in &meta.chunks {
                release_chunk(tx, pins, &c.hash)?;
            }
        }
    }
    Ok(victims.len())
}

/// Removes chunks no snapshot lists, with their value references.
pub fn sweep_unreferenced(tx: &WriteTransaction) -> Result<usize, StoreError> {
    let orphans: Vec<(Hash, Vec<u8>)> = {
        let table = CHUNKS.write(tx)?;
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
        CHUNKS.write(tx)?.remove(h)?;
        release_values(tx, bytes)?;
    }
    Ok(orphans.len())
}
