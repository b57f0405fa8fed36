//! Workers on remote nodes, through the system OpenSSH client (never a home-made SSH: ssh
//! honours ProxyJump, certificates, agents and ssh_config, and its crypto is audited).
//!
//! One [`Session`] per queue task: a ControlMaster connection that the task's plugins share,
//! which probes the node, pushes `vigil-worker` and the plugin libraries when they are
//! missing or different (`push`), and builds each plugin's worker command line, which the
//! supervisor runs like a local worker. `failure` types what went wrong. Every ssh process
//! dies with vigild (`PR_SET_PDEATHSIG`), and the remote worker dies with its channel.

pub mod failure;
mod push;
mod session;
pub mod trust;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub use failure::RemoteFailure;
pub use session::{Session, SessionSpec};

/// The ssh client vigil runs (from `PATH`).
pub const SSH: &str = "ssh";

/// For `pre_exec`: SIGKILL this child when the thread that spawned it (a runtime thread of
/// vigild) exits, so no ssh outlives a killed vigild.
pub fn die_with_parent() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments is async-signal-safe.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// One word for a POSIX shell: single-quoted, with `'` written as `'\''`. Hand-written: it is
/// the whole rule, and every remote command vigil sends goes through it.
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Bounds the SSH sessions open at once (`ssh.max_connections`), resized to the config in
/// force whenever a session asks.
#[derive(Debug)]
pub struct SessionLimit {
    sem: Arc<tokio::sync::Semaphore>,
    size: Mutex<u32>,
}

impl Default for SessionLimit {
    fn default() -> Self {
        SessionLimit {
            sem: Arc::new(tokio::sync::Semaphore::new(0)),
            size: Mutex::new(0),
        }
    }
}

impl SessionLimit {
    /// Waits for a free session under a limit of `max`.
    pub async fn acquire(&self, max: u32) -> tokio::sync::OwnedSemaphorePermit {
        {
            let mut size = self.size.lock().unwrap_or_else(|e| e.into_inner());
            if max > *size {
                self.sem.add_permits((max - *size) as usize);
                *size = max;
            } else if max < *size {
                // Only free permits can be forgotten; the rest go at a later call.
                let gone = self.sem.forget_permits((*size - max) as usize);
                *size -= gone as u32;
            }
        }
        self.sem
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }
}

/// A local file's SHA-256 (hex), cached by size and mtime: hashing the worker and the
/// libraries once per task would be a waste.
pub fn file_hash(path: &Path) -> std::io::Result<String> {
    type Cache = Mutex<HashMap<PathBuf, (u64, SystemTime, String)>>;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let meta = std::fs::metadata(path)?;
    let stamp = (meta.len(), meta.modified()?);
    let cache = CACHE.get_or_init(Default::default);
    if let Some((len, mtime, hash)) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
        if (*len, *mtime) == stamp {
            return Ok(hash.clone());
        }
    }
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(path)?;
    std::io::copy(&mut file, &mut hasher)?;
    let hash = format!("{:x}", hasher.finalize());
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(path.to_owned(), (stamp.0, stamp.1, hash.clone()));
    Ok(hash)
}

/// The name a pushed file has on the node: its stem and the first 16 hex digits of its hash
/// (`vigil-worker-0123456789abcdef`, `libvigil_files-0123456789abcdef.so`).
pub fn pushed_name(local: &Path, hash: &str) -> String {
    let stem = local
        .file_stem()
        .map_or_else(|| "file".into(), |s| s.to_string_lossy().into_owned());
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    match local.extension() {
        Some(ext) if ext == "so" => format!("{stem}-{}.so", &hash[..16]),
        _ => format!("{stem}-{}", &hash[..16]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_a_shell() {
        for word in ["plain", "it's", "a b", "$(rm -rf /)", "'", "", "x'y'z"] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(word)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), word);
        }
    }

    #[test]
    fn pushed_names_carry_the_hash() {
        let h = "0123456789abcdef0123";
        assert_eq!(
            pushed_name(Path::new("/x/libvigil_files.so"), h),
            "libvigil_files-0123456789abcdef.so"
        );
        assert_eq!(
            pushed_name(Path::new("/x/vigil-worker"), h),
            "vigil-worker-0123456789abcdef"
        );
    }
}
