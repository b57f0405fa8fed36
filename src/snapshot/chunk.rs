//! The storage encoding of snapshots: content-addressed values and content-defined chunks.
//!
//! An item's value (attributes + captured content) is encoded canonically and stored once
//! under its BLAKE3 hash. A snapshot is the sorted list of `(key, value hash)` entries, cut
//! into chunks at boundaries that depend only on the keys (a key whose hash has its low bits
//! zero ends a chunk). So a change to one item changes one chunk, the chunks around it stay
//! byte-identical, and an unchanged node, or a hundred identical ones, store each chunk once.
//!
//! Chunk format (hand-written: it is a flat list, simpler than any general format):
//! repeated `u32 LE key length, key bytes, 32-byte value hash`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_plugin::{Item, Value};

/// A BLAKE3 digest.
pub type Hash = [u8; 32];

/// Average entries per chunk is `BOUNDARY_MASK + 1`.
const BOUNDARY_MASK: u16 = 0x7f;
/// A chunk is cut here at the latest, whatever the keys (bounds memory and chunk size).
pub const MAX_CHUNK_ENTRIES: usize = 2048;

/// What is stored for an item besides its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredValue {
    #[serde(rename = "a")]
    pub attributes: BTreeMap<String, Value>,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl StoredValue {
    /// Whether the captured content came from a file that not everyone may read: its
    /// `mode` (the files plugin's octal string, e.g. `0640`) lacks the other-read bit.
    /// Such content is shown to admins only. Items without a `mode` are not files.
    pub fn content_is_private(&self) -> bool {
        self.content.is_some() && crate::proto::private_mode(&self.attributes)
    }

    pub fn of(item: Item) -> (String, StoredValue) {
        (
            item.key,
            StoredValue {
                attributes: item.attributes,
                content: item.content,
            },
        )
    }

    /// Canonical bytes: attributes are a sorted map, so equal values encode equally.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<StoredValue> {
        serde_json::from_slice(bytes).ok()
    }
}

pub fn hash(bytes: &[u8]) -> Hash {
    *blake3::hash(bytes).as_bytes()
}

pub fn hex(h: &Hash) -> String {
    // By table, not `format!` per byte: drift writes two digests per changed item.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in h {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Whether a chunk ends after this key.
pub fn is_boundary(key: &str) -> bool {
    let h = blake3::hash(key.as_bytes());
    let b = h.as_bytes();
    u16::from_le_bytes([b[0], b[1]]) & BOUNDARY_MASK == 0
}

/// Appends one entry in the chunk format (the one place that writes it).
pub fn push_entry(out: &mut Vec<u8>, key: &[u8], value: &Hash) {
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// Builds one chunk's bytes.
#[derive(Default)]
pub struct ChunkBuilder {
    bytes: Vec<u8>,
    entries: usize,
    first_key: Option<String>,
}

impl ChunkBuilder {
    pub fn push(&mut self, key: &str, value: &Hash) {
        if self.first_key.is_none() {
            self.first_key = Some(key.to_owned());
        }
        push_entry(&mut self.bytes, key.as_bytes(), value);
        self.entries += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    /// The chunk's bytes, first key and entry count; leaves the builder empty.
    pub fn take(&mut self) -> (Vec<u8>, String, usize) {
        let first = self.first_key.take().unwrap_or_default();
        let n = std::mem::replace(&mut self.entries, 0);
        (std::mem::take(&mut self.bytes), first, n)
    }
}

/// Iterates a chunk's entries. Stops at the first malformed entry (the store is ours, so
/// that means corruption; the caller reports it).
pub struct Entries<'a> {
    rest: &'a [u8],
    pub malformed: bool,
}

impl<'a> Entries<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Entries {
            rest: bytes,
            malformed: false,
        }
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a str, Hash);
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let len = u32::from_le_bytes(self.rest.get(..4)?.try_into().ok()?) as usize;
            let key = std::str::from_utf8(self.rest.get(4..4 + len)?).ok()?;
            let hash: Hash = self.rest.get(4 + len..4 + len + 32)?.try_into().ok()?;
            Some((key, hash, 4 + len + 32))
        })();
        match parsed {
            Some((key, hash, used)) => {
                self.rest = &self.rest[used..];
                Some((key, hash))
            }
            None => {
                self.malformed = true;
                self.rest = &[];
                None
            }
        }
    }
}

/// Stored rows carry a reference count in front of their bytes.
pub fn with_refcount(count: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + bytes.len());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

pub fn split_refcount(row: &[u8]) -> (u64, &[u8]) {
    if row.len() < 8 {
        return (0, &[]);
    }
    let (count, rest) = row.split_at(8);
    (u64::from_le_bytes(count.try_into().unwrap_or([0; 8])), rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_round_trip() {
        let mut b = ChunkBuilder::default();
        b.push("/etc/a", &[1; 32]);
        b.push("/etc/ünïcode", &[2; 32]);
        let (bytes, first, n) = b.take();
        assert_eq!((first.as_str(), n), ("/etc/a", 2));
        let got: Vec<_> = Entries::new(&bytes).collect();
        assert_eq!(got, vec![("/etc/a", [1; 32]), ("/etc/ünïcode", [2; 32])]);
        assert!(b.is_empty());
    }

    #[test]
    fn truncated_chunk_is_flagged() {
        let mut b = ChunkBuilder::default();
        b.push("k", &[0; 32]);
        let (bytes, _, _) = b.take();
        let mut it = Entries::new(&bytes[..bytes.len() - 1]);
        assert!(it.next().is_none());
        assert!(it.malformed);
    }

    #[test]
    fn boundaries_depend_on_keys_only_and_average_near_128() {
        let keys: Vec<String> = (0..100_000).map(|i| format!("/k/{i}")).collect();
        let cuts = keys.iter().filter(|k| is_boundary(k)).count();
        let avg = keys.len() / cuts;
        assert!((90..180).contains(&avg), "average chunk {avg}");
    }

    #[test]
    fn values_encode_canonically() {
        let a = Item::new("k").attr("b", 1i64).attr("a", "x");
        let b = Item::new("k").attr("a", "x").attr("b", 1i64);
        assert_eq!(StoredValue::of(a).1.encode(), StoredValue::of(b).1.encode());
    }
}
