//! Test support for the plugin crates (feature `testing`): run code as an unprivileged user,
//! so "permission denied" paths are exercised even when the tests run as root.

use std::path::Path;

/// The uid and gid [`as_nobody`] switches to.
pub const NOBODY: u32 = 65534;

/// Runs `f` on a thread whose real, effective and saved uid and gid are [`NOBODY`], without
/// supplementary groups and so without capabilities. Only that thread (and threads it
/// starts) changes identity: raw syscalls are used on purpose, since the libc wrappers
/// change every thread of the process. When the tests do not run as root, `f` runs as is.
pub fn as_nobody<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            let id = NOBODY as libc::c_long;
            // SAFETY: plain credential syscalls on the calling thread only.
            unsafe {
                assert_eq!(
                    libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()),
                    0
                );
                assert_eq!(libc::syscall(libc::SYS_setresgid, id, id, id), 0);
                assert_eq!(libc::syscall(libc::SYS_setresuid, id, id, id), 0);
            }
            f()
        })
        .join()
        .expect("the unprivileged thread panicked")
    })
}

/// Makes `dir` (a fresh `tempfile` directory, 0700) searchable and readable by everyone, so
/// [`as_nobody`] can reach what is inside it.
pub fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .expect("chmod 0755 the test root");
}
