//! Reference counting of content-addressed chunks, collection of values, pruning and
//! sweeping.
//!
//! A chunk's count is the number of snapshots that list it, kept in a table of its own
//! (`CHUNK_COUNTS`) so that counting never rewrites the chunk. A chunk is written uncounted
//! while its scan runs and counted only when the snapshot commits, so a failed scan leaves
//! uncounted chunks that `sweep_unreferenced` removes at the next start.
//!
//! Values are not counted: a value is live while some stored chunk lists it, and
//! [`sweep_values`] removes the others after chunks were removed (pruning, the start's
//! sweep). Counting them cost a write of every value of every new chunk — with one change
//! every hundred items that is nearly every chunk, so a nightly scan of 100,000 files
//! rewrote all 100,000 values (its time doubled, and its database grew by the size of all
//! values each night). A new chunk now writes only the values not yet stored. (Rows keep
//! their 8-byte count prefix, written as 0 and never read, so older databases read as
//! they are.)
//!
//! A scan in progress also relies on chunks it found already stored (unchanged data): those
//! are *pinned* (in `Store::pins`) from before the scan's first transaction that looks for
//! them until its snapshot commits, and a release that takes a pinned chunk's count to 0
//! keeps the chunk.
//! Without that, pruning an old snapshot in the middle of a scan could delete a chunk the
//! scan is about to list.

use redb::{ReadableTable, WriteTransaction};

use super::chunk::{self, split_refcount, with_refcount, Entries, Hash, StoredValue};
use super::delta;
use super::{ChunkRef, Known, PendingChunk, SNAPSHOTS};
use crate::store::tables::{CHUNKS, CHUNK_COUNTS, CHUNK_DELTAS, VALUES, VALUE_MARKS};
use crate::store::{Pins, StoreError};

/// Stores pending chunks (and their values) unless they already exist, through one set
/// of open tables; `known[i]` is what the baseline says of `pending[i]`.
pub(super) fn put_chunks(
    tx: &WriteTransaction,
    pending: &[PendingChunk],
    known: &[Known],
) -> Result<Vec<ChunkRef>, StoreError> {
    let mut counting = Counting::open(tx)?;
    let mut values = VALUES.write(tx)?;
    pending
        .iter()
        .zip(known)
        .map(|(c, known)| counting.put(&mut values, c, known))
        .collect()
}

/// Stores a chunk made of values that are stored already (a snapshot merged with entries
/// kept from its baseline, whose chunks list them), unless the chunk exists.
pub fn put_chunk_of_stored(
    tx: &WriteTransaction,
    h: Hash,
    bytes: &[u8],
    first: &str,
    items: usize,
) -> Result<ChunkRef, StoreError> {
    let mut chunks = CHUNKS.write(tx)?;
    if chunks.get(&h)?.is_none() {
        chunks.insert(&h, with_refcount(0, bytes).as_slice())?;
    }
    Ok(ChunkRef {
        first: first.to_owned(),
        hash: h,
        items: items as u32,
    })
}

/// The chunk tables of one transaction, open for counting: recording a snapshot counts
/// each chunk it lists, removing one uncounts them.
pub struct Counting<'t> {
    chunks: redb::Table<'t, &'static [u8; 32], &'static [u8]>,
    deltas: redb::Table<'t, &'static [u8; 32], &'static [u8]>,
    counts: redb::Table<'t, &'static [u8; 32], u64>,
}

impl<'t> Counting<'t> {
    pub fn open(tx: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Counting {
            chunks: CHUNKS.write(tx)?,
            deltas: CHUNK_DELTAS.write(tx)?,
            counts: CHUNK_COUNTS.write(tx)?,
        })
    }

    /// Stores a pending chunk (and its values) unless it already exists: as a delta of the
    /// base `known` names when that is small (the delta counts its base for as long as it
    /// exists), else in full. Values `known` lists are stored (a stored chunk lists them)
    /// and are not looked up.
    fn put(
        &mut self,
        values: &mut redb::Table<'_, &'static [u8; 32], &'static [u8]>,
        c: &PendingChunk,
        known: &Known,
    ) -> Result<ChunkRef, StoreError> {
        if self.chunks.get(&c.hash)?.is_none() && self.deltas.get(&c.hash)?.is_none() {
            let as_delta = known
                .base
                .as_ref()
                .filter(|(base, _)| *base != c.hash)
                .and_then(|(base, bytes)| Some((base, delta::encode(base, bytes, &c.bytes)?)));
            match as_delta {
                Some((base, stored)) => {
                    self.deltas.insert(&c.hash, stored.as_slice())?;
                    self.retain(base)?;
                }
                None => {
                    self.chunks
                        .insert(&c.hash, with_refcount(0, &c.bytes).as_slice())?;
                }
            }
            for (vh, vb) in &c.values {
                // A value stored already (unchanged since the baseline, or on another node)
                // is left as it is: only the chunk row is new.
                if !known.values.contains(vh) && values.get(vh)?.is_none() {
                    values.insert(vh, with_refcount(0, vb).as_slice())?;
                }
            }
        }
        Ok(ChunkRef {
            first: c.first.clone(),
            hash: c.hash,
            items: c.n as u32,
        })
    }

    /// One more snapshot (or delta) lists this chunk (stored, and pinned by the scan that lists it, so
    /// it is not read again here).
    pub fn retain(&mut self, h: &Hash) -> Result<(), StoreError> {
        let n = self.counts.get(h)?.map_or(0, |g| g.value());
        self.counts.insert(h, n + 1)?;
        Ok(())
    }

    /// One snapshot (or delta) fewer lists this chunk; the last one takes it away, unless a
    /// scan in progress has pinned it, and with it releases the chunk it was a delta of.
    /// Returns whether it was removed (its values may now be garbage).
    pub fn release(&mut self, pins: &Pins, h: &Hash) -> Result<bool, StoreError> {
        let mut at = *h;
        let mut removed = false;
        // Down a chain of deltas, as long as each release takes the last reference (bounded:
        // a chain is never longer, and a damaged store must not loop).
        for _ in 0..=delta::MAX_CHAIN {
            let Some(n) = self.counts.get(&at)?.map(|g| g.value()) else {
                return Err(StoreError::Corrupt(format!(
                    "snapshot chunk {} is listed but not counted; run `vigild check`",
                    chunk::hex(&at)
                )));
            };
            if n > 1 {
                self.counts.insert(&at, n - 1)?;
                return Ok(removed);
            }
            self.counts.remove(&at)?;
            if pins.is_pinned(&at) {
                return Ok(removed);
            }
            match self.remove(&at)? {
                Some(Some(base)) => (removed, at) = (true, base),
                Some(None) => return Ok(true),
                None => return Ok(removed),
            }
        }
        Ok(removed)
    }

    /// Removes a chunk's row; returns `None` if there was none, else the base it was a
    /// delta of, if it was one.
    fn remove(&mut self, h: &Hash) -> Result<Option<Option<Hash>>, StoreError> {
        if self.chunks.remove(h)?.is_some() {
            return Ok(Some(None));
        }
        let Some(row) = self.deltas.remove(h)? else {
            return Ok(None);
        };
        Ok(Some(delta::split(row.value()).map(|(base, _)| base)))
    }
}

/// Removes the values no stored chunk lists; returns how many. One transaction marks every
/// value of every chunk (counted or not: a scan in progress has its chunks stored with
/// their values) in a table of its own, so that memory stays bounded however large the
/// store, then drops the unmarked values and the marks. A scan that later needs a value
/// removed here stores it again (`put_chunk` writes every value it does not find).
pub fn sweep_values(tx: &WriteTransaction) -> Result<u64, StoreError> {
    let mut marks = VALUE_MARKS.write(tx)?;
    marks.retain(|_, _| false)?;
    {
        let malformed =
            || StoreError::Corrupt("a snapshot chunk is malformed; run `vigild check`".into());
        for entry in CHUNKS.write(tx)?.iter()? {
            let (_, row) = entry?;
            let mut entries = Entries::new(split_refcount(row.value()).1);
            for (_, vh) in entries.by_ref() {
                marks.insert(&vh, ())?;
            }
            if entries.malformed {
                return Err(malformed());
            }
        }
        // A delta lists its new values; the others are listed by its base, stored too.
        for entry in CHUNK_DELTAS.write(tx)?.iter()? {
            let (_, row) = entry?;
            let listed = delta::split(row.value())
                .and_then(|(_, edits)| delta::new_values(edits))
                .ok_or_else(malformed)?;
            for vh in &listed {
                marks.insert(vh, ())?;
            }
        }
    }
    let mut values = VALUES.write(tx)?;
    let mut removed = 0u64;
    let mut failed: Option<redb::StorageError> = None;
    values.retain(|h, _| match marks.get(h) {
        Ok(Some(_)) => true,
        Ok(None) => {
            removed += 1;
            false
        }
        Err(e) => {
            failed.get_or_insert(e);
            true
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    marks.retain(|_, _| false)?;
    Ok(removed)
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
    let mut counting = Counting::open(tx)?;
    for (node, plugin, day) in &victims {
        if let Some(meta) = snapshots.remove((node.as_str(), plugin.as_str(), *day))? {
            for c in &meta.chunks {
                counting.release(pins, &c.hash)?;
            }
        }
    }
    Ok(victims.len())
}

/// Removes chunks no snapshot lists (those without a count), releasing the bases of those
/// that were deltas, then the values only they listed. Runs at start, with no scan
/// writing, so nothing is pinned.
pub fn sweep_unreferenced(tx: &WriteTransaction) -> Result<usize, StoreError> {
    let orphans: Vec<Hash> = {
        let counts = CHUNK_COUNTS.write(tx)?;
        let mut out = Vec::new();
        for table in [CHUNKS, CHUNK_DELTAS] {
            for entry in table.write(tx)?.iter()? {
                let (k, _) = entry?;
                if counts.get(k.value())?.is_none() {
                    out.push(*k.value());
                }
            }
        }
        out
    };
    let no_pins = Pins::default();
    let mut counting = Counting::open(tx)?;
    for h in &orphans {
        if let Some(Some(base)) = counting.remove(h)? {
            counting.release(&no_pins, &base)?;
        }
    }
    drop(counting);
    if !orphans.is_empty() {
        sweep_values(tx)?;
    }
    Ok(orphans.len())
}
