//! `vigil outbox`, `vigil outbox retry ID…|--all`, `vigil outbox test EMAIL` (admin).

use chrono::{DateTime, Utc};
use clap::Subcommand;

use super::{print_json, table, CliError, CmdResult};
use crate::client::Client;
use crate::proto::endpoints::{ListOutbox, RetryOutbox, TestOutbox};
use crate::proto::{
    OutboxEntry, OutboxQuery, OutboxRetryRequest, OutboxRetryResponse, OutboxState, OutboxStatus,
    OutboxTestRequest, OutboxTestResponse,
};

#[derive(Subcommand)]
pub enum OutboxCommand {
    /// Deliver mails now: dead letters again, pending ones without waiting for their retry.
    Retry {
        /// Mail ids from `vigil outbox`.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<u64>,
        /// Every mail in the outbox.
        #[arg(long)]
        all: bool,
    },
    /// Deliver every mail in the outbox now (`retry --all`), ending a pause.
    Flush,
    /// Queue a test mail to EMAIL, to check the mail settings.
    Test {
        #[arg(value_name = "EMAIL")]
        to: String,
    },
}

pub async fn run(client: &Client, json: bool, command: Option<OutboxCommand>) -> CmdResult {
    match command {
        None => list(client, json).await,
        Some(OutboxCommand::Retry { ids, all }) => retry(client, json, ids, all).await,
        Some(OutboxCommand::Flush) => retry(client, json, Vec::new(), true).await,
        Some(OutboxCommand::Test { to }) => test(client, json, to).await,
    }
}

async fn list(client: &Client, json: bool) -> CmdResult {
    let mails: Vec<OutboxEntry> = client
        .query::<ListOutbox>(&(), &OutboxQuery::default())
        .await?;
    if json {
        print_json(&mails);
        return Ok(());
    }
    if mails.is_empty() {
        println!("the outbox is empty: every mail was delivered");
        return Ok(());
    }
    let status: crate::proto::Status = client
        .get::<crate::proto::endpoints::GetStatus>(&())
        .await?;
    if let Some(until) = status.outbox.as_ref().and_then(|o| o.paused_until) {
        println!(
            "delivery paused until {} (the mail server was unavailable; `vigil outbox flush` tries now)",
            when(until)
        );
    }
    let rows: Vec<Vec<String>> = mails
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                match m.state {
                    OutboxState::Pending => "pending".into(),
                    OutboxState::Sending => "sending".into(),
                    OutboxState::Dead => "dead".into(),
                },
                m.to.clone(),
                m.attempts.to_string(),
                m.next_attempt_at.map_or("-".into(), when),
                m.subject.clone(),
                m.cause.clone(),
                m.last_error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table::print(
        Some(&[
            "ID",
            "STATE",
            "TO",
            "TRIES",
            "NEXT TRY",
            "SUBJECT",
            "CAUSE",
            "LAST ERROR",
        ]),
        &rows,
    );
    Ok(())
}

async fn retry(client: &Client, json: bool, ids: Vec<u64>, all: bool) -> CmdResult {
    let r: OutboxRetryResponse = client
        .post::<RetryOutbox>(&(), &OutboxRetryRequest { ids, all })
        .await?;
    if json {
        print_json(&r);
        return Ok(());
    }
    if r.requeued.is_empty() && r.skipped.is_empty() {
        println!("the outbox is empty: nothing to deliver");
    }
    for id in &r.requeued {
        println!("mail {id}: queued for delivery again, now");
    }
    for s in &r.skipped {
        println!("mail {}: not retried: {}", s.id, s.reason);
    }
    if r.requeued.is_empty() && !r.skipped.is_empty() {
        return Err(CliError::Failed(
            "no mail was requeued; `vigil outbox` lists the mails".into(),
        ));
    }
    Ok(())
}

async fn test(client: &Client, json: bool, to: String) -> CmdResult {
    let r: OutboxTestResponse = client
        .post::<TestOutbox>(&(), &OutboxTestRequest { to: to.clone() })
        .await?;
    if json {
        print_json(&r);
    } else {
        println!(
            "test mail {} to {to} queued (Message-ID {}); `vigil outbox` and `vigil status` \
             show delivery problems",
            r.id, r.message_id
        );
    }
    Ok(())
}

/// One line for `vigil status`.
pub fn status_line(o: Option<&OutboxStatus>) -> String {
    let Some(o) = o else {
        return "unknown (see the vigild log)".into();
    };
    let mut line = format!("{} pending, {} dead", o.pending, o.dead);
    if let Some(until) = o.paused_until {
        line.push_str(&format!(
            "; paused until {} (`vigil outbox flush` tries now)",
            when(until)
        ));
    }
    if let Some(e) = &o.last_error {
        line.push_str(&format!("; last error: {e}"));
    }
    line
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
