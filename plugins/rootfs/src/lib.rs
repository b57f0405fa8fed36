//! Safe, bounded reading of files below a node root without following symlinks, plus the note
//! budget and sorted emission that every standard plugin shares.
//!
//! A node root is an untrusted tree (a mounted image, or the host itself), and a scan must
//! neither escape it through a planted symlink nor hang on a FIFO nor exhaust memory on a huge
//! file. The `packages`, `accounts`, `services`, `sysctl` and `ports` plugins are each their
//! own cdylib, and the ABI crate `vigil-plugin` is kept free of I/O on purpose, so this code
//! lives in its own small crate that they link statically.
//!
//! Containment rule: a root-relative path is accepted only if it consists of plain names (no
//! `..`, no leading `/`). Every parent directory is checked with `lstat` and a symlink anywhere
//! on the way is refused, and the final component is opened with `O_NOFOLLOW | O_NONBLOCK`, so
//! neither a symlinked `etc` nor a symlinked `etc/passwd` can point a scan at the host, and a
//! FIFO planted in the tree cannot hang it. (A concurrent rename between the `lstat` and the
//! `open` is outside the threat model: a node root is a mounted image or the host itself.)

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use vigil_plugin::{Emitter, Item};

/// Largest file a plugin reads (a big dpkg status file is a few MiB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Malformed-line notes kept per file before they are summarised.
pub const MAX_NOTES_PER_FILE: usize = 20;

/// Why a path under the root could not be read.
#[derive(Debug)]
pub enum Unreadable {
    Missing,
    Denied,
    /// This component (shown root-relative) is a symlink, and symlinks are not followed.
    Symlink(String),
    /// Not a regular file (or, for a listing, not a directory).
    WrongType,
    TooLarge,
    Io(io::Error),
}

impl Unreadable {
    /// A note for the operator; `shown` is the root-relative path, e.g. `/etc/shadow`.
    pub fn describe(&self, shown: &str) -> String {
        match self {
            Unreadable::Missing => format!("not found: {shown}"),
            Unreadable::Denied => format!("permission denied: {shown}"),
            Unreadable::Symlink(c) if c == shown => {
                format!("not read: {shown} is a symlink (symlinks are not followed)")
            }
            Unreadable::Symlink(c) => {
                format!("not read: {shown}: {c} is a symlink (symlinks are not followed)")
            }
            Unreadable::WrongType => format!("not read: {shown}: not the expected file type"),
            Unreadable::TooLarge => {
                format!(
                    "not read: {shown}: larger than {} MiB",
                    MAX_FILE_BYTES >> 20
                )
            }
            Unreadable::Io(e) => format!("could not read {shown}: {e}"),
        }
    }

    fn from_io(e: io::Error, shown: &str) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => Unreadable::Missing,
            io::ErrorKind::PermissionDenied => Unreadable::Denied,
            _ if e.raw_os_error() == Some(libc::ELOOP) => Unreadable::Symlink(shown.to_owned()),
            _ if e.raw_os_error() == Some(libc::ENOTDIR) => Unreadable::Missing,
            _ => Unreadable::Io(e),
        }
    }
}

/// How a root-relative path is shown to users: `/etc/passwd`.
pub fn shown(rel: &Path) -> String {
    format!("/{}", rel.display())
}

/// Accepts only plain relative names; a leading `/` is taken as "relative to the root".
pub fn clean_rel(rel: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!(
                    "path {} must stay inside the node root (no '..')",
                    rel.display()
                ))
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(format!("path {:?} names no file below the node root", rel));
    }
    Ok(out)
}

/// Refuses any `rel` that is not a non-empty run of plain names (so `root.join(rel)` can
/// neither replace the root nor climb out of it), then `lstat`s every parent of `rel` below
/// `root`, refusing symlinks and non-directories.
fn check_parents(root: &Path, rel: &Path) -> Result<(), Unreadable> {
    let mut comps: Vec<Component<'_>> = rel.components().collect();
    if comps.is_empty() || comps.iter().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(Unreadable::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path is not a plain relative path",
        )));
    }
    comps.pop();
    let mut full = root.to_path_buf();
    let mut so_far = PathBuf::new();
    for c in comps {
        full.push(c);
        so_far.push(c);
        let md =
            fs::symlink_metadata(&full).map_err(|e| Unreadable::from_io(e, &shown(&so_far)))?;
        if md.file_type().is_symlink() {
            return Err(Unreadable::Symlink(shown(&so_far)));
        }
        if !md.is_dir() {
            return Err(Unreadable::Missing);
        }
    }
    Ok(())
}

/// Reads a regular file below the root as text (invalid UTF-8 is replaced, not fatal).
pub fn read_text(root: &Path, rel: &Path) -> Result<String, Unreadable> {
    let bytes = read_bytes(root, rel)?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Reads a regular file below the root, at most [`MAX_FILE_BYTES`].
pub fn read_bytes(root: &Path, rel: &Path) -> Result<Vec<u8>, Unreadable> {
    check_parents(root, rel)?;
    let me = shown(rel);
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(root.join(rel))
        .map_err(|e| Unreadable::from_io(e, &me))?;
    let md = file.metadata().map_err(|e| Unreadable::from_io(e, &me))?;
    if !md.is_file() {
        return Err(Unreadable::WrongType);
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Unreadable::from_io(e, &me))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Unreadable::TooLarge);
    }
    Ok(bytes)
}

/// What a directory entry is, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// `lstat` of a path below the root (parents checked as in [`read_text`]).
pub fn kind_of(root: &Path, rel: &Path) -> Result<Kind, Unreadable> {
    check_parents(root, rel)?;
    let md =
        fs::symlink_metadata(root.join(rel)).map_err(|e| Unreadable::from_io(e, &shown(rel)))?;
    Ok(kind(md.file_type()))
}

fn kind(ft: fs::FileType) -> Kind {
    if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else {
        Kind::Other
    }
}

/// Lists a real (non-symlink) directory below the root, sorted by name. Entries are not
/// followed; names that are not UTF-8 are shown lossily.
pub fn list_dir(root: &Path, rel: &Path) -> Result<Vec<(String, Kind)>, Unreadable> {
    match kind_of(root, rel)? {
        Kind::Dir => {}
        Kind::Symlink => return Err(Unreadable::Symlink(shown(rel))),
        _ => return Err(Unreadable::WrongType),
    }
    let me = shown(rel);
    let mut out = Vec::new();
    for entry in fs::read_dir(root.join(rel)).map_err(|e| Unreadable::from_io(e, &me))? {
        let entry = entry.map_err(|e| Unreadable::from_io(e, &me))?;
        let ft = entry.file_type().map_err(|e| Unreadable::from_io(e, &me))?;
        out.push((entry.file_name().to_string_lossy().into_owned(), kind(ft)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The text of a symlink below the root (the link is data; it is never followed).
pub fn link_text(root: &Path, rel: &Path) -> Result<PathBuf, Unreadable> {
    check_parents(root, rel)?;
    fs::read_link(root.join(rel)).map_err(|e| Unreadable::from_io(e, &shown(rel)))
}

/// Coverage notes, with malformed-line notes capped per file.
#[derive(Debug, Default)]
pub struct Notes {
    list: Vec<String>,
    per_file: BTreeMap<String, usize>,
}

impl Notes {
    pub fn push(&mut self, msg: impl Into<String>) {
        self.list.push(msg.into());
    }

    /// A note about line `line` (1-based) of `file`, counted against that file's budget.
    pub fn at_line(&mut self, file: &str, line: usize, msg: &str) {
        self.limited(file, format!("{file}:{line}: {msg}"));
    }

    /// A note counted against `group`'s budget: after [`MAX_NOTES_PER_FILE`] notes for one
    /// group, the rest are only counted and summarised as `GROUP: … and N more`.
    pub fn limited(&mut self, group: &str, msg: String) {
        let n = self.per_file.entry(group.to_owned()).or_insert(0);
        *n += 1;
        if *n <= MAX_NOTES_PER_FILE {
            self.list.push(msg);
        }
    }

    pub fn into_vec(mut self) -> Vec<String> {
        for (group, n) in &self.per_file {
            if *n > MAX_NOTES_PER_FILE {
                let more = n - MAX_NOTES_PER_FILE;
                self.list.push(format!("{group}: … and {more} more"));
            }
        }
        self.list
    }
}

/// The result of a scan before it is streamed: items (any order) and coverage notes.
#[derive(Debug, Default)]
pub struct Scan {
    pub items: Vec<Item>,
    pub notes: Vec<String>,
}

impl Scan {
    /// Sorts items by key, byte-wise (the order downstream diffing merges on), keeping the
    /// first of any duplicate keys.
    pub fn sorted(mut self) -> Self {
        self.items
            .sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
        self.items.dedup_by(|b, a| a.key == b.key);
        self
    }

    /// Streams notes, then items sorted by key. `Stopped` from the host becomes an error.
    pub fn emit(self, out: &mut Emitter<'_>) -> Result<(), String> {
        let scan = self.sorted();
        for note in &scan.notes {
            out.note(note).map_err(|e| e.to_string())?;
        }
        for item in &scan.items {
            out.item(item).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
