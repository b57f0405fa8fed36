//! Resolution of root-relative paths through a descriptor of the node root, never through a
//! path string the kernel would resolve again.
//!
//! Every path is resolved from an `O_PATH | O_DIRECTORY` descriptor of the root, either in one
//! `openat2` call with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS` or,
//! where the kernel lacks `openat2` (before Linux 5.6, or a seccomp filter that answers it
//! with `EPERM`), by a walk that opens one component at a time with `openat(O_NOFOLLOW)` from
//! the descriptor of the one before. Either way the kernel never follows a symlink on the way
//! and the result is beneath the root, however the tree changes meanwhile: a directory
//! renamed or swapped for a symlink after it was checked is refused at the open, not followed.
//! The final object is checked with `fstat` on the descriptor that was opened, so what is
//! read is what was checked.
//!
//! The walk is also how a failure is explained: it names the component that is a symlink,
//! which `openat2`'s `ELOOP` does not.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use nix::errno::Errno;
use nix::fcntl::{self, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{self, FileStat, Mode};

use crate::{shown, Unreadable};

/// How paths are resolved beneath the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolver {
    /// One `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`.
    Openat2,
    /// One `openat(O_NOFOLLOW)` per component.
    Walk,
}

/// What the kernel offers, probed once per process: 0 unknown, 1 `openat2`, 2 walk only.
static PROBED: AtomicU8 = AtomicU8::new(0);

const RESOLVE: ResolveFlag = ResolveFlag::RESOLVE_BENEATH
    .union(ResolveFlag::RESOLVE_NO_SYMLINKS)
    .union(ResolveFlag::RESOLVE_NO_MAGICLINKS);

/// Flags of a directory that is only traversed (needs search permission only).
fn path_dir() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// Flags of a file that is read: `O_NONBLOCK` so a FIFO in its place cannot hang the open.
pub(crate) fn read_file() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// Flags of a directory that is listed.
pub(crate) fn list_dir() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn retry<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

fn is_file(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

fn is_dir(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn is_symlink(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// A root-relative path split into plain names: only a non-empty run of
/// [`Component::Normal`]s is accepted, so nothing can replace the root or climb out of it.
struct Rel<'a> {
    /// The names joined again, without `.`, doubled or trailing slashes.
    joined: PathBuf,
    names: Vec<&'a OsStr>,
}

impl<'a> Rel<'a> {
    fn new(path: &'a Path) -> Result<Self, Unreadable> {
        let mut names = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(n) if !n.as_bytes().contains(&0) => names.push(n),
                _ => return Err(not_plain()),
            }
        }
        if names.is_empty() {
            return Err(not_plain());
        }
        Ok(Rel {
            joined: names.iter().collect(),
            names,
        })
    }

    fn last(&self) -> &'a OsStr {
        self.names[self.names.len() - 1]
    }

    fn parents(&self) -> &[&'a OsStr] {
        &self.names[..self.names.len() - 1]
    }

    /// The parent as one relative path, for `openat2`; `None` when it is the root itself.
    fn parent_path(&self) -> Option<&Path> {
        self.joined.parent().filter(|p| !p.as_os_str().is_empty())
    }
}

fn not_plain() -> Unreadable {
    Unreadable::Io(io::Error::new(
        io::ErrorKind::InvalidInput,
        "path is not a plain relative path",
    ))
}

/// An open node root: every read below it goes through its descriptor.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    resolver: Resolver,
}

impl Root {
    /// Opens the node root itself. Its own path is the administrator's, so symlinks in it are
    /// followed; nothing below it is.
    pub fn open(path: &Path) -> Result<Root, Unreadable> {
        let fd = open_root(path)?;
        let resolver = match PROBED.load(Ordering::Relaxed) {
            1 => Resolver::Openat2,
            2 => Resolver::Walk,
            _ => {
                let how = OpenHow::new().flags(path_dir()).resolve(RESOLVE);
                let found = match retry(|| fcntl::openat2(fd.as_fd(), c".", how)) {
                    Err(Errno::ENOSYS | Errno::EPERM) => Resolver::Walk,
                    _ => Resolver::Openat2,
                };
                let code = if found == Resolver::Openat2 { 1 } else { 2 };
                PROBED.store(code, Ordering::Relaxed);
                found
            }
        };
        Ok(Root { fd, resolver })
    }

    /// Opens the root with a chosen resolver (tests exercise both).
    #[cfg(test)]
    pub(crate) fn open_with(path: &Path, resolver: Resolver) -> Result<Root, Unreadable> {
        Ok(Root {
            fd: open_root(path)?,
            resolver,
        })
    }

    /// Opens `rel` with `flags` (which include `O_NOFOLLOW`) and `fstat`s what was opened.
    pub(crate) fn open_at(
        &self,
        rel: &Path,
        flags: OFlag,
    ) -> Result<(OwnedFd, FileStat), Unreadable> {
        let rel = Rel::new(rel)?;
        if self.resolver == Resolver::Openat2 {
            let how = OpenHow::new().flags(flags).resolve(RESOLVE);
            match retry(|| fcntl::openat2(self.fd.as_fd(), &rel.joined, how)) {
                Ok(fd) => return stat_opened(fd, &rel),
                Err(Errno::ENOENT) => return Err(Unreadable::Missing),
                Err(Errno::EACCES) => return Err(Unreadable::Denied),
                // ELOOP (a symlink, but which one?), ENOTDIR (a parent, or the last one?),
                // EXDEV, EAGAIN, ENOSYS/EPERM from a filter...: the walk is as safe and says
                // exactly what is in the way.
                Err(_) => {}
            }
        }
        let parent = self.walk(&rel)?;
        let last = rel.last();
        match retry(|| fcntl::openat(parent.as_fd(), last, flags, Mode::empty())) {
            Ok(fd) => stat_opened(fd, &rel),
            Err(e @ (Errno::ELOOP | Errno::ENOTDIR)) => match lstat_at(&parent, last) {
                Ok(st) if is_symlink(&st) => Err(Unreadable::Symlink(shown(&rel.joined))),
                Ok(st) if e == Errno::ENOTDIR && !is_dir(&st) => Err(Unreadable::WrongType),
                Ok(_) => Err(changed()),
                Err(e) => Err(from_errno(e, &rel)),
            },
            Err(e) => Err(from_errno(e, &rel)),
        }
    }

    /// A descriptor of the directory holding `rel` and the last name of `rel`, for the
    /// `*at` calls that act on a name without following it (`fstatat`, `readlinkat`).
    pub(crate) fn parent_of<'r>(&self, rel: &'r Path) -> Result<(OwnedFd, &'r OsStr), Unreadable> {
        let rel = Rel::new(rel)?;
        let last = rel.last();
        let Some(parent) = rel.parent_path() else {
            return Ok((dup(&self.fd)?, last));
        };
        if self.resolver == Resolver::Openat2 {
            let how = OpenHow::new().flags(path_dir()).resolve(RESOLVE);
            match retry(|| fcntl::openat2(self.fd.as_fd(), parent, how)) {
                Ok(fd) => return Ok((fd, last)),
                Err(Errno::ENOENT) => return Err(Unreadable::Missing),
                Err(Errno::EACCES) => return Err(Unreadable::Denied),
                Err(_) => {}
            }
        }
        Ok((self.walk(&rel)?, last))
    }

    /// Opens every parent of `rel` in turn with `openat(O_PATH | O_DIRECTORY | O_NOFOLLOW)`
    /// from the one before, and returns the last: the directory holding `rel`'s last name.
    fn walk(&self, rel: &Rel<'_>) -> Result<OwnedFd, Unreadable> {
        let mut cur = dup(&self.fd)?;
        let mut so_far = PathBuf::new();
        for &name in rel.parents() {
            so_far.push(name);
            cur = match retry(|| fcntl::openat(cur.as_fd(), name, path_dir(), Mode::empty())) {
                Ok(fd) => fd,
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    return Err(match lstat_at(&cur, name) {
                        Ok(st) if is_symlink(&st) => Unreadable::Symlink(shown(&so_far)),
                        // A directory again: swapped back while we looked.
                        Ok(st) if is_dir(&st) => changed(),
                        // Not a directory, so nothing lies below it.
                        _ => Unreadable::Missing,
                    });
                }
                Err(e) => return Err(Unreadable::from_io(e.into(), &shown(&so_far))),
            };
        }
        Ok(cur)
    }
}

fn open_root(path: &Path) -> Result<OwnedFd, Unreadable> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| not_plain())?;
    retry(|| fcntl::open(c.as_c_str(), flags, Mode::empty()))
        .map_err(|e| Unreadable::from_io(e.into(), &path.display().to_string()))
}

/// What was refused a moment ago is something else now: the tree is changing under the scan.
fn changed() -> Unreadable {
    Unreadable::Io(io::Error::other(CHANGED))
}

/// The message of [`changed`].
pub(crate) const CHANGED: &str = "it changed while it was being opened";

fn dup(fd: &OwnedFd) -> Result<OwnedFd, Unreadable> {
    fd.try_clone().map_err(Unreadable::Io)
}

fn from_errno(e: Errno, rel: &Rel<'_>) -> Unreadable {
    Unreadable::from_io(e.into(), &shown(&rel.joined))
}

/// `fstat` of what was opened: the type checks act on this, never on a second lookup.
fn stat_opened(fd: OwnedFd, rel: &Rel<'_>) -> Result<(OwnedFd, FileStat), Unreadable> {
    let st = stat::fstat(fd.as_fd()).map_err(|e| from_errno(e, rel))?;
    Ok((fd, st))
}

/// Checks that an opened object is a regular file.
pub(crate) fn expect_file(st: &FileStat) -> Result<(), Unreadable> {
    if is_file(st) {
        Ok(())
    } else {
        Err(Unreadable::WrongType)
    }
}

/// Checks that an opened object is a directory.
pub(crate) fn expect_dir(st: &FileStat) -> Result<(), Unreadable> {
    if is_dir(st) {
        Ok(())
    } else {
        Err(Unreadable::WrongType)
    }
}

/// `lstat` of `name` in `dir`.
pub(crate) fn lstat_at(dir: &OwnedFd, name: &OsStr) -> nix::Result<FileStat> {
    retry(|| stat::fstatat(dir.as_fd(), name, fcntl::AtFlags::AT_SYMLINK_NOFOLLOW))
}

/// The text of symlink `name` in `dir`.
pub(crate) fn readlink_at(dir: &OwnedFd, name: &OsStr) -> nix::Result<std::ffi::OsString> {
    retry(|| fcntl::readlinkat(dir.as_fd(), name))
}
