//! One SMTP delivery attempt in a process of its own (`vigild deliver-mail`), so that an
//! answer the server gives after vigild died is not lost. RFC 1047: between the client's
//! final "." and the server's 250 the server may already hold the message; a client that
//! dies in that gap cannot tell, and sending again makes a duplicate. A slow server (seconds
//! before its 250) makes that gap wide. The delivery process does the whole exchange and
//! writes its outcome to its attempt file; a vigild that started meanwhile finds the mail
//! `Sending` this attempt, waits for the process, and records its outcome instead of sending
//! the mail again.
//!
//! The attempt file `state_dir/outbox-attempts/TOKEN` is the process's stdout. vigild creates
//! it and takes an exclusive `flock` on it before the process starts; the process inherits
//! that open file description, so the lock is held while either of them lives. A lock that can
//! be taken means the process has ended: the file holds its outcome (one JSON line), or
//! nothing if it died before an answer (then nobody knows, and the mail is sent again with
//! the same Message-ID: at least once is the floor).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::transport::{SendError, SmtpTarget};

/// The directory of attempt files, under the state dir.
const DIR: &str = "outbox-attempts";
/// How long vigild waits for a delivery process beyond its `smtp.timeout` before it gives it
/// up (the process bounds itself by that timeout; this is for one that hangs regardless).
const SLACK: Duration = Duration::from_secs(10);
/// How often a restarted vigild looks whether a delivery process it found has ended.
const POLL: Duration = Duration::from_millis(50);

/// What vigild hands a delivery process on its stdin: this as one JSON line, then the
/// message's bytes to the end.
#[derive(Serialize, Deserialize)]
struct Request {
    smtp: SmtpTarget,
    from: String,
    to: Vec<String>,
}

/// What a delivery process found, as written to its attempt file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Outcome {
    Accepted,
    Permanent { error: String },
    Transient { error: String },
    Unavailable { error: String },
}

impl From<Result<(), SendError>> for Outcome {
    fn from(r: Result<(), SendError>) -> Outcome {
        match r {
            Ok(()) => Outcome::Accepted,
            Err(SendError::Permanent(error)) => Outcome::Permanent { error },
            Err(SendError::Transient(error)) => Outcome::Transient { error },
            Err(SendError::Unavailable(error)) => Outcome::Unavailable { error },
        }
    }
}

impl From<Outcome> for Result<(), SendError> {
    fn from(o: Outcome) -> Result<(), SendError> {
        match o {
            Outcome::Accepted => Ok(()),
            Outcome::Permanent { error } => Err(SendError::Permanent(error)),
            Outcome::Transient { error } => Err(SendError::Transient(error)),
            Outcome::Unavailable { error } => Err(SendError::Unavailable(error)),
        }
    }
}

/// What an attempt came to.
#[derive(Debug)]
pub enum Found {
    /// The delivery process answered: the server's verdict (or why there was none).
    Answered(Result<(), SendError>),
    /// The process never started (no attempt file): nothing was sent.
    NotStarted,
    /// The process ended without writing an outcome (it was killed, or its file is
    /// unreadable): the server may or may not hold the mail.
    Unknown(String),
}

/// A new attempt token for mail `id`: names the attempt file and is kept in the row.
pub fn new_token(id: u64) -> String {
    format!("{id}-{:016x}", fastrand::u64(..))
}

fn file_of(state_dir: &Path, token: &str) -> PathBuf {
    state_dir.join(DIR).join(token)
}

/// Runs one attempt of `message` (from, to, formatted bytes) to `smtp` under `token` and
/// waits for its outcome. The row must say `Sending` with this token before this is called
/// (committed), so a vigild that dies here is followed by one that [`resume`]s.
pub async fn run(
    state_dir: &Path,
    token: &str,
    smtp: &SmtpTarget,
    envelope: (String, Vec<String>),
    message: Vec<u8>,
) -> Found {
    let path = file_of(state_dir, token);
    let file = match create_locked(&path) {
        Ok(f) => f,
        Err(e) => {
            return Found::Answered(Err(SendError::Unavailable(format!(
                "cannot create the delivery attempt file {}: {e}; check space and \
                 permissions of the state dir",
                path.display()
            ))))
        }
    };
    let stdout = match file.try_clone() {
        Ok(f) => f,
        Err(e) => {
            return Found::Answered(Err(SendError::Unavailable(format!(
                "cannot hand {} to a delivery process: {e}",
                path.display()
            ))))
        }
    };
    // /proc/self/exe is this very binary, even after a package upgrade replaced the file.
    let spawned = tokio::process::Command::new("/proc/self/exe")
        .arg("deliver-mail")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::null())
        // Its own process group: a signal meant for vigild's group does not cut the exchange.
        .process_group(0)
        .kill_on_drop(false)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Found::Answered(Err(SendError::Unavailable(format!(
                "cannot start a mail delivery process (/proc/self/exe deliver-mail): {e}"
            ))));
        }
    };
    let request = Request {
        smtp: smtp.clone(),
        from: envelope.0,
        to: envelope.1,
    };
    let mut input = match serde_json::to_string(&request) {
        Ok(line) => line.into_bytes(),
        Err(e) => {
            let _ = child.start_kill();
            return Found::Answered(Err(SendError::Permanent(format!(
                "cannot encode the delivery request: {e}"
            ))));
        }
    };
    input.push(b'\n');
    input.extend_from_slice(&message);
    if let Some(mut stdin) = child.stdin.take() {
        // A process that got less than all of it answers "incomplete": nothing was sent.
        let _ = stdin.write_all(&input).await;
    }
    let bound = smtp.timeout + SLACK;
    let status = match tokio::time::timeout(bound, child.wait()).await {
        Ok(s) => s.map_err(|e| e.to_string()),
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            Err(format!(
                "the delivery process did not end within {}",
                humantime::format_duration(bound)
            ))
        }
    };
    // The process has ended (or was killed): our descriptor is the last, and the lock goes
    // with it.
    drop(file);
    match (read_outcome(&path), status) {
        (Some(outcome), _) => Found::Answered(outcome.into()),
        (None, Ok(st)) => Found::Unknown(format!(
            "the delivery process ended without an answer ({st})"
        )),
        (None, Err(e)) => Found::Unknown(e),
    }
}

/// After a restart: what the attempt `token` came to, waiting (up to `smtp_timeout` and some
/// slack) for its delivery process if it is still running.
pub async fn resume(state_dir: &Path, token: &str, smtp_timeout: Duration) -> Found {
    let path = file_of(state_dir, token);
    let deadline = tokio::time::Instant::now() + smtp_timeout + SLACK;
    loop {
        match try_lock(&path) {
            Ok(None) => return Found::NotStarted,
            Ok(Some(true)) => break,
            Ok(Some(false)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            Ok(Some(false)) => {
                return Found::Unknown(format!(
                    "its delivery process still runs after {}",
                    humantime::format_duration(smtp_timeout + SLACK)
                ))
            }
            Err(e) => return Found::Unknown(format!("cannot examine {}: {e}", path.display())),
        }
    }
    match read_outcome(&path) {
        Some(outcome) => Found::Answered(outcome.into()),
        None => Found::Unknown(
            "its delivery process ended without an answer (it was stopped too)".to_owned(),
        ),
    }
}

/// Removes the attempt file of `token` (its outcome is committed).
pub fn forget(state_dir: &Path, token: &str) {
    let path = file_of(state_dir, token);
    if let Err(e) = std::fs::remove_file(&path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(
                "cannot remove the delivery attempt file {}: {e}",
                path.display()
            );
        }
    }
}

/// Removes attempt files whose attempt is not one of `live` (left by a crash after their
/// outcome was committed).
pub fn sweep(state_dir: &Path, live: &[String]) {
    let Ok(entries) = std::fs::read_dir(state_dir.join(DIR)) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !live.contains(&name) {
            forget(state_dir, &name);
        }
    }
}

fn create_locked(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    flock(&file, libc::LOCK_EX | libc::LOCK_NB)?;
    Ok(file)
}

/// `None`: no such file. `Some(true)`: its lock was free (the delivery process has ended).
/// `Some(false)`: a delivery process holds it.
fn try_lock(path: &Path) -> std::io::Result<Option<bool>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => Ok(Some(true)),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(Some(false)),
        Err(e) => Err(e),
    }
}

use nix::libc;

/// `flock(2)` on `file`'s open file description. Written against the raw call because nix's
/// `Flock` unlocks when dropped: here the lock must outlive vigild's descriptor (it is shared
/// with the delivery process) and end only when the last descriptor closes.
fn flock(file: &File, op: libc::c_int) -> std::io::Result<()> {
    // SAFETY: flock only reads the descriptor number, which `file` keeps open for the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn read_outcome(path: &Path) -> Option<Outcome> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(text.lines().next()?).ok()
}

/// `vigild deliver-mail`: the delivery process. Reads the request from stdin, delivers, and
/// writes the outcome as one line to stdout (its attempt file), synced before it exits.
/// Signals that stop a service are ignored: the exchange is bounded by `smtp.timeout`, and
/// cutting it short is what would make a duplicate.
pub fn deliver_main() -> ExitCode {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: SIG_IGN installs no handler code; nothing else runs yet.
        let _ = unsafe { signal(s, SigHandler::SigIgn) };
    }
    let outcome = Outcome::from(deliver_stdin());
    let mut line = serde_json::to_string(&outcome).unwrap_or_else(|_| "{}".to_owned());
    line.push('\n');
    let written = std::io::stdout()
        .lock()
        .write_all(line.as_bytes())
        .and_then(|()| std::io::stdout().flush());
    let synced = std::os::fd::AsFd::as_fd(&std::io::stdout())
        .try_clone_to_owned()
        .map(File::from)
        .and_then(|f| f.sync_all());
    if written.is_err() || synced.is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn deliver_stdin() -> Result<(), SendError> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| incomplete(&e.to_string()))?;
    let split = input
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| incomplete("no request line"))?;
    let head = std::str::from_utf8(&input[..split]).map_err(|e| incomplete(&e.to_string()))?;
    let request: Request = serde_json::from_str(head).map_err(|e| incomplete(&e.to_string()))?;
    let message = &input[split + 1..];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SendError::Unavailable(format!("cannot start the delivery runtime: {e}")))?;
    runtime.block_on(request.smtp.send_raw(&request.from, &request.to, message))
}

fn incomplete(why: &str) -> SendError {
    SendError::Unavailable(format!(
        "the delivery process got an incomplete request ({why}); nothing was sent"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_through_the_attempt_file_line() {
        for o in [
            Outcome::Accepted,
            Outcome::Permanent {
                error: "550 no".into(),
            },
            Outcome::Transient {
                error: "451 later".into(),
            },
            Outcome::Unavailable {
                error: "refused".into(),
            },
        ] {
            let line = serde_json::to_string(&o).unwrap();
            assert_eq!(serde_json::from_str::<Outcome>(&line).unwrap(), o);
            let r: Result<(), SendError> = o.clone().into();
            assert_eq!(Outcome::from(r), o);
        }
    }

    #[test]
    fn a_lock_held_by_another_description_is_seen_and_released_by_close() {
        let tmp = tempfile::tempdir().unwrap();
        let path = file_of(tmp.path(), "7-00");
        assert_eq!(try_lock(&path).unwrap(), None);
        let held = create_locked(&path).unwrap();
        let shared = held.try_clone().unwrap();
        assert_eq!(try_lock(&path).unwrap(), Some(false));
        drop(held);
        // The clone shares the description: still locked, as for a delivery process.
        assert_eq!(try_lock(&path).unwrap(), Some(false));
        drop(shared);
        assert_eq!(try_lock(&path).unwrap(), Some(true));
        std::fs::write(&path, "{\"outcome\":\"accepted\"}\n").unwrap();
        assert_eq!(read_outcome(&path), Some(Outcome::Accepted));
        sweep(tmp.path(), &[]);
        assert_eq!(try_lock(&path).unwrap(), None);
    }
}
