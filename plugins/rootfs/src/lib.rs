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
//! `..`, no leading `/`), and it is resolved through a descriptor of the root, never by a path
//! string: `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or a walk that opens one
//! component at a time with `O_NOFOLLOW` where the kernel has no `openat2` (see [`Root`]).
//! A symlink anywhere on the way is refused, never followed, even if it is swapped in while
//! the scan runs (a container can rename its own directories at any time); the final object
//! is opened `O_NOFOLLOW | O_NONBLOCK` and checked with `fstat` on the opened descriptor, so
//! neither a symlinked `etc` nor a symlinked `etc/passwd` can point a scan at the host, and a
//! FIFO planted in the tree cannot hang it. Directory listings read the opened descriptor.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use vigil_plugin::{Emitter, Item};

mod resolve;
pub use resolve::Root;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

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

    pub(crate) fn from_io(e: io::Error, shown: &str) -> Self {
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

/// Reads a regular file below the root as text (invalid UTF-8 is replaced, not fatal).
pub fn read_text(root: &Path, rel: &Path) -> Result<String, Unreadable> {
    Root::open(root)?.read_text(rel)
}

/// Reads a regular file below the root, at most [`MAX_FILE_BYTES`].
pub fn read_bytes(root: &Path, rel: &Path) -> Result<Vec<u8>, Unreadable> {
    Root::open(root)?.read_bytes(rel)
}

/// What a directory entry is, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    fn of_mode(mode: libc::mode_t) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFREG => Kind::File,
            _ => Kind::Other,
        }
    }
}

/// `lstat` of a path below the root (parents resolved as in [`read_text`]).
pub fn kind_of(root: &Path, rel: &Path) -> Result<Kind, Unreadable> {
    Root::open(root)?.kind_of(rel)
}

/// Lists a real (non-symlink) directory below the root, sorted by name. Entries are not
/// followed; names that are not UTF-8 are shown lossily.
pub fn list_dir(root: &Path, rel: &Path) -> Result<Vec<(String, Kind)>, Unreadable> {
    Root::open(root)?.list_dir(rel)
}

/// The text of a symlink below the root (the link is data; it is never followed).
pub fn link_text(root: &Path, rel: &Path) -> Result<PathBuf, Unreadable> {
    Root::open(root)?.link_text(rel)
}

impl Root {
    /// Reads a regular file below the root as text (invalid UTF-8 is replaced, not fatal).
    pub fn read_text(&self, rel: &Path) -> Result<String, Unreadable> {
        let bytes = self.read_bytes(rel)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// Reads a regular file below the root, at most [`MAX_FILE_BYTES`].
    pub fn read_bytes(&self, rel: &Path) -> Result<Vec<u8>, Unreadable> {
        let (fd, st) = self.open_at(rel, resolve::read_file())?;
        resolve::expect_file(&st)?;
        let mut bytes = Vec::new();
        fs::File::from(fd)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Unreadable::from_io(e, &shown(rel)))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(Unreadable::TooLarge);
        }
        Ok(bytes)
    }

    /// `lstat` of a path below the root.
    pub fn kind_of(&self, rel: &Path) -> Result<Kind, Unreadable> {
        let (dir, name) = self.parent_of(rel)?;
        let st = resolve::lstat_at(&dir, name)
            .map_err(|e| Unreadable::from_io(e.into(), &shown(rel)))?;
        Ok(Kind::of_mode(st.st_mode))
    }

    /// Lists a real (non-symlink) directory below the root through its descriptor, sorted by
    /// name. Entries are not followed; names that are not UTF-8 are shown lossily.
    pub fn list_dir(&self, rel: &Path) -> Result<Vec<(String, Kind)>, Unreadable> {
        use nix::dir::{Dir, Type};
        let me = shown(rel);
        let (fd, st) = self.open_at(rel, resolve::list_dir())?;
        resolve::expect_dir(&st)?;
        let keep = fd.try_clone().map_err(Unreadable::Io)?;
        let mut dir = Dir::from_fd(fd).map_err(|e| Unreadable::from_io(e.into(), &me))?;
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| Unreadable::from_io(e.into(), &me))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let kind = match entry.file_type() {
                Some(Type::Symlink) => Kind::Symlink,
                Some(Type::Directory) => Kind::Dir,
                Some(Type::File) => Kind::File,
                Some(_) => Kind::Other,
                // The filesystem does not fill in d_type: ask, without following.
                None => match resolve::lstat_at(&keep, name) {
                    Ok(st) => Kind::of_mode(st.st_mode),
                    Err(nix::errno::Errno::ENOENT) => continue,
                    Err(e) => return Err(Unreadable::from_io(e.into(), &me)),
                },
            };
            out.push((name.to_string_lossy().into_owned(), kind));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The text of a symlink below the root (the link is data; it is never followed).
    pub fn link_text(&self, rel: &Path) -> Result<PathBuf, Unreadable> {
        let (dir, name) = self.parent_of(rel)?;
        resolve::readlink_at(&dir, name)
            .map(PathBuf::from)
            .map_err(|e| Unreadable::from_io(e.into(), &shown(rel)))
    }
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
mod race_tests;
#[cfg(test)]
mod tests;
