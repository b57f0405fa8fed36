//! Damage: an empty database file is refused, `Integrity::Check` runs redb's integrity
//! check at start, `vigild check` runs it on a copy (or, `--repair`, on the file), and a redb
//! panic while opening is damage too, never a crash.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase};

use super::{lock_state_dir, RowCheck, RowsChecked, Store, StoreError, CACHE_BYTES, DB_FILE};

impl Store {
    /// `vigild check`: verifies the database of `state_dir` (vigild must be stopped). Without
    /// `repair` the check runs on a copy beside it (redb repairs what it checks), so the file
    /// itself is not changed; with `repair` it runs on the file, which redb then repairs if
    /// it can. `Ok` carries what was found; `Err(Damaged)` is damage beyond repair (or, without
    /// `repair`, any damage). After redb's check every row of `rows` is decoded: an
    /// undecodable one is damage too (`--repair` cannot mend it; the report names it).
    pub fn check_file(
        state_dir: &Path,
        repair: bool,
        rows: &[&dyn RowCheck],
    ) -> Result<Checked, StoreError> {
        let _lock = lock_state_dir(state_dir)?;
        let path = state_dir.join(DB_FILE);
        if !refuse_empty(&path)? {
            return Err(StoreError::Damaged {
                path: path.clone(),
                detail: "there is no database file".to_owned(),
            });
        }
        let started = std::time::Instant::now();
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let target = if repair {
            path.clone()
        } else {
            let copy = state_dir.join(".vigil.redb.check");
            std::fs::copy(&path, &copy).map_err(|e| StoreError::StateDir {
                path: copy.clone(),
                source: e,
            })?;
            copy
        };
        let result = (|| {
            let mut db = open_unwound(&target, |p| {
                Database::builder().set_cache_size(CACHE_BYTES).open(p)
            })
            .map_err(|e| match e {
                StoreError::Damaged { detail, .. } => StoreError::Damaged {
                    path: path.clone(),
                    detail,
                },
                e => e,
            })?;
            let clean =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| db.check_integrity()));
            match clean {
                Ok(Ok(clean)) => decode_all(&db, &path, rows).map(|t| (clean, t)),
                Ok(Err(e)) => Err(StoreError::Damaged {
                    path: path.clone(),
                    detail: format!("its integrity check failed: {e}"),
                }),
                Err(_) => Err(StoreError::Damaged {
                    path: path.clone(),
                    detail: "its integrity check failed (redb panicked on it)".to_owned(),
                }),
            }
        })();
        if !repair {
            let _ = std::fs::remove_file(&target);
        }
        let (clean, tables) = result?;
        let bad: Vec<&RowsChecked> = tables.iter().filter(|t| t.undecodable > 0).collect();
        if !bad.is_empty() {
            let total: u64 = bad.iter().map(|t| t.undecodable).sum();
            let each: Vec<String> = bad
                .iter()
                .map(|t| {
                    format!(
                        "table {}: {} of {} {} rows ({})",
                        t.table,
                        t.undecodable,
                        t.rows,
                        t.what,
                        t.examples.join("; ")
                    )
                })
                .collect();
            return Err(StoreError::Damaged {
                path,
                detail: format!(
                    "{total} stored row(s) do not decode (vigild leaves them out of its \
                     replies): {}",
                    each.join("; ")
                ),
            });
        }
        if !clean && !repair {
            return Err(StoreError::Damaged {
                path,
                detail: "its integrity check failed; `vigild check --repair` can repair it \
                         (the newest commit may be lost)"
                    .to_owned(),
            });
        }
        Ok(Checked {
            path,
            bytes,
            repaired: !clean,
            tables,
            took: started.elapsed(),
        })
    }
}

/// Decodes every row of `rows` in one read transaction.
fn decode_all(
    db: &Database,
    path: &Path,
    rows: &[&dyn RowCheck],
) -> Result<Vec<RowsChecked>, StoreError> {
    let damaged = |detail: String| StoreError::Damaged {
        path: path.to_owned(),
        detail,
    };
    let walk = || -> Result<Vec<RowsChecked>, StoreError> {
        let tx = db.begin_read()?;
        rows.iter().map(|t| t.check(&tx)).collect()
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(walk)) {
        Ok(Ok(tables)) => Ok(tables),
        Ok(Err(StoreError::Db(e))) => Err(damaged(format!("reading its rows failed: {e}"))),
        Ok(Err(e)) => Err(e),
        Err(payload) => Err(damaged(format!(
            "reading its rows failed (redb panicked: {})",
            panic_text(&*payload)
        ))),
    }
}

/// What `vigild check` found on a database it could use.
#[derive(Debug)]
pub struct Checked {
    pub path: PathBuf,
    pub bytes: u64,
    /// It was damaged and redb repaired it (`--repair`).
    pub repaired: bool,
    /// Every table of encoded rows, decoded.
    pub tables: Vec<RowsChecked>,
    pub took: std::time::Duration,
}

/// Whether [`Store::open_with`] verifies the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// `Database::check_integrity`: every page's checksum, the allocator state.
    Check,
    Trust,
}

/// `Ok(true)` if `path` exists (and is not empty): an empty file is a truncated database
/// (`Ok(false)`: there is none yet).
pub(super) fn refuse_empty(path: &Path) -> Result<bool, StoreError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::Damaged {
            path: path.to_owned(),
            detail: format!("it cannot be examined ({e})"),
        }),
        Ok(m) if m.len() == 0 => Err(StoreError::Damaged {
            path: path.to_owned(),
            detail: "the file is empty (0 bytes): truncated, not a database".to_owned(),
        }),
        Ok(_) => Ok(true),
    }
}

/// Opens `path` with `open`; redb panics on some damage it meets while opening (debug
/// builds assert on it), which becomes [`StoreError::Damaged`] too.
pub(super) fn open_unwound(
    path: &Path,
    open: impl FnOnce(&Path) -> Result<Database, redb::DatabaseError>,
) -> Result<Database, StoreError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| open(path))) {
        Ok(r) => r.map_err(|source| opened(path, source)),
        Err(payload) => Err(StoreError::Damaged {
            path: path.to_owned(),
            detail: format!("redb could not read it ({})", panic_text(&*payload)),
        }),
    }
}

pub(super) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// An open error, with damage told apart from the rest.
fn opened(path: &Path, source: redb::DatabaseError) -> StoreError {
    match source {
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
            StoreError::Damaged {
                path: path.to_owned(),
                detail,
            }
        }
        source => StoreError::Open {
            path: path.to_owned(),
            source,
        },
    }
}

/// Runs redb's integrity check: every page's checksum and the allocator state. A database
/// that needed repair is refused too, though redb repaired it: what it repaired may have
/// lost the last commit, and an administrator should know (`vigild check` says more).
pub(super) fn check(db: &mut Database, path: &Path) -> Result<(), StoreError> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| db.check_integrity()));
    let detail = match outcome {
        Ok(Ok(true)) => return Ok(()),
        Ok(Ok(false)) => {
            "its integrity check failed; redb repaired what it could (the newest commit \
             may be lost), so it starts next time"
                .to_owned()
        }
        Ok(Err(e)) => format!("its integrity check failed: {e}"),
        Err(_) => "its integrity check failed (redb panicked on it)".to_owned(),
    };
    Err(StoreError::Damaged {
        path: path.to_owned(),
        detail,
    })
}
