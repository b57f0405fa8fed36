//! Typed tables: every table whose rows are encoded values (JSON) is a [`JsonTable`] of a
//! key type and a row type, opened through it in a read or a write transaction. One codec,
//! and one policy for a row that does not decode: it is logged with its table and key,
//! counted (see [`undecodable_rows`]), and read as absent, so that one damaged row never
//! takes down what reads it. Tables of plain redb values open through [`PlainTable`].

use std::borrow::Borrow;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Mutex;

use std::ops::RangeBounds;

use redb::{
    AccessGuard, Key, ReadOnlyTable, ReadTransaction, ReadableTable, Table, TableDefinition, Value,
    WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

/// Rows found undecodable since the process started, per kind of row.
static UNDECODABLE: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

/// Rows that did not decode since vigild started, per kind of row ("queue task", ...).
pub fn undecodable_rows() -> BTreeMap<&'static str, u64> {
    crate::sync::lock(&UNDECODABLE).clone()
}

thread_local! {
    /// Rows this thread found undecodable: [`met_on_this_thread`] before and after a
    /// transaction tells what that transaction left out.
    static MET: Cell<u64> = const { Cell::new(0) };
}

tokio::task_local! {
    /// Undecodable rows left out by the store reads of one piece of work (a request).
    static LEFT_OUT: Cell<u64>;
}

/// Undecodable rows met on this thread so far.
pub(super) fn met_on_this_thread() -> u64 {
    MET.with(Cell::get)
}

/// Runs `work`, counting the undecodable rows that the store transactions it awaits (and
/// [`note_left_out`]) leave out: what a reply is missing. The API puts the count in the reply.
pub async fn counting_left_out<F: Future>(work: F) -> (F::Output, u64) {
    LEFT_OUT
        .scope(Cell::new(0), async {
            let out = work.await;
            (out, LEFT_OUT.with(Cell::get))
        })
        .await
}

/// Adds `n` rows to what the current [`counting_left_out`] counts (nothing outside one): for
/// rows left out of something that was loaded earlier (an in-memory index built at start).
pub fn note_left_out(n: u64) {
    if n > 0 {
        let _ = LEFT_OUT.try_with(|c| c.set(c.get() + n));
    }
}

fn record_undecodable(what: &'static str, key: &dyn std::fmt::Debug, e: &str) {
    *crate::sync::lock(&UNDECODABLE).entry(what).or_default() += 1;
    MET.with(|m| m.set(m.get() + 1));
    tracing::error!(
        key = ?key,
        "a stored {what} does not decode and is left out ({e}); `vigild check` looks for damage"
    );
}

/// A table of JSON-encoded rows of type `V` under keys of type `K`.
pub struct JsonTable<K: Key + 'static, V> {
    def: TableDefinition<'static, K, &'static [u8]>,
    /// What one row is, for messages: "queue task", "user task", ...
    what: &'static str,
    row: PhantomData<fn() -> V>,
}

impl<K: Key + 'static, V> JsonTable<K, V> {
    pub const fn new(def: TableDefinition<'static, K, &'static [u8]>, what: &'static str) -> Self {
        JsonTable {
            def,
            what,
            row: PhantomData,
        }
    }

    /// The table in a read transaction.
    pub fn read(&self, tx: &ReadTransaction) -> Result<ReadRows<K, V>, StoreError> {
        Ok(self.rows(tx.open_table(self.def)?))
    }

    /// The table in a write transaction, for reading and writing.
    pub fn write<'t>(&self, tx: &'t WriteTransaction) -> Result<WriteRows<'t, K, V>, StoreError> {
        Ok(self.rows(tx.open_table(self.def)?))
    }

    fn rows<T>(&self, table: T) -> Rows<T, K, V> {
        Rows {
            table,
            what: self.what,
            types: PhantomData,
        }
    }
}

/// An open [`JsonTable`].
pub struct Rows<T, K, V> {
    table: T,
    what: &'static str,
    types: PhantomData<fn() -> (K, V)>,
}

/// A [`JsonTable`] open in a read transaction.
pub type ReadRows<K, V> = Rows<ReadOnlyTable<K, &'static [u8]>, K, V>;
/// A [`JsonTable`] open in a write transaction.
pub type WriteRows<'t, K, V> = Rows<Table<'t, K, &'static [u8]>, K, V>;

/// A decoded row and its key.
pub type Row<'g, K, V> = (AccessGuard<'g, K>, V);

impl<T, K, V> Rows<T, K, V>
where
    T: ReadableTable<K, &'static [u8]>,
    K: Key + 'static,
    V: DeserializeOwned,
{
    fn decode(&self, key: &dyn std::fmt::Debug, bytes: &[u8]) -> Option<V> {
        match serde_json::from_slice(bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                record_undecodable(self.what, key, &e.to_string());
                None
            }
        }
    }

    /// The row under `key`; `None` if there is none or it does not decode (logged, counted).
    pub fn get<'a>(&self, key: impl Borrow<K::SelfType<'a>>) -> Result<Option<V>, StoreError> {
        let key = key.borrow();
        Ok(match self.table.get(key)? {
            Some(g) => self.decode(key, g.value()),
            None => None,
        })
    }

    /// Whether a row is stored under `key` (decoded or not).
    pub fn contains<'a>(&self, key: impl Borrow<K::SelfType<'a>>) -> Result<bool, StoreError> {
        Ok(self.table.get(key)?.is_some())
    }

    /// The decodable rows in `range`, in key order; the others are logged and counted.
    pub fn range<'a, KR>(
        &self,
        range: impl RangeBounds<KR> + 'a,
    ) -> Result<impl DoubleEndedIterator<Item = Result<Row<'_, K, V>, StoreError>> + '_, StoreError>
    where
        KR: Borrow<K::SelfType<'a>> + 'a,
    {
        Ok(self
            .table
            .range(range)?
            .filter_map(move |entry| match entry {
                Err(e) => Some(Err(e.into())),
                Ok((k, v)) => {
                    let row = self.decode(&k.value(), v.value());
                    row.map(|row| Ok((k, row)))
                }
            }))
    }

    /// Every decodable row, in key order.
    pub fn iter(
        &self,
    ) -> Result<impl DoubleEndedIterator<Item = Result<Row<'_, K, V>, StoreError>> + '_, StoreError>
    {
        Ok(self.table.iter()?.filter_map(move |entry| match entry {
            Err(e) => Some(Err(e.into())),
            Ok((k, v)) => {
                let row = self.decode(&k.value(), v.value());
                row.map(|row| Ok((k, row)))
            }
        }))
    }

    /// Every key, without decoding its row.
    pub fn keys(
        &self,
    ) -> Result<
        impl DoubleEndedIterator<Item = Result<AccessGuard<'_, K>, StoreError>> + '_,
        StoreError,
    > {
        Ok(self
            .table
            .iter()?
            .map(|entry| entry.map(|(k, _)| k).map_err(StoreError::from)))
    }

    /// The rows undecoded: for walks that need only keys or sizes (pruning, accounting).
    pub fn undecoded(&self) -> &T {
        &self.table
    }

    /// Rows stored, decodable or not.
    pub fn len(&self) -> Result<u64, StoreError> {
        Ok(self.table.len()?)
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.table.is_empty()?)
    }
}

impl<K, V> Rows<Table<'_, K, &'static [u8]>, K, V>
where
    K: Key + 'static,
    V: Serialize + DeserializeOwned,
{
    /// Stores `row` under `key`, replacing what was there.
    pub fn put<'a>(
        &mut self,
        key: impl Borrow<K::SelfType<'a>>,
        row: &V,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(row).map_err(|e| StoreError::Encode {
            what: self.what,
            error: e.to_string(),
        })?;
        self.table.insert(key, bytes.as_slice())?;
        Ok(())
    }

    /// Removes the row under `key`; returns it if it decoded.
    pub fn remove<'a>(
        &mut self,
        key: impl Borrow<K::SelfType<'a>>,
    ) -> Result<Option<V>, StoreError> {
        let key = key.borrow();
        let removed = self.table.remove(key)?.map(|g| g.value().to_vec());
        Ok(removed.and_then(|bytes| self.decode(key, &bytes)))
    }

    /// Removes every row.
    pub fn clear(&mut self) -> Result<(), StoreError> {
        self.table.retain(|_, _| false)?;
        Ok(())
    }
}

/// A table of encoded rows as `vigild check` sees it: every row decoded, the ones that do
/// not counted and named. Each module that owns [`JsonTable`]s lists them for the check, so
/// `store` needs no row type.
pub trait RowCheck {
    fn check(&self, tx: &ReadTransaction) -> Result<RowsChecked, StoreError>;
}

/// What [`RowCheck::check`] found in one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowsChecked {
    /// The table's name in the database.
    pub table: String,
    /// What one row is ("queue task").
    pub what: &'static str,
    pub rows: u64,
    pub undecodable: u64,
    /// The first few undecodable rows: key and why.
    pub examples: Vec<String>,
}

/// Undecodable rows named per table in `vigild check`'s report; the rest are counted.
const NAMED_PER_TABLE: usize = 3;

impl<K: Key + 'static, V: DeserializeOwned> RowCheck for JsonTable<K, V> {
    fn check(&self, tx: &ReadTransaction) -> Result<RowsChecked, StoreError> {
        let mut found = RowsChecked {
            table: redb::TableHandle::name(&self.def).to_owned(),
            what: self.what,
            rows: 0,
            undecodable: 0,
            examples: Vec::new(),
        };
        let table = match tx.open_table(self.def) {
            Ok(t) => t,
            // A database from before this table existed: nothing to decode.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(found),
            Err(e) => return Err(e.into()),
        };
        for entry in table.iter()? {
            let (k, v) = entry?;
            found.rows += 1;
            if let Err(e) = serde_json::from_slice::<V>(v.value()) {
                found.undecodable += 1;
                if found.examples.len() < NAMED_PER_TABLE {
                    found.examples.push(format!("key {:?}: {e}", k.value()));
                }
            }
        }
        Ok(found)
    }
}

/// A table of plain redb values (counters, indexes, blobs): no codec, nothing to decode.
pub struct PlainTable<K: Key + 'static, V: Value + 'static> {
    def: TableDefinition<'static, K, V>,
}

impl<K: Key + 'static, V: Value + 'static> PlainTable<K, V> {
    pub const fn new(def: TableDefinition<'static, K, V>) -> Self {
        PlainTable { def }
    }

    pub fn read(&self, tx: &ReadTransaction) -> Result<ReadOnlyTable<K, V>, StoreError> {
        Ok(tx.open_table(self.def)?)
    }

    pub fn write<'t>(&self, tx: &'t WriteTransaction) -> Result<Table<'t, K, V>, StoreError> {
        Ok(tx.open_table(self.def)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Commit, Store};

    const ROWS: JsonTable<u64, Vec<String>> =
        JsonTable::new(TableDefinition::new("test_rows"), "test row");

    #[test]
    fn rows_round_trip_and_an_undecodable_one_is_counted_and_left_out() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store
            .write_blocking(Commit::Durable, |tx| -> Result<(), StoreError> {
                let mut rows = ROWS.write(tx)?;
                rows.put(1, &vec!["a".to_owned()])?;
                rows.put(3, &vec!["c".to_owned()])?;
                drop(rows);
                // Damage: bytes that are not a row.
                tx.open_table(ROWS.def)?
                    .insert(2, b"{not json".as_slice())?;
                Ok(())
            })
            .unwrap();
        let before = undecodable_rows().get("test row").copied().unwrap_or(0);
        store
            .read_blocking(|tx| -> Result<(), StoreError> {
                let rows = ROWS.read(tx)?;
                assert_eq!(rows.get(1)?, Some(vec!["a".to_owned()]));
                assert_eq!(rows.get(2)?, None);
                assert!(rows.contains(2)?);
                let keys: Vec<u64> = rows
                    .iter()?
                    .map(|r| r.map(|(k, _)| k.value()))
                    .collect::<Result<_, _>>()?;
                assert_eq!(keys, vec![1, 3]);
                assert_eq!(rows.len()?, 3);
                Ok(())
            })
            .unwrap();
        let after = undecodable_rows().get("test row").copied().unwrap_or(0);
        assert_eq!(after - before, 2, "the get and the iteration each met it");
        let checked = store.read_blocking(|tx| ROWS.check(tx)).unwrap();
        assert_eq!((checked.rows, checked.undecodable), (3, 1), "{checked:?}");
        assert_eq!(checked.table, "test_rows");
        assert!(checked.examples[0].starts_with("key 2: "), "{checked:?}");
    }
}
