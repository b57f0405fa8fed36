//! Reading stored snapshots: a [`Reader`] over the chunk and value tables of one
//! transaction (read or write), and the [`EntryCursor`] that walks a snapshot's entries in
//! key order a chunk at a time, able to skip a whole chunk unread (what the streaming merge
//! of two snapshots needs).

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, Table, WriteTransaction};

use super::chunk::{self, split_refcount, Entries, Hash, StoredValue};
use super::delta;
use super::ChunkRef;
use crate::store::tables::{CHUNKS, CHUNK_DELTAS, VALUES};
use crate::store::StoreError;

type Blobs = &'static [u8; 32];

/// The chunk and value tables of one transaction.
pub struct Reader<T> {
    chunks: T,
    deltas: T,
    values: T,
}

impl Reader<ReadOnlyTable<Blobs, &'static [u8]>> {
    pub fn in_read(tx: &ReadTransaction) -> Result<Self, StoreError> {
        Ok(Reader {
            chunks: CHUNKS.read(tx)?,
            deltas: CHUNK_DELTAS.read(tx)?,
            values: VALUES.read(tx)?,
        })
    }
}

impl<'t> Reader<Table<'t, Blobs, &'static [u8]>> {
    pub fn in_write(tx: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Reader {
            chunks: CHUNKS.write(tx)?,
            deltas: CHUNK_DELTAS.write(tx)?,
            values: VALUES.write(tx)?,
        })
    }
}

impl<T: ReadableTable<Blobs, &'static [u8]>> Reader<T> {
    /// A chunk's entries (bytes), or an error if a snapshot lists a chunk that is gone.
    pub fn chunk(&self, h: &Hash) -> Result<Vec<u8>, StoreError> {
        Ok(self.materialize(h)?.bytes)
    }

    /// A chunk's entries, however it is stored, and how: the length of its chain of deltas
    /// and the full chunk the chain starts from (see `delta`).
    pub fn materialize(&self, h: &Hash) -> Result<Materialized, StoreError> {
        let mut chain: Vec<Vec<u8>> = Vec::new();
        let mut at = *h;
        let root_bytes = loop {
            if let Some(row) = self.chunks.get(&at)? {
                break split_refcount(row.value()).1.to_vec();
            }
            let Some(row) = self.deltas.get(&at)? else {
                return Err(StoreError::Corrupt(format!(
                    "snapshot chunk {} is missing{}; run `vigild check`",
                    chunk::hex(&at),
                    if at == *h {
                        String::new()
                    } else {
                        format!(" (the base of {})", chunk::hex(h))
                    },
                )));
            };
            let Some((base, edits)) = delta::split(row.value()) else {
                return Err(malformed(h, "a delta of its chain is too short"));
            };
            if chain.len() >= delta::MAX_CHAIN {
                return Err(malformed(h, "its chain of deltas is too long"));
            }
            chain.push(edits.to_vec());
            at = base;
        };
        if chain.is_empty() {
            return Ok(Materialized {
                bytes: root_bytes,
                chain: 0,
                root: None,
            });
        }
        // The first edits apply to the full chunk itself, which is kept for `root`.
        let mut bytes: Option<Vec<u8>> = None;
        for edits in chain.iter().rev() {
            let base = bytes.as_deref().unwrap_or(&root_bytes);
            bytes = Some(
                delta::apply(base, edits)
                    .ok_or_else(|| malformed(h, "its edits do not apply to their base"))?,
            );
        }
        let bytes = bytes.unwrap_or_default();
        // A delta is checked as it is read: a damaged one would otherwise read as a
        // plausible chunk with entries missing.
        if chunk::hash(&bytes) != *h {
            return Err(malformed(h, "its edits do not give the chunk's contents"));
        }
        Ok(Materialized {
            bytes,
            chain: chain.len(),
            root: Some((at, root_bytes)),
        })
    }

    /// A value, or an error if a chunk points at a value that is gone.
    pub fn value(&self, h: &Hash) -> Result<StoredValue, StoreError> {
        super::refs::value_from(&self.values, h)?
            .ok_or_else(|| StoreError::Corrupt(format!("value {} is missing", chunk::hex(h))))
    }
}

/// A chunk read back whole.
pub struct Materialized {
    /// Its entries.
    pub bytes: Vec<u8>,
    /// How many deltas it is stored as (0: in full).
    pub chain: usize,
    /// For a delta, the full chunk its chain starts from: hash and entries.
    pub root: Option<(Hash, Vec<u8>)>,
}

/// Walks a snapshot's entries (key, value hash) in key order, a chunk at a time.
pub struct EntryCursor<'a> {
    chunks: &'a [ChunkRef],
    next_chunk: usize,
    entries: Vec<(String, Hash)>,
    pos: usize,
}

impl<'a> EntryCursor<'a> {
    pub fn new(chunks: &'a [ChunkRef]) -> Self {
        EntryCursor {
            chunks,
            next_chunk: 0,
            entries: Vec::new(),
            pos: 0,
        }
    }

    /// The next unread chunk, if the cursor sits exactly at its start.
    pub fn chunk_at_start(&self) -> Option<&ChunkRef> {
        (self.pos >= self.entries.len())
            .then(|| self.chunks.get(self.next_chunk))
            .flatten()
    }

    /// Skips the chunk the cursor sits at the start of, unread.
    pub fn skip_chunk(&mut self) {
        self.next_chunk += 1;
    }

    /// The entry under the cursor, loading the next chunk if needed; `None` at the end.
    pub fn peek<T: ReadableTable<Blobs, &'static [u8]>>(
        &mut self,
        reader: &Reader<T>,
    ) -> Result<Option<&(String, Hash)>, StoreError> {
        while self.pos >= self.entries.len() {
            let Some(c) = self.chunks.get(self.next_chunk) else {
                return Ok(None);
            };
            let bytes = reader.chunk(&c.hash)?;
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

    pub fn advance(&mut self) {
        self.pos += 1;
    }
}

fn malformed(h: &Hash, why: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "snapshot chunk {} is malformed ({why}); run `vigild check`",
        chunk::hex(h)
    ))
}
