//! What running one queue task needs and gives back, shared by the scan (`scan_task`) and
//! the audit (`audit_task`) runners: the daemon's parts it uses ([`Env`]), why it may be
//! asked to stop ([`Stop`]), and how it ended ([`QueueTaskResult`], or [`Interrupted`] when
//! the daemon stopped under it and it must run again).

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, NodeConfig};
use crate::drift;
use std::path::Path;

use crate::plugin::ssh::{RemoteFailure, Session, SessionSpec};
use crate::plugin::supervisor::{self, PluginFailure, ScanSpec, WorkerCommand};
use crate::policy::Policy;
use crate::proto::{CheckRecord, FinalStatus, PluginDrift, PluginRun, QueueTask};
use crate::store::Store;

/// Notes kept per plugin in the log row; more are counted in one last note.
pub(super) const MAX_NOTES_PER_PLUGIN: usize = 50;

/// How a task ended.
#[derive(Debug)]
pub struct QueueTaskResult {
    pub status: FinalStatus,
    /// Errors (Failed) or why the task stopped (Cancelled); nothing else.
    pub messages: Vec<String>,
    /// Audits: the check counts, shown with the log row.
    pub summary: Option<String>,
    pub items: u64,
    pub plugins: Vec<PluginRun>,
    /// Drift of each plugin that completed (empty change lists included).
    pub drifts: Vec<PluginDrift>,
    /// Audits: every check's outcome.
    pub checks: Vec<CheckRecord>,
}

/// The task was killed because the daemon is stopping: not an end, it runs again (attempt
/// + 1) at the next start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

/// How a run ended: with a result, or interrupted.
pub type RunEnd = Result<QueueTaskResult, Interrupted>;

impl QueueTaskResult {
    pub fn changes(&self) -> u64 {
        self.drifts.iter().map(|d| d.changes.len() as u64).sum()
    }

    /// Fingerprint of the drift finding of this scan (none without changes).
    pub fn fingerprint(&self) -> Option<drift::Fingerprint> {
        drift::Fingerprint::of(&self.drifts)
    }
}

impl QueueTaskResult {
    /// A result with nothing in it yet.
    pub fn empty(status: FinalStatus) -> Self {
        QueueTaskResult {
            status,
            messages: Vec::new(),
            summary: None,
            items: 0,
            plugins: Vec::new(),
            drifts: Vec::new(),
            checks: Vec::new(),
        }
    }

    pub fn failed(message: String) -> Self {
        Self::with_message(FinalStatus::Failed, message)
    }

    pub fn with_message(status: FinalStatus, message: String) -> Self {
        let mut r = Self::empty(status);
        r.messages.push(message);
        r
    }

    /// After `plugin` failed: if that was because the task was being stopped, says how
    /// it ends — `Some(Err(Interrupted))` when the daemon is stopping, `Some(Ok(()))` when
    /// cancelled (recorded in the result) — and `None` when the failure was the plugin's own.
    pub fn stopped_during(&mut self, stop: &Stop, plugin: &str) -> Option<Result<(), Interrupted>> {
        if stop.shutdown.is_cancelled() {
            Some(Err(Interrupted))
        } else if stop.cancel.is_cancelled() {
            self.status = FinalStatus::Cancelled;
            self.messages
                .push(format!("cancelled while running plugin {plugin}"));
            Some(Ok(()))
        } else {
            None
        }
    }
}

/// Why a plugin's part of a task failed.
pub(super) enum Failure {
    /// The task's `daemon.task_timeout` ran out (before or while the plugin ran).
    TimedOut,
    Other(String),
}

impl From<PluginFailure> for Failure {
    fn from(e: PluginFailure) -> Self {
        match e {
            PluginFailure::TimedOut(_) => Failure::TimedOut,
            e => Failure::Other(e.to_string()),
        }
    }
}

impl Failure {
    /// The task's error message for `plugin`'s failure.
    pub fn message(&self, plugin: &str, timeout: Duration) -> String {
        match self {
            Failure::TimedOut => format!(
                "{plugin}: timed out after {} (daemon.task_timeout)",
                humantime::format_duration(timeout)
            ),
            Failure::Other(e) => format!("{plugin}: {e}"),
        }
    }
}

/// Why a running task is asked to stop.
pub struct Stop {
    /// Stops this task: cancelled by an administrator, or through `shutdown`, whose child it is.
    pub cancel: CancellationToken,
    /// The daemon is stopping: the task is killed and left for requeue.
    pub shutdown: CancellationToken,
}

/// What a runner needs from the daemon.
pub struct Env<'a> {
    pub config: &'a Config,
    pub policies: &'a [Policy],
    pub store: &'a Store,
    pub worker: &'a WorkerCommand,
    /// When `config` was loaded: a task whose node a reload removed says so.
    pub loaded_at: chrono::DateTime<chrono::Utc>,
}

/// The task's node and time, as its run starts: `Err` is the end of a task whose node is
/// gone from the config.
pub(super) struct Start<'a> {
    pub node: &'a NodeConfig,
    pub deadline: Instant,
    pub timeout: Duration,
}

impl<'a> Start<'a> {
    pub fn of(task: &QueueTask, env: &Env<'a>) -> Result<Start<'a>, Box<QueueTaskResult>> {
        let config = env.config;
        let timeout = config.daemon.task_timeout;
        let Some(node) = config.node(&task.target) else {
            let when = if env.loaded_at > task.queued_at {
                format!(
                    "the config reloaded at {} (after this task was queued at {}) removed it",
                    env.loaded_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    task.queued_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            } else {
                "it was not in the config when the task started".to_owned()
            };
            return Err(Box::new(QueueTaskResult::failed(format!(
                "node {:?} is no longer in the config ({when}); the task cannot run: \
                 restore the node and queue it again if that reload was a mistake",
                task.target
            ))));
        };
        // A remote node's root is examined on the node, by the session's probe.
        if let Err(why) = check_root(&node.root).or_else(|e| match node.ssh {
            Some(_) => Ok(()),
            None => Err(e),
        }) {
            // Nothing is scanned, so no drift is computed from an absent tree.
            let mut result = QueueTaskResult::failed(why.clone());
            result.plugins.push(PluginRun {
                plugin: ROOT.to_owned(),
                items: 0,
                notes: Vec::new(),
                error: Some(why),
            });
            return Err(Box::new(result));
        }
        Ok(Start {
            node,
            deadline: Instant::now() + timeout,
            timeout,
        })
    }
}

/// The name a failed node root goes by in a task's plugin runs and in scan-failure tasks.
pub const ROOT: &str = "root";
/// The name a remote node's failed connection goes by, likewise.
pub const TRANSPORT: &str = "ssh";

/// A remote task's SSH session and its place under `ssh.max_connections`.
pub(super) struct Link {
    session: Option<Session>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Link {
    /// Connects to the node when it is remote. `Err` is the task's end: the node could not
    /// be reached (a failure of the [`TRANSPORT`] or, for its root, of [`ROOT`]), or the
    /// task was stopped meanwhile.
    pub async fn open(
        task: &QueueTask,
        node: &NodeConfig,
        env: &Env<'_>,
        stop: &Stop,
        deadline: Instant,
    ) -> Result<Link, RunEnd> {
        let Some(target) = node.ssh_target() else {
            return Ok(Link {
                session: None,
                _permit: None,
            });
        };
        let config = env.config;
        let cancel = stop.cancel.clone();
        let limit = config.ssh_max_connections();
        let permit = tokio::select! {
            p = env.worker.sessions.acquire(limit) => Ok(p),
            _ = cancel.cancelled() => Err(PluginFailure::Cancelled),
            _ = tokio::time::sleep_until(deadline) => Err(PluginFailure::TimedOut(config.daemon.task_timeout)),
        };
        let (identity, become_) = config.ssh_identity(node);
        let control_dir = std::env::var_os("RUNTIME_DIRECTORY")
            .map(std::path::PathBuf::from)
            .or_else(|| config.daemon.socket.parent().map(Path::to_owned))
            .unwrap_or_else(std::env::temp_dir);
        let libraries = config
            .plugins
            .iter()
            .map(|p| p.library_path(&config.daemon.plugin_dir))
            .collect();
        let opened = match permit {
            Err(e) => Err(e),
            Ok(permit) => {
                let id = task.id().to_string();
                let spec = SessionSpec {
                    task: &id,
                    target: &target,
                    root: &node.root,
                    identity,
                    become_,
                    known_hosts: &config.ssh.known_hosts,
                    connect_timeout: config.ssh.connect_timeout,
                    worker_dir: &config.ssh.worker_dir,
                    control_dir: &control_dir,
                    worker: &env.worker.exe,
                    libraries,
                };
                let setup = tokio::time::timeout_at(deadline, Session::open(spec, &cancel)).await;
                match setup {
                    Ok(Ok(session)) => Ok(Link {
                        session: Some(session),
                        _permit: Some(permit),
                    }),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(PluginFailure::TimedOut(config.daemon.task_timeout)),
                }
            }
        };
        let failure = match opened {
            Ok(link) => return Ok(link),
            Err(f) => f,
        };
        let mut result = QueueTaskResult::empty(FinalStatus::Failed);
        if let Some(stopped) = result.stopped_during(stop, TRANSPORT) {
            return Err(stopped.map(|()| result));
        }
        let (plugin, why) = match failure {
            PluginFailure::Remote(RemoteFailure::NodeRoot(why)) => {
                (ROOT, format!("node root {} {why}", node.root.display()))
            }
            PluginFailure::TimedOut(_) => (
                TRANSPORT,
                Failure::TimedOut.message(TRANSPORT, config.daemon.task_timeout),
            ),
            f => (TRANSPORT, format!("{TRANSPORT}: {f}")),
        };
        result.messages.push(why.clone());
        result.plugins.push(PluginRun {
            plugin: plugin.to_owned(),
            items: 0,
            notes: Vec::new(),
            error: Some(why),
        });
        Err(Ok(result))
    }

    /// Points a plugin's scan at the node, pushing what it lacks; nothing for a local node.
    pub async fn prepare(&mut self, spec: &mut ScanSpec) -> Result<(), PluginFailure> {
        if let Some(session) = &mut self.session {
            spec.remote = Some(session.worker_for(&spec.library).await?);
        }
        Ok(())
    }

    /// Tears the connection down (the task is over).
    pub async fn close(mut self) {
        if let Some(s) = self.session.take() {
            s.close().await;
        }
    }
}

/// A node root must be a directory with something in it: a missing root, or an empty
/// mountpoint whose filesystem is not mounted, would otherwise scan as "everything removed".
pub(super) fn check_root(root: &std::path::Path) -> Result<(), String> {
    let shown = root.display();
    match std::fs::metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "node root {shown} does not exist: mount the node's filesystem there or fix its `root` in the config"
        )),
        Err(e) => Err(format!("node root {shown} cannot be examined: {e}")),
        Ok(m) if !m.is_dir() => Err(format!(
            "node root {shown} is not a directory: `root` must name the node's filesystem root"
        )),
        Ok(_) => match std::fs::read_dir(root).map(|mut d| d.next().is_none()) {
            Ok(true) => Err(format!(
                "node root {shown} is empty (a mountpoint with nothing mounted?): nothing to scan, so no drift is computed"
            )),
            Ok(false) => Ok(()),
            Err(e) => Err(format!("node root {shown} cannot be listed: {e}")),
        },
    }
}

/// `not seen: /etc/ssl/private (permission denied)`: an unseen record as a coverage note.
pub(super) fn unseen_note(u: &supervisor::Unseen) -> String {
    format!("not seen: {} ({})", u.key, u.reason)
}
