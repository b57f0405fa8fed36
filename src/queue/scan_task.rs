//! Running a scan task: the node's plugins one after the other through the plugin
//! supervisor, each one's items streamed into the node's snapshot of the day, whose commit
//! records the day's drift against the baseline.

use chrono::NaiveDate;
use tokio::time::Instant;

use super::runner::{
    unseen_note, Env, Failure, Link, QueueTaskResult, RunEnd, Start, Stop, MAX_NOTES_PER_PLUGIN,
};
use crate::drift::{self, DiffRules};
use crate::plugin::supervisor::{self, ItemForm, ScanEvent, ScanOutcome, ScanSpec};
use crate::proto::{FinalStatus, PluginDrift, PluginRun, QueueTask};
use crate::snapshot::{self, SnapshotWriter, Taken};
use crate::store::Commit;

/// Notes kept per plugin with the snapshot (shown in the drift report).
const MAX_STORED_NOTES: usize = 200;

/// Scans the task's node with `plugins` (`None`: every configured plugin).
pub async fn scan(
    task: &QueueTask,
    plugins: Option<&[String]>,
    env: &Env<'_>,
    stop: &Stop,
) -> RunEnd {
    let config = env.config;
    let Start {
        node,
        deadline,
        timeout,
    } = match Start::of(task, env) {
        Ok(s) => s,
        Err(ended) => return Ok(*ended),
    };
    let root = &node.root;
    let mut link = match Link::open(task, node, env, stop, deadline).await {
        Ok(link) => link,
        Err(ended) => return ended,
    };
    // The whole task belongs to the day it started, even if it runs past midnight.
    let day = snapshot::today(config.daemon.tz());
    let names: Vec<String> = match plugins {
        Some(list) => list.to_vec(),
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
                // Stored straight from their JSON, which the writer checks.
                spec.item_form = ItemForm::Unchecked;
                spec.timeout = Some(deadline.saturating_duration_since(Instant::now()));
                spec.cancel = stop.cancel.child_token();
                let target = Target {
                    task,
                    day,
                    rules: DiffRules::for_plugin(plugin),
                };
                match link.prepare(&mut spec).await {
                    Err(e) => Err(e.into()),
                    Ok(()) => match scan_one(env, spec, &target, &mut run).await {
                        Ok(drift) => {
                            result.drifts.push(drift);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    },
                }
            }
        };
        result.items += run.items;
        if let Err(failure) = outcome {
            if let Some(stopped) = result.stopped_during(stop, &name) {
                link.close().await;
                stopped?;
                result.plugins.push(run);
                return Ok(result);
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
    link.close().await;
    Ok(result)
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
    let mut so_far = NotesSoFar::default();
    while let Some(event) = scan.next().await {
        match event {
            ScanEvent::ItemJson(json) => {
                if let Err(e) = writer.push_json(&json).await {
                    // Dropping the scan kills its worker.
                    drop(scan);
                    return Err(Failure::Other(e.to_string()));
                }
                run.items += 1;
            }
            // A successful outcome keeps the notes and unseen records (bounded) and counts the
            // ones it did not keep; a failed one has none, so the first are kept here too: a
            // scan that times out still says what it could not see so far.
            ScanEvent::Note(note) => so_far.push(note),
            ScanEvent::Unseen { key, reason } => so_far.push(format!("not seen: {key} ({reason})")),
            ScanEvent::Item(_) => {}
        }
    }
    let (mut notes, more, unseen_keys) = match scan.finish().await {
        ScanOutcome::Failed(e) => {
            run.notes = so_far.finish();
            return Err(e.into());
        }
        ScanOutcome::Succeeded {
            mut notes,
            more_notes,
            unseen,
            more_unseen,
            ..
        } => {
            // What could not be seen is a coverage note, and its baseline entries are kept
            // (never reported removed: see `snapshot::carry`).
            notes.extend(unseen.iter().map(unseen_note));
            let keys: Vec<String> = unseen.iter().map(|u| u.key.clone()).collect();
            (notes, more_notes + more_unseen, keys)
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
    // Durable with the task's end, which the queue commits next; the drift of the day is
    // recorded in the same transaction as the snapshot.
    // The content diffs against the baseline are computed first, in a read transaction:
    // the write transaction below only merges chunk lists and stores the result.
    writer
        .seal()
        .await
        .map_err(|e| Failure::Other(format!("cannot store the snapshot: {e}")))?;
    let ready = {
        let (node, plugin, day) = (target.task.target.clone(), plugin.clone(), target.day);
        let (chunks, rules, volatile) = (
            writer.chunks().to_vec(),
            target.rules.clone(),
            volatile.clone(),
        );
        env.store
            .read(move |tx| drift::prepare(tx, &node, &plugin, day, &chunks, &rules, &volatile))
            .await
            .map_err(|e| Failure::Other(format!("cannot diff the snapshot: {e}")))?
    };
    let rules = target.rules.clone();
    writer
        .commit(
            Commit::Lazy,
            target.task.id(),
            Taken {
                notes,
                volatile,
                unseen: unseen_keys,
            },
            move |tx, committed| drift::record(tx, committed, &rules, &ready),
        )
        .await
        .map_err(|e| Failure::Other(format!("cannot store the snapshot: {e}")))
}

/// The first notes of a scan as they stream, for a scan that fails before its outcome
/// carries them.
#[derive(Default)]
struct NotesSoFar {
    kept: Vec<String>,
    all: u64,
}

impl NotesSoFar {
    fn push(&mut self, note: String) {
        self.all += 1;
        if self.kept.len() < MAX_NOTES_PER_PLUGIN {
            self.kept.push(note);
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.all > self.kept.len() as u64 {
            let kept = self.kept.len();
            self.kept.push(more_notes(self.all, kept));
        }
        self.kept
    }
}

/// `… and 4800 more notes (5000 in all)`: the line that stands for the notes not kept.
fn more_notes(all: u64, kept: usize) -> String {
    format!("… and {} more notes ({all} in all)", all - kept as u64)
}
