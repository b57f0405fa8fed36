//! Daemon side of a plugin scan: spawns the worker, streams its items, and always ends with a
//! typed [`ScanOutcome`].
//!
//! The worker runs in its own process group; cancel, timeout and protocol violations kill the
//! whole group (SIGTERM, a grace period, SIGKILL) and the worker is always reaped. Items flow
//! through a channel bounded both in count and in bytes, and the frame reader stops reading
//! the pipe while the channel is full, so a flooding plugin blocks instead of filling memory.

use std::path::PathBuf;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use vigil_plugin::Item;

use super::frame;
pub use super::frame::PluginInfo;
use super::library::{self, LibraryError};
use super::pump::{Pump, PumpEnd};
use super::stderr::{self, StderrTail};
use super::worker;

/// Events buffered between the frame reader and the consumer, at most.
pub const EVENT_CAPACITY: usize = 1024;
/// Bytes of item/note payload buffered between the frame reader and the consumer, at most.
pub const BUFFER_BYTES: usize = 2 * frame::MAX_PAYLOAD;
/// Notes kept for [`ScanOutcome::Succeeded`]; later ones are counted, not kept.
pub const MAX_NOTES: usize = 1000;

/// How to start a worker: the `vigild` executable (`current_exe()` in the daemon; the test
/// binary path in tests) and the grace period between SIGTERM and SIGKILL.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub exe: PathBuf,
    pub grace: Duration,
}

impl WorkerCommand {
    pub fn new(exe: impl Into<PathBuf>) -> Self {
        WorkerCommand {
            exe: exe.into(),
            grace: Duration::from_secs(2),
        }
    }

    /// The running executable, which must be `vigild`.
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?))
    }
}

/// How items are handed to the consumer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ItemForm {
    /// [`ScanEvent::Item`] with the decoded item.
    #[default]
    Decoded,
    /// [`ScanEvent::ItemJson`] with the plugin's JSON, checked to decode as an [`Item`]:
    /// for consumers that only pass items through (`vigild plugin run`).
    Json,
}

/// One scan to run.
#[derive(Debug, Clone)]
pub struct ScanSpec {
    /// The plugin's configured name (for logs).
    pub plugin: String,
    pub library: PathBuf,
    pub root: PathBuf,
    /// The plugin's config table, sent to the plugin as JSON.
    pub config: serde_json::Value,
    /// Kill the scan after this long (measured from the spawn).
    pub timeout: Option<Duration>,
    /// Cancels the scan when cancelled; create it before `start` to cancel a scan that is
    /// still loading its library.
    pub cancel: CancellationToken,
    pub item_form: ItemForm,
}

impl ScanSpec {
    pub fn new(
        plugin: impl Into<String>,
        library: impl Into<PathBuf>,
        root: impl Into<PathBuf>,
    ) -> Self {
        ScanSpec {
            plugin: plugin.into(),
            library: library.into(),
            root: root.into(),
            config: serde_json::Value::Object(Default::default()),
            timeout: None,
            cancel: CancellationToken::new(),
            item_form: ItemForm::Decoded,
        }
    }
}

/// What a running scan yields, in the order the plugin emitted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEvent {
    Item(Item),
    /// Only with [`ItemForm::Json`]: one item's JSON.
    ItemJson(Vec<u8>),
    /// A coverage note: something the plugin could not see. Does not fail the scan.
    Note(String),
}

/// How a scan ended.
#[derive(Debug)]
pub enum ScanOutcome {
    Succeeded { items: u64, notes: Vec<String> },
    Failed(PluginFailure),
}

/// Why a scan failed. Each message says what failed and, where possible, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginFailure {
    #[error("the plugin reported an error: {0}")]
    PluginError(String),
    #[error("the plugin crashed with {signal} (a bug in the plugin; report it to its author){}", tail(.stderr))]
    Crashed { signal: String, stderr: String },
    #[error("the plugin worker exited with status {code} without finishing the scan{}", tail(.stderr))]
    Exited { code: i32, stderr: String },
    #[error("the scan timed out after {}; raise daemon.task_timeout if the plugin is just slow", humantime::format_duration(*.0))]
    TimedOut(Duration),
    #[error("the scan was cancelled")]
    Cancelled,
    #[error("plugin protocol violation: {0}")]
    Protocol(String),
    #[error("refused to load the plugin: {0}")]
    Refused(#[source] LibraryError),
    #[error("cannot start the plugin worker: {0}; check that vigild can execute itself")]
    Spawn(#[source] std::io::Error),
}

fn tail(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(
            "; its last output on stderr: {}",
            stderr.replace('\n', " | ")
        )
    }
}

/// A cheap, cloneable handle that cancels a scan from any task.
#[derive(Debug, Clone)]
pub struct CancelHandle(CancellationToken);

impl CancelHandle {
    pub fn cancel(&self) {
        self.0.cancel();
    }
}

/// A scan in progress. Read events with [`next`](Self::next) (or as a `Stream`), then call
/// [`finish`](Self::finish). Dropping it cancels the scan.
pub struct RunningScan {
    info: PluginInfo,
    pid: u32,
    events: mpsc::Receiver<(ScanEvent, OwnedSemaphorePermit)>,
    outcome: oneshot::Receiver<ScanOutcome>,
    cancel: CancellationToken,
    guard: Option<DropGuard>,
}

impl std::fmt::Debug for RunningScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningScan")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl RunningScan {
    /// The plugin's name, version and volatile attributes, from its descriptor.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The worker's pid, which is also its process group id.
    pub fn worker_pid(&self) -> u32 {
        self.pid
    }

    /// Events waiting to be read (at most [`EVENT_CAPACITY`]).
    pub fn buffered(&self) -> usize {
        self.events.len()
    }

    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle(self.cancel.clone())
    }

    /// The next item or note; `None` once the scan has ended (see [`finish`](Self::finish)).
    pub async fn next(&mut self) -> Option<ScanEvent> {
        self.events.recv().await.map(|(ev, _permit)| ev)
    }

    /// Waits for the end of the scan, discarding events not read yet, and returns how it
    /// ended.
    pub async fn finish(mut self) -> ScanOutcome {
        while self.events.recv().await.is_some() {}
        let outcome = (&mut self.outcome).await;
        if let Some(g) = self.guard.take() {
            g.disarm();
        }
        outcome.unwrap_or_else(|_| {
            ScanOutcome::Failed(PluginFailure::Protocol(
                "the scan supervisor stopped unexpectedly".into(),
            ))
        })
    }
}

impl futures::Stream for RunningScan {
    type Item = ScanEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ScanEvent>> {
        self.events.poll_recv(cx).map(|o| o.map(|(ev, _permit)| ev))
    }
}

/// Checks the library, spawns the worker and waits until the plugin is loaded. A plugin that
/// cannot be loaded fails here with the same [`PluginFailure`] a scan would end with.
///
/// Call it from an async task, not from a short-lived thread: the worker asks the kernel to
/// kill it when the thread that spawned it exits (`PR_SET_PDEATHSIG` is per thread), which
/// is what makes it die with the daemon. Until the plugin's hello arrives only
/// `spec.timeout` and `spec.cancel` can stop a library that hangs while loading.
pub async fn start(worker: &WorkerCommand, spec: ScanSpec) -> Result<RunningScan, PluginFailure> {
    let library = library::check(&spec.library).map_err(PluginFailure::Refused)?;
    let deadline = spec.timeout.map(|t| Instant::now() + t);
    let mut cmd = Command::new(&worker.exe);
    cmd.arg("__worker")
        .arg(&library)
        .arg(&spec.root)
        .env(worker::PARENT_PID_ENV, std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(PluginFailure::Spawn)?;
    let pid = child.id().unwrap_or_default();
    let (Some(mut stdin), Some(stdout), Some(stderr_pipe)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(PluginFailure::Spawn(std::io::Error::other(
            "worker pipes missing",
        )));
    };
    let config = serde_json::to_vec(&spec.config).unwrap_or_else(|_| b"{}".to_vec());
    tokio::spawn(async move {
        // A worker that dies before reading its config shows up in its exit status.
        let _ = stdin.write_all(&config).await;
    });
    let tail = stderr::capture(stderr_pipe, spec.plugin.clone());

    let (tx, rx) = mpsc::channel(EVENT_CAPACITY);
    let (hello_tx, hello_rx) = oneshot::channel();
    let (outcome_tx, outcome_rx) = oneshot::channel();
    let driver = Driver {
        grace: worker.grace,
        timeout: spec.timeout,
        deadline,
        cancel: spec.cancel.clone(),
        tail,
    };
    let pump = Pump {
        tx,
        budget: Arc::new(Semaphore::new(BUFFER_BYTES)),
        hello: Some(hello_tx),
        form: spec.item_form,
        items: 0,
        notes: Vec::new(),
        dropped_notes: 0,
        error: None,
        done: None,
    };
    tokio::spawn(async move {
        let outcome = driver.run(child, stdout, pump).await;
        let _ = outcome_tx.send(outcome);
    });

    match hello_rx.await {
        Ok(info) => Ok(RunningScan {
            info,
            pid,
            events: rx,
            outcome: outcome_rx,
            guard: Some(spec.cancel.clone().drop_guard()),
            cancel: spec.cancel,
        }),
        Err(_) => match outcome_rx.await {
            Ok(ScanOutcome::Failed(f)) => Err(f),
            _ => Err(PluginFailure::Protocol(
                "the worker ended without saying hello".into(),
            )),
        },
    }
}

/// Why the driver stopped the worker early.
enum Stop {
    Cancelled,
    TimedOut,
    Protocol(String),
}

struct Driver {
    grace: Duration,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    cancel: CancellationToken,
    tail: StderrTail,
}

impl Driver {
    async fn run(self, mut child: Child, stdout: ChildStdout, mut pump: Pump) -> ScanOutcome {
        let pgid = child.id().map(|id| nix::unistd::Pid::from_raw(id as i32));
        let deadline = self.deadline;
        let expired = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        let mut status: Option<ExitStatus> = None;
        let mut pumped = false;
        let stop = {
            let running = pump.run(stdout);
            tokio::pin!(running);
            loop {
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => break Some(Stop::Cancelled),
                    _ = &mut expired => break Some(Stop::TimedOut),
                    end = &mut running, if !pumped => match end {
                        PumpEnd::Finished => {
                            pumped = true;
                            if status.is_some() { break None }
                        }
                        PumpEnd::Protocol(m) => break Some(Stop::Protocol(m)),
                        PumpEnd::ConsumerGone => break Some(Stop::Cancelled),
                    },
                    st = child.wait(), if status.is_none() => {
                        status = Some(st.unwrap_or_else(|_| ExitStatus::default()));
                        // The worker is gone: anything left in its group (a plugin's forks)
                        // goes too, which also closes the pipe so the reader sees its end.
                        kill_group(pgid, nix::sys::signal::Signal::SIGKILL);
                        if pumped { break None }
                    }
                }
            }
        };
        if stop.is_some() || status.is_none() {
            status = Some(self.terminate(&mut child, pgid, status).await);
        }
        let stderr = self.tail.finish().await;
        match stop {
            Some(Stop::Cancelled) => ScanOutcome::Failed(PluginFailure::Cancelled),
            Some(Stop::TimedOut) => {
                ScanOutcome::Failed(PluginFailure::TimedOut(self.timeout.unwrap_or_default()))
            }
            Some(Stop::Protocol(m)) => ScanOutcome::Failed(PluginFailure::Protocol(m)),
            None => judge(status, stderr, pump),
        }
    }

    /// SIGTERM to the group, the grace period, then SIGKILL; always reaps the worker.
    async fn terminate(
        &self,
        child: &mut Child,
        pgid: Option<nix::unistd::Pid>,
        status: Option<ExitStatus>,
    ) -> ExitStatus {
        if let Some(st) = status {
            kill_group(pgid, nix::sys::signal::Signal::SIGKILL);
            return st;
        }
        kill_group(pgid, nix::sys::signal::Signal::SIGTERM);
        let st = match tokio::time::timeout(self.grace, child.wait()).await {
            Ok(st) => st.ok(),
            Err(_) => None,
        };
        // Group members that ignored SIGTERM (or outlived the worker) die now. The reaped
        // leader's pgid stays reserved while any member is alive, so this cannot hit others.
        kill_group(pgid, nix::sys::signal::Signal::SIGKILL);
        match st {
            Some(st) => st,
            None => child.wait().await.unwrap_or_default(),
        }
    }
}

fn judge(status: Option<ExitStatus>, stderr: String, pump: Pump) -> ScanOutcome {
    use std::os::unix::process::ExitStatusExt;
    let status = status.unwrap_or_default();
    if let Some(sig) = status.signal() {
        let signal = nix::sys::signal::Signal::try_from(sig)
            .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_owned());
        return ScanOutcome::Failed(PluginFailure::Crashed { signal, stderr });
    }
    match status.code() {
        Some(0) => pump.outcome(),
        code => ScanOutcome::Failed(PluginFailure::Exited {
            code: code.unwrap_or(-1),
            stderr,
        }),
    }
}

fn kill_group(pgid: Option<nix::unistd::Pid>, sig: nix::sys::signal::Signal) {
    if let Some(pgid) = pgid {
        // ESRCH: the group is already empty.
        let _ = nix::sys::signal::killpg(pgid, sig);
    }
}
