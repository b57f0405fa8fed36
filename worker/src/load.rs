//! Opens the plugin library once and loads that very file: what is checked is what is
//! loaded.
//!
//! vigild checks the library's path (owner and mode of the file and of every directory
//! above it) and hands the worker the resolved path. Loading by path again would leave a
//! window between that check and `dlopen`. Here the worker opens the path once
//! (`O_NOFOLLOW`: a final symlink — which the resolved path cannot contain unless someone
//! swapped one in after the check — is refused; `O_NONBLOCK`: a FIFO swapped in cannot
//! block the open), checks the *descriptor* with `fstat` (a regular file, owned by root,
//! by this process's user or by the owner of this vigil-worker executable, writable by
//! nobody else), and `dlopen`s `/proc/self/fd/N`: the kernel resolves that name to the
//! open file itself, never to whatever the path names by then.
//!
//! The owner of the executable counts because a worker pushed to a remote node and run
//! there with `sudo` is root, while the node's login user owns both it and the libraries
//! pushed beside it; whoever owns the worker decides what it runs anyway.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

/// Opens `path` and checks the descriptor. The error is the whole message for the daemon.
pub fn open(path: &OsStr) -> Result<File, String> {
    let shown = std::path::Path::new(path).display();
    let file = OpenOptions::new()
        .read(true)
        // std adds O_CLOEXEC: a plugin's children never inherit the descriptor.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                format!(
                    "refused to load {shown}: it is a symbolic link (vigild resolves links \
                     before its check, so it was replaced after the check); find out who \
                     can write to its directory"
                )
            } else {
                format!("cannot open the plugin library {shown}: {e}")
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat the plugin library {shown}: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!(
            "refused to load {shown}: it is not a regular file; point `library` at the .so file"
        ));
    }
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let exe_owner = std::fs::metadata("/proc/self/exe").map(|m| m.uid()).ok();
    let uid = meta.uid();
    if uid != 0 && uid != euid && Some(uid) != exe_owner {
        return Err(format!(
            "refused to load {shown}: it is owned by uid {uid}, not by root or the worker's \
             user (uid {euid}); run `chown root {shown}`"
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "refused to load {shown}: it is group- or world-writable (mode {mode:04o}); run \
             `chmod go-w {shown}`"
        ));
    }
    Ok(file)
}

/// Loads the library `file` was opened on (see [`open`]).
///
/// # Safety
/// Loading runs the library's initialisers; isolating that is why the worker process
/// exists.
pub unsafe fn dlopen(file: &File, shown: &str) -> Result<Library, String> {
    let by_fd = format!("/proc/self/fd/{}", file.as_raw_fd());
    // SAFETY: per the function's contract. RTLD_NOW reports unresolved symbols here rather
    // than mid-scan.
    unsafe { Library::open(Some(OsStr::new(&by_fd)), RTLD_NOW | RTLD_LOCAL) }.map_err(|e| {
        if !std::path::Path::new("/proc/self/fd").is_dir() {
            format!(
                "cannot load {shown}: /proc is not mounted, and the worker loads the library \
                 it checked through /proc/self/fd; mount /proc"
            )
        } else {
            format!(
                "cannot load {shown}: not a loadable shared library ({e}); build the plugin \
                 as a cdylib / with `cc -shared -fPIC`"
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    /// Compiles a shared library whose `which()` returns `n`.
    fn library(dir: &Path, name: &str, n: u32) -> PathBuf {
        let src = dir.join(format!("{name}.c"));
        std::fs::write(&src, format!("int which(void) {{ return {n}; }}\n")).unwrap();
        let lib = dir.join(format!("{name}.so"));
        let out = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&lib)
            .arg(&src)
            .output()
            .expect("a C compiler (`cc`) is needed for this test");
        assert!(out.status.success(), "{out:?}");
        std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).unwrap();
        lib
    }

    fn which(lib: &Library) -> u32 {
        // SAFETY: the test libraries export `int which(void)`.
        unsafe {
            (lib.get::<unsafe extern "C" fn() -> u32>(b"which\0")
                .unwrap())()
        }
    }

    #[test]
    fn the_file_checked_is_the_file_loaded_even_when_the_path_is_swapped() {
        let dir = tempfile::tempdir().unwrap();
        let checked = library(dir.path(), "libchecked", 1);
        let evil = library(dir.path(), "libevil", 2);
        let file = open(checked.as_os_str()).unwrap();
        // Between the check and the load, someone renames another library over the path.
        std::fs::rename(&evil, &checked).unwrap();
        // SAFETY: the test libraries have no initialisers.
        let loaded = unsafe { dlopen(&file, "libchecked.so") }.unwrap();
        assert_eq!(which(&loaded), 1, "the checked file was loaded");
        // Loading by path now would have taken the other file.
        // SAFETY: as above.
        let by_path = unsafe { Library::open(Some(checked.as_os_str()), RTLD_NOW | RTLD_LOCAL) };
        assert_eq!(which(&by_path.unwrap()), 2);
    }

    #[test]
    fn symlinks_fifos_and_writable_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lib = library(dir.path(), "libok", 1);
        let link = dir.path().join("link.so");
        std::os::unix::fs::symlink(&lib, &link).unwrap();
        let err = open(link.as_os_str()).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
        let fifo = dir.path().join("fifo.so");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let err = open(fifo.as_os_str()).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o757)).unwrap();
        let err = open(lib.as_os_str()).unwrap_err();
        assert!(err.contains("chmod go-w"), "{err}");
        std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(open(lib.as_os_str()).is_ok());
    }
}
