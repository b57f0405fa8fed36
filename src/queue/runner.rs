//! Runs one queue task to its end: a scan runs the node's plugins one after the other through
//! the plugin supervisor and hands their items to the snapshot stage; an audit evaluates the
//! node's policies. The result says how it ended; the queue records it.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::plugin::supervisor::{
    self, PluginFailure, ScanEvent, ScanOutcome, ScanSpec, WorkerCommand,
};
use crate::proto::{FinalStatus, PluginRun, QueueTask, TaskKind};

/// Notes kept per plugin in the log row; more are counted in one last note.
const MAX_NOTES_PER_PLUGIN: usize = 50;

/// How a task ended.
#[derive(Debug)]
pub struct TaskResult {
    pub status: FinalStatus,
    pub messages: Vec<String>,
    pub items: u64,
    pub plugins: Vec<PluginRun>,
    /// Killed because the daemon is stopping: not a terminal state, the task is requeued.
    pub interrupted: bool,
}

impl TaskResult {
    fn failed(message: String) -> Self {
        TaskResult {
            status: FinalStatus::Failed,
            messages: vec![message],
            items: 0,
            plugins: Vec::new(),
            interrupted: false,
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

pub async fn run(
    task: &QueueTask,
    config: &Config,
    worker: &WorkerCommand,
    stop: &Stop,
) -> TaskResult {
    let timeout = config.daemon.task_timeout;
    let deadline = Instant::now() + timeout;
    let Some(node) = config.node(&task.target) else {
        return TaskResult::failed(format!(
            "node {:?} is no longer in the config; the task cannot run",
            task.target
        ));
    };
    match task.id.kind {
        TaskKind::Scan => scan(task, config, &node.root, worker, stop, deadline, timeout).await,
        TaskKind::Audit => audit(task),
    }
}

async fn scan(
    task: &QueueTask,
    config: &Config,
    root: &std::path::Path,
    worker: &WorkerCommand,
    stop: &Stop,
    deadline: Instant,
    timeout: Duration,
) -> TaskResult {
    let names: Vec<String> = match &task.plugins {
        Some(list) => list.clone(),
        None => config.plugins.iter().map(|p| p.name.clone()).collect(),
    };
    let mut result = TaskResult {
        status: FinalStatus::Finished,
        messages: Vec::new(),
        items: 0,
        plugins: Vec::new(),
        interrupted: false,
    };
    for name in names {
        let mut run = PluginRun {
            plugin: name.clone(),
            items: 0,
            notes: Vec::new(),
            error: None,
        };
        let outcome = match config.plugin(&name) {
            None => Err(format!("plugin {name:?} is no longer in the config")),
            Some(plugin) => {
                let mut spec =
                    ScanSpec::new(&name, plugin.library_path(&config.daemon.plugin_dir), root);
                spec.config = serde_json::to_value(&plugin.config).unwrap_or_default();
                spec.timeout = Some(deadline.saturating_duration_since(Instant::now()));
                spec.cancel = stop.cancel.child_token();
                scan_one(worker, spec, &mut run).await
            }
        };
        result.items += run.items;
        if let Err(message) = outcome {
            if stop.shutdown.is_cancelled() {
                result.interrupted = true;
                return result;
            }
            if stop.cancel.is_cancelled() {
                result.status = FinalStatus::Cancelled;
                result
                    .messages
                    .push(format!("cancelled while running plugin {name}"));
                result.plugins.push(run);
                return result;
            }
            let message = if message.contains("timed out after") {
                format!(
                    "{name}: timed out after {} (daemon.task_timeout)",
                    humantime::format_duration(timeout)
                )
            } else {
                format!("{name}: {message}")
            };
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

/// Runs one plugin, counting its items into the snapshot sink. `Err` is the failure message.
async fn scan_one(
    worker: &WorkerCommand,
    spec: ScanSpec,
    run: &mut PluginRun,
) -> Result<(), String> {
    let mut scan = supervisor::start(worker, spec)
        .await
        .map_err(|e| describe(&e))?;
    let mut dropped_notes = 0usize;
    while let Some(event) = scan.next().await {
        match event {
            // The snapshot stage (drift issue) consumes items here; until then they are counted.
            ScanEvent::Item(_) | ScanEvent::ItemJson(_) => run.items += 1,
            ScanEvent::Note(note) => {
                if run.notes.len() < MAX_NOTES_PER_PLUGIN {
                    run.notes.push(note);
                } else {
                    dropped_notes += 1;
                }
            }
        }
    }
    if dropped_notes > 0 {
        run.notes.push(format!("… and {dropped_notes} more notes"));
    }
    match scan.finish().await {
        ScanOutcome::Succeeded { .. } => Ok(()),
        ScanOutcome::Failed(e) => Err(describe(&e)),
    }
}

fn describe(e: &PluginFailure) -> String {
    e.to_string()
}

/// Audits evaluate policies (policy issue); until policies exist there is nothing to
/// evaluate, which the log row says plainly.
fn audit(task: &QueueTask) -> TaskResult {
    TaskResult {
        status: FinalStatus::Finished,
        messages: vec![format!(
            "no checks evaluated on {}: policy evaluation is not available in this build",
            task.target
        )],
        items: 0,
        plugins: Vec::new(),
        interrupted: false,
    }
}
