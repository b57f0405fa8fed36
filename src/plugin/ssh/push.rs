//! Pushing a file to the node's worker_dir: streamed over a multiplexed session into a
//! temporary name, its SHA-256 checked on the node, then renamed into place in one step, so
//! a half-written or corrupted file is never run under its final name.

use std::path::Path;
use std::process::Stdio;

use super::failure::{classify, clean, RemoteFailure};
use super::quote;
use super::session::{read_capped, Session};
use crate::plugin::scan::PluginFailure;

/// Positional arguments: worker_dir, the full hash, the final name.
const PUSH: &str = r#"set -e
umask 077
t="$1/.push-$$"
trap 'rm -f "$t"' EXIT
cat > "$t"
h=$(sha256sum "$t")
h=${h%% *}
if [ "$h" != "$2" ]; then echo "vigil-push: $3 arrived with SHA-256 $h, expected $2" >&2; exit 3; fi
chmod 0700 "$t"
mv -f "$t" "$1/$3""#;

pub(super) async fn push(
    session: &Session,
    local: &Path,
    name: &str,
    hash: &str,
) -> Result<(), PluginFailure> {
    let failed = |why: String| PluginFailure::Remote(RemoteFailure::PushFailed(why));
    let file = std::fs::File::open(local)
        .map_err(|e| failed(format!("cannot read {}: {e}", local.display())))?;
    let remote = format!(
        "sh -c {} vigil-push {} {} {}",
        quote(PUSH),
        quote(session.dir()),
        quote(hash),
        quote(name)
    );
    let mut cmd = session.client(remote);
    cmd.stdin(Stdio::from(file))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl only, in the child before exec.
    unsafe { cmd.pre_exec(super::die_with_parent) };
    let mut child = cmd
        .spawn()
        .map_err(|e| PluginFailure::Spawn(super::SSH.into(), e))?;
    let stderr = child.stderr.take().map(|e| tokio::spawn(read_capped(e)));
    let status = match tokio::time::timeout(session.push_timeout(), child.wait()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(failed(format!("cannot wait for ssh: {e}"))),
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(failed(format!(
                "pushing {name} took longer than {}",
                humantime::format_duration(session.push_timeout())
            )));
        }
    };
    let stderr = match stderr {
        Some(h) => h.await.unwrap_or_default(),
        None => String::new(),
    };
    if status.success() {
        return Ok(());
    }
    if let Some(f) = classify(status.code(), &stderr, false) {
        return Err(PluginFailure::Remote(f));
    }
    Err(failed(format!(
        "{name} could not be written to {} on the node: {}",
        session.dir(),
        clean(
            stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
        )
    )))
}
