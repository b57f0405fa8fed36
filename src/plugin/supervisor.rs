//! Daemon side of a plugin scan: spawns the worker, streams its items, and always ends with a
//! typed [`ScanOutcome`].
//!
//! The worker runs in its own process group; cancel, timeout and protocol violations kill the
//! whole group (SIGTERM, a grace period, SIGKILL) and the worker is always reaped, after the
//! last signal to its group (so the group id cannot have been reused). A worker that dies
//! mid-frame is reported by its exit status (`crashed with SIGSEGV`), not as the truncated
//! frame it left behind. Items flow
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

use super::frame;
pub use super::frame::PluginInfo;
use super::library;
use super::pump::{Pump, PumpEnd};
pub use super::scan::{
    ItemForm, PluginFailure, ScanEvent, ScanOutcome, Unseen, BUFFER_BYTES, EVENT_CAPACITY,
    MAX_NOTES, MAX_NOTES_BYTES, MAX_NOTE_BYTES,
};
use super::stderr::{self, StderrTail};

/// Environment variable naming the `vigil-worker` binary, overriding where vigild looks.
pub const WORKER_ENV: &str = "VIGIL_WORKER";

/// Environment variable carrying the daemon's pid, so a local worker can tell whether its
/// parent died before `PR_SET_PDEATHSIG` took effect (read by `vigil-worker`).
pub const PARENT_PID_ENV: &str = "VIGIL_WORKER_PARENT";

/// The whole `PATH` of a local worker, whose environment is otherwise empty.
pub const WORKER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How to start a worker: the `vigil-worker` executable and the grace period between SIGTERM
/// and SIGKILL.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub exe: PathBuf,
    pub grace: Duration,
    /// SSH sessions open at once, for remote nodes.
    pub sessions: Arc<super::ssh::SessionLimit>,
}

impl WorkerCommand {
    pub fn new(exe: impl Into<PathBuf>) -> Self {
        WorkerCommand {
            exe: exe.into(),
            grace: Duration::from_secs(2),
            sessions: Arc::default(),
        }
    }

    /// Where vigild finds `vigil-worker`: `$VIGIL_WORKER` if set, else beside the running
    /// executable (a build tree: `target/*/vigil-worker`), else `../libexec/vigil/` from the
    /// executable's directory (the package: `/usr/libexec/vigil/vigil-worker`).
    pub fn locate() -> std::io::Result<Self> {
        if let Some(path) = std::env::var_os(WORKER_ENV) {
            return Ok(Self::new(path));
        }
        let exe = std::env::current_exe()?;
        let dir = exe.parent().unwrap_or(std::path::Path::new("/"));
        let beside = dir.join("vigil-worker");
        let libexec = dir.join("../libexec/vigil/vigil-worker");
        if beside.is_file() {
            Ok(Self::new(beside))
        } else if libexec.is_file() {
            Ok(Self::new(libexec))
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "vigil-worker is neither at {} nor at {}; install it (it is built with \
                     `cargo build --workspace`) or name it in ${WORKER_ENV}",
                    beside.display(),
                    libexec.display()
                ),
            ))
        }
    }
}

/// One scan to run.
#[derive(Debug, Clone)]
pub struct ScanSpec {
    /// The plugin's configured name (for logs, and for the worker: it picks the capabilities
    /// the plugin keeps, see `worker/src/caps.rs`).
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
    /// Run the plugin on a remote node, through its queue task's channel, instead of locally.
    pub remote: Option<super::remote::RemoteWorker>,
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
            remote: None,
        }
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
    /// A scan whose events and outcome another driver produces (a remote one).
    pub(super) fn assemble(
        info: PluginInfo,
        pid: u32,
        events: mpsc::Receiver<(ScanEvent, OwnedSemaphorePermit)>,
        outcome: oneshot::Receiver<ScanOutcome>,
        cancel: CancellationToken,
    ) -> RunningScan {
        RunningScan {
            info,
            pid,
            events,
            outcome,
            guard: Some(cancel.clone().drop_guard()),
            cancel,
        }
    }

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

    /// The next item, note or unseen record; `None` once the scan has ended (see [`finish`](Self::finish)).
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
pub async fn start(
    worker: &WorkerCommand,
    mut spec: ScanSpec,
) -> Result<RunningScan, PluginFailure> {
    if let Some(remote) = spec.remote.take() {
        return super::remote::start(spec, remote).await;
    }
    let deadline = spec.timeout.map(|t| Instant::now() + t);
    let library = library::check(&spec.library).map_err(PluginFailure::Refused)?;
    let mut cmd = Command::new(&worker.exe);
    // A plugin gets nothing of the daemon's environment (NOTIFY_SOCKET, credentials of the
    // unit, RUST_LOG, …): a fixed PATH and the parent's pid only. The plugin's name picks
    // the capabilities the worker keeps for it.
    cmd.arg(&library)
        .arg(&spec.root)
        .arg(&spec.plugin)
        .env_clear()
        .env("PATH", WORKER_PATH)
        .env(PARENT_PID_ENV, std::process::id().to_string());
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| PluginFailure::Spawn(worker.exe.display().to_string(), e))?;
    let pid = child.id().unwrap_or_default();
    let (Some(mut stdin), Some(stdout), Some(stderr_pipe)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(PluginFailure::Spawn(
            "the worker".into(),
            std::io::Error::other("worker pipes missing"),
        ));
    };
    let config = serde_json::to_vec(&spec.config).unwrap_or_else(|_| b"{}".to_vec());
    let mut config_frame = Vec::with_capacity(config.len() + frame::HEADER_LEN);
    if let Err(e) = frame::write_frame(&mut config_frame, frame::Tag::Config, &config) {
        return Err(PluginFailure::Protocol(format!(
            "the plugin config cannot be sent: {e}"
        )));
    }
    // The worker's stdin stays open until the scan ends: its end tells the worker (and, over
    // SSH, the remote worker) to kill itself and its plugin.
    let hold = CancellationToken::new();
    let release = hold.clone();
    tokio::spawn(async move {
        // A worker that dies before reading its config shows up in its exit status.
        let _ = stdin.write_all(&config_frame).await;
        let _ = stdin.flush().await;
        release.cancelled().await;
        drop(stdin);
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
        _hold: hold.drop_guard(),
    };
    let pump = Pump {
        tx,
        budget: Arc::new(Semaphore::new(BUFFER_BYTES)),
        greeted: false,
        hello: Some(hello_tx),
        form: spec.item_form,
        items: 0,
        notes: Vec::new(),
        notes_bytes: 0,
        dropped_notes: 0,
        unseen: Vec::new(),
        unseen_bytes: 0,
        unseen_seen: 0,
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
    /// The worker's hello names another protocol or wire.
    Incompatible(String),
    /// The frame stream broke off; the worker's exit status decides what to report.
    Broken(String),
}

/// How long a broken frame stream waits for the worker's exit status before it is reported
/// as a protocol violation. A worker that died mid-frame is gone within microseconds of its
/// pipe closing; this only bounds the wait for one that closed the pipe and lives on.
const BROKEN_STREAM_WAIT: Duration = Duration::from_secs(2);

struct Driver {
    grace: Duration,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    cancel: CancellationToken,
    tail: StderrTail,
    /// Closes the worker's stdin when the driver is done.
    _hold: DropGuard,
}

impl Driver {
    async fn run(self, mut child: Child, stdout: ChildStdout, mut pump: Pump) -> ScanOutcome {
        let pid = child.id().unwrap_or_default();
        let pgid = nix::unistd::Pid::from_raw(pid as i32);
        let mut exit = ExitWatch::new(pid);
        let deadline = self.deadline;
        let expired = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        let mut exited = false;
        let mut pumped = false;
        let stop = {
            let mut reader = tokio::io::BufReader::with_capacity(256 << 10, stdout);
            let running = pump.run(&mut reader);
            tokio::pin!(running);
            loop {
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => break Some(Stop::Cancelled),
                    _ = &mut expired => break Some(Stop::TimedOut),
                    end = &mut running, if !pumped => match end {
                        PumpEnd::Finished => {
                            pumped = true;
                            if exited { break None }
                        }
                        PumpEnd::Protocol(m) | PumpEnd::Violation(m) => break Some(Stop::Protocol(m)),
                        PumpEnd::Exit(_) => break Some(Stop::Protocol("an exit frame from a one-plugin worker".into())),
                        PumpEnd::Incompatible(m) => break Some(Stop::Incompatible(m)),
                        PumpEnd::Broken(m) => break Some(Stop::Broken(m)),
                        PumpEnd::ConsumerGone => break Some(Stop::Cancelled),
                    },
                    _ = exit.exited(), if !exited => {
                        exited = true;
                        // The worker is dead but not reaped, so its group id cannot have been
                        // reused: anything left in the group (a plugin's forks) goes now,
                        // which also closes the pipe so the reader sees its end.
                        kill_group(pgid, nix::sys::signal::Signal::SIGKILL);
                        if pumped { break None }
                    }
                }
            }
        };
        if let Some(Stop::Broken(_)) = &stop {
            // Most likely the worker died mid-frame: its status says how, and is a better
            // reason than "truncated frame". Wait for it, boundedly.
            if !exited {
                exited = tokio::time::timeout(BROKEN_STREAM_WAIT, exit.exited())
                    .await
                    .is_ok();
            }
        }
        let status = self.terminate(&mut child, pgid, &mut exit, exited).await;
        let stderr = self.tail.finish().await;
        match stop {
            Some(Stop::Cancelled) => ScanOutcome::Failed(PluginFailure::Cancelled),
            Some(Stop::TimedOut) => {
                ScanOutcome::Failed(PluginFailure::TimedOut(self.timeout.unwrap_or_default()))
            }
            Some(Stop::Protocol(m)) => ScanOutcome::Failed(PluginFailure::Protocol(m)),
            Some(Stop::Incompatible(m)) => ScanOutcome::Failed(PluginFailure::Incompatible(m)),
            // Exited on its own within the wait: the status explains the broken stream.
            // Killed by us after the wait: the broken stream is all there is to say.
            Some(Stop::Broken(m)) => match died_of(status, stderr) {
                Some(failure) if exited => ScanOutcome::Failed(failure),
                _ => ScanOutcome::Failed(PluginFailure::Protocol(m)),
            },
            None => match died_of(status, stderr) {
                Some(failure) => ScanOutcome::Failed(failure),
                None => pump.outcome(),
            },
        }
    }

    /// Ends the worker and its group and reaps it. A worker still running gets SIGTERM (to
    /// the group), the grace period, then SIGKILL. The group is always signalled while the
    /// worker is unreaped, so the group id cannot belong to anyone else yet.
    async fn terminate(
        &self,
        child: &mut Child,
        pgid: nix::unistd::Pid,
        exit: &mut ExitWatch,
        exited: bool,
    ) -> ExitStatus {
        if !exited {
            kill_group(pgid, nix::sys::signal::Signal::SIGTERM);
            let _ = tokio::time::timeout(self.grace, exit.exited()).await;
        }
        // Group members that ignored SIGTERM (or outlived the worker) die now.
        kill_group(pgid, nix::sys::signal::Signal::SIGKILL);
        child.wait().await.unwrap_or_default()
    }
}

/// Tells when the worker has exited without reaping it (a pidfd turns readable when its
/// process becomes a zombie). Until `Child::wait` reaps the worker its pid, which is also
/// its process group id, stays taken, so `killpg` cannot reach a process that reused it.
enum ExitWatch {
    Pidfd(tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>),
    /// No pidfd (Linux < 5.3): `waitid(WEXITED | WNOWAIT)` on a blocking thread.
    Blocking(Option<tokio::task::JoinHandle<()>>),
}

impl ExitWatch {
    fn new(pid: u32) -> ExitWatch {
        match pidfd_open(pid) {
            Ok(fd) => ExitWatch::Pidfd(fd),
            Err(_) => ExitWatch::Blocking(Some(tokio::task::spawn_blocking(move || {
                use nix::sys::wait::{waitid, Id, WaitPidFlag};
                let pid = nix::unistd::Pid::from_raw(pid as i32);
                while let Err(nix::errno::Errno::EINTR) =
                    waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
                {
                }
            }))),
        }
    }

    /// Resolves once the worker has exited (at once on every later call). Cancel-safe.
    async fn exited(&mut self) {
        match self {
            // Readiness is never cleared: once exited, always exited.
            ExitWatch::Pidfd(fd) => drop(fd.readable().await),
            ExitWatch::Blocking(handle) => {
                if let Some(h) = handle {
                    let _ = h.await;
                    *handle = None;
                }
            }
        }
    }
}

fn pidfd_open(pid: u32) -> std::io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same until it is dropped.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// The failure a worker's exit status shows, if any: a signal is a crash, a non-zero code an
/// early exit. `None` for a clean exit, where the frames decide.
fn died_of(status: ExitStatus, stderr: String) -> Option<PluginFailure> {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        let signal = nix::sys::signal::Signal::try_from(sig)
            .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_owned());
        return Some(PluginFailure::Crashed { signal, stderr });
    }
    match status.code() {
        Some(0) => None,
        code => Some(PluginFailure::Exited {
            code: code.unwrap_or(-1),
            stderr,
        }),
    }
}

fn kill_group(pgid: nix::unistd::Pid, sig: nix::sys::signal::Signal) {
    // Pid 0 would be our own group: never signal that.
    if pgid.as_raw() > 0 {
        // ESRCH: the group is already empty.
        let _ = nix::sys::signal::killpg(pgid, sig);
    }
}

/// Marks every descriptor this process inherited close-on-exec, so a plugin worker gets its
/// three pipes and nothing else: no descriptor that whoever started vigild leaked without
/// close-on-exec. Call once at start, before any worker is spawned (descriptors vigild opens
/// itself are close-on-exec already). Done here rather than between fork and exec because
/// a `pre_exec` hook would force a full `fork` of the daemon for every worker instead of
/// the much cheaper `posix_spawn`.
pub fn seal_inherited_fds() {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: plain fd syscalls; setting FD_CLOEXEC changes nothing for this process.
    unsafe {
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) == 0 {
            return;
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .filter(|&fd| fd > 2)
            .collect();
        for fd in fds {
            // SAFETY: as above; a descriptor that closed meanwhile just fails with EBADF.
            unsafe {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
}
