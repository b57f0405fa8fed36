//! `vigil queue` (the active tasks) and `vigil queue cancel ID…`.

use clap::{Args, Subcommand};

use super::text::{self, parse_active_status, parse_kind};
use super::{print_json, table, CliError, CmdResult};
use crate::client::Client;
use crate::proto::endpoints::{CancelQueueTasks, ListQueue};
use crate::proto::{
    CancelOutcome, CancelRequest, CancelResponse, QueueQuery, QueueTask, QueueTaskKind,
    QueueTaskStatus,
};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct QueueArgs {
    #[command(subcommand)]
    action: Option<QueueAction>,

    /// Only tasks in this state: Queued or Running.
    #[arg(long, value_name = "STATUS", value_parser = parse_active_status)]
    status: Option<QueueTaskStatus>,

    /// Only tasks for this node.
    #[arg(long, value_name = "NODE")]
    node: Option<String>,

    /// Only scans or only audits.
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    kind: Option<QueueTaskKind>,
}

#[derive(Subcommand)]
enum QueueAction {
    /// Cancel tasks (admin): queued ones at once, running ones after their worker is killed.
    Cancel {
        /// Task ids: "Scan #12", scan-12 or S12.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
}

pub async fn run(client: &Client, args: QueueArgs, json: bool) -> CmdResult {
    match args.action {
        Some(QueueAction::Cancel { ids }) => cancel(client, ids, json).await,
        None => list(client, &args, json).await,
    }
}

async fn list(client: &Client, args: &QueueArgs, json: bool) -> CmdResult {
    let query = QueueQuery {
        status: args.status,
        node: args.node.clone(),
        kind: args.kind,
    };
    let tasks: Vec<QueueTask> = client.query::<ListQueue>(&(), &query).await?;
    if json {
        print_json(&tasks);
        return Ok(());
    }
    if tasks.is_empty() {
        if args.status.is_some() || args.node.is_some() || args.kind.is_some() {
            println!("No active task matches these filters.");
        } else {
            println!("The queue is empty: no scan or audit is queued or running.");
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = tasks.iter().map(row).collect();
    table::print(
        Some(&[
            "Device/Resource",
            "Task",
            "Start date",
            "Scope",
            "Initiator",
            "Status",
        ]),
        &rows,
    );
    Ok(())
}

fn row(t: &QueueTask) -> Vec<String> {
    vec![
        t.target.clone(),
        t.id().to_string(),
        text::local_time(t.state.started_at().unwrap_or(t.queued_at)),
        t.scope.to_string(),
        text::initiator(&t.initiator, t.schedule.as_deref()),
        text::active_status_word(t.status()).to_owned(),
    ]
}

async fn cancel(client: &Client, ids: Vec<String>, json: bool) -> CmdResult {
    let asked = ids.len();
    let resp: CancelResponse = client
        .post::<CancelQueueTasks>(&(), &CancelRequest { ids })
        .await?;
    if json {
        print_json(&resp);
    } else {
        let rows: Vec<Vec<String>> = resp
            .results
            .iter()
            .map(|r| {
                vec![
                    r.id.clone(),
                    outcome_word(r.outcome).to_owned(),
                    r.message.clone(),
                ]
            })
            .collect();
        table::print(None, &rows);
    }
    let failed = resp
        .results
        .iter()
        .filter(|r| r.outcome != CancelOutcome::Cancelled)
        .count();
    if failed > 0 {
        return Err(CliError::Failed(format!(
            "{failed} of {asked} task(s) were not cancelled"
        )));
    }
    Ok(())
}

fn outcome_word(o: CancelOutcome) -> &'static str {
    match o {
        CancelOutcome::Cancelled => "cancelled",
        CancelOutcome::NotFound => "not found",
        CancelOutcome::AlreadyFinished => "already finished",
        CancelOutcome::Invalid => "invalid",
    }
}
