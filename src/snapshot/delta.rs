//! Chunks stored as the edits that make them from another chunk.
//!
//! Chunk boundaries depend on the keys only, so a night's changes leave most chunks' key
//! ranges as they were, but with one modified file every hundred nearly every chunk holds a
//! change, and writing each changed chunk in full rewrote the whole entry list every night
//! (6 MiB a night for 1,500 changed files of a 100,000-file node). A new chunk is therefore
//! stored, when that is less than half its size, as the edits from the stored chunk of the
//! baseline over the same keys: that chunk's entries kept, dropped, given a new value hash,
//! or new entries put in between.
//!
//! A chunk's identity is unchanged: its hash is that of its full entries, whichever form
//! its row takes, so content addressing (sharing between days and nodes) and everything that
//! reads chunks through `Reader` are unaffected (a delta is checked against that hash as it
//! is read).
//!
//! Deltas chain: tonight's chunk is stored as the edits of last night's, itself perhaps a
//! delta, so a night stores only its own edits. A chain is at most [`MAX_CHAIN`] deltas
//! long: a chunk whose baseline ends a chain that long is stored against the chain's full
//! chunk instead (all the edits since it, which is what the next chain starts from), or in
//! full when those are no longer small. Reading a chunk so takes at most `MAX_CHAIN + 1`
//! rows. What a delta is made of is kept by it: while a delta row exists its base's count
//! in `CHUNK_COUNTS` includes it (see `refs`).
//!
//! Deltas have a table of their own (`CHUNK_DELTAS`): small rows among the full chunks'
//! would split the chunk table's leaves, each a page or two around one chunk, and a night of
//! deltas would cost a page each.
//!
//! Stored form: the base chunk's 32-byte hash, then the edits, each a tag byte and its
//! operand:
//! - `0` keep: `u32 LE n`, the base's next n entries as they are;
//! - `1` drop: `u32 LE n`, the base's next n entries left out;
//! - `2` rehash: a 32-byte value hash, the base's next entry's key with this value;
//! - `3` insert: a new entry, as a chunk writes it (`u32 LE` key length, key, value hash).
//!
//! The edits account for every base entry, in order. Hand-written, like the chunk format:
//! it is four operations over our own flat entry lists, and general binary-diff crates
//! work on bytes, not on entries whose value hashes we must see (values are collected by
//! the hashes chunks list).

use super::chunk::{push_entry, Entries, Hash};

/// The longest chain of deltas over a full chunk: a night's chunk costs only its edits
/// for this many nights, then the edits since the full chunk (or a full chunk again).
pub const MAX_CHAIN: usize = 8;

const KEEP: u8 = 0;
const DROP: u8 = 1;
const REHASH: u8 = 2;
const INSERT: u8 = 3;

/// A stored delta's base and edits; `None` if it is too short to hold a base.
pub fn split(stored: &[u8]) -> Option<(Hash, &[u8])> {
    let (base, edits) = stored.split_at_checked(32)?;
    Some((base.try_into().ok()?, edits))
}

/// The stored form of `entries` (a chunk's full bytes) as edits of `base` (the full bytes
/// of the chunk whose hash is `base_hash`), if that is at most half their size.
pub fn encode(base_hash: &Hash, base: &[u8], entries: &[u8]) -> Option<Vec<u8>> {
    let old: Vec<(&str, Hash)> = Entries::new(base).collect();
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(base_hash);
    let mut run: Option<(u8, u32)> = None;
    let mut old_at = 0;
    let limit = entries.len() / 2;
    for (key, value) in Entries::new(entries) {
        // Base entries before this key are dropped.
        while old.get(old_at).is_some_and(|(k, _)| *k < key) {
            push_run(&mut out, &mut run, DROP);
            old_at += 1;
        }
        match old.get(old_at) {
            Some((k, v)) if *k == key => {
                if *v == value {
                    push_run(&mut out, &mut run, KEEP);
                } else {
                    end_run(&mut out, &mut run);
                    out.push(REHASH);
                    out.extend_from_slice(&value);
                }
                old_at += 1;
            }
            _ => {
                end_run(&mut out, &mut run);
                out.push(INSERT);
                push_entry(&mut out, key.as_bytes(), &value);
            }
        }
        if out.len() > limit {
            return None;
        }
    }
    for _ in old_at..old.len() {
        push_run(&mut out, &mut run, DROP);
    }
    end_run(&mut out, &mut run);
    (out.len() <= limit).then_some(out)
}

/// Extends the run of `tag` edits, ending a run of the other kind first.
fn push_run(out: &mut Vec<u8>, run: &mut Option<(u8, u32)>, tag: u8) {
    match run {
        Some((t, n)) if *t == tag => *n += 1,
        _ => {
            end_run(out, run);
            *run = Some((tag, 1));
        }
    }
}

fn end_run(out: &mut Vec<u8>, run: &mut Option<(u8, u32)>) {
    if let Some((tag, n)) = run.take() {
        out.push(tag);
        out.extend_from_slice(&n.to_le_bytes());
    }
}

/// One edit, as read back.
enum Edit<'a> {
    Keep(u32),
    Drop(u32),
    Rehash(Hash),
    Insert(&'a [u8], Hash),
}

/// The edits of a delta, in order; `None` for the whole list if any is malformed.
fn edits(mut rest: &[u8]) -> Option<Vec<Edit<'_>>> {
    fn take<'b>(rest: &mut &'b [u8], n: usize) -> Option<&'b [u8]> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        *rest = tail;
        Some(head)
    }
    fn count(rest: &mut &[u8]) -> Option<u32> {
        Some(u32::from_le_bytes(take(rest, 4)?.try_into().ok()?))
    }
    fn hash(rest: &mut &[u8]) -> Option<Hash> {
        take(rest, 32)?.try_into().ok()
    }
    let mut out = Vec::new();
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        out.push(match tag {
            KEEP => Edit::Keep(count(&mut rest)?),
            DROP => Edit::Drop(count(&mut rest)?),
            REHASH => Edit::Rehash(hash(&mut rest)?),
            INSERT => {
                let len = count(&mut rest)? as usize;
                let key = take(&mut rest, len)?;
                std::str::from_utf8(key).ok()?;
                Edit::Insert(key, hash(&mut rest)?)
            }
            _ => return None,
        });
    }
    Some(out)
}

/// The full entries made by applying `edits` to `base` (a chunk's full entries); `None` if
/// either is malformed or the edits do not account for the base's entries exactly.
pub fn apply(base: &[u8], edits_bytes: &[u8]) -> Option<Vec<u8>> {
    let mut old = Entries::new(base);
    let mut out = Vec::with_capacity(base.len() + edits_bytes.len());
    for edit in edits(edits_bytes)? {
        match edit {
            Edit::Keep(n) => {
                for _ in 0..n {
                    let (k, v) = old.next()?;
                    push_entry(&mut out, k.as_bytes(), &v);
                }
            }
            Edit::Drop(n) => {
                for _ in 0..n {
                    old.next()?;
                }
            }
            Edit::Rehash(v) => push_entry(&mut out, old.next()?.0.as_bytes(), &v),
            Edit::Insert(k, v) => push_entry(&mut out, k, &v),
        }
    }
    (old.next().is_none() && !old.malformed).then_some(out)
}

/// The value hashes a delta lists that its base may not (rehashed and inserted entries:
/// the others are its base's); `None` if it is malformed.
pub fn new_values(edits_bytes: &[u8]) -> Option<Vec<Hash>> {
    Some(
        edits(edits_bytes)?
            .into_iter()
            .filter_map(|e| match e {
                Edit::Rehash(v) | Edit::Insert(_, v) => Some(v),
                Edit::Keep(_) | Edit::Drop(_) => None,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::chunk::{hash, ChunkBuilder};
    use super::*;

    fn chunk(entries: &[(&str, u8)]) -> Vec<u8> {
        let mut b = ChunkBuilder::default();
        for (k, v) in entries {
            b.push(k, &[*v; 32]);
        }
        b.take().0
    }

    fn many(n: usize, changed: &[usize]) -> Vec<(String, u8)> {
        (0..n)
            .map(|i| (format!("/etc/f{i:04}"), u8::from(changed.contains(&i))))
            .collect()
    }

    fn as_refs(v: &[(String, u8)]) -> Vec<(&str, u8)> {
        v.iter().map(|(k, b)| (k.as_str(), *b)).collect()
    }

    #[test]
    fn a_few_edits_round_trip_through_the_stored_form() {
        let base_entries = many(128, &[]);
        let mut new_entries = many(128, &[7, 90]);
        new_entries.remove(40); // dropped
        new_entries.remove(0); // dropped at the start
        new_entries.insert(60, ("/etc/f0061a".into(), 9)); // inserted
        new_entries.push(("/etc/zz".into(), 5)); // inserted at the end
        let (base, new) = (
            chunk(&as_refs(&base_entries)),
            chunk(&as_refs(&new_entries)),
        );
        let base_hash = hash(&base);
        let stored = encode(&base_hash, &base, &new).expect("a few edits are small");
        assert!(
            stored.len() < new.len() / 10,
            "{} of {}",
            stored.len(),
            new.len()
        );
        let (b, edits) = split(&stored).unwrap();
        assert_eq!(b, base_hash);
        assert_eq!(apply(&base, edits).as_deref(), Some(new.as_slice()));
        assert_eq!(
            new_values(edits).unwrap(),
            vec![[1; 32], [9; 32], [1; 32], [5; 32]]
        );
    }

    #[test]
    fn trailing_base_entries_dropped_and_an_empty_result_round_trip() {
        let base = chunk(&as_refs(&many(128, &[])));
        let new = chunk(&as_refs(&many(100, &[])));
        let stored = encode(&hash(&base), &base, &new).unwrap();
        let (_, edits) = split(&stored).unwrap();
        assert_eq!(apply(&base, edits).unwrap(), new);
    }

    #[test]
    fn a_chunk_unlike_its_base_is_stored_in_full() {
        let base = chunk(&as_refs(&many(128, &[])));
        let new = chunk(&as_refs(&many(128, &(0..128).collect::<Vec<_>>())));
        assert!(encode(&hash(&base), &base, &new).is_none());
    }

    #[test]
    fn a_row_too_short_for_a_base_is_no_delta() {
        assert!(split(&[0; 31]).is_none());
        assert_eq!(split(&[7; 32]), Some(([7; 32], &[][..])));
    }

    #[test]
    fn malformed_edits_are_refused_not_guessed() {
        let base = chunk(&as_refs(&many(128, &[])));
        let new = chunk(&as_refs(&many(128, &[3])));
        let stored = encode(&hash(&base), &base, &new).unwrap();
        let (_, edits) = split(&stored).unwrap();
        for cut in 1..edits.len() {
            let truncated = &edits[..cut];
            if let Some(out) = apply(&base, truncated) {
                panic!(
                    "a truncated delta ({cut} bytes) applied to {} bytes",
                    out.len()
                );
            }
        }
        assert!(apply(&base, &[9]).is_none(), "unknown tag");
        assert!(
            apply(&chunk(&[("/a", 1)]), edits).is_none(),
            "edits of another base"
        );
    }
}
