//! The streaming merge diff of two snapshots. Chunks are content-defined (see
//! `snapshot::chunk`), so identical regions of two snapshots are identical chunks, skipped
//! whole without being read: a million unchanged items cost a comparison of chunk hashes.
//! Ignore rules and volatile attributes apply here, as values are compared.

use std::collections::BTreeMap;

use redb::ReadableTable;

use super::DiffRules;
use crate::proto::{AttributeChange, Change, ChangeKind};
use crate::snapshot::chunk::{self, StoredValue};
use crate::snapshot::{ChunkRef, EntryCursor, Reader};
use crate::store::StoreError;

/// Largest unified content diff kept per item; longer ones are cut with a note.
const MAX_CONTENT_DIFF: usize = 64 * 1024;

type Blobs = &'static [u8; 32];

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

/// The changes from `baseline` to `current` (two snapshots' chunk lists), in key order.
pub fn diff<T: ReadableTable<Blobs, &'static [u8]>>(
    reader: &Reader<T>,
    baseline: &[ChunkRef],
    current: &[ChunkRef],
    rules: &DiffRules,
    volatile: &[String],
) -> Result<Vec<Change>, StoreError> {
    let value = |h: &chunk::Hash| -> Result<StoredValue, StoreError> {
        Ok(visible(reader.value(h)?, rules, volatile))
    };
    let mut a = EntryCursor::new(baseline);
    let mut b = EntryCursor::new(current);
    let mut changes = Vec::new();
    loop {
        if let (Some(ca), Some(cb)) = (a.chunk_at_start(), b.chunk_at_start()) {
            if ca.hash == cb.hash {
                a.skip_chunk();
                b.skip_chunk();
                continue;
            }
        }
        let left = a.peek(reader)?.cloned();
        let right = b.peek(reader)?.cloned();
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
    let d = digest(&v);
    let (current_digest, previous_digest) = match kind {
        ChangeKind::Added => (Some(d), None),
        _ => (None, Some(d)),
    };
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
        previous_digest,
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
        previous_digest: Some(digest(&old)),
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
