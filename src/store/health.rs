//! The store's health: whether the database can be written, and since when it cannot.
//!
//! redb latches an I/O error: after one failed write (a full disk: ENOSPC) every later
//! operation answers "Previous I/O error occurred" until the database is reopened. The first
//! failure is logged here with its real cause, the store is marked failing (shown in
//! `/v1/status`; requests that need it get 503 with the cause), and the daemon probes the
//! state dir's filesystem until a write would succeed again, then exits non-zero so that
//! systemd restarts it on a reopened database (see `daemon::store_recovery`).

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// Why the store cannot be used, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    pub since: DateTime<Utc>,
    pub error: String,
}

/// The process's one database (vigild opens one store) failing, if it is. A process-wide
/// cell because the I/O error is seen where redb's error becomes a [`super::StoreError`],
/// inside whatever transaction ran into it, far from any `Store` handle.
static FAILING: Mutex<Option<Failing>> = Mutex::new(None);

/// `Some` once a database write failed with an I/O error; stays until vigild restarts.
pub fn failing() -> Option<Failing> {
    crate::sync::lock(&FAILING).clone()
}

/// Records an I/O error of redb, where it happened (logged the first time).
pub(super) fn observe(e: &redb::Error) {
    if let redb::Error::Io(io) = e {
        fail(io.to_string());
    }
}

/// Marks the store failing with `error` (the first cause is kept); returns the state.
pub fn fail(error: String) -> Failing {
    let mut state = crate::sync::lock(&FAILING);
    match &*state {
        Some(f) => f.clone(),
        None => {
            let f = Failing {
                since: Utc::now(),
                error,
            };
            tracing::error!(
                "the database can no longer be written: {}; vigild refuses writes (503) \
                 until the state dir's filesystem takes writes again, then exits so that \
                 systemd restarts it on a reopened database",
                f.error
            );
            *state = Some(f.clone());
            f
        }
    }
}

/// Size of the file [`probe_write`] writes: a write that small succeeding means a scan's
/// next batch of chunks has a chance, not merely that one page fits.
pub const PROBE_BYTES: usize = 1 << 20;

/// Writes, syncs and removes a probe file of `bytes` in `dir`: `Err` is the filesystem's own
/// error (`No space left on device (os error 28)`, a read-only remount, ...).
pub fn probe_write(dir: &Path, bytes: usize) -> std::io::Result<()> {
    let path = dir.join(".vigild-space-probe");
    let result = (|| {
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&vec![0u8; bytes])?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// The cause of an I/O failure that redb reported only as "a previous I/O error": what the
/// state dir's filesystem says to a probe write now, and how much room it has.
pub fn explain(dir: &Path) -> String {
    let room = explain_room(dir);
    match probe_write(dir, PROBE_BYTES) {
        Err(e) => format!("{e}{room}"),
        Ok(()) => format!("an earlier write failed (redb: previous I/O error){room}"),
    }
}

/// ` (N of M bytes free on the state dir's filesystem)`, or nothing if that is unknown.
pub fn explain_room(dir: &Path) -> String {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => format!(
            " ({} of {} bytes free on the state dir's filesystem)",
            s.blocks_available() * s.fragment_size(),
            s.blocks() * s.fragment_size()
        ),
        Err(_) => String::new(),
    }
}
