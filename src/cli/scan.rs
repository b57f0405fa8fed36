//! `vigil scan` and `vigil audit`: queue one task per node in the scope and, with `--wait`,
//! follow them until each has ended (a progress bar on a terminal, plain lines otherwise).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::text;
use super::{print_json, CliError, CmdResult};
use crate::client::Client;
use crate::proto::endpoints::{Enqueue, GetLog, GetRun, ListQueue};
use crate::proto::{
    log_name, EnqueueRequest, EnqueueResponse, FinalStatus, LogPage, LogQuery, LogRow, QueueQuery,
    QueueTask, QueueTaskId, QueueTaskKind, QueueTaskStatus, RunInfo, RunState, Scope,
};

/// How often `--wait` asks the daemon how the tasks are doing, at most: it starts at
/// [`FIRST_POLL`] and waits a twentieth of the time waited so far between polls, so a task
/// that ends is seen within 5% of its time (a fixed 500 ms made a 2 s scan look like 2.5 s)
/// while a long one costs the daemon two requests a second.
const POLL: Duration = Duration::from_millis(500);
const FIRST_POLL: Duration = Duration::from_millis(20);

/// The pause before the next poll, `waited` after the first.
fn next_poll(waited: Duration) -> Duration {
    (waited / 20).clamp(FIRST_POLL, POLL)
}
/// Log rows fetched per request while looking for ended tasks.
const LOG_PAGE: usize = 50;
/// Polls a task may be missing from both the queue and its log before `--wait` gives up
/// on it (the daemon moves a task from one to the other in one commit, so this is a
/// safety net, not a wait), and for at least [`MIN_MISSING`].
const MAX_MISSES: u32 = 20;
const MIN_MISSING: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct ScanArgs {
    /// Which nodes: all, group:NAME or node:NAME.
    #[arg(long, default_value = "all", value_name = "SCOPE")]
    scope: Scope,

    /// Run only this plugin (repeatable); default: every configured plugin.
    #[arg(long = "plugin", value_name = "PLUGIN")]
    plugins: Vec<String>,

    /// Follow the new tasks until each has ended; exit 1 if any failed or was cancelled.
    #[arg(long)]
    wait: bool,
}

#[derive(Args)]
pub struct AuditArgs {
    /// Which nodes: all, group:NAME or node:NAME.
    #[arg(long, default_value = "all", value_name = "SCOPE")]
    scope: Scope,

    /// Evaluate only this policy (repeatable); default: every policy.
    #[arg(long = "policy", value_name = "POLICY")]
    policies: Vec<String>,

    /// Follow the new tasks until each has ended; exit 1 if any failed or was cancelled.
    #[arg(long)]
    wait: bool,
}

pub async fn scan(client: &Client, args: ScanArgs, json: bool) -> CmdResult {
    let req = EnqueueRequest {
        kind: QueueTaskKind::Scan,
        scope: args.scope,
        plugins: non_empty(args.plugins),
        policies: None,
    };
    start(client, req, args.wait, json).await
}

pub async fn audit(client: &Client, args: AuditArgs, json: bool) -> CmdResult {
    let req = EnqueueRequest {
        kind: QueueTaskKind::Audit,
        scope: args.scope,
        plugins: None,
        policies: non_empty(args.policies),
    };
    start(client, req, args.wait, json).await
}

fn non_empty(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

async fn start(client: &Client, req: EnqueueRequest, wait: bool, json: bool) -> CmdResult {
    let kind = req.kind;
    let resp: EnqueueResponse = client.post::<Enqueue>(&(), &req).await?;
    if !wait {
        if json {
            print_json(&resp);
        } else {
            println!(
                "queued {}: {}",
                count(resp.ids.len(), kind),
                join(&resp.ids)
            );
        }
        return Ok(());
    }
    if !json {
        println!(
            "queued {}: {}",
            count(resp.ids.len(), kind),
            join(&resp.ids)
        );
    }
    let progress = if json {
        Progress::Quiet
    } else if std::io::stdout().is_terminal() {
        Progress::bar(resp.ids.len())
    } else {
        Progress::Lines
    };
    let rows = follow(client, kind, &resp.ids, &progress).await;
    progress.finish();
    let mut rows = rows?;
    // A run's user tasks are made once its last task has ended: wait for them, then read
    // the rows again for the user tasks each node's findings went into.
    let run = match resp.run {
        Some(run) => {
            let info = wait_for_run(client, run).await?;
            rows = follow(client, kind, &resp.ids, &Progress::Quiet).await?;
            Some(info)
        }
        None => None,
    };
    if json {
        print_json(&rows);
    } else {
        println!("{}", summary(kind, &rows));
        if let Some(run) = &run {
            println!(
                "user tasks of run {}: {} created, {} updated, {} closed (`vigil tasks` lists them)",
                run.id, run.user_tasks_created, run.user_tasks_updated, run.user_tasks_closed
            );
        }
        if kind == QueueTaskKind::Audit {
            print!("{}", super::policies::compliance_summary(&rows));
        }
    }
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| r.status != FinalStatus::Finished)
        .map(|r| format!("{} {}", r.id, text::final_status_word(r.status)))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{} of {} did not finish: {}",
            bad.len(),
            count(rows.len(), kind),
            bad.join(", ")
        )))
    }
}

/// Waits until the run's user tasks have been made (a few seconds after its last task
/// ended, for a large fleet).
async fn wait_for_run(client: &Client, run: u64) -> Result<RunInfo, CliError> {
    let start = std::time::Instant::now();
    loop {
        let info: RunInfo = client.get::<GetRun>(&run).await?;
        if info.state == RunState::Complete {
            return Ok(info);
        }
        tokio::time::sleep(next_poll(start.elapsed())).await;
    }
}

/// A task `--wait` is still following.
struct Pending {
    id: QueueTaskId,
    /// Its node, once seen in the queue: narrows the log look-up.
    target: Option<String>,
    running: bool,
    /// Consecutive polls it was in neither the queue nor the log.
    misses: u32,
    /// Since when it has been missing from both.
    missing_since: Option<std::time::Instant>,
}

/// Polls until every task has a log row; returns the rows in the order of `ids`.
async fn follow(
    client: &Client,
    kind: QueueTaskKind,
    ids: &[QueueTaskId],
    progress: &Progress,
) -> Result<Vec<LogRow>, CliError> {
    let mut pending: Vec<Pending> = ids
        .iter()
        .map(|&id| Pending {
            id,
            target: None,
            running: false,
            misses: 0,
            missing_since: None,
        })
        .collect();
    let mut ended: BTreeMap<QueueTaskId, LogRow> = BTreeMap::new();
    let start = std::time::Instant::now();
    loop {
        let only_kind = QueueQuery {
            kind: Some(kind),
            ..QueueQuery::default()
        };
        let queue: Vec<QueueTask> = client.query::<ListQueue>(&(), &only_kind).await?;
        let in_queue = |id: QueueTaskId| queue.iter().find(|t| t.id() == id);
        for p in &mut pending {
            if let Some(t) = in_queue(p.id) {
                p.target = Some(t.target.clone());
                p.running = t.status() == QueueTaskStatus::Running;
                p.misses = 0;
                p.missing_since = None;
            }
        }
        let gone: Vec<&Pending> = pending
            .iter()
            .filter(|p| in_queue(p.id).is_none())
            .collect();
        for row in find_log_rows(client, kind, &gone).await? {
            progress.ended(&row);
            ended.insert(row.id, row);
        }
        pending.retain(|p| !ended.contains_key(&p.id));
        for p in &mut pending {
            if in_queue(p.id).is_none() {
                p.misses += 1;
                let since = *p.missing_since.get_or_insert_with(std::time::Instant::now);
                if p.misses >= MAX_MISSES && since.elapsed() >= MIN_MISSING {
                    return Err(CliError::Failed(format!(
                        "{} left the queue but is not in the {} log",
                        p.id,
                        text::kind_word(kind)
                    )));
                }
            }
        }
        if pending.is_empty() {
            break;
        }
        progress.running(&pending);
        tokio::time::sleep(next_poll(start.elapsed())).await;
    }
    Ok(ids.iter().filter_map(|id| ended.remove(id)).collect())
}

/// The log rows of tasks that left the queue, looked up per node (all nodes when the node
/// is unknown because the task ended before the first poll). Rows not written yet are
/// simply not returned: the next poll looks again.
async fn find_log_rows(
    client: &Client,
    kind: QueueTaskKind,
    gone: &[&Pending],
) -> Result<Vec<LogRow>, CliError> {
    let mut by_node: BTreeMap<Option<&str>, Vec<QueueTaskId>> = BTreeMap::new();
    for p in gone {
        by_node.entry(p.target.as_deref()).or_default().push(p.id);
    }
    let mut found = Vec::new();
    for (node, mut wanted) in by_node {
        let mut offset = 0;
        while !wanted.is_empty() {
            let query = LogQuery {
                node: node.map(str::to_owned),
                offset,
                limit: Some(LOG_PAGE),
                ..LogQuery::default()
            };
            let page: LogPage = client
                .query::<GetLog>(&log_name(kind).to_owned(), &query)
                .await?;
            let fetched = page.rows.len();
            for row in page.rows {
                if let Some(i) = wanted.iter().position(|&id| id == row.id) {
                    wanted.swap_remove(i);
                    found.push(row);
                }
            }
            offset += fetched;
            if fetched == 0 || offset >= page.total {
                break;
            }
        }
    }
    Ok(found)
}

/// How `--wait` shows what happens.
enum Progress {
    /// stdout is a terminal: a bar, with the ended tasks printed above it.
    Bar(ProgressBar),
    /// stdout is a pipe or file: one line per ended task.
    Lines,
    /// `--json`: nothing until the final rows.
    Quiet,
}

impl Progress {
    fn bar(total: usize) -> Progress {
        let bar = ProgressBar::new(total as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} tasks done  {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress::Bar(bar)
    }

    fn ended(&self, row: &LogRow) {
        match self {
            Progress::Bar(bar) => {
                bar.println(ended_line(row));
                bar.inc(1);
            }
            Progress::Lines => println!("{}", ended_line(row)),
            Progress::Quiet => {}
        }
    }

    fn running(&self, pending: &[Pending]) {
        if let Progress::Bar(bar) = self {
            let running: Vec<QueueTaskId> =
                pending.iter().filter(|p| p.running).map(|p| p.id).collect();
            bar.set_message(if running.is_empty() {
                "waiting for a free slot".to_owned()
            } else {
                format!("running: {}", join(&running))
            });
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// `Scan #3 localhost Finished (1234 items)`, `Scan #4 web1 Failed: <first message>`.
fn ended_line(row: &LogRow) -> String {
    let status = text::final_status_word(row.status);
    let head = format!("{} {} {status}", row.id, row.target);
    match row.status {
        FinalStatus::Finished => format!("{head} ({} items)", row.items_scanned),
        _ => match row.messages.first() {
            Some(m) => {
                let used = head.chars().count() + 2;
                format!("{head}: {}", super::table::fit_text(m, used))
            }
            None => head,
        },
    }
}

/// `3 scans: 2 Finished, 1 Failed`.
fn summary(kind: QueueTaskKind, rows: &[LogRow]) -> String {
    let parts: Vec<String> = [
        FinalStatus::Finished,
        FinalStatus::Cancelled,
        FinalStatus::Failed,
    ]
    .into_iter()
    .filter_map(|s| {
        let n = rows.iter().filter(|r| r.status == s).count();
        (n > 0).then(|| format!("{n} {}", text::final_status_word(s)))
    })
    .collect();
    format!("{}: {}", count(rows.len(), kind), parts.join(", "))
}

/// `1 scan`, `3 audits`.
fn count(n: usize, kind: QueueTaskKind) -> String {
    let word = text::kind_word(kind);
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn join(ids: &[QueueTaskId]) -> String {
    ids.iter()
        .map(QueueTaskId::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: &str, items: u64, messages: &[&str]) -> LogRow {
        serde_json::from_value(serde_json::json!({
            "id": "Scan #3", "target": "localhost", "scope": "all", "initiator": "Schedule",
            "schedule": "nightly-scan", "queued_at": "2025-03-01T10:00:00Z",
            "started_at": null, "finished_at": "2025-03-01T10:01:00Z", "status": status,
            "errors": 0, "messages": messages, "attempt": 1, "items_scanned": items,
            "changes_found": 0, "user_tasks_created": 0, "user_tasks_updated": 0, "plugins": []
        }))
        .unwrap()
    }

    #[test]
    fn ended_lines_say_what_happened() {
        assert_eq!(
            ended_line(&row("Finished", 1234, &[])),
            "Scan #3 localhost Finished (1234 items)"
        );
        assert_eq!(
            ended_line(&row("Failed", 0, &["files: permission denied\nmore"])),
            "Scan #3 localhost Failed: files: permission denied …"
        );
        assert_eq!(
            ended_line(&row("Cancelled", 2, &[])),
            "Scan #3 localhost Cancelled"
        );
    }

    #[test]
    fn the_summary_counts_each_outcome() {
        let rows = [
            row("Finished", 1, &[]),
            row("Failed", 0, &["x"]),
            row("Finished", 1, &[]),
        ];
        assert_eq!(
            summary(QueueTaskKind::Scan, &rows),
            "3 scans: 2 Finished, 1 Failed"
        );
        assert_eq!(
            summary(QueueTaskKind::Audit, &rows[..1]),
            "1 audit: 1 Finished"
        );
    }
}
