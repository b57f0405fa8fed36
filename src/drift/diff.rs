//! The streaming merge diff of two snapshots. Chunks are content-defined (see
//! `snapshot::chunk`), so identical regions of two snapshots are identical chunks, skipped
//! whole without being read: a million unchanged items cost a comparison of chunk hashes.
//! Ignore rules and volatile attributes apply here, as values are compared.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use redb::ReadableTable;

use super::DiffRules;
use crate::proto::{AttributeChange, Change, ChangeKind};
use crate::snapshot::chunk::{self, StoredValue};
use crate::snapshot::{ChunkRef, EntryCursor, Reader};
use crate::store::StoreError;

/// Largest unified content diff kept per item; longer ones are cut with a note.
const MAX_CONTENT_DIFF: usize = 64 * 1024;

/// Most lines (previous and current together) a content diff is computed for: the diff of
/// two texts costs up to the product of their lengths, and nodes choose what files hold.
pub const MAX_DIFF_LINES: usize = 20_000;

/// Longest one content diff may take before it settles for a coarser (still correct) diff.
const DIFF_DEADLINE: Duration = Duration::from_millis(200);

/// Where a diff takes the content diffs of modified items from.
pub enum ContentDiffs<'a> {
    /// Computed here (bounded), unless `ready` has the diff of these two values, made
    /// before the write transaction (see `drift::prepare`).
    Compute { ready: &'a ReadyDiffs },
    /// The diffs recorded at scan time, by key: a re-diff with other ignore rules compares
    /// the same two snapshots, whose contents are the same.
    Recorded(&'a HashMap<String, String>),
}

/// Content diffs computed ahead, by (key, previous value digest, current value digest),
/// and the whole diff they came from with the chunk lists it compared: a commit whose
/// baseline and snapshot are still those takes it as it is instead of merging again.
#[derive(Debug, Default)]
pub struct ReadyDiffs {
    pub(super) contents: HashMap<(String, String, String), String>,
    pub(super) whole: Option<WholeDiff>,
}

/// A diff of two snapshots, named by their chunk lists (content hashes).
#[derive(Debug)]
pub(super) struct WholeDiff {
    pub(super) baseline: Vec<chunk::Hash>,
    pub(super) current: Vec<chunk::Hash>,
    pub(super) changes: Vec<Change>,
}

impl ReadyDiffs {
    /// The changes computed ahead, if they compared exactly these two chunk lists.
    pub(super) fn changes_of(
        &self,
        baseline: &[ChunkRef],
        current: &[ChunkRef],
    ) -> Option<Vec<Change>> {
        let w = self.whole.as_ref()?;
        let same = |hashes: &[chunk::Hash], chunks: &[ChunkRef]| {
            hashes.len() == chunks.len() && hashes.iter().zip(chunks).all(|(h, c)| *h == c.hash)
        };
        (same(&w.baseline, baseline) && same(&w.current, current)).then(|| w.changes.clone())
    }
}

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
    contents: &ContentDiffs<'_>,
) -> Result<Vec<Change>, StoreError> {
    // A value as drift compares it, and whether its content is private (judged before
    // ignore rules drop attributes: ignoring `mode` must not make a secret public).
    let value = |h: &chunk::Hash| -> Result<(StoredValue, bool), StoreError> {
        let v = reader.value(h)?;
        let private = v.content_is_private();
        Ok((visible(v, rules, volatile), private))
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
                    changes.push(added_or_removed(key, ChangeKind::Removed, value(&h)?.0));
                }
            }
            (None, Some((key, h))) => {
                b.advance();
                if !rules.ignores_key(&key) {
                    changes.push(added_or_removed(key, ChangeKind::Added, value(&h)?.0));
                }
            }
            (Some((ka, ha)), Some((kb, hb))) => match ka.as_bytes().cmp(kb.as_bytes()) {
                std::cmp::Ordering::Less => {
                    a.advance();
                    if !rules.ignores_key(&ka) {
                        changes.push(added_or_removed(ka, ChangeKind::Removed, value(&ha)?.0));
                    }
                }
                std::cmp::Ordering::Greater => {
                    b.advance();
                    if !rules.ignores_key(&kb) {
                        changes.push(added_or_removed(kb, ChangeKind::Added, value(&hb)?.0));
                    }
                }
                std::cmp::Ordering::Equal => {
                    a.advance();
                    b.advance();
                    if ha != hb && !rules.ignores_key(&ka) {
                        if let Some(change) = modified(ka, value(&ha)?, value(&hb)?, contents) {
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
        content_private: false,
        current_digest,
        previous_digest,
    }
}

/// A modified item, or `None` when only ignored attributes differ.
fn modified(
    key: String,
    (old, old_private): (StoredValue, bool),
    (new, new_private): (StoredValue, bool),
    contents: &ContentDiffs<'_>,
) -> Option<Change> {
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
    let (previous_digest, current_digest) = (digest(&old), digest(&new));
    let content_diff = (old.content != new.content).then(|| match contents {
        ContentDiffs::Compute { ready } => ready
            .contents
            .get(&(key.clone(), previous_digest.clone(), current_digest.clone()))
            .cloned()
            .unwrap_or_else(|| content_diff(&old.content, &new.content)),
        ContentDiffs::Recorded(recorded) => recorded.get(&key).cloned().unwrap_or_else(|| {
            "content changed (no diff recorded: the item was ignored when it was scanned)\n"
                .to_owned()
        }),
    });
    Some(Change {
        key,
        kind: ChangeKind::Modified,
        attributes,
        content_private: content_diff.is_some() && (old_private || new_private),
        content_diff,
        current_digest: Some(current_digest),
        previous_digest: Some(previous_digest),
    })
}

/// The unified diff of two contents, bounded: past [`MAX_DIFF_LINES`] lines it is only
/// said that the content changed, and a diff taking longer than [`DIFF_DEADLINE`] settles
/// for a coarser one; the text is cut at [`MAX_CONTENT_DIFF`].
pub fn content_diff(old: &Option<String>, new: &Option<String>) -> String {
    let (o, n) = (old.as_deref().unwrap_or(""), new.as_deref().unwrap_or(""));
    let lines = line_count(o) + line_count(n);
    if lines > MAX_DIFF_LINES {
        return format!("content changed (diff too large: {lines} lines)\n");
    }
    let mut text = similar::TextDiff::configure()
        .timeout(DIFF_DEADLINE)
        .diff_lines(o, n)
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

/// Lines of a text as a line diff counts them (a last line without a newline is one).
fn line_count(s: &str) -> usize {
    memchr::memchr_iter(b'\n', s.as_bytes()).count()
        + usize::from(!s.is_empty() && !s.ends_with('\n'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_small_change_is_a_unified_diff() {
        let d = content_diff(&Some("a\nb\nc\n".into()), &Some("a\nB\nc\n".into()));
        assert!(d.contains("-b\n+B\n"), "{d}");
    }

    #[test]
    fn too_many_lines_say_so_at_once() {
        // The probe of issue 16: 32,000 lines of `a` become 32,000 lines of `b`.
        let (a, b) = ("a\n".repeat(32_000), "b\n".repeat(32_000));
        let start = Instant::now();
        let d = content_diff(&Some(a), &Some(b));
        assert_eq!(d, "content changed (diff too large: 64000 lines)\n");
        assert!(
            start.elapsed() < Duration::from_millis(50),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_costly_diff_under_the_cap_ends_by_its_deadline() {
        // Below the line cap but with nothing in common: the worst case of a line diff.
        let a: String = (0..9_999).map(|i| format!("a{i}\n")).collect();
        let b: String = (0..9_999).map(|i| format!("b{i}\n")).collect();
        let start = Instant::now();
        let d = content_diff(&Some(a), &Some(b));
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert!(d.starts_with("--- previous"), "{}", &d[..80.min(d.len())]);
    }

    #[test]
    fn line_counts_count_a_last_line_without_newline() {
        assert_eq!(line_count(""), 0);
        assert_eq!(line_count("a"), 1);
        assert_eq!(line_count("a\nb\n"), 2);
        assert_eq!(line_count("a\nb"), 2);
    }
}
