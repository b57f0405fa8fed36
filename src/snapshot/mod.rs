//! Daily snapshots of each node's items, per plugin, stored so that unchanged data costs
//! (almost) nothing: values and chunks are content-addressed and shared between days and
//! nodes (see `chunk`). A scan streams its items through a [`SnapshotWriter`], which never
//! holds more than one chunk in memory; [`SnapshotWriter::commit`] then records the day's
//! snapshot and, in the same transaction, runs the caller's hook on it and its baseline
//! (the drift stage records the day's drift there). Stored snapshots are read through a
//! [`Reader`] and walked in key order by an [`EntryCursor`].

mod carry;
pub mod chunk;
mod day;
mod delta;
mod item_json;
mod reader;
mod refs;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use vigil_plugin::Item;

pub use carry::covers as unseen_covers;
pub use day::{day_number, from_day_number, today, TODAY_FILE_ENV};
pub use reader::{EntryCursor, Reader};

use crate::proto::QueueTaskId;
use crate::store::{tables, Commit, JsonTable, Store, StoreError};
use chunk::{ChunkBuilder, Hash, StoredValue, MAX_CHUNK_ENTRIES};

/// Its tables of encoded rows, for `vigild check` (every row decoded).
pub(crate) const STORED_ROWS: &[&dyn crate::store::RowCheck] = &[&SNAPSHOTS];

/// Snapshots: (node, plugin, day number) → its chunk list.
const SNAPSHOTS: JsonTable<(&str, &str, i32), SnapshotMeta> =
    JsonTable::new(tables::SNAPSHOTS, "snapshot");

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "the plugin emitted items out of order ({previous:?} then {key:?}); plugins must emit \
         keys in strictly increasing byte order (a bug in the plugin)"
    )]
    OutOfOrder { previous: String, key: String },
    #[error(
        "plugin protocol violation: bad item encoding: item #{number} is not valid item JSON \
         ({error})"
    )]
    BadItem { number: u64, error: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One chunk of a snapshot: where it starts, which chunk, how many items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub first: String,
    #[serde(with = "hex32")]
    pub hash: Hash,
    pub items: u32,
}

/// A stored snapshot: its chunk list and what the scan could not see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub scan: QueueTaskId,
    pub taken_at: DateTime<Utc>,
    pub items: u64,
    pub notes: Vec<String>,
    /// Attributes the plugin declares volatile; ignored by drift.
    pub volatile: Vec<String>,
    pub chunks: Vec<ChunkRef>,
    /// Keys of subtrees the scan could not see (each covers itself and what is under it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unseen: Vec<String>,
    /// Entries under the unseen keys kept from the baseline (counted in `items`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub carried: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a scan says about its snapshot, besides its items.
#[derive(Debug, Clone, Default)]
pub struct Taken {
    /// What the scan could not see (bounded by the caller).
    pub notes: Vec<String>,
    /// Attributes the plugin declares volatile.
    pub volatile: Vec<String>,
    /// Subtrees it could not see: their baseline entries are kept (see `carry`).
    pub unseen: Vec<String>,
}

/// Streams one plugin's items on one node into the store.
pub struct SnapshotWriter {
    store: Store,
    node: String,
    plugin: String,
    day: NaiveDate,
    builder: ChunkBuilder,
    values: Vec<(Hash, Vec<u8>)>,
    chunks: Vec<ChunkRef>,
    last_key: Option<String>,
    items: u64,
    pending: Vec<PendingChunk>,
    /// Chunks this writer pinned (see `refs`); unpinned when it is dropped.
    pinned: Vec<Hash>,
    /// The baseline's chunk list, once the first batch looked it up (empty without one):
    /// values it lists are stored, so a new chunk needs no lookup for them.
    baseline: Option<Arc<Vec<ChunkRef>>>,
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        self.store.pins().unpin(&self.pinned);
    }
}

/// A closed chunk waiting to be written with the next batch.
struct PendingChunk {
    hash: Hash,
    bytes: Vec<u8>,
    first: String,
    /// Its last key (the key range `stored_in_baseline` looks at).
    last: String,
    n: usize,
    values: Vec<(Hash, Vec<u8>)>,
}

/// Chunks written per transaction while a scan streams: fewer, larger transactions are
/// much cheaper for redb, and memory stays bounded (about this many chunks of items).
const CHUNKS_PER_WRITE: usize = 32;

impl SnapshotWriter {
    pub fn new(store: Store, node: &str, plugin: &str, day: NaiveDate) -> Self {
        SnapshotWriter {
            store,
            node: node.to_owned(),
            plugin: plugin.to_owned(),
            day,
            builder: ChunkBuilder::default(),
            values: Vec::new(),
            chunks: Vec::new(),
            last_key: None,
            items: 0,
            pending: Vec::new(),
            pinned: Vec::new(),
            baseline: None,
        }
    }

    /// Adds the next item. Keys must arrive in strictly increasing byte order.
    pub async fn push(&mut self, item: Item) -> Result<(), SnapshotError> {
        let (key, value) = StoredValue::of(item);
        self.push_stored(key, value.encode()).await
    }

    /// Adds the next item as a worker framed it (its JSON), stored without being decoded
    /// into an [`Item`] (see `item_json`); refused, as decoding it would be, if it is not
    /// an item.
    pub async fn push_json(&mut self, json: &[u8]) -> Result<(), SnapshotError> {
        let (key, bytes) = item_json::encode(json).map_err(|e| SnapshotError::BadItem {
            number: self.items + 1,
            error: e.to_string(),
        })?;
        self.push_stored(key, bytes).await
    }

    /// Adds an item's key and its value's stored bytes.
    async fn push_stored(&mut self, key: String, bytes: Vec<u8>) -> Result<(), SnapshotError> {
        if let Some(prev) = &self.last_key {
            if key.as_bytes() <= prev.as_bytes() {
                return Err(SnapshotError::OutOfOrder {
                    previous: prev.clone(),
                    key,
                });
            }
        }
        let hash = chunk::hash(&bytes);
        self.builder.push(&key, &hash);
        self.values.push((hash, bytes));
        self.items += 1;
        let cut = chunk::is_boundary(&key) || self.builder.len() >= MAX_CHUNK_ENTRIES;
        self.last_key = Some(key);
        if cut {
            self.flush().await?;
        }
        Ok(())
    }

    pub fn items(&self) -> u64 {
        self.items
    }

    /// Closes the chunk being built; every [`CHUNKS_PER_WRITE`] chunks, stores them.
    async fn flush(&mut self) -> Result<(), StoreError> {
        if !self.builder.is_empty() {
            let (bytes, first, n) = self.builder.take();
            let values = std::mem::take(&mut self.values);
            self.pending.push(PendingChunk {
                hash: chunk::hash(&bytes),
                bytes,
                last: self.last_key.clone().unwrap_or_else(|| first.clone()),
                first,
                n,
                values,
            });
        }
        if self.pending.len() >= CHUNKS_PER_WRITE {
            self.write_pending().await?;
        }
        Ok(())
    }

    /// Stores the closed chunks (and their new values) in one lazy commit: useless, and
    /// swept at the next start, unless a later durable commit references them.
    async fn write_pending(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let hashes: Vec<Hash> = pending.iter().map(|c| c.hash).collect();
        self.store.pins().pin(&hashes);
        self.pinned.extend(hashes);
        let known = self.baseline.clone();
        let (node, plugin, day) = (self.node.clone(), self.plugin.clone(), self.day);
        let (refs, baseline) = self
            .store
            .write_as(Commit::Lazy, move |tx| {
                let baseline = match known {
                    Some(b) => b,
                    None => Arc::new(
                        baseline_of(tx, &node, &plugin, day)?
                            .map(|(_, meta)| meta.chunks)
                            .unwrap_or_default(),
                    ),
                };
                let known = known_from_baseline(tx, &baseline, &pending)?;
                let refs = refs::put_chunks(tx, &pending, &known)?;
                Ok::<_, StoreError>((refs, baseline))
            })
            .await?;
        self.baseline = Some(baseline);
        self.chunks.extend(refs);
        Ok(())
    }

    /// Stores every item pushed so far, so that [`Self::chunks`] lists them all and a read
    /// transaction sees them (to diff ahead of the commit, outside its write transaction).
    pub async fn seal(&mut self) -> Result<(), StoreError> {
        self.flush().await?;
        self.write_pending().await
    }

    /// The chunks stored so far, in key order (all of them after [`Self::seal`]).
    pub fn chunks(&self) -> &[ChunkRef] {
        &self.chunks
    }

    /// Records the snapshot as the node's snapshot of the day for this plugin (replacing an
    /// earlier one of the same day), then runs `hook` in the same transaction with it and
    /// its baseline (the newest snapshot of an earlier day). With [`Commit::Lazy`] the
    /// commit becomes durable with the next durable one — for a queue task, the commit
    /// that records its end, made right after its plugins ran: a crash before that loses
    /// the snapshot together with the task's end, and the task, still Running in the
    /// store, runs again.
    pub async fn commit<T, F>(
        mut self,
        commit: Commit,
        scan: QueueTaskId,
        taken: Taken,
        hook: F,
    ) -> Result<T, SnapshotError>
    where
        F: FnOnce(&WriteTransaction, &Committed<'_>) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.flush().await?;
        self.write_pending().await?;
        let mut meta = SnapshotMeta {
            scan,
            taken_at: Utc::now(),
            items: self.items,
            // Bounded by the caller, which also counts what it did not keep.
            notes: taken.notes,
            volatile: taken.volatile,
            chunks: std::mem::take(&mut self.chunks),
            unseen: taken.unseen,
            carried: 0,
        };
        let (node, plugin, day) = (
            std::mem::take(&mut self.node),
            std::mem::take(&mut self.plugin),
            self.day,
        );
        let store = self.store.clone();
        let write = move |tx: &WriteTransaction| -> Result<T, SnapshotError> {
            if !meta.unseen.is_empty() {
                if let Some((_, base)) = baseline_of(tx, &node, &plugin, day)? {
                    let (chunks, carried) = carry::merge(tx, &meta.chunks, &base, &meta.unseen)?;
                    meta.chunks = chunks;
                    meta.carried = carried;
                    meta.items += carried;
                }
            }
            let baseline = record(tx, store.pins(), &node, &plugin, day, &meta)?;
            let committed = Committed {
                node: &node,
                plugin: &plugin,
                day,
                meta: &meta,
                baseline: baseline.as_ref().map(|(d, m)| (*d, m)),
            };
            hook(tx, &committed).map_err(SnapshotError::from)
        };
        self.store.write_as(commit, write).await
    }
}

/// What the baseline tells about a pending chunk.
#[derive(Default)]
struct Known {
    /// The value hashes listed by the baseline's chunks over its key range: stored already
    /// (a stored chunk's values are), so they need no lookup.
    values: HashSet<Hash>,
    /// The chunk to store it against as a delta (see `delta`), hash and entries: the
    /// baseline's chunk over the same keys, or, if that ends a chain of deltas as long as
    /// chains go, the full chunk the chain starts from.
    base: Option<(Hash, Vec<u8>)>,
}

/// What the baseline's chunks over each pending chunk's key range say of it. Reading the
/// one or two baseline chunks a key range overlaps costs far less than looking up each of a
/// new chunk's values at random in the value table. A baseline chunk that cannot be read
/// only means more lookups and a chunk stored in full.
fn known_from_baseline(
    tx: &WriteTransaction,
    baseline: &[ChunkRef],
    pending: &[PendingChunk],
) -> Result<Vec<Known>, StoreError> {
    if baseline.is_empty() {
        return Ok(pending.iter().map(|_| Known::default()).collect());
    }
    let reader = Reader::in_write(tx)?;
    let mut out = Vec::with_capacity(pending.len());
    for c in pending {
        let last = c.last.as_str();
        // Baseline chunk i holds the keys from its first key up to the next chunk's.
        let from = baseline
            .partition_point(|b| b.first.as_str() <= c.first.as_str())
            .saturating_sub(1);
        let to = baseline.partition_point(|b| b.first.as_str() <= last);
        let mut known = Known::default();
        let over = &baseline[from..to.max(from)];
        if over.iter().any(|b| b.hash == c.hash) {
            // Unchanged since the baseline: stored, so nothing to look up or store.
            out.push(known);
            continue;
        }
        for b in over {
            let Ok(stored) = reader.materialize(&b.hash) else {
                continue;
            };
            known
                .values
                .extend(chunk::Entries::new(&stored.bytes).map(|(_, h)| h));
            // The base is the chunk that starts where this one does, else the first.
            if known.base.is_none() || b.first == c.first {
                known.base = match stored.root {
                    Some(root) if stored.chain >= delta::MAX_CHAIN => Some(root),
                    _ => Some((b.hash, stored.bytes)),
                };
            }
        }
        out.push(known);
    }
    Ok(out)
}

/// A snapshot just recorded, as a commit hook sees it.
pub struct Committed<'a> {
    pub node: &'a str,
    pub plugin: &'a str,
    pub day: NaiveDate,
    pub meta: &'a SnapshotMeta,
    /// The newest snapshot of an earlier day, if any.
    pub baseline: Option<(NaiveDate, &'a SnapshotMeta)>,
}

/// Stores the day's snapshot (releasing the one it replaces) and returns its baseline.
fn record(
    tx: &WriteTransaction,
    pins: &crate::store::Pins,
    node: &str,
    plugin: &str,
    day: NaiveDate,
    meta: &SnapshotMeta,
) -> Result<Option<(NaiveDate, SnapshotMeta)>, StoreError> {
    let d = day_number(day);
    let mut snapshots = SNAPSHOTS.write(tx)?;
    let mut counting = refs::Counting::open(tx)?;
    for c in &meta.chunks {
        counting.retain(&c.hash)?;
    }
    if let Some(old) = snapshots.get((node, plugin, d))? {
        for c in &old.chunks {
            counting.release(pins, &c.hash)?;
        }
    }
    snapshots.put((node, plugin, d), meta)?;
    drop((snapshots, counting));
    baseline_of(tx, node, plugin, day)
}

/// The newest snapshot of `node` and `plugin` from a day before `day`.
fn baseline_of(
    tx: &WriteTransaction,
    node: &str,
    plugin: &str,
    day: NaiveDate,
) -> Result<Option<(NaiveDate, SnapshotMeta)>, StoreError> {
    newest_before(&SNAPSHOTS.write(tx)?, node, plugin, day)
}

/// The newest snapshot of `node` and `plugin` from a day before `day`, as a reader sees it
/// (what a commit of `day` would take as its baseline, unless a commit comes between).
pub fn baseline_before(
    tx: &redb::ReadTransaction,
    node: &str,
    plugin: &str,
    day: NaiveDate,
) -> Result<Option<(NaiveDate, SnapshotMeta)>, StoreError> {
    newest_before(&SNAPSHOTS.read(tx)?, node, plugin, day)
}

/// The newest snapshot of `node` and `plugin` before `day` in `rows`, open in either kind
/// of transaction.
fn newest_before<T>(
    rows: &crate::store::Rows<T, (&'static str, &'static str, i32), SnapshotMeta>,
    node: &str,
    plugin: &str,
    day: NaiveDate,
) -> Result<Option<(NaiveDate, SnapshotMeta)>, StoreError>
where
    T: ReadableTable<(&'static str, &'static str, i32), &'static [u8]>,
{
    let d = day_number(day);
    Ok(rows
        .range((node, plugin, i32::MIN)..(node, plugin, d))?
        .next_back()
        .transpose()?
        .map(|(k, m)| (from_day_number(k.value().2), m)))
}

/// A node's snapshot of one day for one plugin.
pub fn snapshot_of(
    tx: &redb::ReadTransaction,
    node: &str,
    plugin: &str,
    day: NaiveDate,
) -> Result<Option<SnapshotMeta>, StoreError> {
    SNAPSHOTS.read(tx)?.get((node, plugin, day_number(day)))
}

/// The newest snapshot per plugin of a node: (plugin → (day, meta)).
pub fn latest_per_plugin(
    tx: &redb::ReadTransaction,
    node: &str,
) -> Result<BTreeMap<String, (NaiveDate, SnapshotMeta)>, StoreError> {
    let table = SNAPSHOTS.read(tx)?;
    let mut out = BTreeMap::new();
    for entry in table.range((node, "", i32::MIN)..)? {
        let (k, meta) = entry?;
        let (n, plugin, d) = k.value();
        if n != node {
            break;
        }
        out.insert(plugin.to_owned(), (from_day_number(d), meta));
    }
    Ok(out)
}

/// Bytes stored for snapshots (values, chunks and snapshot rows), for storage accounting.
pub fn stored_bytes(tx: &redb::ReadTransaction) -> Result<u64, StoreError> {
    use crate::store::tables::{CHUNKS, CHUNK_DELTAS, VALUES};
    let mut total = 0u64;
    for table in [VALUES, CHUNKS, CHUNK_DELTAS] {
        for entry in table.read(tx)?.iter()? {
            total += entry?.1.value().len() as u64 + 32;
        }
    }
    for entry in SNAPSHOTS.read(tx)?.undecoded().iter()? {
        let (k, v) = entry?;
        let (n, p, _) = k.value();
        total += (v.value().len() + n.len() + p.len() + 4) as u64;
    }
    Ok(total)
}

/// Looks up one item in the newest snapshot of a node's plugin.
pub fn current_item(
    tx: &redb::ReadTransaction,
    node: &str,
    plugin: &str,
    key: &str,
) -> Result<Option<(NaiveDate, StoredValue)>, StoreError> {
    let latest = latest_per_plugin(tx, node)?;
    let Some((day, meta)) = latest.get(plugin) else {
        return Ok(None);
    };
    let idx = meta.chunks.partition_point(|c| c.first.as_str() <= key);
    let Some(c) = idx.checked_sub(1).map(|i| &meta.chunks[i]) else {
        return Ok(None);
    };
    let reader = Reader::in_read(tx)?;
    let bytes = reader.chunk(&c.hash)?;
    for (k, h) in chunk::Entries::new(&bytes) {
        if k == key {
            return Ok(Some((*day, reader.value(&h)?)));
        }
    }
    Ok(None)
}

/// Prunes snapshots older than `retention_days` before `today`, keeping each node's newest
/// snapshot per plugin (it is the baseline of the next scan). Works in small transactions
/// so that scans are never held up for long. Returns snapshots pruned.
pub fn prune_blocking(
    store: &Store,
    today: NaiveDate,
    retention_days: u32,
) -> Result<usize, StoreError> {
    let cutoff = day_number(today) - retention_days as i32;
    // Small batches, each its own commit: scans' commits get their turn in between.
    const BATCH: usize = 256;
    let mut pruned = 0;
    let mut cursor: refs::PruneCursor = None;
    loop {
        let n = store.write_blocking(Commit::Durable, |tx| {
            refs::prune_some(tx, store.pins(), cutoff, BATCH, &mut cursor)
        })?;
        pruned += n;
        if cursor.is_none() {
            break;
        }
    }
    if pruned > 0 {
        // The pruned snapshots' chunks are gone; so are the values only they listed (and
        // those of chunks replaced by a same-day rescan since the last sweep).
        let values = store.write_blocking(Commit::Durable, refs::sweep_values)?;
        tracing::debug!("pruning {pruned} snapshots freed {values} values");
    }
    Ok(pruned)
}

/// Removes chunks that no snapshot references (left by scans that failed or were
/// interrupted), and the values only they listed. Only safe while no scan is writing: run
/// at start, before the queue starts.
pub fn sweep_blocking(store: &Store) -> Result<usize, StoreError> {
    store.write_blocking(Commit::Durable, refs::sweep_unreferenced)
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::chunk::hex(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(serde::de::Error::custom("hash must be 64 hex digits"));
        }
        for (i, byte) in out.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(serde::de::Error::custom)?;
        }
        Ok(out)
    }
}
