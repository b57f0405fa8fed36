//! Turns one directory entry into an [`Item`]: metadata, link target, BLAKE3 hash and
//! captured content. Runs on the hashing threads, so everything here is per-entry and
//! allocation-light; it never follows a symlink and never opens anything but a regular file.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use vigil_plugin::Item;

use crate::config::{Capture, Compiled};
use crate::escape;
use crate::ids::Ids;
use crate::sys;

/// Read size for hashing: large enough for BLAKE3's SIMD paths, small enough to stay cheap
/// per thread.
const READ_BUF: usize = 128 * 1024;

/// One entry to describe, in output order (the walker numbers them).
pub struct Job {
    /// The directory holding the entry, kept open while any job needs it.
    pub dir: Arc<OwnedFd>,
    /// The entry's name in `dir`; `None` describes `dir` itself (the node root).
    pub name: Option<CString>,
    pub key: String,
    /// The `d_type` from `getdents64`, a hint only: what we open is checked with `fstat`.
    pub d_type: u8,
    /// Capture the text as `content`.
    pub content: bool,
}

/// What a job produced: usually one item, sometimes coverage notes or an unseen subtree.
#[derive(Default)]
pub struct Outcome {
    pub item: Option<Item>,
    pub notes: Vec<String>,
    /// `(key, reason)`: `key` and everything below it could not be seen.
    pub unseen: Option<(String, String)>,
}

impl Outcome {
    pub fn note(msg: String) -> Outcome {
        Outcome {
            notes: vec![msg],
            ..Outcome::default()
        }
    }

    pub fn unseen(key: String, reason: String) -> Outcome {
        Outcome {
            unseen: Some((key, reason)),
            ..Outcome::default()
        }
    }
}

/// Per-thread state: the config, the id maps and a reusable read buffer.
pub struct Describer<'a> {
    cfg: &'a Compiled,
    ids: &'a Ids,
    buf: Vec<u8>,
}

impl<'a> Describer<'a> {
    pub fn new(cfg: &'a Compiled, ids: &'a Ids) -> Self {
        Describer {
            cfg,
            ids,
            buf: vec![0; READ_BUF],
        }
    }

    pub fn describe(&mut self, job: Job) -> Outcome {
        let mut out = Outcome::default();
        let Some(name) = job.name.as_deref() else {
            match sys::fstat(&job.dir) {
                Ok(st) => out.item = Some(self.base_item(job.key, &st)),
                Err(e) => out.notes.push(format!("cannot stat: {}: {e}", job.key)),
            }
            return out;
        };
        // Regular files (by the d_type hint) are opened straight away: one syscall fewer, and
        // `fstat` on the opened descriptor is the truth we act on.
        let mut not_opened = None;
        if job.d_type == libc::DT_REG {
            match open_file(&job.dir, name) {
                Ok((fd, st)) => {
                    let mut item = self.base_item(job.key, &st);
                    if st.st_mode & libc::S_IFMT == libc::S_IFREG {
                        self.hash(&fd, &st, job.content, &mut item, &mut out.notes);
                    }
                    out.item = Some(item);
                    return out;
                }
                // ELOOP (a symlink was swapped in), ENOENT, EACCES...: describe whatever is
                // there now, and say why a regular file there has no hash.
                Err(why) => not_opened = Some(why),
            }
        }
        let st = match sys::lstat_at(&job.dir, name) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                out.notes.push(format!("vanished during scan: {}", job.key));
                return out;
            }
            Err(e) => {
                out.notes.push(format!("cannot stat: {}: {e}", job.key));
                return out;
            }
        };
        let mut item = self.base_item(job.key, &st);
        match st.st_mode & libc::S_IFMT {
            libc::S_IFLNK => match sys::readlink_at(&job.dir, name) {
                Ok(target) => {
                    item.attributes
                        .insert("target".into(), escape_target(&target).into());
                }
                Err(e) => out
                    .notes
                    .push(format!("cannot read link: {}: {e}", item.key)),
            },
            libc::S_IFREG => {
                // Reached for a file whose d_type was unknown, or that the open above did not
                // settle (then it is not retried).
                let why = match not_opened {
                    Some(why) => Some(why),
                    None => match open_file(&job.dir, name) {
                        Ok((fd, st2)) if st2.st_mode & libc::S_IFMT == libc::S_IFREG => {
                            self.hash(&fd, &st2, job.content, &mut item, &mut out.notes);
                            None
                        }
                        Ok(_) => Some(NotHashed::Changed),
                        Err(why) => Some(why),
                    },
                };
                if let Some(why) = why {
                    out.notes.push(why.note(&item.key));
                }
            }
            _ => {}
        }
        out.item = Some(item);
        out
    }

    fn base_item(&self, key: String, st: &libc::stat) -> Item {
        let mut item = Item::new(key);
        let a = &mut item.attributes;
        let kind = sys::type_name(st.st_mode);
        a.insert("type".into(), kind.into());
        a.insert("mode".into(), format!("{:04o}", st.st_mode & 0o7777).into());
        a.insert("uid".into(), st.st_uid.into());
        a.insert("gid".into(), st.st_gid.into());
        if let Some(u) = self.ids.user(st.st_uid) {
            a.insert("user".into(), u.into());
        }
        if let Some(g) = self.ids.group(st.st_gid) {
            a.insert("group".into(), g.into());
        }
        if matches!(kind, "file" | "symlink") {
            a.insert("size".into(), st.st_size.into());
        }
        a.insert("mtime".into(), st.st_mtime.into());
        item
    }

    /// Hashes an opened regular file with bounded reads, capturing content if asked.
    fn hash(
        &mut self,
        fd: &OwnedFd,
        st: &libc::stat,
        want_content: bool,
        item: &mut Item,
        notes: &mut Vec<String>,
    ) {
        let want_content = want_content && self.may_capture(&item.key, st.st_mode, notes);
        let size = u64::try_from(st.st_size).unwrap_or(0);
        let max_hash = self.cfg.max_hash_size;
        let max_content = self.cfg.max_content_size;
        if size > max_hash {
            notes.push(format!("not hashed: over max_hash_size: {}", item.key));
            if want_content {
                item.attributes
                    .insert("content_skipped".into(), "over max_content_size".into());
            }
            return;
        }
        let mut content =
            (want_content && size <= max_content).then(|| Vec::with_capacity(size as usize));
        let mut content_skip =
            (want_content && size > max_content).then_some("over max_content_size");
        let mut hasher = blake3::Hasher::new();
        let mut total: u64 = 0;
        loop {
            let n = match sys::read(fd, &mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    notes.push(format!("read error: {}: {e}", item.key));
                    return;
                }
            };
            let chunk = &self.buf[..n];
            hasher.update(chunk);
            total += n as u64;
            if total > max_hash {
                // It grew while we read it.
                notes.push(format!("not hashed: over max_hash_size: {}", item.key));
                return;
            }
            if let Some(c) = content.as_mut() {
                if total > max_content {
                    content = None;
                    content_skip = Some("over max_content_size");
                } else {
                    c.extend_from_slice(chunk);
                }
            }
        }
        item.attributes
            .insert("blake3".into(), hasher.finalize().to_hex().as_str().into());
        if let Some(c) = content {
            match String::from_utf8(c) {
                Ok(text) => item.content = Some(text),
                Err(_) => content_skip = Some("not UTF-8"),
            }
        }
        if let Some(why) = content_skip {
            item.attributes.insert("content_skipped".into(), why.into());
        }
    }
}

impl Describer<'_> {
    /// Whether the text of a file matching `content` may be kept; notes why not otherwise.
    fn may_capture(&self, key: &str, mode: libc::mode_t, notes: &mut Vec<String>) -> bool {
        match self.cfg.may_capture(key, mode) {
            Capture::Yes => true,
            Capture::Secret => {
                notes.push(format!(
                    "content not captured: {key} is on the built-in list of secret files \
                     (shadow files, keys; set allow_secret_content = true to capture it)"
                ));
                false
            }
            Capture::Private => {
                notes.push(format!(
                    "content not captured: {key} is not world-readable (add it to \
                     content_private to capture it)"
                ));
                false
            }
        }
    }
}

/// Why a regular file has no hash, when the hashing itself never started.
enum NotHashed {
    Denied,
    Open(io::Error),
    Stat(io::Error),
    /// Listed or `lstat`ed as a regular file, something else when opened.
    Changed,
}

impl NotHashed {
    fn note(&self, key: &str) -> String {
        match self {
            NotHashed::Denied => format!("permission denied: {key}"),
            NotHashed::Open(e) => format!("not hashed: cannot open: {key}: {e}"),
            NotHashed::Stat(e) => format!("not hashed: cannot stat the opened file: {key}: {e}"),
            NotHashed::Changed => format!("not hashed: changed during scan: {key}"),
        }
    }
}

/// Opens an entry that should be a regular file (never following a symlink, never blocking)
/// and `fstat`s what was opened: the truth the caller acts on.
fn open_file(dir: &OwnedFd, name: &CStr) -> Result<(OwnedFd, libc::stat), NotHashed> {
    let fd = sys::open_file(dir, name).map_err(|e| {
        if is_denied(&e) {
            NotHashed::Denied
        } else {
            NotHashed::Open(e)
        }
    })?;
    let st = sys::fstat(&fd).map_err(NotHashed::Stat)?;
    Ok((fd, st))
}

fn is_denied(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM))
}

/// Link targets are raw bytes too: they use the same escaping as names (with `/` kept).
fn escape_target(raw: &[u8]) -> String {
    escape::escape(raw)
}
