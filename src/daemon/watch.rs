//! Watches the config file for changes. The watch is on the file's *directory*, because
//! editors and config management replace files by rename, which a watch on the file itself
//! would miss; events for other files in the directory are ignored.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Keeps the watch alive; dropping it stops watching.
pub struct ConfigWatch {
    _watcher: RecommendedWatcher,
}

/// Sends `()` on `tx` whenever something happens to `config_path` or to a `*.toml` file in
/// `policy_dir` (if that directory exists). Debouncing is the receiver's job (`daemon::run`).
pub fn watch(
    config_path: &Path,
    policy_dir: &Path,
    tx: mpsc::Sender<()>,
) -> notify::Result<ConfigWatch> {
    let dir: PathBuf = config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let name: Option<OsString> = config_path.file_name().map(|n| n.to_owned());
    let policies = policy_dir.to_owned();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        let ours = event.paths.iter().any(|p| {
            p.file_name().map(|n| n.to_owned()) == name
                || (p.parent() == Some(policies.as_path())
                    && p.extension().is_some_and(|e| e == "toml"))
        });
        if ours {
            // Full channel: a reload is already pending, which is all we need.
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    if policy_dir.is_dir() && policy_dir != dir {
        watcher.watch(policy_dir, RecursiveMode::NonRecursive)?;
    }
    Ok(ConfigWatch { _watcher: watcher })
}
