//! Binding the control socket: replace a stale socket file left by a dead daemon, refuse to
//! steal one a live daemon listens on, then set mode 0660 and the configured group.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
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
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("create the directory of", path))?;
    }
    // The socket is created with the process umask; until the chmod below it may be more
    // restrictive than 0660 but never less (vigild's umask is 022 or stricter under systemd).
    let listener = UnixListener::bind(path).map_err(io("bind", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(io("chmod", path))?;
    if let Some(name) = group {
        let gid = match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => g.gid,
            _ => return Err(SocketError::NoSuchGroup(name.to_owned())),
        };
        nix::unistd::chown(path, None, Some(gid)).map_err(|e| SocketError::Io {
            action: "set the group of",
            path: path.to_owned(),
            source: e.into(),
        })?;
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
    async fn refuses_to_replace_a_regular_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("file");
        std::fs::write(&path, b"precious").unwrap();
        assert!(matches!(bind(&path, None), Err(SocketError::NotASocket(_))));
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }
}
