//! Runs one queue task to its end: a scan runs the node's plugins one after the other through
//! the plugin supervisor and hands their items to the snapshot stage; an audit evaluates the
//! node's policies. The result says how it ended; the queue records it.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use chrono::NaiveDate;

use crate::config::Config;
use crate::drift::{self, DiffRules};
use crate::plugin::supervisor::{
    self, PluginFailure, ScanEvent, ScanOutcome, ScanSpec, WorkerCommand,
};
use crate::policy::Policy;
use crate::proto::{CheckRecord, FinalStatus, PluginDrift, PluginRun, QueueTask, QueueTaskKind};
use crate::snapshot::{self, SnapshotWriter};
use crate::store::Store;

/// Notes kept per plugin in the log row; more are counted in one last note.
pub(super) const MAX_NOTES_PER_PLUGIN: usize = 50;
/// Notes kept per plugin with the snapshot (shown in the drift report).
const MAX_STORED_NOTES: usize = 200;

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
    /// Killed because the daemon is stopping: not a terminal state, the task is requeued.
    pub interrupted: bool,
}

impl QueueTaskResult {
    pub fn changes(&self) -> u64 {
        self.drifts.iter().map(|d| d.changes.len() as u64).sum()
    }

    /// Fingerprint of the drift finding of this scan (none without changes).
    pub fn fingerprint(&self) -> Option<String> {
        drift::fingerprint(&self.drifts)
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
            interrupted: false,
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

    /// After `plugin` failed: if that was the task being stopped, records how (interrupted
    /// by the daemon stopping, or cancelled) and returns true; the task ends there.
    pub fn stopped_during(&mut self, stop: &Stop, plugin: &str) -> bool {
        if stop.shutdown.is_cancelled() {
            self.interrupted = true;
        } else if stop.cancel.is_cancelled() {
            self.status = FinalStatus::Cancelled;
            self.messages
                .push(format!("cancelled while running plugin {plugin}"));
        } else {
            return false;
        }
        true
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
}

pub async fn run(task: &QueueTask, env: &Env<'_>, stop: &Stop) -> QueueTaskResult {
    let config = env.config;
    let timeout = config.daemon.task_timeout;
    let deadline = Instant::now() + timeout;
    let Some(node) = config.node(&task.target) else {
        return QueueTaskResult::failed(format!(
            "node {:?} is no longer in the config; the task cannot run",
            task.target
        ));
    };
    match task.id.kind {
        QueueTaskKind::Scan => scan(task, env, &node.root, stop, deadline, timeout).await,
        QueueTaskKind::Audit => super::audit::audit(task, env, stop, deadline, timeout).await,
    }
}

async fn scan(
    task: &QueueTask,
    env: &Env<'_>,
    root: &std::path::Path,
    stop: &Stop,
    deadline: Instant,
    timeout: Duration,
) -> QueueTaskResult {
    let config = env.config;
    // The whole task belongs to the day it started, even if it runs past midnight.
    let day = snapshot::today(config.daemon.tz());
    let names: Vec<String> = match &task.plugins {
        Some(list) => list.clone(),
        None => config.plugins.iter().map(|p| p.name.clone()).collect(),
    };
    let mut result = QueueTaskResult::empty(FinalStatus::Finished);
    for name in names {
        let mut run = PluginRun {
            plugin: name.clone(),
            items: 0,
            notes: Vec::new(),
            error: None,
        };
        let outcome = match config.plugin(&name) {
            None => Err(Failure::Other(format!(
                "plugin {name:?} is no longer in the config"
            ))),
            Some(plugin) => {
                let mut spec =
                    ScanSpec::new(&name, plugin.library_path(&config.daemon.plugin_dir), root);
                spec.config = serde_json::to_value(&plugin.config).unwrap_or_default();
                spec.timeout = Some(deadline.saturating_duration_since(Instant::now()));
                spec.cancel = stop.cancel.child_token();
                let target = Target {
                    task,
                    day,
                    rules: DiffRules::for_plugin(plugin),
                };
                match scan_one(env, spec, &target, &mut run).await {
                    Ok(drift) => {
                        result.drifts.push(drift);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        result.items += run.items;
        if let Err(failure) = outcome {
            if result.stopped_during(stop, &name) {
                result.plugins.push(run);
                return result;
            }
            let message = failure.message(&name, timeout);
            result.status = FinalStatus::Failed;
            result.messages.push(message.clone());
            run.error = Some(message);
            let timed_out = Instant::now() >= deadline;
            result.plugins.push(run);
            if timed_out {
                // The task's time is used up: the remaining plugins cannot run either.
                break;
            }
            continue;
        }
        result.plugins.push(run);
    }
    result
}

/// Where one plugin's snapshot goes.
struct Target<'a> {
    task: &'a QueueTask,
    day: NaiveDate,
    rules: DiffRules,
}

/// Runs one plugin, streaming its items into the node's snapshot of the day; on success
/// commits the snapshot and returns its drift. `Err` is the failure message; a failed plugin
/// leaves the day's earlier snapshot (if any) in place.
async fn scan_one(
    env: &Env<'_>,
    spec: ScanSpec,
    target: &Target<'_>,
    run: &mut PluginRun,
) -> Result<PluginDrift, Failure> {
    let plugin = spec.plugin.clone();
    let mut scan = supervisor::start(env.worker, spec).await?;
    let volatile = scan.info().volatile_attributes.clone();
    let mut writer =
        SnapshotWriter::new(env.store.clone(), &target.task.target, &plugin, target.day);
    while let Some(event) = scan.next().await {
        match event {
            ScanEvent::Item(item) => {
                if let Err(e) = writer.push(item).await {
                    // Dropping the scan kills its worker.
                    drop(scan);
                    return Err(Failure::Other(e.to_string()));
                }
                run.items += 1;
            }
            // The outcome keeps the notes and unseen records (bounded) and counts the ones it
            // did not keep.
            ScanEvent::ItemJson(_) | ScanEvent::Note(_) | ScanEvent::Unseen { .. } => {}
        }
    }
    let (mut notes, more) = match scan.finish().await {
        ScanOutcome::Failed(e) => return Err(e.into()),
        ScanOutcome::Succeeded {
            mut notes,
            more_notes,
            unseen,
            more_unseen,
            ..
        } => {
            // For now what could not be seen is one more coverage note.
            notes.extend(unseen.iter().map(unseen_note));
            (notes, more_notes + more_unseen)
        }
    };
    let all_notes = notes.len() as u64 + more;
    run.notes = notes.iter().take(MAX_NOTES_PER_PLUGIN).cloned().collect();
    if all_notes > MAX_NOTES_PER_PLUGIN as u64 {
        run.notes.push(more_notes(all_notes, MAX_NOTES_PER_PLUGIN));
    }
    // What the scan could not see is never dropped silently: the snapshot keeps the first
    // notes and says how many more there were.
    notes.truncate(MAX_STORED_NOTES);
    if all_notes > notes.len() as u64 {
        let kept = notes.len();
        notes.push(more_notes(all_notes, kept));
    }
    // Durable with the task's end, which the queue commits next.
    writer
        .commit_with_task(target.task.id, notes, volatile, target.rules.clone())
        .await
        .map_err(|e| Failure::Other(format!("cannot store the snapshot: {e}")))
}

/// `not seen: /etc/ssl/private (permission denied)`: an unseen record as a coverage note.
pub(super) fn unseen_note(u: &supervisor::Unseen) -> String {
    format!("not seen: {} ({})", u.key, u.reason)
}

/// `… and 4800 more notes (5000 in all)`: the line that stands for the notes not kept.
fn more_notes(all: u64, kept: usize) -> String {
    format!("… and {} more notes ({all} in all)", all - kept as u64)
}
