//! Binding the control socket: refuse a directory that others could write to (they could
//! swap the socket for a link and redirect its group change), replace a stale socket file
//! left by a dead daemon, refuse to steal one a live daemon listens on, bind with mode 0660
//! (under a umask, never a chmod by path) and set the group with `lchown`.

use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("another vigild is already listening on {0}; stop it first or set a different daemon.socket")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; remove it or set a different daemon.socket")]
    NotASocket(PathBuf),
    #[error("cannot {action} control socket {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("socket_group {0:?} does not exist on this system")]
    NoSuchGroup(String),
    #[error(
        "the directory of the control socket, {path}, {why}; whoever can write to it could \
         redirect the socket's permissions: make it owned by root (or vigild's user) and not \
         writable by group or others (e.g. chmod 755), or set a different daemon.socket"
    )]
    UnsafeDirectory { path: PathBuf, why: String },
}

/// Refuses a socket directory not owned by root or the daemon's user, or writable by group
/// or others without being sticky and root-owned (like /tmp).
pub fn check_directory(dir: &Path) -> Result<(), SocketError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).map_err(io("inspect the directory of", dir))?;
    let me = nix::unistd::geteuid().as_raw();
    let unsafe_dir = |why: String| SocketError::UnsafeDirectory {
        path: dir.to_owned(),
        why,
    };
    if meta.uid() != 0 && meta.uid() != me {
        return Err(unsafe_dir(format!("is owned by uid {}", meta.uid())));
    }
    let mode = meta.mode();
    if mode & 0o022 != 0 && !(mode & 0o1000 != 0 && meta.uid() == 0) {
        return Err(unsafe_dir(format!(
            "is writable by {} (mode {:04o})",
            if mode & 0o002 != 0 {
                "others"
            } else {
                "its group"
            },
            mode & 0o7777
        )));
    }
    Ok(())
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SocketError + 'a {
    move |source| SocketError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Binds the socket at `path`. Must run inside the tokio runtime.
pub fn bind(path: &Path, group: Option<&str>) -> Result<UnixListener, SocketError> {
    remove_if_stale(path)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(io("create the directory of", path))?;
    check_directory(parent)?;
    let gid = match group {
        Some(name) => match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Some(g.gid.as_raw()),
            _ => return Err(SocketError::NoSuchGroup(name.to_owned())),
        },
        None => None,
    };
    // Created 0660 by bind itself, under umask 117 (the umask is the process's: this runs at
    // start, before any other thread creates files, and is put back at once).
    let previous = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o117));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(previous);
    let listener = bound.map_err(io("bind", path))?;
    if let Some(gid) = gid {
        // lchown: never follows a link put in the socket's place.
        std::os::unix::fs::lchown(path, None, Some(gid)).map_err(io("set the group of", path))?;
    }
    Ok(listener)
}

fn remove_if_stale(path: &Path) -> Result<(), SocketError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("inspect", path)(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(SocketError::NotASocket(path.to_owned()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(SocketError::InUse(path.to_owned())),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            tracing::info!(
                "removing stale control socket {} left by a daemon that is gone",
                path.display()
            );
            std::fs::remove_file(path).map_err(io("remove stale", path))
        }
        Err(e) => Err(io("probe", path)(e)),
    }
}

/// Removes the socket file at shutdown, unless another daemon has replaced it since.
pub fn remove(path: &Path, ours: &std::fs::Metadata) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(now) = std::fs::symlink_metadata(path) {
        if now.ino() == ours.ino() && now.dev() == ours.dev() {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!("cannot remove control socket {}: {e}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn stale_socket_is_replaced_live_one_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s.sock");
        {
            let _dead = std::os::unix::net::UnixListener::bind(&path).unwrap();
        }
        assert!(
            path.exists(),
            "a dropped std listener leaves its file behind"
        );
        let live = bind(&path, None).expect("stale socket replaced");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let err = bind(&path, None).unwrap_err();
        assert!(matches!(err, SocketError::InUse(_)), "{err}");
        drop(live);
    }

    #[tokio::test]
    async fn refuses_a_directory_others_may_write_to() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::create_dir(&dir).unwrap();
        for mode in [0o777, 0o775, 0o1777] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            let sticky_root = mode & 0o1000 != 0 && nix::unistd::geteuid().is_root();
            let r = bind(&dir.join("s.sock"), None);
            if sticky_root {
                assert!(
                    r.is_ok(),
                    "a sticky root-owned directory is like /tmp: {mode:o}"
                );
                let _ = std::fs::remove_file(dir.join("s.sock"));
            } else {
                let e = r.unwrap_err();
                assert!(
                    matches!(e, SocketError::UnsafeDirectory { .. }),
                    "{mode:o}: {e}"
                );
                assert!(!dir.join("s.sock").exists());
            }
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(bind(&dir.join("s.sock"), None).is_ok());
    }

    #[tokio::test]
    async fn refuses_a_directory_of_another_user() {
        if !nix::unistd::geteuid().is_root() {
            return; // chown needs root
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(4242), None).unwrap();
        let e = bind(&dir.join("s.sock"), None).unwrap_err();
        assert!(e.to_string().contains("owned by uid 4242"), "{e}");
    }

    #[tokio::test]
    async fn refuses_to_replace_a_regular_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("file");
        std::fs::write(&path, b"precious").unwrap();
        assert!(matches!(bind(&path, None), Err(SocketError::NotASocket(_))));
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }
}
