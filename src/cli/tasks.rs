//! `vigil tasks`: the user tasks (findings to look at), one task in full with its report
//! ("view changes"), and the actions on them: assign, close, reopen, Close All, export.

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write as _};

use clap::{Args, Subcommand, ValueEnum};

use super::drift_view::{self, clean, Paint};
use super::{print_json, table, text, with_query, CliError, CmdResult};
use crate::client::{Client, ClientError};
use crate::config::Role;
use crate::proto::{
    AssignRequest, CloseAllResponse, NodeReport, Status, TaskDetail, TaskFilter, TaskList,
    TaskReport, UserTask, UserTaskKind, UserTaskStatus,
};

/// Titles are cut to this many characters in the table (`--json` and `show` have them whole).
const TITLE_WIDTH: usize = 60;
/// Events shown by `vigil tasks show` (newest first).
const SHOW_EVENTS: usize = 20;
/// Tasks listed before Close All asks for confirmation.
const CLOSE_ALL_PREVIEW: usize = 10;
/// Node names listed in the heading of a group of nodes with the same report.
const GROUP_NAMES: usize = 5;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TasksArgs {
    #[command(subcommand)]
    action: Option<TasksAction>,

    #[command(flatten)]
    list: ListArgs,
}

#[derive(Args)]
struct ListArgs {
    /// Which tasks: open, closed or all.
    #[arg(long, value_enum, default_value_t = StatusArg::Open)]
    status: StatusArg,

    #[command(flatten)]
    filter: FilterArgs,

    /// Tasks to show, most recent event first (the daemon caps it at 10000).
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

/// The filters shared by the list, Close All and export.
#[derive(Args)]
struct FilterArgs {
    /// Only tasks assigned to you (the same as --assignee me).
    #[arg(long, conflicts_with = "assignee")]
    mine: bool,

    /// Only tasks assigned to EMAIL; `me` for yours, `none` for unassigned ones.
    #[arg(long, value_name = "EMAIL")]
    assignee: Option<String>,

    /// Only tasks whose title or description contains TEXT (any case).
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,

    /// Only tasks of this kind: drift, policy or scan-failure.
    #[arg(long, value_name = "KIND", value_parser = parse_user_kind)]
    kind: Option<UserTaskKind>,

    /// Only tasks with an event on this node.
    #[arg(long, value_name = "NODE")]
    node: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StatusArg {
    Open,
    Closed,
    All,
}

impl StatusArg {
    fn word(self) -> &'static str {
        match self {
            StatusArg::Open => "open",
            StatusArg::Closed => "closed",
            StatusArg::All => "all",
        }
    }

    /// `1 open task`, `3 closed tasks`, `5 tasks`.
    fn count(self, n: usize) -> String {
        let s = if n == 1 { "" } else { "s" };
        match self {
            StatusArg::All => format!("{n} task{s}"),
            other => format!("{n} {} task{s}", other.word()),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Json,
    Csv,
}

#[derive(Subcommand)]
enum TasksAction {
    /// One task in full: fields, nodes, recent events and its changes.
    Show {
        #[arg(value_name = "ID", value_parser = parse_task_id)]
        id: u64,
    },
    /// What the task found, per node: items added, removed, modified (previous → current).
    Changes {
        #[arg(value_name = "ID", value_parser = parse_task_id)]
        id: u64,
        /// Only this node.
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
    },
    /// Assign a task; the assignee is mailed.
    Assign {
        #[arg(value_name = "ID", value_parser = parse_task_id)]
        id: u64,
        #[arg(value_name = "EMAIL")]
        email: String,
    },
    /// Close tasks.
    Close {
        #[arg(required = true, value_name = "ID", value_parser = parse_task_id)]
        ids: Vec<u64>,
    },
    /// Open a closed task again.
    Reopen {
        #[arg(value_name = "ID", value_parser = parse_task_id)]
        id: u64,
    },
    /// Close every open task matching the filters (asks first; --yes when not on a terminal).
    CloseAll {
        #[command(flatten)]
        filter: FilterArgs,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Tasks with all their events as JSON or CSV, for another ticketing system.
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Which tasks: open, closed or all.
        #[arg(long, value_enum, default_value_t = StatusArg::Open)]
        status: StatusArg,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

/// A task id: `12` or `#12`.
fn parse_task_id(s: &str) -> Result<u64, String> {
    s.trim()
        .trim_start_matches('#')
        .parse()
        .map_err(|_| format!("invalid task id {s:?}: write it like 12 or #12"))
}

/// `--kind`: drift, policy or scan-failure, any case.
fn parse_user_kind(s: &str) -> Result<UserTaskKind, String> {
    match s.to_ascii_lowercase().as_str() {
        "drift" => Ok(UserTaskKind::Drift),
        "policy" => Ok(UserTaskKind::Policy),
        "scan-failure" | "scan_failure" | "scanfailure" => Ok(UserTaskKind::ScanFailure),
        _ => Err(format!("expected drift, policy or scan-failure, not {s:?}")),
    }
}

impl FilterArgs {
    fn assignee(&self) -> Option<String> {
        if self.mine {
            Some("me".to_owned())
        } else {
            self.assignee.clone()
        }
    }

    fn is_set(&self) -> bool {
        self.mine
            || self.assignee.is_some()
            || self.filter.is_some()
            || self.kind.is_some()
            || self.node.is_some()
    }

    /// The query parameters of `GET /v1/tasks` and export.
    fn query(&self, status: StatusArg) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("status", Some(status.word().to_owned())),
            ("assignee", self.assignee()),
            ("q", self.filter.clone()),
            ("kind", self.kind.map(|k| k.to_string())),
            ("node", self.node.clone()),
        ]
    }

    /// The body of `POST /v1/tasks/close` (which only ever closes open tasks).
    fn body(&self) -> TaskFilter {
        TaskFilter {
            status: None,
            assignee: self.assignee(),
            q: self.filter.clone(),
            kind: self.kind,
            node: self.node.clone(),
        }
    }
}

pub async fn run(client: &Client, args: TasksArgs, json: bool) -> CmdResult {
    match args.action {
        None => list(client, &args.list, json).await,
        Some(TasksAction::Show { id }) => show(client, id, json).await,
        Some(TasksAction::Changes { id, node }) => changes(client, id, node, json).await,
        Some(TasksAction::Assign { id, email }) => assign(client, id, email, json).await,
        Some(TasksAction::Close { ids }) => close(client, ids, json).await,
        Some(TasksAction::Reopen { id }) => reopen(client, id, json).await,
        Some(TasksAction::CloseAll { filter, yes }) => close_all(client, &filter, yes, json).await,
        Some(TasksAction::Export {
            format,
            status,
            filter,
        }) => export(client, format, status, &filter).await,
    }
}

async fn list(client: &Client, args: &ListArgs, json: bool) -> CmdResult {
    let mut query = args.filter.query(args.status);
    query.push(("limit", Some(args.limit.to_string())));
    let list: TaskList = client.get(&with_query("/v1/tasks", &query)).await?;
    if json {
        print_json(&list);
        return Ok(());
    }
    if list.tasks.is_empty() {
        if list.total > 0 {
            println!(
                "{} match; --limit 0 shows none of them.",
                args.status.count(list.total)
            );
        } else if args.filter.is_set() {
            println!(
                "No {}task matches these filters.",
                status_prefix(args.status)
            );
        } else {
            println!("No {}tasks.", status_prefix(args.status));
        }
        return Ok(());
    }
    print!("{}", task_table(&list.tasks));
    if list.tasks.len() < list.total {
        println!(
            "showing {} of {}; --limit {} for all",
            list.tasks.len(),
            args.status.count(list.total),
            list.total
        );
    } else {
        println!("{}", args.status.count(list.total));
    }
    Ok(())
}

fn status_prefix(status: StatusArg) -> &'static str {
    match status {
        StatusArg::Open => "open ",
        StatusArg::Closed => "closed ",
        StatusArg::All => "",
    }
}

fn task_table(tasks: &[UserTask]) -> String {
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            vec![
                format!("#{}", t.id),
                t.kind.to_string(),
                text::shorten(&clean(&t.title), TITLE_WIDTH),
                t.events.to_string(),
                t.nodes.to_string(),
                t.assignee.clone().unwrap_or_else(|| "-".into()),
                status_word(t.status).to_owned(),
                text::local_time(t.last_event_at),
            ]
        })
        .collect();
    table::render(
        Some(&[
            "ID",
            "KIND",
            "TITLE",
            "EVENTS",
            "NODES",
            "ASSIGNEE",
            "STATUS",
            "LAST EVENT",
        ]),
        &rows,
    )
}

fn status_word(s: UserTaskStatus) -> &'static str {
    match s {
        UserTaskStatus::Open => "open",
        UserTaskStatus::Closed => "closed",
    }
}

async fn show(client: &Client, id: u64, json: bool) -> CmdResult {
    let detail: TaskDetail = client
        .get(&with_query(
            &format!("/v1/tasks/{id}"),
            &[("events_limit", Some(SHOW_EVENTS.to_string()))],
        ))
        .await?;
    let report: TaskReport = client.get(&format!("/v1/tasks/{id}/report")).await?;
    if json {
        // The task as `GET /v1/tasks/{id}` gives it, with the report's nodes as `report`.
        let mut value = serde_json::to_value(&detail)
            .map_err(|e| CliError::Failed(format!("cannot encode JSON: {e}")))?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert(
                "report".into(),
                serde_json::to_value(&report.nodes)
                    .map_err(|e| CliError::Failed(format!("cannot encode JSON: {e}")))?,
            );
        }
        print_json(&value);
        return Ok(());
    }
    let paint = Paint::for_stdout();
    print!("{}", render_detail(&detail, &report, paint));
    Ok(())
}

fn render_detail(detail: &TaskDetail, report: &TaskReport, paint: Paint) -> String {
    let t = &detail.task;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        paint.bold(&format!("Task #{}: {}", t.id, clean(&t.title)))
    );
    let status = match (t.status, &t.closed_by, t.closed_at) {
        (UserTaskStatus::Closed, by, at) => format!(
            "closed{}{}",
            by.as_deref()
                .map(|b| format!(" by {b}"))
                .unwrap_or_default(),
            at.map(|a| format!(" at {}", text::local_time(a)))
                .unwrap_or_default()
        ),
        (UserTaskStatus::Open, _, _) => "open".to_owned(),
    };
    let mut rows = vec![
        field("kind", t.kind.to_string()),
        field("status", status),
        field(
            "assignee",
            t.assignee.clone().unwrap_or_else(|| "nobody".into()),
        ),
        field("created", text::local_time(t.created_at)),
        field("last event", text::local_time(t.last_event_at)),
        field(
            "events",
            format!(
                "{} on {} node{}",
                t.events,
                t.nodes,
                if t.nodes == 1 { "" } else { "s" }
            ),
        ),
    ];
    if let Some(prev) = t.recurrence_of {
        rows.push(field("recurrence of", format!("#{prev} (closed)")));
    }
    rows.push(field("fingerprint", t.fingerprint.clone()));
    out.push_str(&indent(&table::render(None, &rows), "  "));

    if !t.description.trim().is_empty() {
        out.push_str("\nDescription:\n");
        for line in t.description.trim_end().lines() {
            let _ = writeln!(out, "  {}", clean(line));
        }
    }

    let _ = writeln!(out, "\nNodes ({}):", detail.nodes.len());
    let resolved = detail.nodes.iter().any(|n| n.resolved_by.is_some());
    let rows: Vec<Vec<String>> = detail
        .nodes
        .iter()
        .map(|n| {
            let mut row = vec![n.node.clone(), n.events.to_string()];
            if resolved {
                row.push(n.resolved_by.clone().unwrap_or_else(|| "-".into()));
            }
            row
        })
        .collect();
    let header: &[&str] = if resolved {
        &["NODE", "EVENTS", "RESOLVED BY"]
    } else {
        &["NODE", "EVENTS"]
    };
    out.push_str(&indent(&table::render(Some(header), &rows), "  "));

    let shown = detail.events.len() as u64;
    if shown < detail.events_total {
        let _ = writeln!(
            out,
            "\nRecent events ({shown} of {}, newest first):",
            detail.events_total
        );
    } else {
        let _ = writeln!(out, "\nEvents ({shown}, newest first):");
    }
    let rows: Vec<Vec<String>> = detail
        .events
        .iter()
        .map(|e| {
            vec![
                e.node.clone(),
                text::local_time(e.time),
                e.source.to_string(),
                clean(&e.details).into_owned(),
            ]
        })
        .collect();
    out.push_str(&indent(
        &table::render(Some(&["NODE", "TIME", "SOURCE", "DETAILS"]), &rows),
        "  ",
    ));

    out.push_str("\nChanges:\n");
    out.push_str(&render_report(&report.nodes, paint));
    out
}

fn field(name: &str, value: String) -> Vec<String> {
    vec![name.to_owned(), value]
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

async fn changes(client: &Client, id: u64, node: Option<String>, json: bool) -> CmdResult {
    let mut report: TaskReport = client.get(&format!("/v1/tasks/{id}/report")).await?;
    if let Some(node) = &node {
        report.nodes.retain(|n| &n.node == node);
        if report.nodes.is_empty() {
            return Err(CliError::Failed(format!(
                "task #{id} has no event on node {node:?}"
            )));
        }
    }
    if json {
        print_json(&report);
        return Ok(());
    }
    let paint = Paint::for_stdout();
    println!(
        "{}",
        paint.bold(&format!(
            "Task #{}: {}",
            report.task.id,
            clean(&report.task.title)
        ))
    );
    print!("{}", render_report(&report.nodes, paint));
    Ok(())
}

/// The report per node; nodes whose report reads the same (a patch applied to 100 nodes)
/// are shown once under one heading.
pub fn render_report(nodes: &[NodeReport], paint: Paint) -> String {
    if nodes.is_empty() {
        return "  no node has an event for this task\n".to_owned();
    }
    let mut groups: Vec<(String, Vec<&NodeReport>)> = Vec::new();
    for n in nodes {
        let body = node_body(n, paint);
        let key = format!("{}\n{body}", n.day);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(n),
            None => groups.push((key, vec![n])),
        }
    }
    let mut out = String::new();
    for (key, members) in &groups {
        let first = members[0];
        let heading = if members.len() == 1 {
            format!("{}  {}  {}", first.node, first.day, first.source)
        } else {
            let mut names: Vec<&str> = members
                .iter()
                .take(GROUP_NAMES)
                .map(|n| n.node.as_str())
                .collect();
            if members.len() > GROUP_NAMES {
                names.push("…");
            }
            format!(
                "{} ({} nodes)  {}",
                names.join(", "),
                members.len(),
                first.day
            )
        };
        let _ = writeln!(out, "{}", paint.bold(&heading));
        let body = key.split_once('\n').map_or("", |(_, b)| b);
        out.push_str(body);
    }
    out
}

/// One node's report, indented under its heading: the drift, or the message.
fn node_body(n: &NodeReport, paint: Paint) -> String {
    let mut out = String::new();
    if let Some(message) = &n.message {
        for line in message.lines() {
            let _ = writeln!(out, "  {}", clean(line));
        }
    } else if n.drift.is_empty() {
        let _ = writeln!(
            out,
            "  no snapshot of {} is stored any more (pruned after retention_days)",
            n.day
        );
    } else {
        drift_view::plugins(&mut out, &n.drift, "  ", paint);
    }
    out
}

async fn assign(client: &Client, id: u64, email: String, json: bool) -> CmdResult {
    let task: UserTask = client
        .post(
            &format!("/v1/tasks/{id}/assign"),
            &AssignRequest { assignee: email },
        )
        .await?;
    if json {
        print_json(&task);
    } else {
        println!(
            "#{} assigned to {} (mailed): {}",
            task.id,
            task.assignee.as_deref().unwrap_or("nobody"),
            text::shorten(&clean(&task.title), TITLE_WIDTH)
        );
    }
    Ok(())
}

async fn close(client: &Client, ids: Vec<u64>, json: bool) -> CmdResult {
    let asked = ids.len();
    let mut closed = Vec::new();
    let mut failed = 0;
    for id in ids {
        match client
            .post::<_, UserTask>(&format!("/v1/tasks/{id}/close"), &serde_json::json!({}))
            .await
        {
            Ok(task) => {
                if !json {
                    println!(
                        "closed #{}: {}",
                        task.id,
                        text::shorten(&clean(&task.title), TITLE_WIDTH)
                    );
                }
                closed.push(task);
            }
            Err(e @ ClientError::Unreachable { .. }) => return Err(e.into()),
            Err(e) => {
                eprintln!("vigil: #{id}: {e}");
                failed += 1;
            }
        }
    }
    if json {
        print_json(&closed);
    }
    if failed > 0 {
        return Err(CliError::Failed(format!(
            "{failed} of {asked} task(s) were not closed"
        )));
    }
    Ok(())
}

async fn reopen(client: &Client, id: u64, json: bool) -> CmdResult {
    let task: UserTask = client
        .post(&format!("/v1/tasks/{id}/reopen"), &serde_json::json!({}))
        .await?;
    if json {
        print_json(&task);
    } else {
        println!(
            "reopened #{}: {}",
            task.id,
            text::shorten(&clean(&task.title), TITLE_WIDTH)
        );
    }
    Ok(())
}

async fn close_all(client: &Client, filter: &FilterArgs, yes: bool, json: bool) -> CmdResult {
    // The daemon closes only their own tasks for a Site User: preview exactly those.
    let me: Status = client.get("/v1/status").await?;
    let site_user = me.caller.role != Some(Role::Admin);
    let mut query = filter.query(StatusArg::Open);
    let mut none_theirs = false;
    if site_user {
        let theirs = match filter.assignee().as_deref() {
            None | Some("me") => true,
            Some(a) => me.caller.email.as_deref() == Some(a),
        };
        none_theirs = !theirs;
        for (name, value) in &mut query {
            if *name == "assignee" {
                *value = Some("me".to_owned());
            }
        }
    }
    query.push(("limit", Some(CLOSE_ALL_PREVIEW.to_string())));
    let preview: TaskList = if none_theirs {
        TaskList {
            tasks: Vec::new(),
            total: 0,
        }
    } else {
        client.get(&with_query("/v1/tasks", &query)).await?
    };
    let n = preview.total;
    if n == 0 {
        if json {
            print_json(&CloseAllResponse {
                count: 0,
                ids: Vec::new(),
            });
        } else if site_user {
            println!(
                "No open task assigned to you matches these filters: nothing to close \
                 (a Site User closes only their own tasks)."
            );
        } else {
            println!("No open task matches these filters: nothing to close.");
        }
        return Ok(());
    }
    let what = StatusArg::Open.count(n);
    if !json {
        print!("{}", task_table(&preview.tasks));
        if preview.tasks.len() < n {
            println!("… and {} more", n - preview.tasks.len());
        }
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Failed(format!(
                "not closing {what} without confirmation: stdin is not a terminal; add --yes"
            )));
        }
        if !confirm(&format!("Close {what}? [y/N] ")) {
            eprintln!("Nothing closed.");
            return Ok(());
        }
    }
    let resp: CloseAllResponse = client.post("/v1/tasks/close", &filter.body()).await?;
    if json {
        print_json(&resp);
    } else {
        let ids: Vec<String> = resp.ids.iter().map(|id| format!("#{id}")).collect();
        let s = if resp.count == 1 { "" } else { "s" };
        if ids.is_empty() {
            println!(
                "closed 0 tasks (none of them may be closed by you, or they were closed meanwhile)"
            );
        } else {
            println!("closed {} task{s}: {}", resp.count, ids.join(", "));
        }
    }
    Ok(())
}

/// Asks on stderr and reads one line from stdin: `y` or `yes` (any case) is a yes.
fn confirm(prompt: &str) -> bool {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

async fn export(
    client: &Client,
    format: ExportFormat,
    status: StatusArg,
    filter: &FilterArgs,
) -> CmdResult {
    let mut query = filter.query(status);
    query.push((
        "format",
        Some(
            match format {
                ExportFormat::Json => "json",
                ExportFormat::Csv => "csv",
            }
            .to_owned(),
        ),
    ));
    let body = client
        .get_text(&with_query("/v1/tasks/export", &query))
        .await?;
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_all(body.as_bytes()).and_then(|()| {
        if body.ends_with('\n') {
            Ok(())
        } else {
            stdout.write_all(b"\n")
        }
    });
    written.map_err(|e| CliError::Failed(format!("cannot write the export: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_take_an_optional_hash() {
        assert_eq!(parse_task_id("12"), Ok(12));
        assert_eq!(parse_task_id("#12"), Ok(12));
        assert!(parse_task_id("twelve").is_err());
    }

    #[test]
    fn kinds_parse_as_the_api_spells_them() {
        assert_eq!(
            parse_user_kind("Scan-Failure"),
            Ok(UserTaskKind::ScanFailure)
        );
        assert_eq!(parse_user_kind("drift"), Ok(UserTaskKind::Drift));
        assert!(parse_user_kind("audit").is_err());
    }

    #[test]
    fn counts_read_well() {
        assert_eq!(StatusArg::Open.count(1), "1 open task");
        assert_eq!(StatusArg::Closed.count(3), "3 closed tasks");
        assert_eq!(StatusArg::All.count(0), "0 tasks");
    }
}
