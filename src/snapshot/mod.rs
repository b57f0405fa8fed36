//! Daily snapshots of each node's items, per plugin, stored so that unchanged data costs
//! (almost) nothing: values and chunks are content-addressed and shared between days and
//! nodes (see `chunk`). A scan streams its items through a [`SnapshotWriter`], which never
//! holds more than one chunk in memory; [`SnapshotWriter::commit`] then records the day's
//! snapshot and its drift against the baseline in one durable commit (or, for a queue
//! task, in a lazy one that the task's end commit makes durable).

pub mod chunk;
mod day;
mod refs;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use vigil_plugin::Item;

pub use day::{day_number, from_day_number, today, TODAY_FILE_ENV};
pub use refs::{chunk_from as chunk_from_table, value_from as value_from_table};

use crate::drift::{self, DiffRules};
use crate::proto::{PluginDrift, QueueTaskId};
use crate::store::tables::{DRIFT, SNAPSHOTS};
use crate::store::{Store, StoreError};
use chunk::{ChunkBuilder, Hash, StoredValue, MAX_CHUNK_ENTRIES};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "the plugin emitted items out of order ({previous:?} then {key:?}); plugins must emit \
         keys in strictly increasing byte order (a bug in the plugin)"
    )]
    OutOfOrder { previous: String, key: String },
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
        }
    }

    /// Adds the next item. Keys must arrive in strictly increasing byte order.
    pub async fn push(&mut self, item: Item) -> Result<(), SnapshotError> {
        if let Some(prev) = &self.last_key {
            if item.key.as_bytes() <= prev.as_bytes() {
                return Err(SnapshotError::OutOfOrder {
                    previous: prev.clone(),
                    key: item.key,
                });
            }
        }
        let (key, value) = StoredValue::of(item);
        let bytes = value.encode();
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
        let refs = self
            .store
            .write_lazy(move |tx| {
                pending
                    .iter()
                    .map(|c| refs::put_chunk(tx, c.hash, &c.bytes, &c.first, c.n, &c.values))
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .await?;
        self.chunks.extend(refs);
        Ok(())
    }

    /// Records the snapshot as the node's snapshot of the day for this plugin (replacing an
    /// earlier one of the same day), computes its drift against the baseline (the newest
    /// snapshot of an earlier day) and records that too, in one durable commit.
    pub async fn commit(
        self,
        scan: QueueTaskId,
        notes: Vec<String>,
        volatile: Vec<String>,
        rules: DiffRules,
    ) -> Result<PluginDrift, SnapshotError> {
        self.store_snapshot(scan, notes, volatile, rules, true)
            .await
    }

    /// Like [`SnapshotWriter::commit`], but the commit is lazy: it becomes durable with the
    /// next durable commit, which for a queue task is the commit that records the task's
    /// end (made right after its plugins ran). A crash before that loses the snapshot
    /// together with the task's end, and the task, still Running in the store, runs again.
    pub async fn commit_with_task(
        self,
        scan: QueueTaskId,
        notes: Vec<String>,
        volatile: Vec<String>,
        rules: DiffRules,
    ) -> Result<PluginDrift, SnapshotError> {
        self.store_snapshot(scan, notes, volatile, rules, false)
            .await
    }

    async fn store_snapshot(
        mut self,
        scan: QueueTaskId,
        notes: Vec<String>,
        volatile: Vec<String>,
        rules: DiffRules,
        durable: bool,
    ) -> Result<PluginDrift, SnapshotError> {
        self.flush().await?;
        self.write_pending().await?;
        let meta = SnapshotMeta {
            scan,
            taken_at: Utc::now(),
            items: self.items,
            // Bounded by the caller, which also counts what it did not keep.
            notes,
            volatile,
            chunks: std::mem::take(&mut self.chunks),
        };
        let (node, plugin, day) = (
            std::mem::take(&mut self.node),
            std::mem::take(&mut self.plugin),
            self.day,
        );
        let store = self.store.clone();
        let write = move |tx: &WriteTransaction| -> Result<PluginDrift, SnapshotError> {
            record(tx, store.pins(), &node, &plugin, day, &meta, &rules)
                .map_err(SnapshotError::from)
        };
        if durable {
            self.store.write(write).await
        } else {
            self.store.write_lazy(write).await
        }
    }
}

fn record(
    tx: &WriteTransaction,
    pins: &crate::store::Pins,
    node: &str,
    plugin: &str,
    day: NaiveDate,
    meta: &SnapshotMeta,
    rules: &DiffRules,
) -> Result<PluginDrift, StoreError> {
    let d = day_number(day);
    let mut snapshots = tx.open_table(SNAPSHOTS)?;
    for c in &meta.chunks {
        refs::retain_chunk(tx, &c.hash)?;
    }
    let old = snapshots
        .get((node, plugin, d))?
        .map(|v| v.value().to_vec());
    if let Some(old) = old.and_then(|b| decode_meta(&b)) {
        for c in &old.chunks {
            refs::release_chunk(tx, pins, &c.hash)?;
        }
    }
    snapshots.insert((node, plugin, d), encode_meta(meta)?.as_slice())?;
    let baseline = snapshots
        .range((node, plugin, i32::MIN)..(node, plugin, d))?
        .next_back()
        .transpose()?
        .and_then(|(k, v)| decode_meta(v.value()).map(|m| (k.value().2, m)));
    drop(snapshots);
    let (baseline_day, changes) = match &baseline {
        Some((bd, base)) => (
            Some(from_day_number(*bd)),
            drift::diff(tx, &base.chunks, &meta.chunks, rules, &meta.volatile)?,
        ),
        None => (None, Vec::new()),
    };
    let result = PluginDrift {
        node: node.to_owned(),
        plugin: plugin.to_owned(),
        day,
        scan: meta.scan,
        baseline_day,
        items: meta.items,
        changes,
        coverage_notes: meta.notes.clone(),
    };
    let bytes = serde_json::to_vec(&result).map_err(|e| StoreError::Encode {
        what: "drift",
        error: e.to_string(),
    })?;
    tx.open_table(DRIFT)?
        .insert((node, plugin, d), bytes.as_slice())?;
    Ok(result)
}

fn encode_meta(meta: &SnapshotMeta) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(meta).map_err(|e| StoreError::Encode {
        what: "snapshot",
        error: e.to_string(),
    })
}

pub fn decode_meta(bytes: &[u8]) -> Option<SnapshotMeta> {
    serde_json::from_slice(bytes).ok()
}

/// The newest snapshot per plugin of a node: (plugin → (day, meta)).
pub fn latest_per_plugin(
    tx: &redb::ReadTransaction,
    node: &str,
) -> Result<BTreeMap<String, (NaiveDate, SnapshotMeta)>, StoreError> {
    let table = tx.open_table(SNAPSHOTS)?;
    let mut out = BTreeMap::new();
    for entry in table.range((node, "", i32::MIN)..)? {
        let (k, v) = entry?;
        let (n, plugin, d) = k.value();
        if n != node {
            break;
        }
        if let Some(meta) = decode_meta(v.value()) {
            out.insert(plugin.to_owned(), (from_day_number(d), meta));
        }
    }
    Ok(out)
}

/// Drift recorded for a node on a day, all plugins.
pub fn drift_of_day(
    tx: &redb::ReadTransaction,
    node: &str,
    day: NaiveDate,
) -> Result<Vec<PluginDrift>, StoreError> {
    let d = day_number(day);
    let table = tx.open_table(DRIFT)?;
    let mut out = Vec::new();
    for entry in table.range((node, "", d)..)? {
        let (k, v) = entry?;
        let (n, _, day) = k.value();
        if n != node {
            break;
        }
        if day == d {
            if let Ok(pd) = serde_json::from_slice::<PluginDrift>(v.value()) {
                out.push(pd);
            }
        }
    }
    Ok(out)
}

/// A node's drift for a day, re-diffed from the stored snapshots with the ignore rules in
/// force now (`rules_for` gives a plugin's rules; `None` keeps the drift recorded at scan
/// time). Where a snapshot was pruned, the recorded drift is returned as it was.
pub fn drift_of_day_now(
    tx: &redb::ReadTransaction,
    node: &str,
    day: NaiveDate,
    rules_for: impl Fn(&str) -> Option<DiffRules>,
) -> Result<Vec<PluginDrift>, StoreError> {
    let mut out = drift_of_day(tx, node, day)?;
    let snapshots = tx.open_table(SNAPSHOTS)?;
    for pd in &mut out {
        let (Some(rules), Some(base_day)) = (rules_for(&pd.plugin), pd.baseline_day) else {
            continue;
        };
        let get = |d: NaiveDate| -> Result<Option<SnapshotMeta>, StoreError> {
            Ok(snapshots
                .get((node, pd.plugin.as_str(), day_number(d)))?
                .and_then(|v| decode_meta(v.value())))
        };
        if let (Some(base), Some(cur)) = (get(base_day)?, get(day)?) {
            pd.changes = drift::diff_read(tx, &base.chunks, &cur.chunks, &rules, &cur.volatile)?;
        }
    }
    Ok(out)
}

/// Bytes stored for snapshots (values, chunks and snapshot rows), for storage accounting.
pub fn stored_bytes(tx: &redb::ReadTransaction) -> Result<u64, StoreError> {
    use crate::store::tables::{CHUNKS, VALUES};
    let mut total = 0u64;
    for entry in tx.open_table(VALUES)?.iter()? {
        total += entry?.1.value().len() as u64 + 32;
    }
    for entry in tx.open_table(CHUNKS)?.iter()? {
        total += entry?.1.value().len() as u64 + 32;
    }
    for entry in tx.open_table(SNAPSHOTS)?.iter()? {
        let (k, v) = entry?;
        let (n, p, _) = k.value();
        total += (v.value().len() + n.len() + p.len() + 4) as u64;
    }
    Ok(total)
}

/// The newest day with recorded drift for a node.
pub fn latest_drift_day(
    tx: &redb::ReadTransaction,
    node: &str,
) -> Result<Option<NaiveDate>, StoreError> {
    let table = tx.open_table(DRIFT)?;
    let mut best = None;
    for entry in table.range((node, "", i32::MIN)..)? {
        let (k, _) = entry?;
        let (n, _, d) = k.value();
        if n != node {
            break;
        }
        best = best.max(Some(d));
    }
    Ok(best.map(from_day_number))
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
    let Some(bytes) = refs::chunk_bytes(tx, &c.hash)? else {
        return Ok(None);
    };
    for (k, h) in chunk::Entries::new(&bytes) {
        if k == key {
            return Ok(refs::value(tx, &h)?.map(|v| (*day, v)));
        }
    }
    Ok(None)
}

/// Prunes snapshots and drift older than `retention_days` before `today`, keeping each
/// node's newest snapshot per plugin (it is the baseline of the next scan). Works in small
/// transactions so that scans are never held up for long. Returns snapshots pruned.
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
        let n = store
            .write_blocking(|tx| refs::prune_some(tx, store.pins(), cutoff, BATCH, &mut cursor))?;
        pruned += n;
        if cursor.is_none() {
            break;
        }
    }
    let mut cursor: refs::PruneCursor = None;
    loop {
        store.write_blocking(|tx| refs::prune_drift_some(tx, cutoff, BATCH, &mut cursor))?;
        if cursor.is_none() {
            break;
        }
    }
    Ok(pruned)
}

/// Removes chunks that no snapshot references (left by scans that failed or were
/// interrupted). Only safe while no scan is writing: run at start, before the queue starts.
pub fn sweep_blocking(store: &Store) -> Result<usize, StoreError> {
    store.write_blocking(refs::sweep_unreferenced)
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
