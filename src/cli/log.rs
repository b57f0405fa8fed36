//! `vigil log scans|audits`: the tasks that ended, newest first, a page at a time.

use clap::{Args, ValueEnum};

use super::text::{self, parse_final_status};
use super::{print_json, table, CmdResult};
use crate::client::Client;
use crate::proto::endpoints::GetLog;
use crate::proto::{log_name, FinalStatus, LogPage, LogQuery, LogRow, QueueTaskKind};

/// The Message column, cut to fit the terminal (`--json`, a pipe and `--wide` have it whole).
const MESSAGE_COLUMN: usize = 7;

#[derive(Args)]
pub struct LogArgs {
    /// Which log.
    #[arg(value_enum)]
    log: LogKind,

    /// Only tasks for this node.
    #[arg(long, value_name = "NODE")]
    node: Option<String>,

    /// Only tasks that ended so: Finished, Cancelled or Failed.
    #[arg(long, value_name = "STATUS", value_parser = parse_final_status)]
    status: Option<FinalStatus>,

    /// Rows to show (the daemon caps it at 1000).
    #[arg(long, default_value_t = 20)]
    limit: usize,

    /// Newest rows to skip.
    #[arg(long, default_value_t = 0)]
    offset: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogKind {
    #[value(alias = "scan")]
    Scans,
    #[value(alias = "audit")]
    Audits,
}

impl LogKind {
    fn kind(self) -> QueueTaskKind {
        match self {
            LogKind::Scans => QueueTaskKind::Scan,
            LogKind::Audits => QueueTaskKind::Audit,
        }
    }
}

pub async fn run(client: &Client, args: LogArgs, json: bool) -> CmdResult {
    let kind = args.log.kind();
    let query = LogQuery {
        node: args.node.clone(),
        status: args.status,
        offset: args.offset,
        limit: Some(args.limit),
    };
    let page: LogPage = client
        .query::<GetLog>(&log_name(kind).to_owned(), &query)
        .await?;
    if json {
        print_json(&page);
        return Ok(());
    }
    let what = text::kind_word(kind);
    if page.rows.is_empty() {
        if page.total == 0 {
            let filtered = args.node.is_some() || args.status.is_some();
            if filtered {
                println!("No {what} in the {what} log matches these filters.");
            } else {
                println!("The {what} log is empty: no {what} has ended yet.");
            }
        } else {
            println!(
                "No rows past offset {}: the {what} log has {} matching row(s).",
                args.offset, page.total
            );
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = page.rows.iter().map(row).collect();
    table::print_fit(
        Some(&[
            "Task",
            "Device/Resource",
            "Status",
            "Errors",
            "Items",
            "Finished",
            "Initiator",
            "Message",
        ]),
        &rows,
        MESSAGE_COLUMN,
    );
    let shown_to = args.offset + page.rows.len();
    if shown_to < page.total || args.offset > 0 {
        println!(
            "rows {}-{} of {}{}",
            args.offset + 1,
            shown_to,
            page.total,
            if shown_to < page.total {
                format!("; --offset {shown_to} for more")
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

fn row(r: &LogRow) -> Vec<String> {
    // A Failed task's first error; otherwise an audit's check counts.
    let message = match r.status {
        FinalStatus::Failed => r.messages.first(),
        _ => r.summary.as_ref(),
    }
    .cloned()
    .unwrap_or_default();
    vec![
        r.id.to_string(),
        r.target.clone(),
        text::final_status_word(r.status).to_owned(),
        r.errors.to_string(),
        r.items_scanned.to_string(),
        text::local_time(r.finished_at),
        text::initiator(&r.initiator, r.schedule.as_deref()),
        message,
    ]
}
