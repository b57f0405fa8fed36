//! `vigil tasks`: the user tasks (findings to look at), one task in full with its report
//! ("view changes"), and the actions on them: assign, close, reopen, Close All, export.

pub(super) mod actions;
mod report;

use actions::{assign, close, close_all, export, reopen};
use report::{changes, show};

use clap::{Args, Subcommand, ValueEnum};

use super::drift_view::{self, clean, Paint};
use super::{print_json, table, text, CliError, CmdResult};
use crate::client::{Client, ClientError};
use crate::config::Role;
use crate::proto::endpoints::{
    AssignUserTask, CloseAllUserTasks, CloseUserTask, ExportUserTasks, GetStatus, GetUserTask,
    GetUserTaskReport, ListUserTasks, NoBody, ReopenUserTask,
};
use crate::proto::{
    AssignRequest, CloseAllResponse, EventsPage, ExportQuery, Status, UserTask, UserTaskDetail,
    UserTaskFilter, UserTaskKind, UserTaskList, UserTaskNodeReport, UserTaskQuery, UserTaskReport,
    UserTaskState, UserTaskStatus, UserTaskStatusFilter,
};

/// The TITLE column of the task table: cut to fit the terminal (`--json`, `show`, a pipe
/// and `--wide` have titles whole).
const TITLE_COLUMN: usize = 2;
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

    fn filter(self) -> UserTaskStatusFilter {
        match self {
            StatusArg::Open => UserTaskStatusFilter::Open,
            StatusArg::Closed => UserTaskStatusFilter::Closed,
            StatusArg::All => UserTaskStatusFilter::All,
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

    /// The filter of `GET /v1/tasks`, Close All and export.
    fn filter(&self, status: StatusArg) -> UserTaskFilter {
        UserTaskFilter {
            status: Some(status.filter()),
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
    let query = UserTaskQuery {
        filter: args.filter.filter(args.status),
        limit: Some(args.limit),
        ..UserTaskQuery::default()
    };
    let list: UserTaskList = client.query::<ListUserTasks>(&(), &query).await?;
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
                t.id.to_string(),
                t.kind.to_string(),
                clean(&t.title).into_owned(),
                t.events.to_string(),
                t.nodes.to_string(),
                t.assignee.clone().unwrap_or_else(|| "-".into()),
                status_word(t.status()).to_owned(),
                text::local_time(t.last_event_at),
            ]
        })
        .collect();
    table::render_fit(
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
        TITLE_COLUMN,
        table::width(),
    )
}

fn status_word(s: UserTaskStatus) -> &'static str {
    match s {
        UserTaskStatus::Open => "open",
        UserTaskStatus::Closed => "closed",
    }
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
