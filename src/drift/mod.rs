//! Drift: what changed on a node between its baseline snapshot and today's.
//!
//! The diff is a streaming merge of two sorted key lists. Chunks are content-defined (see
//! `snapshot::chunk`), so identical regions of the two snapshots are identical chunks and are
//! skipped whole without being read: a million unchanged items cost a comparison of chunk
//! hashes. Ignore rules (`ignore_attributes`, `ignore_keys`, the plugin's volatile
//! attributes) apply here, at diff time, so they can be changed without rescanning.

mod fingerprint;

use std::collections::{BTreeMap, HashSet};

use globset::{Glob, GlobSet, GlobSetBuilder};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

pub use fingerprint::fingerprint;

use crate::config::PluginConfig;
use crate::proto::{AttributeChange, Change, ChangeKind};
use crate::snapshot::chunk::{self, Entries, Hash, StoredValue};
use crate::snapshot::ChunkRef;
use crate::store::tables::{CHUNKS, VALUES};
use crate::store::StoreError;

/// Largest unified content diff kept per item; longer ones are cut with a note.
const MAX_CONTENT_DIFF: usize = 64 * 1024;

/// What drift ignores for one plugin.
#[derive(Debug, Clone, Default)]
pub struct DiffRules {
    pub ignore_attributes: HashSet<String>,
    pub ignore_keys: Option<GlobSet>,
}

impl DiffRules {
    /// The rules configured for a plugin. Globs were validated with the config.
    pub fn for_plugin(plugin: &PluginConfig) -> DiffRules {
        let mut builder = GlobSetBuilder::new();
        for g in &plugin.ignore_keys {
            if let Ok(glob) = Glob::new(g) {
                builder.add(glob);
            }
        }
        DiffRules {
            ignore_attributes: plugin.ignore_attributes.iter().cloned().collect(),
            ignore_keys: builder
                .build()
                .ok()
                .filter(|_| !plugin.ignore_keys.is_empty()),
        }
    }

    fn ignores_key(&self, key: &str) -> bool {
        self.ignore_keys.as_ref().is_some_and(|g| g.is_match(key))
    }
}

/// A value as drift sees it: without ignored and volatile attributes.
fn visible(value: StoredValue, rules: &DiffRules, volatile: &[String]) -> StoredValue {
    let attributes = value
        .attributes
        .into_iter()
        .filter(|(k, _)| !rules.ignore_attributes.contains(k) && !volatile.iter().any(|v| v == k))
        .collect();
    StoredValue {
        attributes,
        content: value.content,
    }
}

/// Walks a snapshot's entries in key order, a chunk at a time.
struct Cursor<'a> {
    chunks: &'a [ChunkRef],
    next_chunk: usize,
    entries: Vec<(String, Hash)>,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(chunks: &'a [ChunkRef]) -> Self {
        Cursor {
            chunks,
            next_chunk: 0,
            entries: Vec::new(),
            pos: 0,
        }
    }

    /// The next unread chunk, if the cursor sits exactly at its start.
    fn chunk_at_start(&self) -> Option<&ChunkRef> {
        (self.pos >= self.entries.len())
            .then(|| self.chunks.get(self.next_chunk))
            .flatten()
    }

    fn skip_chunk(&mut self) {
        self.next_chunk += 1;
    }

    fn peek(
        &mut self,
        load: &impl Fn(&Hash) -> Result<Vec<u8>, StoreError>,
    ) -> Result<Option<&(String, Hash)>, StoreError> {
        while self.pos >= self.entries.len() {
            let Some(c) = self.chunks.get(self.next_chunk) else {
                return Ok(None);
            };
            let bytes = load(&c.hash)?;
            let mut it = Entries::new(&bytes);
            self.entries = it.by_ref().map(|(k, h)| (k.to_owned(), h)).collect();
            if it.malformed {
                return Err(StoreError::Corrupt(format!(
                    "chunk {} is malformed",
                    chunk::hex(&c.hash)
                )));
            }
            self.pos = 0;
            self.next_chunk += 1;
        }
        Ok(self.entries.get(self.pos))
    }

    fn advance(&mut self) {
        self.pos += 1;
    }
}

/// Diffs two snapshots' chunk lists within a write transaction (at scan time).
pub fn diff(
    tx: &WriteTransaction,
    baseline: &[ChunkRef],
    current: &[ChunkRef],
    rules: &DiffRules,
    volatile: &[String],
) -> Result<Vec<Change>, StoreError> {
    let chunks = tx.open_table(CHUNKS)?;
    let values = tx.open_table(VALUES)?;
    diff_tables(&chunks, &values, baseline, current, rules, volatile)
}

/// Diffs two snapshots' chunk lists within a read transaction (reports with current rules).
pub fn diff_read(
    tx: &ReadTransaction,
    baseline: &[ChunkRef],
    current: &[ChunkRef],
    rules: &DiffRules,
    volatile: &[String],
) -> Result<Vec<Change>, StoreError> {
    let chunks = tx.open_table(CHUNKS)?;
    let values = tx.open_table(VALUES)?;
    diff_tables(&chunks, &values, baseline, current, rules, volatile)
}

type Blobs = &'static [u8; 32];

fn diff_tables(
    chunks: &impl ReadableTable<Blobs, &'static [u8]>,
    values: &impl ReadableTable<Blobs, &'static [u8]>,
    baseline: &[ChunkRef],
    current: &[ChunkRef],
    rules: &DiffRules,
    volatile: &[String],
) -> Result<Vec<Change>, StoreError> {
    let load = |h: &Hash| {
        crate::snapshot::chunk_from_table(chunks, h)?
            .ok_or_else(|| StoreError::Corrupt(format!("chunk {} is missing", chunk::hex(h))))
    };
    let value = |h: &Hash| -> Result<StoredValue, StoreError> {
        let v = crate::snapshot::value_from_table(values, h)?
            .ok_or_else(|| StoreError::Corrupt(format!("value {} is missing", chunk::hex(h))))?;
        Ok(visible(v, rules, volatile))
    };
    let mut a = Cursor::new(baseline);
    let mut b = Cursor::new(current);
    let mut changes = Vec::new();
    loop {
        if let (Some(ca), Some(cb)) = (a.chunk_at_start(), b.chunk_at_start()) {
            if ca.hash == cb.hash {
                a.skip_chunk();
                b.skip_chunk();
                continue;
            }
        }
        let left = a.peek(&load)?.cloned();
        let right = b.peek(&load)?.cloned();
        match (left, right) {
            (None, None) => break,
            (Some((key, h)), None) => {
                a.advance();
                if !rules.ignores_key(&key) {
                    changes.push(added_or_removed(key, ChangeKind::Removed, value(&h)?));
                }
            }
            (None, Some((key, h))) => {
                b.advance();
                if !rules.ignores_key(&key) {
                    changes.push(added_or_removed(key, ChangeKind::Added, value(&h)?));
                }
            }
            (Some((ka, ha)), Some((kb, hb))) => match ka.as_bytes().cmp(kb.as_bytes()) {
                std::cmp::Ordering::Less => {
                    a.advance();
                    if !rules.ignores_key(&ka) {
                        changes.push(added_or_removed(ka, ChangeKind::Removed, value(&ha)?));
                    }
                }
                std::cmp::Ordering::Greater => {
                    b.advance();
                    if !rules.ignores_key(&kb) {
                        changes.push(added_or_removed(kb, ChangeKind::Added, value(&hb)?));
                    }
                }
                std::cmp::Ordering::Equal => {
                    a.advance();
                    b.advance();
                    if ha != hb && !rules.ignores_key(&ka) {
                        if let Some(change) = modified(ka, value(&ha)?, value(&hb)?) {
                            changes.push(change);
                        }
                    }
                }
            },
        }
    }
    Ok(changes)
}

fn digest(v: &StoredValue) -> String {
    chunk::hex(&chunk::hash(&v.encode()))
}

fn added_or_removed(key: String, kind: ChangeKind, v: StoredValue) -> Change {
    let current_digest = (kind == ChangeKind::Added).then(|| digest(&v));
    let attributes = v
        .attributes
        .into_iter()
        .map(|(name, val)| match kind {
            ChangeKind::Added => AttributeChange {
                name,
                previous: None,
                current: Some(val),
            },
            _ => AttributeChange {
                name,
                previous: Some(val),
                current: None,
            },
        })
        .collect();
    Change {
        key,
        kind,
        attributes,
        content_diff: None,
        current_digest,
    }
}

/// A modified item, or `None` when only ignored attributes differ.
fn modified(key: String, old: StoredValue, new: StoredValue) -> Option<Change> {
    if old == new {
        return None;
    }
    let mut names: BTreeMap<&String, ()> = BTreeMap::new();
    names.extend(old.attributes.keys().map(|k| (k, ())));
    names.extend(new.attributes.keys().map(|k| (k, ())));
    let attributes = names
        .keys()
        .filter_map(|name| {
            let (p, c) = (old.attributes.get(*name), new.attributes.get(*name));
            (p != c).then(|| AttributeChange {
                name: (*name).clone(),
                previous: p.cloned(),
                current: c.cloned(),
            })
        })
        .collect();
    let content_diff =
        (old.content != new.content).then(|| content_diff(&old.content, &new.content));
    Some(Change {
        key,
        kind: ChangeKind::Modified,
        attributes,
        content_diff,
        current_digest: Some(digest(&new)),
    })
}

fn content_diff(old: &Option<String>, new: &Option<String>) -> String {
    let (o, n) = (old.as_deref().unwrap_or(""), new.as_deref().unwrap_or(""));
    let mut text = similar::TextDiff::from_lines(o, n)
        .unified_diff()
        .context_radius(3)
        .header("previous", "current")
        .to_string();
    if text.len() > MAX_CONTENT_DIFF {
        let mut cut = MAX_CONTENT_DIFF;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n… diff cut at 64 KiB\n");
    }
    text
}
