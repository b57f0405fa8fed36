//! What a scan could not see is kept from the baseline, never reported as removed. A plugin
//! names each subtree it could not see (an unseen key `K` covers `K` and every key under
//! `K/`; `/` covers everything); at commit, the baseline's entries under those keys are
//! merged into the new snapshot, so that the day's drift shows them unchanged (the
//! coverage notes say they were not seen) and the next day's scan, seeing them again,
//! compares with what was last known instead of reporting them added.
//!
//! The merged list is cut into chunks by the same key-defined boundaries, so chunks away
//! from the carried entries come out byte-identical to the ones the scan wrote.

use redb::WriteTransaction;

use super::chunk::{self, ChunkBuilder, Hash, MAX_CHUNK_ENTRIES};
use super::{refs, ChunkRef, EntryCursor, Reader, SnapshotMeta};
use crate::store::StoreError;

/// Whether `key` is under the unseen key `unseen`.
pub fn covers(unseen: &str, key: &str) -> bool {
    unseen == "/"
        || key == unseen
        || (key.starts_with(unseen) && key.as_bytes().get(unseen.len()) == Some(&b'/'))
}

/// Merges the entries of `baseline` under any of `unseen` into `current` (a snapshot's
/// chunk list just written, which has none of them); returns the new chunk list and how
/// many entries were carried. Both lists are sorted by key; so is the result.
pub fn merge(
    tx: &WriteTransaction,
    current: &[ChunkRef],
    baseline: &SnapshotMeta,
    unseen: &[String],
) -> Result<(Vec<ChunkRef>, u64), StoreError> {
    let carried = carried_entries(tx, baseline, unseen)?;
    if carried.is_empty() {
        return Ok((current.to_vec(), 0));
    }
    let reader = Reader::in_write(tx)?;
    let mut out: Vec<ChunkRef> = Vec::new();
    let mut builder = ChunkBuilder::default();
    let mut cursor = EntryCursor::new(current);
    let mut carry = carried.iter().peekable();
    let mut pending: Vec<(Vec<u8>, String, usize)> = Vec::new();
    loop {
        let next_current = cursor.peek(&reader)?.cloned();
        let take_carried = match (next_current.as_ref(), carry.peek()) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some((k, _)), Some((ck, _))) => ck.as_bytes() < k.as_bytes(),
        };
        let (key, value) = if take_carried {
            carry.next().cloned().expect("peeked")
        } else {
            cursor.advance();
            next_current.expect("peeked")
        };
        builder.push(&key, &value);
        if chunk::is_boundary(&key) || builder.len() >= MAX_CHUNK_ENTRIES {
            pending.push(builder.take());
        }
    }
    if !builder.is_empty() {
        pending.push(builder.take());
    }
    drop(reader);
    for (bytes, first, n) in pending {
        let h = chunk::hash(&bytes);
        out.push(refs::put_chunk_of_stored(tx, h, &bytes, &first, n)?);
    }
    Ok((out, carried.len() as u64))
}

/// The baseline's entries under the unseen keys, in key order. Only the chunks whose key
/// range can hold such an entry are read.
fn carried_entries(
    tx: &WriteTransaction,
    baseline: &SnapshotMeta,
    unseen: &[String],
) -> Result<Vec<(String, Hash)>, StoreError> {
    let reader = Reader::in_write(tx)?;
    let mut out = Vec::new();
    for (i, c) in baseline.chunks.iter().enumerate() {
        // The chunk holds keys from its first up to the next chunk's first.
        let end = baseline.chunks.get(i + 1).map(|n| n.first.as_str());
        let may_hold = unseen
            .iter()
            .any(|u| u == "/" || (end.is_none_or(|e| u.as_str() < e) && may_reach(u, &c.first)));
        if !may_hold {
            continue;
        }
        let bytes = reader.chunk(&c.hash)?;
        for (k, h) in chunk::Entries::new(&bytes) {
            if unseen.iter().any(|u| covers(u, k)) {
                out.push((k.to_owned(), h));
            }
        }
    }
    Ok(out)
}

/// Whether keys under `unseen` can sort at or after `first` (they start with `unseen`).
fn may_reach(unseen: &str, first: &str) -> bool {
    // Every covered key is `unseen` or `unseen/...`: all sort before `unseen` + "0" (the
    // byte after '/'). If that bound is at or below `first`, the chunk starts after them.
    let mut bound = unseen.to_owned();
    bound.push('0');
    first < bound.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unseen_key_covers_itself_and_what_is_under_it() {
        assert!(covers("/etc/ssl", "/etc/ssl"));
        assert!(covers("/etc/ssl", "/etc/ssl/private/key.pem"));
        assert!(!covers("/etc/ssl", "/etc/ssl-other"));
        assert!(!covers("/etc/ssl", "/etc"));
        assert!(covers("/", "/anything"));
        assert!(may_reach("/etc/ssl", "/etc/ssl/a"));
        assert!(!may_reach("/etc/ssl", "/etc/sslz"));
    }
}
