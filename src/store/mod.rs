//! The one redb database in `daemon.state_dir`. This is the only module that opens redb.
//!
//! Every write goes through [`Store::write`], which commits with `Durability::Immediate` and
//! two-phase commit before it returns, so a caller that replies after `write` has returned
//! never acknowledges something that a crash could lose. All redb calls run on the blocking
//! thread pool, never on the async executor.

pub mod health;
mod integrity;
mod table;
pub mod tables;

use integrity::{check, open_unwound, panic_text, refuse_empty};
pub use integrity::{Checked, Integrity};
pub use table::{
    counting_left_out, note_left_out, undecodable_rows, JsonTable, PlainTable, ReadRows, Row,
    RowCheck, Rows, RowsChecked, WriteRows,
};

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction,
};

use tables::META;

/// The schema this build writes. Bump it (and add a migration) when a table's layout changes.
///
/// 2: snapshot values are no longer reference-counted but swept (`snapshot::refs`). A
/// version-1 database needs nothing done (its counts are simply not read any more); a
/// version-1 vigild must not open a version-2 database, as it would take the unmaintained
/// counts for "unreferenced" and delete values still in use.
///
/// 3: chunk reference counts move from the front of each chunk row to a table of their own
/// (`tables::CHUNK_COUNTS`), so that a night whose chunks are unchanged no longer rewrites
/// every chunk to count it. Opening an older database copies the counts over (`migrate`); a
/// version-2 vigild must not open a version-3 database, whose chunk rows no longer carry
/// their counts, and whose chunks may be stored as deltas (`tables::CHUNK_DELTAS`, which it
/// would not see).
pub const SCHEMA_VERSION: u64 = 3;

/// redb's page cache. Its default (1 GiB) would let the daemon's memory grow with the store;
/// scans stream and diffs skip unchanged chunks, so a small cache is enough.
const CACHE_BYTES: usize = 12 << 20;

/// File name of the database inside the state dir.
pub const DB_FILE: &str = "vigil.redb";
const LOCK_FILE: &str = "vigild.lock";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another vigild is already running on state directory {path} (it holds {lock}); \
         stop it first, or give this one a different daemon.state_dir"
    )]
    AlreadyRunning { path: PathBuf, lock: PathBuf },
    #[error("cannot lock state directory {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error(
        "database {path} has schema version {found}, but this vigild understands up to \
         {supported}: it was written by a newer vigil; upgrade vigil or restore an older state backup"
    )]
    NewerSchema {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error(
        "database {path} is corrupt: {detail}. Stop vigild and restore the state directory \
         from a backup (its vigil.redb over this one), or try `vigild check --repair`; moving \
         the file away makes vigild start on an empty database (all history lost)"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error("database error: {0}")]
    Db(redb::Error),
    #[error("database task failed: {0}")]
    Join(String),
    #[error("the database is inconsistent: {0}; restore the state directory from a backup")]
    Corrupt(String),
    #[error("cannot encode a {what} for the database: {error}")]
    Encode { what: &'static str, error: String },
    /// Writes fail (a full disk): see [`health`].
    #[error(
        "the database cannot be written since {}: {error}; free space on the state dir's \
         filesystem: vigild restarts by itself once it can write again",
        since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )]
    Failing {
        since: chrono::DateTime<chrono::Utc>,
        error: String,
    },
    /// The database code panicked: redb does so on some damage it finds in the file.
    #[error(
        "the database failed unexpectedly ({0}); it may be corrupt: stop vigild and run \
         `vigild check` (see the vigild log)"
    )]
    Panicked(String),
}

impl StoreError {
    /// An I/O failure of the database file (redb latches it: every later operation fails).
    fn is_io(&self) -> bool {
        matches!(
            self,
            StoreError::Db(redb::Error::Io(_) | redb::Error::PreviousIo)
        )
    }
}

// Every redb error becomes a StoreError here: an I/O error is recorded where it happens
// (see `health`).
macro_rules! db_err_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                let e: redb::Error = e.into();
                health::observe(&e);
                StoreError::Db(e)
            }
        }
    )*};
}
db_err_from!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    redb::CompactionError
);

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
    pins: Arc<Pins>,
    // Held for the daemon's lifetime: a second vigild on the same state dir fails fast.
    _lock: Arc<Flock<File>>,
}

impl Store {
    /// Rows that writers in progress rely on (see [`Pins`]), shared by every clone.
    pub fn pins(&self) -> &Pins {
        &self.pins
    }
}

/// Keys (32-byte content hashes) that writers in progress rely on, with how many pin each.
/// Code that would delete a row checks here first and keeps a pinned one. In memory on
/// purpose: pins matter only while their writers run in this process.
#[derive(Default)]
pub struct Pins(std::sync::Mutex<std::collections::HashMap<[u8; 32], u32>>);

impl Pins {
    pub fn pin(&self, keys: &[[u8; 32]]) {
        let mut map = crate::sync::lock(&self.0);
        for k in keys {
            *map.entry(*k).or_insert(0) += 1;
        }
    }

    /// Undoes [`Pins::pin`].
    pub fn unpin(&self, keys: &[[u8; 32]]) {
        let mut map = crate::sync::lock(&self.0);
        for k in keys {
            if let Some(n) = map.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    map.remove(k);
                }
            }
        }
    }

    pub fn is_pinned(&self, key: &[u8; 32]) -> bool {
        crate::sync::lock(&self.0).contains_key(key)
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database in `state_dir`, without the integrity check
    /// (see [`Store::open_with`]). Blocking: call it before the runtime serves requests, or
    /// from `spawn_blocking`.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(state_dir, Integrity::Trust)
    }

    /// Opens (creating if needed) the database in `state_dir`. An existing file that is
    /// empty is refused (a fresh database would silently replace the history), and with
    /// [`Integrity::Check`] so is one whose pages do not verify.
    pub fn open_with(state_dir: &Path, integrity: Integrity) -> Result<Store, StoreError> {
        ensure_state_dir(state_dir)?;
        let lock = lock_state_dir(state_dir)?;
        let path = state_dir.join(DB_FILE);
        let existed = refuse_empty(&path)?;
        let mut db = open_unwound(&path, |p| {
            Database::builder().set_cache_size(CACHE_BYTES).create(p)
        })?;
        if existed && integrity == Integrity::Check {
            let started = std::time::Instant::now();
            check(&mut db, &path)?;
            tracing::info!(
                "database {} verified in {:.2?}",
                path.display(),
                started.elapsed()
            );
        }
        let store = Store {
            db: Arc::new(db),
            path,
            pins: Arc::default(),
            _lock: Arc::new(lock),
        };
        store.check_schema()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Some` once the database could not be written (see [`health`]).
    pub fn failing(&self) -> Option<health::Failing> {
        health::failing()
    }

    /// The directory the database lives in.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Turns a redb I/O failure into [`StoreError::Failing`] (logging its cause the first
    /// time); other errors pass unchanged.
    fn classify(&self, e: StoreError) -> StoreError {
        if !e.is_io() {
            return e;
        }
        let cause = match &e {
            StoreError::Db(redb::Error::Io(io)) => {
                let first = health::explain_room(self.dir());
                format!("{io}{first}")
            }
            _ => health::explain(self.dir()),
        };
        failing_error(health::fail(cause))
    }

    /// Rewrites the database file without its free pages (`vigild compact`), so the space of
    /// pruned snapshots goes back to the filesystem; redb otherwise reuses it but never
    /// shrinks the file. Needs the state dir to itself: fails fast while vigild runs.
    /// Returns the file size before and after.
    pub fn compact(state_dir: &Path) -> Result<(u64, u64), StoreError> {
        let _lock = lock_state_dir(state_dir)?;
        let path = state_dir.join(DB_FILE);
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let before = size(&path);
        let mut db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .open(&path)
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        db.compact()?;
        drop(db);
        Ok((before, size(&path)))
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        let found = META.write(&tx)?.get("schema_version")?.map(|v| v.value());
        if let Some(v) = found.filter(|v| *v > SCHEMA_VERSION) {
            return Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        tables::create_all(&tx)?;
        if found != Some(SCHEMA_VERSION) {
            if let Some(v) = found {
                migrate(&tx, v)?;
            }
            META.write(&tx)?.insert("schema_version", SCHEMA_VERSION)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        tx.set_two_phase_commit(true);
        Ok(tx)
    }

    fn begin_lazy_write(&self) -> Result<WriteTransaction, StoreError> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::None)?;
        Ok(tx)
    }

    /// Runs `f` in a write transaction on the blocking pool and commits durably before
    /// returning. If `f` fails, nothing is written.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&WriteTransaction) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_as(Commit::Durable, f).await
    }

    /// [`Store::write`] with the commit's durability chosen (see [`Commit`]).
    pub async fn write_as<T, E, F>(&self, commit: Commit, f: F) -> Result<T, E>
    where
        F: FnOnce(&WriteTransaction) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        let (result, met) = tokio::task::spawn_blocking(move || {
            let before = table::met_on_this_thread();
            let result = store.write_blocking(commit, f);
            (result, table::met_on_this_thread() - before)
        })
        .await
        .map_err(|e| E::from(StoreError::Join(e.to_string())))?;
        note_left_out(met);
        result
    }

    /// The blocking form of [`Store::write_as`], for code already off the executor.
    pub fn write_blocking<T, E, F>(&self, commit: Commit, f: F) -> Result<T, E>
    where
        F: FnOnce(&WriteTransaction) -> Result<T, E>,
        E: From<StoreError>,
    {
        if let Some(f) = health::failing() {
            // Read-only until the restart that reopens the database (see `health`).
            return Err(E::from(failing_error(f)));
        }
        unwound(|| {
            let tx = match commit {
                Commit::Durable => self.begin_write(),
                Commit::Lazy => self.begin_lazy_write(),
            }
            .map_err(|e| E::from(self.classify(e)))?;
            let value = f(&tx)?;
            tx.commit().map_err(|e| E::from(self.classify(e.into())))?;
            Ok(value)
        })
    }

    /// Runs `f` in a read transaction on the blocking pool.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&ReadTransaction) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        let (result, met) = tokio::task::spawn_blocking(move || {
            let before = table::met_on_this_thread();
            let result = store.read_blocking(f);
            (result, table::met_on_this_thread() - before)
        })
        .await
        .map_err(|e| E::from(StoreError::Join(e.to_string())))?;
        note_left_out(met);
        result
    }

    /// The blocking form of [`Store::read`], for code already off the executor.
    pub fn read_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&ReadTransaction) -> Result<T, E>,
        E: From<StoreError>,
    {
        unwound(|| {
            let tx = self
                .db
                .begin_read()
                .map_err(|e| E::from(self.classify(e.into())))?;
            f(&tx)
        })
    }
}

fn failing_error(f: health::Failing) -> StoreError {
    StoreError::Failing {
        since: f.since,
        error: f.error,
    }
}

/// Runs `f`, turning a panic (redb panics on some damage it finds) into
/// [`StoreError::Panicked`]: a request sees what happened, not a dropped connection or a
/// bare 500.
fn unwound<T, E: From<StoreError>>(f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let what = panic_text(&*payload);
            tracing::error!("the database code panicked: {what}");
            Err(E::from(StoreError::Panicked(what)))
        }
    }
}

/// How a write commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Durable before the write returns (`Durability::Immediate`, two-phase commit): what
    /// a caller acknowledges after it cannot be lost.
    Durable,
    /// Not made durable by itself: it becomes durable with the next durable commit. For
    /// intermediate data that is useless until a later durable commit references it (a
    /// scan's snapshot chunks).
    Lazy,
}

fn ensure_state_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|source| StoreError::StateDir {
            path: dir.to_owned(),
            source,
        })
}

/// How long a start waits for the state-dir lock before it says another vigild runs.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

fn lock_state_dir(dir: &Path) -> Result<Flock<File>, StoreError> {
    let lock = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|source| StoreError::Lock {
            path: dir.to_owned(),
            source,
        })?;
    // A vigild that was just killed may leave a child between fork and exec for a moment
    // (on a loaded machine, tens of milliseconds), holding a copy of every descriptor, this
    // lock's too, until its exec closes them: a restart waits that out before it refuses.
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    let mut file = file;
    let locked = loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Err((f, nix::errno::Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                file = f;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => break other,
        }
    };
    locked.map_err(|(_, errno)| {
        if errno == nix::errno::Errno::EWOULDBLOCK {
            StoreError::AlreadyRunning {
                path: dir.to_owned(),
                lock,
            }
        } else {
            StoreError::Lock {
                path: dir.to_owned(),
                source: errno.into(),
            }
        }
    })
}

/// Brings a database of schema `from` (older than [`SCHEMA_VERSION`]) up to date, in the
/// transaction that records the new version: all of it or nothing.
///
/// 1 → 2 needs nothing (value counts are simply no longer read). 2 → 3 (and 1 → 3) copies
/// each chunk's reference count, the u64 LE in front of its row, to `CHUNK_COUNTS`; the
/// prefix stays in the row, unread.
fn migrate(tx: &WriteTransaction, from: u64) -> Result<(), StoreError> {
    if from < 3 {
        let chunks = tables::CHUNKS.write(tx)?;
        let mut counts = tables::CHUNK_COUNTS.write(tx)?;
        let mut moved = 0u64;
        for entry in chunks.iter()? {
            let (hash, row) = entry?;
            let row = row.value();
            let count = row
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes);
            if count > 0 {
                counts.insert(hash.value(), count)?;
                moved += 1;
            }
        }
        tracing::info!("schema {from} -> {SCHEMA_VERSION}: moved the counts of {moved} chunks");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_private_state_dir_and_records_schema() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let store = Store::open(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let tx = store.db.begin_read().unwrap();
        let meta = META.read(&tx).unwrap();
        assert_eq!(
            meta.get("schema_version").unwrap().unwrap().value(),
            SCHEMA_VERSION
        );
    }

    #[test]
    fn an_older_schema_moves_chunk_counts_to_their_table() {
        let tmp = tempfile::tempdir().unwrap();
        let row = |count: u64| [count.to_le_bytes().as_slice(), b"entries"].concat();
        {
            let store = Store::open(tmp.path()).unwrap();
            // A version-2 database: counts in front of the chunk rows, no count table rows.
            store
                .write_blocking(Commit::Durable, |tx| -> Result<(), StoreError> {
                    let mut chunks = tables::CHUNKS.write(tx)?;
                    chunks.insert(&[1; 32], row(2).as_slice())?;
                    chunks.insert(&[2; 32], row(0).as_slice())?;
                    META.write(tx)?.insert("schema_version", 2)?;
                    Ok(())
                })
                .unwrap();
        }
        let store = Store::open(tmp.path()).unwrap();
        let tx = store.db.begin_read().unwrap();
        let counts = tables::CHUNK_COUNTS.read(&tx).unwrap();
        assert_eq!(counts.get(&[1; 32]).unwrap().map(|g| g.value()), Some(2));
        assert!(
            counts.get(&[2; 32]).unwrap().is_none(),
            "uncounted stays uncounted"
        );
        let chunks = tables::CHUNKS.read(&tx).unwrap();
        assert_eq!(
            chunks.get(&[1; 32]).unwrap().unwrap().value(),
            row(2).as_slice()
        );
        let meta = META.read(&tx).unwrap();
        assert_eq!(meta.get("schema_version").unwrap().unwrap().value(), 3);
    }

    #[test]
    fn second_open_fails_fast_with_clear_message() {
        let tmp = tempfile::tempdir().unwrap();
        let _first = Store::open(tmp.path()).unwrap();
        let err = Store::open(tmp.path()).unwrap_err();
        assert!(matches!(err, StoreError::AlreadyRunning { .. }), "{err}");
        assert!(err
            .to_string()
            .contains("another vigild is already running"));
    }

    #[test]
    fn newer_schema_refuses_to_start() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = Store::open(tmp.path()).unwrap();
            store
                .write_blocking(Commit::Durable, |tx| -> Result<(), StoreError> {
                    META.write(tx)?
                        .insert("schema_version", SCHEMA_VERSION + 1)?;
                    Ok(())
                })
                .unwrap();
        }
        let err = Store::open(tmp.path()).unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
        assert!(err.to_string().contains("upgrade vigil"));
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let r: Result<(), StoreError> = store.write_blocking(Commit::Durable, |tx| {
            META.write(tx)?.insert("probe", 1)?;
            Err(StoreError::Join("abort".into()))
        });
        assert!(r.is_err());
        let tx = store.db.begin_read().unwrap();
        assert!(META.read(&tx).unwrap().get("probe").unwrap().is_none());
    }
}
