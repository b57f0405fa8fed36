//! The daemon's end of a remote queue task's channel: one `vigil-worker --serve` on the node,
//! reached through the stdin and stdout of the task's ControlMaster `ssh` (see
//! [`super::ssh::Session`]), runs the task's plugins one after the other. Each plugin is a
//! [`RunningScan`] like a local one — same pump, caps, events and outcome — driven here
//! instead of by a worker process of its own.
//!
//! A plugin ends with its done (or violation) frame and the exit frame that follows it; the
//! channel is then ready for the next plugin. A plugin stopped early (cancel, timeout, a
//! consumer that went away, a stream vigild cannot follow) breaks the channel off: its stdin
//! closes, which makes the worker on the node kill itself and its plugin, and the plugins
//! after it fail with the reason instead of running.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot, OwnedMutexGuard, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::frame::{self, ExitKind, Frame, Tag};
use super::pump::{Pump, PumpEnd};
use super::scan::{PluginFailure, ScanOutcome, BUFFER_BYTES, EVENT_CAPACITY};
use super::ssh::failure::{classify, clean, RemoteFailure};
use super::supervisor::{RunningScan, ScanSpec};

/// Bytes of the node's stderr (ssh's, the shell's, sudo's and the plugins') kept.
const STDERR_KEPT: usize = 64 << 10;
/// Bytes of it quoted in a failure message.
const STDERR_QUOTED: usize = 2048;
/// Lines of it logged per task.
const STDERR_LOGGED: usize = 1000;
/// How long a failure waits for the last of the node's stderr (it travels beside the frames,
/// not in order with them).
const STDERR_SETTLE: Duration = Duration::from_millis(100);
/// How long a lost channel waits for ssh's exit status and last words.
const LOST_WAIT: Duration = Duration::from_secs(5);

/// A plugin to run on a node: the task's channel and the library's path there.
#[derive(Clone)]
pub struct RemoteWorker {
    pub channel: Arc<tokio::sync::Mutex<Channel>>,
    pub library: String,
}

impl std::fmt::Debug for RemoteWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWorker")
            .field("library", &self.library)
            .finish_non_exhaustive()
    }
}

/// The master `ssh` and its pipes: its own session on the node answered the probe and then
/// waits for `run`, which turns it into the serving worker.
pub struct Channel {
    pub(super) master: Child,
    stdin: Option<ChildStdin>,
    reader: BufReader<ChildStdout>,
    stderr: Arc<NodeStderr>,
    started: bool,
    /// Why no more plugins can run over this channel.
    broken: Option<RemoteFailure>,
    /// Setting up the worker (the `run` line to its hello) takes at most this long.
    setup: Duration,
}

impl Channel {
    pub(super) fn new(
        master: Child,
        stdin: ChildStdin,
        reader: BufReader<ChildStdout>,
        stderr: Arc<NodeStderr>,
        setup: Duration,
    ) -> Channel {
        Channel {
            master,
            stdin: Some(stdin),
            reader,
            stderr,
            started: false,
            broken: None,
            setup,
        }
    }

    /// Ends the session on the node: its stdin closes, so the worker (or the probe waiting
    /// for `run`) ends, and with it the master's own session.
    pub(super) fn close_input(&mut self) {
        self.stdin.take();
    }

    fn break_off(&mut self, why: RemoteFailure) {
        self.close_input();
        self.broken.get_or_insert(why);
    }

    /// Turns the probe's shell into the worker and reads its hello.
    async fn start(
        &mut self,
        deadline: Option<Instant>,
        cancel: &CancellationToken,
    ) -> Result<(), PluginFailure> {
        self.started = true;
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.fail(lost("the session was closed")));
        };
        if stdin.write_all(b"run\n").await.is_err() || stdin.flush().await.is_err() {
            let why = self.lost(false).await;
            return Err(self.fail(why));
        }
        let limit = Instant::now() + self.setup;
        let limit = deadline.map_or(limit, |d| d.min(limit));
        let read = tokio::select! {
            _ = cancel.cancelled() => {
                self.break_off(lost("the scan was cancelled"));
                return Err(PluginFailure::Cancelled);
            }
            r = tokio::time::timeout_at(limit, frame::read_frame(&mut self.reader)) => r,
        };
        match read {
            Err(_) => {
                let why = RemoteFailure::SetupTimedOut(self.setup);
                Err(self.fail(why))
            }
            Ok(Ok(Some(Frame::Worker(hello)))) => match hello.check() {
                Ok(()) => Ok(()),
                Err(why) => {
                    self.break_off(RemoteFailure::WorkerIncompatible(why.clone()));
                    Err(PluginFailure::Incompatible(why))
                }
            },
            Ok(Ok(None)) | Ok(Err(frame::FrameError::Io(_))) => {
                let why = self.lost(false).await;
                Err(self.fail(why))
            }
            Ok(Ok(Some(other))) => {
                let mut shown = format!("{other:?}");
                shown.truncate(120);
                self.break_off(lost("the worker did not greet"));
                Err(PluginFailure::Protocol(super::pump::not_greeted(&shown)))
            }
            Ok(Err(e)) => {
                self.break_off(lost("the worker did not greet"));
                Err(PluginFailure::Protocol(super::pump::not_greeted(
                    &e.to_string(),
                )))
            }
        }
    }

    fn fail(&mut self, why: RemoteFailure) -> PluginFailure {
        self.break_off(why.clone());
        PluginFailure::Remote(why)
    }

    /// Why the channel ended: ssh's exit status and stderr, once it has gone.
    async fn lost(&mut self, greeted: bool) -> RemoteFailure {
        self.close_input();
        let code = tokio::time::timeout(LOST_WAIT, self.master.wait())
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|s| s.code());
        self.stderr.ended(LOST_WAIT).await;
        let text = self.stderr.text(0);
        classify(code.or(Some(255)), &text, greeted).unwrap_or_else(|| {
            RemoteFailure::ConnectionLost(clean(
                text.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("the SSH channel closed"),
            ))
        })
    }
}

fn lost(why: &str) -> RemoteFailure {
    RemoteFailure::ConnectionLost(format!("{why}; the task's later plugins cannot run"))
}

/// Sends the plugin's run frame and waits for its hello, as `supervisor::start` does for a
/// local worker.
pub(super) async fn start(
    spec: ScanSpec,
    remote: RemoteWorker,
) -> Result<RunningScan, PluginFailure> {
    let deadline = spec.timeout.map(|t| Instant::now() + t);
    let mut ch = remote.channel.lock_owned().await;
    if !ch.started {
        ch.start(deadline, &spec.cancel).await?;
    }
    if let Some(why) = &ch.broken {
        return Err(PluginFailure::Remote(why.clone()));
    }
    let config = serde_json::to_vec(&spec.config).unwrap_or_else(|_| b"{}".to_vec());
    let mut run = Vec::new();
    if let Err(e) = frame::write_frame(
        &mut run,
        Tag::Run,
        &frame::run_payload(spec.plugin.as_bytes(), remote.library.as_bytes(), &config),
    ) {
        return Err(PluginFailure::Protocol(format!(
            "the plugin config cannot be sent: {e}"
        )));
    }
    let sent = match ch.stdin.as_mut() {
        Some(stdin) => stdin.write_all(&run).await.is_ok() && stdin.flush().await.is_ok(),
        None => false,
    };
    if !sent {
        let why = ch.lost(true).await;
        return Err(ch.fail(why));
    }
    let mark = ch.stderr.mark();
    let pid = ch.master.id().unwrap_or_default();
    let (tx, rx) = mpsc::channel(EVENT_CAPACITY);
    let (hello_tx, hello_rx) = oneshot::channel();
    let (outcome_tx, outcome_rx) = oneshot::channel();
    let pump = Pump {
        tx,
        budget: Arc::new(Semaphore::new(BUFFER_BYTES)),
        // The worker greeted once, for the whole channel.
        greeted: true,
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
    let drive = Drive {
        cancel: spec.cancel.clone(),
        deadline,
        timeout: spec.timeout.unwrap_or_default(),
        mark,
    };
    tokio::spawn(async move {
        let outcome = drive.run(ch, pump).await;
        let _ = outcome_tx.send(outcome);
    });
    match hello_rx.await {
        Ok(info) => Ok(RunningScan::assemble(
            info,
            pid,
            rx,
            outcome_rx,
            spec.cancel,
        )),
        Err(_) => match outcome_rx.await {
            Ok(ScanOutcome::Failed(f)) => Err(f),
            _ => Err(PluginFailure::Protocol(
                "the plugin ended without saying hello".into(),
            )),
        },
    }
}

struct Drive {
    cancel: CancellationToken,
    deadline: Option<Instant>,
    timeout: Duration,
    /// Where this plugin's part of the node's stderr starts.
    mark: u64,
}

enum End {
    Pump(PumpEnd),
    Cancelled,
    TimedOut,
}

impl Drive {
    async fn run(self, mut ch: OwnedMutexGuard<Channel>, mut pump: Pump) -> ScanOutcome {
        let end = self.until(pump.run(&mut ch.reader)).await;
        let failed = |f| ScanOutcome::Failed(f);
        match end {
            End::Cancelled => {
                ch.break_off(lost("a plugin was cancelled"));
                failed(PluginFailure::Cancelled)
            }
            End::TimedOut => {
                ch.break_off(lost("a plugin timed out"));
                failed(PluginFailure::TimedOut(self.timeout))
            }
            End::Pump(PumpEnd::Finished) if pump.done.is_none() => {
                let why = ch.lost(true).await;
                failed(ch.fail(why))
            }
            End::Pump(PumpEnd::Finished) => match self.exit(&mut ch).await {
                Ok(ExitKind::Code(0)) => pump.outcome(),
                Ok(kind) => failed(self.died(&ch, kind).await),
                Err(f) => failed(f),
            },
            End::Pump(PumpEnd::Violation(m)) => match self.exit(&mut ch).await {
                Ok(_) => failed(PluginFailure::Protocol(m)),
                Err(f) => failed(f),
            },
            End::Pump(PumpEnd::Exit(ExitKind::Code(0))) => pump.outcome(),
            End::Pump(PumpEnd::Exit(kind)) => failed(self.died(&ch, kind).await),
            End::Pump(PumpEnd::Broken(_)) => {
                // The node relays whole frames only: a frame cut short is the channel's end.
                let why = ch.lost(true).await;
                failed(ch.fail(why))
            }
            End::Pump(PumpEnd::Protocol(m)) => {
                ch.break_off(lost("the previous plugin broke the protocol"));
                failed(PluginFailure::Protocol(m))
            }
            End::Pump(PumpEnd::Incompatible(m)) => {
                ch.break_off(RemoteFailure::WorkerIncompatible(m.clone()));
                failed(PluginFailure::Incompatible(m))
            }
            End::Pump(PumpEnd::ConsumerGone) => {
                ch.break_off(lost("a plugin's scan was stopped"));
                failed(PluginFailure::Cancelled)
            }
        }
    }

    /// Runs `work` until it ends, the scan is cancelled or its time is up.
    async fn until(&self, work: impl std::future::Future<Output = PumpEnd>) -> End {
        let deadline = self.deadline;
        let expired = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => End::Cancelled,
            _ = expired => End::TimedOut,
            end = work => End::Pump(end),
        }
    }

    /// Reads the exit frame that follows a plugin's last frame.
    async fn exit(&self, ch: &mut Channel) -> Result<ExitKind, PluginFailure> {
        let read = async {
            match frame::read_frame(&mut ch.reader).await {
                Ok(Some(Frame::Exit(kind))) => PumpEnd::Exit(kind),
                Ok(None) | Err(frame::FrameError::Io(_) | frame::FrameError::Truncated { .. }) => {
                    PumpEnd::Finished
                }
                Ok(Some(other)) => PumpEnd::Protocol(format!(
                    "expected the plugin's exit frame, got {:?}",
                    other_tag(&other)
                )),
                Err(e) => PumpEnd::Protocol(e.to_string()),
            }
        };
        match self.until(read).await {
            End::Pump(PumpEnd::Exit(kind)) => Ok(kind),
            End::Pump(PumpEnd::Protocol(m)) => {
                ch.break_off(lost("the worker broke the protocol"));
                Err(PluginFailure::Protocol(m))
            }
            End::Pump(_) => {
                let why = ch.lost(true).await;
                Err(ch.fail(why))
            }
            End::Cancelled => {
                ch.break_off(lost("a plugin was cancelled"));
                Err(PluginFailure::Cancelled)
            }
            End::TimedOut => {
                ch.break_off(lost("a plugin timed out"));
                Err(PluginFailure::TimedOut(self.timeout))
            }
        }
    }

    /// The failure of a plugin process that ended badly, with its part of the node's stderr.
    async fn died(&self, ch: &Channel, kind: ExitKind) -> PluginFailure {
        tokio::time::sleep(STDERR_SETTLE).await;
        let stderr = ch.stderr.text(self.mark);
        match kind {
            ExitKind::Signal(sig) => PluginFailure::Crashed {
                signal: nix::sys::signal::Signal::try_from(sig)
                    .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_owned()),
                stderr,
            },
            ExitKind::Code(code) => PluginFailure::Exited { code, stderr },
        }
    }
}

fn other_tag(f: &Frame) -> &'static str {
    match f {
        Frame::Worker(_) => "a worker hello",
        Frame::Hello(_) => "a plugin hello",
        Frame::Item(_) => "an item",
        Frame::Note(_) => "a note",
        Frame::Error(_) => "an error",
        Frame::Done { .. } => "a done frame",
        Frame::Violation(_) => "a violation",
        Frame::Unseen(_) => "an unseen record",
        Frame::Config(_) => "a config frame",
        Frame::Run { .. } => "a run frame",
        Frame::Exit(_) => "an exit frame",
    }
}

/// What the node writes on the master's stderr, for the whole task: logged line by line
/// (bounded), the last [`STDERR_KEPT`] bytes kept for failure messages.
pub(super) struct NodeStderr {
    kept: Mutex<(Vec<u8>, u64)>,
    done: AtomicBool,
    changed: tokio::sync::Notify,
}

impl NodeStderr {
    /// Starts reading `pipe` in a task; `label` names the task in the log.
    pub(super) fn capture(pipe: ChildStderr, label: String) -> Arc<NodeStderr> {
        let me = Arc::new(NodeStderr {
            kept: Mutex::new((Vec::new(), 0)),
            done: AtomicBool::new(false),
            changed: tokio::sync::Notify::new(),
        });
        let shared = me.clone();
        tokio::spawn(async move {
            let mut pipe = pipe;
            let mut buf = vec![0u8; 16 << 10];
            let mut logged = 0usize;
            loop {
                let n = match pipe.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                for line in String::from_utf8_lossy(&buf[..n]).lines() {
                    if logged < STDERR_LOGGED && !line.trim().is_empty() {
                        tracing::info!(task = label, "node stderr: {}", clean(line));
                        logged += 1;
                    }
                }
                let mut kept = shared.kept.lock().unwrap_or_else(|e| e.into_inner());
                kept.0.extend_from_slice(&buf[..n]);
                kept.1 += n as u64;
                if kept.0.len() > STDERR_KEPT {
                    let cut = kept.0.len() - STDERR_KEPT;
                    kept.0.drain(..cut);
                }
                drop(kept);
                shared.changed.notify_waiters();
            }
            shared.done.store(true, Ordering::SeqCst);
            shared.changed.notify_waiters();
        });
        me
    }

    /// Bytes seen so far: where a plugin's part starts.
    fn mark(&self) -> u64 {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// The text since `mark` (what of it is still kept), its last [`STDERR_QUOTED`] bytes.
    pub(super) fn text(&self, mark: u64) -> String {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let start_of_kept = kept.1 - kept.0.len() as u64;
        let from = mark.saturating_sub(start_of_kept) as usize;
        let part = &kept.0[from.min(kept.0.len())..];
        let part = &part[part.len().saturating_sub(STDERR_QUOTED)..];
        String::from_utf8_lossy(part).trim().to_owned()
    }

    /// Waits, at most `limit`, for the pipe to end (ssh has exited).
    pub(super) async fn ended(&self, limit: Duration) {
        let until = Instant::now() + limit;
        while !self.done.load(Ordering::SeqCst) {
            let changed = self.changed.notified();
            if self.done.load(Ordering::SeqCst) {
                break;
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                break;
            }
        }
    }
}
