//! One queue task's SSH connection: a ControlMaster `ssh` that is vigild's child (it dies
//! with vigild, and is torn down when the task ends), whose own session probes the node
//! (login uid, worker_dir, node root, hashes of the files pushed before) and then, told
//! `run`, becomes `vigil-worker --serve`, which runs all the task's plugins over that one
//! session ([`crate::plugin::remote`]). Only pushes open sessions of their own, multiplexed
//! over the master. A session costs the node sshd's session setup and the login shell with
//! its start-up files, which is most of a remote task's overhead: a task pays it once.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio_util::sync::CancellationToken;

use super::failure::{classify, clean, RemoteFailure};
use super::{die_with_parent, file_hash, pushed_name, quote, SSH};
use crate::config::{Become, SshTarget};
use crate::plugin::library;
use crate::plugin::remote::{Channel, NodeStderr, RemoteWorker};
use crate::plugin::scan::PluginFailure;

/// How often ssh checks that the server is alive, and how many misses drop the connection.
const SERVER_ALIVE_INTERVAL: u32 = 15;
const SERVER_ALIVE_COUNT: u32 = 3;
/// Setting up the connection (ssh's own connect timeout aside) and the probe, at most this
/// much longer than `connect_timeout`.
const SETUP_MARGIN: Duration = Duration::from_secs(30);
/// One push of a file, at most.
const PUSH_TIMEOUT: Duration = Duration::from_secs(300);
/// Bytes of ssh's stderr kept.
const STDERR_CAP: u64 = 64 << 10;

/// What a session needs to know.
pub struct SessionSpec<'a> {
    /// The queue task's id (`Scan #12`): names the control socket.
    pub task: &'a str,
    pub target: &'a SshTarget,
    /// The node root on the remote host.
    pub root: &'a Path,
    pub identity: Option<&'a Path>,
    pub become_: Become,
    pub known_hosts: &'a Path,
    pub connect_timeout: Duration,
    pub worker_dir: &'a Path,
    /// Where the control socket goes.
    pub control_dir: &'a Path,
    /// The local `vigil-worker`.
    pub worker: &'a Path,
    /// The local plugin libraries the task may run (their hashes on the node are probed).
    pub libraries: Vec<PathBuf>,
}

/// An open connection to a node. End it with [`close`](Self::close); dropping it kills the
/// master too.
pub struct Session {
    channel: Arc<tokio::sync::Mutex<Channel>>,
    /// The master's pid, which leads its process group.
    master_pid: Option<u32>,
    socket: PathBuf,
    /// ssh's arguments for a multiplexed session, up to and including the destination.
    client_args: Vec<OsString>,
    dir: String,
    worker: (PathBuf, String),
    /// Files in worker_dir and their full hashes (probed, or pushed by this session).
    have: HashMap<String, String>,
    connect_timeout: Duration,
}

impl Session {
    /// Connects, probes the node and returns the open session.
    pub async fn open(
        spec: SessionSpec<'_>,
        cancel: &CancellationToken,
    ) -> Result<Session, PluginFailure> {
        let shown = |e: std::io::Error, what: &Path| {
            PluginFailure::Remote(RemoteFailure::PushFailed(format!(
                "cannot read {}: {e}",
                what.display()
            )))
        };
        let worker_hash = file_hash(spec.worker).map_err(|e| shown(e, spec.worker))?;
        let worker_name = pushed_name(spec.worker, &worker_hash);
        let mut wanted = vec![worker_name.clone()];
        for lib in &spec.libraries {
            if let Ok(h) = file_hash(lib) {
                wanted.push(pushed_name(lib, &h));
            }
        }
        if !spec.known_hosts.exists() {
            // vigil's own file; ssh reads an empty one as "no key known".
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(spec.known_hosts);
        }
        let socket = spec
            .control_dir
            .join(format!("ssh-{}.sock", socket_name(spec.task)));
        let _ = std::fs::remove_file(&socket);
        let mut base: Vec<OsString> = Vec::new();
        let mut opt = |o: String| {
            base.push("-o".into());
            base.push(o.into());
        };
        opt("BatchMode=yes".into());
        opt("StrictHostKeyChecking=yes".into());
        opt(format!("UserKnownHostsFile={}", spec.known_hosts.display()));
        opt("GlobalKnownHostsFile=/dev/null".into());
        opt(format!(
            "ConnectTimeout={}",
            spec.connect_timeout.as_secs().max(1)
        ));
        opt(format!("ServerAliveInterval={SERVER_ALIVE_INTERVAL}"));
        opt(format!("ServerAliveCountMax={SERVER_ALIVE_COUNT}"));
        opt("RequestTTY=no".into());
        opt(format!("ControlPath={}", socket.display()));
        if let Some(id) = spec.identity {
            opt(format!("IdentityFile={}", id.display()));
            opt("IdentitiesOnly=yes".into());
        }
        if let Some(port) = spec.target.port {
            base.push("-p".into());
            base.push(port.to_string().into());
        }
        let dest: OsString = spec.target.destination().into();
        let dir = spec.worker_dir.display().to_string();
        let root = spec.root.display().to_string();
        let become_ = match spec.become_ {
            Become::Sudo => "sudo",
            Become::None => "none",
        };
        let mut probe = format!(
            "sh -c {} vigil-probe {} {} {} {}",
            quote(PROBE),
            quote(&dir),
            quote(&root),
            become_,
            quote(&worker_name)
        );
        for name in &wanted {
            probe.push(' ');
            probe.push_str(&quote(name));
        }
        let mut cmd = Command::new(SSH);
        cmd.args(&base)
            .args([
                "-M",
                "-o",
                "ControlMaster=yes",
                "-o",
                "ControlPersist=no",
                "--",
            ])
            .arg(&dest)
            .arg(probe)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: prctl only, in the child before exec.
        unsafe { cmd.pre_exec(die_with_parent) };
        let mut master = cmd
            .spawn()
            .map_err(|e| PluginFailure::Spawn(SSH.into(), e))?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            master.stdin.take(),
            master.stdout.take(),
            master.stderr.take(),
        ) else {
            return Err(PluginFailure::Spawn(
                SSH.into(),
                std::io::Error::other("pipes missing"),
            ));
        };
        let stderr = NodeStderr::capture(stderr, spec.task.to_owned());
        let mut lines = BufReader::new(stdout);
        let limit = spec.connect_timeout + SETUP_MARGIN;
        let probed = tokio::select! {
            _ = cancel.cancelled() => Err(PluginFailure::Cancelled),
            r = tokio::time::timeout(limit, read_probe(&mut lines)) => match r {
                Ok(r) => Ok(r),
                Err(_) => Err(PluginFailure::Remote(RemoteFailure::SetupTimedOut(limit))),
            },
        };
        let probe = match probed {
            Err(e) => {
                kill(&mut master).await;
                return Err(e);
            }
            Ok(Some(p)) => p,
            Ok(None) => {
                // The master ended before the probe did: ssh says why.
                let status = tokio::time::timeout(Duration::from_secs(5), master.wait()).await;
                kill(&mut master).await;
                stderr.ended(Duration::from_secs(5)).await;
                let stderr = stderr.text(0);
                let code = status.ok().and_then(|s| s.ok()).and_then(|s| s.code());
                return Err(PluginFailure::Remote(
                    classify(code, &stderr, false).unwrap_or_else(|| {
                        RemoteFailure::Ssh(clean(
                            stderr
                                .lines()
                                .rev()
                                .find(|l| !l.trim().is_empty())
                                .unwrap_or("the connection ended before the node answered"),
                        ))
                    }),
                ));
            }
        };
        let master_pid = master.id();
        let setup = spec.connect_timeout + SETUP_MARGIN;
        let session = Session {
            channel: Arc::new(tokio::sync::Mutex::new(Channel::new(
                master, stdin, lines, stderr, setup,
            ))),
            master_pid,
            socket: socket.clone(),
            client_args: {
                let mut a = base;
                a.extend(["-S".into(), socket.into_os_string()]);
                a.extend(["-o".into(), "ControlMaster=no".into(), "-T".into()]);
                a.push("--".into());
                a.push(dest);
                a
            },
            dir: dir.clone(),
            worker: (spec.worker.to_owned(), worker_hash),
            have: probe.hashes,
            connect_timeout: spec.connect_timeout,
        };
        check_dir(&probe.dir, probe.uid, &dir).map_err(PluginFailure::Remote)?;
        if let Some(why) = probe.root {
            return Err(PluginFailure::Remote(RemoteFailure::NodeRoot(why)));
        }
        Ok(session)
    }

    /// The task's worker on the node for one plugin, after pushing what the node lacks (the
    /// worker itself before its first plugin, and the plugin's library).
    pub async fn worker_for(&mut self, library: &Path) -> Result<RemoteWorker, PluginFailure> {
        let library = library::check(library).map_err(PluginFailure::Refused)?;
        let (worker, worker_hash) = self.worker.clone();
        self.ensure(&worker, &worker_hash).await?;
        let lib_hash = file_hash(&library).map_err(|e| {
            PluginFailure::Remote(RemoteFailure::PushFailed(format!(
                "cannot read {}: {e}",
                library.display()
            )))
        })?;
        let lib_name = self.ensure(&library, &lib_hash).await?;
        Ok(RemoteWorker {
            channel: self.channel.clone(),
            library: format!("{}/{lib_name}", self.dir),
        })
    }

    /// Pushes `local` unless the node has it with this hash; returns its name there.
    async fn ensure(&mut self, local: &Path, hash: &str) -> Result<String, PluginFailure> {
        let name = pushed_name(local, hash);
        if self.have.get(&name).map(String::as_str) == Some(hash) {
            return Ok(name);
        }
        super::push::push(self, local, &name, hash).await?;
        self.have.insert(name.clone(), hash.to_owned());
        Ok(name)
    }

    /// Arguments for a multiplexed command on the node.
    pub(super) fn client(&self, remote: String) -> Command {
        let mut cmd = Command::new(SSH);
        cmd.args(&self.client_args).arg(remote);
        cmd
    }

    pub(super) fn dir(&self) -> &str {
        &self.dir
    }

    pub(super) fn push_timeout(&self) -> Duration {
        self.connect_timeout + PUSH_TIMEOUT
    }

    /// Ends the connection: the master's own session (the worker) ends with its stdin, then
    /// the master is stopped and reaped.
    pub async fn close(self) {
        // Every plugin has ended by now; a driver still holding the channel gets a moment.
        if let Ok(mut ch) =
            tokio::time::timeout(Duration::from_secs(2), self.channel.clone().lock_owned()).await
        {
            ch.close_input();
            kill(&mut ch.master).await;
        }
        // Drop kills the master's group in any case and removes the socket.
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(pid) = self.master_pid {
            // The master leads its own group; kill_on_drop would reach it too.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

async fn kill(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        if tokio::time::timeout(Duration::from_secs(2), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// `Scan #12` → `scan-12`.
fn socket_name(task: &str) -> String {
    let mut s: String = task
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            ' ' | '-' | '_' => Some('-'),
            _ => None,
        })
        .collect();
    s.truncate(40);
    format!("{s}-{}", std::process::id())
}

/// Reads a child's output, keeping at most [`STDERR_CAP`] bytes.
pub(super) async fn read_capped(r: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut buf = Vec::new();
    let mut r = r.take(STDERR_CAP);
    let _ = r.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// The master's own command: prints what vigil needs to know, then waits for one line on
/// stdin: `run` makes it the serving worker (through `sudo -n` when `become = "sudo"` and
/// the login user is not root), anything else or the end of stdin ends it. Positional
/// arguments: worker_dir, root, become, the worker's file name, then the file names to hash.
/// Shell start-up output before `VIGIL-PROBE` is skipped.
const PROBE: &str = r#"d=$1; r=$2; b=$3; w=$4; shift 4
echo VIGIL-PROBE
echo "uid $(id -u)"
[ -d "$d" ] || mkdir -m 0700 -p "$d" 2>/dev/null
echo "dir $(ls -ldn "$d" 2>&1 | head -n 1)"
if [ ! -e "$r" ]; then echo "root missing"
elif [ ! -d "$r" ]; then echo "root notdir"
elif l=$(ls -A "$r" 2>/dev/null); then if [ -z "$l" ]; then echo "root empty"; else echo "root ok"; fi
else echo "root ok"; fi
for f in "$@"; do [ -f "$d/$f" ] && echo "have $(sha256sum "$d/$f" 2>/dev/null)"; done
echo VIGIL-READY
read -r go || exit 0
[ "$go" = run ] || exit 0
if [ "$b" = sudo ] && [ "$(id -u)" != 0 ]; then exec sudo -n -- "$d/$w" --serve "$r"; fi
exec "$d/$w" --serve "$r""#;

struct Probe {
    uid: Option<u32>,
    dir: String,
    /// Why the root cannot be scanned, if it cannot.
    root: Option<String>,
    hashes: HashMap<String, String>,
}

/// Reads the probe's answer; `None` when the stream ended first.
async fn read_probe(r: &mut BufReader<ChildStdout>) -> Option<Probe> {
    let mut probe = Probe {
        uid: None,
        dir: String::new(),
        root: None,
        hashes: HashMap::new(),
    };
    let mut started = false;
    let mut line = String::new();
    let mut lines = 0u32;
    loop {
        line.clear();
        // Bounded: a node that floods start-up output fails after a few thousand lines.
        lines += 1;
        if lines > 10_000 || r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if !started {
            started = l == "VIGIL-PROBE";
            continue;
        }
        if l == "VIGIL-READY" {
            return Some(probe);
        }
        if let Some(uid) = l.strip_prefix("uid ") {
            probe.uid = uid.trim().parse().ok();
        } else if let Some(dir) = l.strip_prefix("dir ") {
            probe.dir = dir.to_owned();
        } else if let Some(root) = l.strip_prefix("root ") {
            probe.root = match root {
                "ok" => None,
                "missing" => Some("does not exist on the node".into()),
                "notdir" => Some("is not a directory on the node".into()),
                _ => Some("is empty on the node (a mountpoint with nothing mounted?)".into()),
            };
        } else if let Some(have) = l.strip_prefix("have ") {
            if let Some((hash, path)) = have.split_once("  ") {
                if let Some(name) = path.rsplit('/').next() {
                    probe.hashes.insert(name.to_owned(), hash.to_owned());
                }
            }
        }
    }
}

/// worker_dir must be a directory owned by the login user or root that nobody else may
/// write: vigil runs what it finds there (as root with `become = "sudo"`).
fn check_dir(ls: &str, uid: Option<u32>, dir: &str) -> Result<(), RemoteFailure> {
    let fields: Vec<&str> = ls.split_whitespace().collect();
    let (Some(mode), Some(owner)) = (fields.first(), fields.get(2)) else {
        return Err(RemoteFailure::PushFailed(format!(
            "cannot create or examine worker_dir {dir} on the node ({}); create it, owned by \
             the login user, mode 0700",
            clean(ls)
        )));
    };
    let mode = mode.as_bytes();
    if mode.len() < 10 || mode[0] != b'd' {
        return Err(RemoteFailure::PushFailed(format!(
            "worker_dir {dir} on the node is not a directory"
        )));
    }
    if mode[5] == b'w' || mode[8] == b'w' {
        return Err(RemoteFailure::PushFailed(format!(
            "refusing worker_dir {dir} on the node: others can write to it ({}); chmod \
             go-w it or choose another ssh.worker_dir",
            String::from_utf8_lossy(&mode[..10])
        )));
    }
    let owner: Option<u32> = owner.parse().ok();
    if owner != Some(0) && owner != uid {
        return Err(RemoteFailure::PushFailed(format!(
            "refusing worker_dir {dir} on the node: it belongs to uid {}, not to the login \
             user or root; remove it or choose another ssh.worker_dir",
            owner.map_or_else(|| "?".into(), |o| o.to_string())
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_dirs_others_can_write_are_refused() {
        let ok = "drwx------ 2 1000 1000 4096 Dec  2 10:00 /var/tmp/vigil";
        assert!(check_dir(ok, Some(1000), "/var/tmp/vigil").is_ok());
        assert!(
            check_dir(ok, Some(0), "/var/tmp/vigil").is_err(),
            "someone else's"
        );
        let root_owned = "drwxr-xr-x 2 0 0 4096 Dec  2 10:00 /var/tmp/vigil";
        assert!(check_dir(root_owned, Some(1000), "/var/tmp/vigil").is_ok());
        for bad in [
            "drwxrwxrwt 2 0 0 4096 Dec  2 10:00 /var/tmp/vigil",
            "drwxrwx--- 2 1000 1000 4096 Dec  2 10:00 /var/tmp/vigil",
        ] {
            let e = check_dir(bad, Some(1000), "/var/tmp/vigil").unwrap_err();
            assert!(e.to_string().contains("others can write"), "{e}");
        }
        assert!(check_dir("ls: cannot access", Some(1000), "/x").is_err());
    }

    #[test]
    fn socket_names_are_short_and_plain() {
        let n = socket_name("Scan #12");
        assert!(n.starts_with("scan-12-"), "{n}");
    }
}
