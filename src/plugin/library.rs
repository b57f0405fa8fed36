//! The check a plugin library passes before the daemon lets a worker load it.
//!
//! Loading a library runs its code with the daemon's privileges, so the file and its directory
//! must be writable by nobody but root or the daemon's own user (SPEC §3), and so must every
//! directory above it: whoever can write to one of them can rename the subtree away and put
//! their own in its place between the check and the load. A directory above may be writable
//! by others only when it is sticky and root-owned (like /tmp: nobody can rename what they do
//! not own there). The check resolves symlinks and checks the file that will actually be
//! loaded; the worker is given that path.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a plugin library was refused. Each message names the path, the problem and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LibraryError {
    #[error("cannot read plugin library {}: {source}; check the path and permissions", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("plugin library {} is not a regular file; point `library` at the .so file", path.display())]
    NotAFile { path: PathBuf },
    #[error(
        "{what} {} is owned by uid {uid}, not by root or the daemon's user (uid {euid}); \
         run `chown root {}`",
        path.display(),
        path.display()
    )]
    BadOwner {
        what: &'static str,
        path: PathBuf,
        uid: u32,
        euid: u32,
    },
    #[error(
        "{what} {} is group- or world-writable (mode {mode:04o}); run `chmod go-w {}`",
        path.display(),
        path.display()
    )]
    Writable {
        what: &'static str,
        path: PathBuf,
        mode: u32,
    },
}

/// Checks the library at `path` and returns the resolved path the worker must load.
pub fn check(path: &Path) -> Result<PathBuf, LibraryError> {
    let unreadable = |source| LibraryError::Unreadable {
        path: path.to_owned(),
        source,
    };
    let resolved = std::fs::canonicalize(path).map_err(unreadable)?;
    let meta = std::fs::metadata(&resolved).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(LibraryError::NotAFile { path: resolved });
    }
    let euid = nix::unistd::geteuid().as_raw();
    check_meta("plugin library", &resolved, &meta, euid)?;
    if let Some(dir) = resolved.parent() {
        let dmeta = std::fs::metadata(dir).map_err(|source| LibraryError::Unreadable {
            path: dir.to_owned(),
            source,
        })?;
        check_meta("plugin directory", dir, &dmeta, euid)?;
        for above in dir.ancestors().skip(1) {
            let ameta = std::fs::metadata(above).map_err(|source| LibraryError::Unreadable {
                path: above.to_owned(),
                source,
            })?;
            let sticky_root = ameta.mode() & 0o1000 != 0 && ameta.uid() == 0;
            if !sticky_root {
                check_meta("directory above the plugin library", above, &ameta, euid)?;
            }
        }
    }
    Ok(resolved)
}

fn check_meta(
    what: &'static str,
    path: &Path,
    meta: &std::fs::Metadata,
    euid: u32,
) -> Result<(), LibraryError> {
    let uid = meta.uid();
    if uid != 0 && uid != euid {
        return Err(LibraryError::BadOwner {
            what,
            path: path.to_owned(),
            uid,
            euid,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(LibraryError::Writable {
            what,
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, Permissions};
    use std::os::unix::fs::PermissionsExt;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).unwrap();
        let lib = dir.path().join("libx.so");
        fs::write(&lib, b"not really a library").unwrap();
        fs::set_permissions(&lib, Permissions::from_mode(0o755)).unwrap();
        (dir, lib)
    }

    #[test]
    fn a_well_kept_library_passes_and_resolves_symlinks() {
        let (dir, lib) = setup();
        assert_eq!(check(&lib).unwrap(), fs::canonicalize(&lib).unwrap());
        let link = dir.path().join("link.so");
        std::os::unix::fs::symlink(&lib, &link).unwrap();
        assert_eq!(check(&link).unwrap(), fs::canonicalize(&lib).unwrap());
    }

    #[test]
    fn writable_library_is_refused_with_the_fix() {
        let (_dir, lib) = setup();
        for mode in [0o775, 0o757, 0o666] {
            fs::set_permissions(&lib, Permissions::from_mode(mode)).unwrap();
            let err = check(&lib).unwrap_err();
            assert!(matches!(err, LibraryError::Writable { .. }), "{err}");
            let msg = err.to_string();
            assert!(
                msg.contains("libx.so") && msg.contains("chmod go-w"),
                "{msg}"
            );
        }
    }

    #[test]
    fn writable_directory_is_refused() {
        let (dir, lib) = setup();
        fs::set_permissions(dir.path(), Permissions::from_mode(0o1777)).unwrap();
        let err = check(&lib).unwrap_err();
        assert!(
            matches!(
                err,
                LibraryError::Writable {
                    what: "plugin directory",
                    mode: 0o1777,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn symlink_to_a_writable_file_is_refused() {
        let (_dir, lib) = setup();
        let other = tempfile::tempdir().unwrap();
        let target = other.path().join("evil.so");
        fs::write(&target, b"x").unwrap();
        fs::set_permissions(&target, Permissions::from_mode(0o777)).unwrap();
        fs::remove_file(&lib).unwrap();
        std::os::unix::fs::symlink(&target, &lib).unwrap();
        let err = check(&lib).unwrap_err();
        assert!(err.to_string().contains("evil.so"), "{err}");
    }

    #[test]
    fn a_writable_directory_above_is_refused_unless_sticky_and_root_owned() {
        let (dir, _) = setup();
        let plugins = dir.path().join("a/b/plugins");
        fs::create_dir_all(&plugins).unwrap();
        for d in [
            dir.path().join("a"),
            dir.path().join("a/b"),
            plugins.clone(),
        ] {
            fs::set_permissions(&d, Permissions::from_mode(0o755)).unwrap();
        }
        let lib = plugins.join("liby.so");
        fs::write(&lib, b"x").unwrap();
        fs::set_permissions(&lib, Permissions::from_mode(0o644)).unwrap();
        assert!(check(&lib).is_ok());
        let above = dir.path().join("a");
        fs::set_permissions(&above, Permissions::from_mode(0o777)).unwrap();
        let err = check(&lib).unwrap_err();
        assert!(
            matches!(
                &err,
                LibraryError::Writable { what: "directory above the plugin library", path, .. }
                    if path == &fs::canonicalize(&above).unwrap()
            ),
            "{err}"
        );
        fs::set_permissions(&above, Permissions::from_mode(0o1777)).unwrap();
        if nix::unistd::geteuid().is_root() {
            assert!(check(&lib).is_ok(), "sticky and root-owned, like /tmp");
            // A directory above owned by another user (who could swap the subtree).
            fs::set_permissions(&above, Permissions::from_mode(0o755)).unwrap();
            nix::unistd::chown(&above, Some(nix::unistd::Uid::from_raw(65530)), None).unwrap();
            let err = check(&lib).unwrap_err();
            assert!(
                matches!(
                    err,
                    LibraryError::BadOwner {
                        uid: 65530,
                        what: "directory above the plugin library",
                        ..
                    }
                ),
                "{err}"
            );
        } else {
            // Sticky but owned by this user, not root: still refused.
            assert!(check(&lib).is_err());
        }
    }

    #[test]
    fn missing_and_non_files_are_refused() {
        let (dir, _lib) = setup();
        let err = check(&dir.path().join("nope.so")).unwrap_err();
        assert!(matches!(err, LibraryError::Unreadable { .. }), "{err}");
        assert!(err.to_string().contains("nope.so"));
        let err = check(dir.path()).unwrap_err();
        assert!(matches!(err, LibraryError::NotAFile { .. }), "{err}");
    }

    #[test]
    fn foreign_owner_is_refused() {
        let euid = nix::unistd::geteuid();
        if !euid.is_root() {
            // Only root can give a file away; as another user the case cannot be built.
            return;
        }
        let (dir, lib) = setup();
        let stranger = Some(nix::unistd::Uid::from_raw(54321));
        nix::unistd::chown(&lib, stranger, None).unwrap();
        let err = check(&lib).unwrap_err();
        assert!(
            matches!(
                err,
                LibraryError::BadOwner {
                    uid: 54321,
                    what: "plugin library",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("chown root"));
        nix::unistd::chown(&lib, Some(euid), None).unwrap();
        nix::unistd::chown(dir.path(), stranger, None).unwrap();
        let err = check(&lib).unwrap_err();
        assert!(
            matches!(
                err,
                LibraryError::BadOwner {
                    what: "plugin directory",
                    ..
                }
            ),
            "{err}"
        );
    }
}
