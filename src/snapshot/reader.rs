//! Reading stored snapshots: a [`Reader`] over the chunk and value tables of one
//! transaction (read or write), and the [`EntryCursor`] that walks a snapshot's entries in
//! key order a chunk at a time, able to skip a whole chunk unread (what the streaming merge
//! of two snapshots needs).

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, Table, WriteTransaction};

use super::chunk::{self, Entries, Hash, StoredValue};
use super::ChunkRef;
use crate::store::tables::{CHUNKS, VALUES};
use crate::store::StoreError;

type Blobs = &'static [u8; 32];

/// The chunk and value tables of one transaction.
pub struct Reader<T> {
    chunks: T,
    values: T,
}

impl Reader<ReadOnlyTable<Blobs, &'static [u8]>> {
    pub fn in_read(tx: &ReadTransaction) -> Result<Self, StoreError> {
        Ok(Reader {
            chunks: CHUNKS.read(tx)?,
            values: VALUES.read(tx)?,
        })
    }
}

impl<'t> Reader<Table<'t, Blobs, &'static [u8]>> {
    pub fn in_write(tx: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Reader {
            chunks: CHUNKS.write(tx)?,
            values: VALUES.write(tx)?,
        })
    }
}

impl<T: ReadableTable<Blobs, &'static [u8]>> Reader<T> {
    /// A chunk's entries (bytes), or an error if a snapshot lists a chunk that is gone.
    pub fn chunk(&self, h: &Hash) -> Result<Vec<u8>, StoreError> {
        super::refs::chunk_from(&self.chunks, h)?
            .ok_or_else(|| StoreError::Corrupt(format!("chunk {} is missing", chunk::hex(h))))
    }

    /// A value, or an error if a chunk points at a value that is gone.
    pub fn value(&self, h: &Hash) -> Result<StoredValue, StoreError> {
        super::refs::value_from(&self.values, h)?
            .ok_or_else(|| StoreError::Corrupt(format!("value {} is missing", chunk::hex(h))))
    }
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
