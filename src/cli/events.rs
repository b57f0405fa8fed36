//! `vigil events [--after SEQ] [--follow]`: the event log, as a table or (with `--json`)
//! as NDJSON, one event per line. Following, it reconnects after a broken stream or a
//! daemon restart and resumes after the last event it printed: nothing lost, nothing twice.

use std::time::Duration;

use clap::Args;

use super::CmdResult;
use crate::client::{Client, ClientError};
use crate::proto::endpoints::GetEvents;
use crate::proto::{EventLine, EventsQuery, LogEvent};

/// Wait before reconnecting a followed stream.
const RECONNECT: Duration = Duration::from_secs(1);

#[derive(Args)]
pub struct EventsArgs {
    /// Only events after this sequence number (the `SEQ` column; 0: from the oldest kept).
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    after: u64,
    /// Keep running and print new events as they commit (Ctrl-C ends it).
    #[arg(long)]
    follow: bool,
}

pub async fn run(client: &Client, args: EventsArgs, json: bool) -> CmdResult {
    let mut last = args.after;
    let mut printed_header = false;
    loop {
        let query = EventsQuery {
            after: Some(last),
            follow: args.follow,
            heartbeat: None,
        };
        let result = client
            .call_lines::<GetEvents>(&(), &query, |line| {
                if let EventLine::Event(e) = line {
                    last = e.seq;
                    if json {
                        match serde_json::to_string(&e) {
                            Ok(s) => println!("{s}"),
                            Err(err) => eprintln!("vigil: cannot encode event {}: {err}", e.seq),
                        }
                    } else {
                        if !printed_header {
                            println!("{}", row(&HEADER.map(str::to_owned)));
                            printed_header = true;
                        }
                        println!("{}", row(&columns(&e)));
                    }
                }
                true
            })
            .await;
        if !args.follow {
            result?;
            if !printed_header && !json {
                println!("no events after {last}");
            }
            return Ok(());
        }
        match result {
            // The daemon closed the stream (restart, connection lifetime) or is down:
            // resume where this left off.
            Ok(()) | Err(ClientError::Unreachable { .. }) => {
                tokio::time::sleep(RECONNECT).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

const HEADER: [&str; 7] = ["SEQ", "TIME", "KIND", "TASK", "STATUS", "NODES", "TITLE"];
/// Column widths of the streamed table (the last column is as long as it is).
const WIDTHS: [usize; 6] = [6, 20, 14, 6, 7, 5];

fn columns(e: &LogEvent) -> [String; 7] {
    [
        e.seq.to_string(),
        e.time.format("%Y-%m-%d %H:%M:%S").to_string(),
        e.kind.to_string(),
        e.task.map_or_else(|| "-".to_owned(), |t| t.to_string()),
        e.status
            .map_or("-".to_owned(), |s| format!("{s:?}").to_lowercase()),
        e.nodes_in_event.to_string(),
        match (&e.by, e.source) {
            (Some(by), _) if e.task.is_some() => format!("{} (by {by})", e.title),
            (_, Some(source)) if e.task.is_none() => {
                format!("{source} on {}: {}", e.event_nodes.join(", "), e.title)
            }
            _ => e.title.clone(),
        },
    ]
}

/// One line of the table: fixed widths, so that lines printed as they come still align.
fn row(cells: &[String; 7]) -> String {
    let mut out = String::new();
    for (cell, width) in cells.iter().zip(WIDTHS) {
        out.push_str(&format!("{cell:<width$}  "));
    }
    let used = WIDTHS.iter().map(|w| w + 2).sum();
    out.push_str(&super::table::fit_text(&cells[6], used));
    out
}
