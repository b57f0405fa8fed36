//! Thin, safe wrappers over the few `*at` syscalls the walk needs. Everything that touches
//! the node root goes through a directory file descriptor and `O_NOFOLLOW`, so no path is
//! ever re-resolved by the kernel from a string and no symlink is ever followed.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Flags for a directory we list: never follow a symlink in its place.
const DIR_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
/// Flags for a file we may hash: `O_NONBLOCK` so a FIFO that appears in its place never
/// blocks the open, `O_NOFOLLOW` so a symlink swapped in is refused (`ELOOP`).
const FILE_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
/// Flags for a directory we only traverse while resolving a configured path.
const PATH_FLAGS: libc::c_int =
    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn openat_raw(dir: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: `name` is NUL-terminated; the returned fd is owned by nobody else.
        let rc = unsafe { libc::openat(dir, name.as_ptr(), flags) };
        match cvt(rc) {
            // SAFETY: a fresh, valid descriptor that we now own.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Opens the node root itself (the administrator's path, so following it is intended).
pub fn open_root(path: &CStr) -> io::Result<OwnedFd> {
    openat_raw(
        libc::AT_FDCWD,
        path,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
    )
}

/// Opens directory `name` under `dir` for listing, refusing symlinks.
pub fn open_dir(dir: &OwnedFd, name: &CStr) -> io::Result<OwnedFd> {
    openat_raw(dir.as_raw_fd(), name, DIR_FLAGS)
}

/// Opens directory `name` under `dir` for traversal only (needs search permission only).
pub fn open_path_dir(dir: &OwnedFd, name: &CStr) -> io::Result<OwnedFd> {
    openat_raw(dir.as_raw_fd(), name, PATH_FLAGS)
}

/// Opens `name` under `dir` for reading, refusing symlinks and never blocking.
pub fn open_file(dir: &OwnedFd, name: &CStr) -> io::Result<OwnedFd> {
    openat_raw(dir.as_raw_fd(), name, FILE_FLAGS)
}

pub fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value for the kernel to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` is a valid out pointer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// `lstat` relative to a directory descriptor: never follows a final symlink.
pub fn lstat_at(dir: &OwnedFd, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: as in `fstat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated, `st` is a valid out pointer.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// The raw text of symlink `name` under `dir` (never followed).
pub fn readlink_at(dir: &OwnedFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes.
        let n = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        if buf.len() >= 1 << 16 {
            return Err(io::Error::other("symlink target longer than 64 KiB"));
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// `read(2)` that retries on `EINTR`.
pub fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One directory entry as `getdents64` reported it.
pub struct RawEntry {
    pub name: CString,
    /// `DT_*` value; `DT_UNKNOWN` on filesystems that do not fill it in.
    pub d_type: u8,
}

/// Lists a directory with `getdents64` into `out` (without `.` and `..`), using `buf` as the
/// kernel buffer so a listing costs no allocation beyond the names themselves.
pub fn list_dir(dir: &OwnedFd, buf: &mut [u8], out: &mut Vec<RawEntry>) -> io::Result<()> {
    // Offsets inside `struct linux_dirent64`: d_ino u64, d_off i64, d_reclen u16, d_type u8.
    const RECLEN: usize = 16;
    const TYPE: usize = 18;
    const NAME: usize = 19;
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes; the kernel fills whole records.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        if n == 0 {
            return Ok(());
        }
        let mut off = 0;
        while off + NAME <= n {
            let reclen = u16::from_ne_bytes([buf[off + RECLEN], buf[off + RECLEN + 1]]) as usize;
            if reclen == 0 || off + reclen > n {
                return Err(io::Error::other("malformed getdents64 record"));
            }
            let rec = &buf[off + NAME..off + reclen];
            let d_type = buf[off + TYPE];
            off += reclen;
            let Ok(name) = CStr::from_bytes_until_nul(rec) else {
                return Err(io::Error::other("getdents64 name without NUL"));
            };
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            out.push(RawEntry {
                name: name.to_owned(),
                d_type,
            });
        }
    }
}

/// The `type` attribute for a `st_mode`.
pub fn type_name(mode: libc::mode_t) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "file",
        libc::S_IFDIR => "dir",
        libc::S_IFLNK => "symlink",
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "char",
        libc::S_IFBLK => "block",
        _ => "unknown",
    }
}

/// Walks `components` (all but the last) from `root`, one `openat(O_NOFOLLOW)` at a time, and
/// returns a descriptor of the parent directory. A symlink anywhere on the way fails with
/// `ELOOP` or `ENOTDIR` instead of being followed, so the result is always beneath `root`.
pub fn open_parent(root: &OwnedFd, components: &[Vec<u8>]) -> io::Result<OwnedFd> {
    let mut cur = root.try_clone()?;
    let parents = components.len().saturating_sub(1);
    for comp in &components[..parents] {
        let name = CString::new(comp.as_slice()).map_err(io::Error::other)?;
        cur = open_path_dir(&cur, &name)?;
    }
    Ok(cur)
}
