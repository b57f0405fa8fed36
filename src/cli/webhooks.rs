//! `vigil webhooks`, `vigil webhooks retry NAME|--all`, `vigil webhooks test NAME` (admin),
//! and `vigil webhooks secret` (local: prints a new secret, no daemon needed).

use clap::Subcommand;

use super::{print_json, table, CliError, CmdResult};
use crate::client::Client;
use crate::proto::endpoints::{ListWebhooks, RetryWebhooks, TestWebhook};
use crate::proto::{
    WebhookInfo, WebhookRetryRequest, WebhookRetryResponse, WebhookTestResponse, WebhooksStatus,
};

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// Deliver an endpoint's dead deliveries again, and its pending ones now.
    Retry {
        /// The endpoint's name (`[[webhook]] name`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Every endpoint.
        #[arg(long)]
        all: bool,
    },
    /// Send a test request to an endpoint now and print what it answered.
    Test {
        /// The endpoint's name.
        name: String,
    },
    /// Print a new Standard Webhooks secret (`whsec_` + base64 of 32 random bytes) and how
    /// to store it.
    Secret,
}

pub async fn run(client: &Client, json: bool, command: Option<WebhooksCommand>) -> CmdResult {
    match command {
        None => list(client, json).await,
        Some(WebhooksCommand::Retry { name, all }) => retry(client, json, name, all).await,
        Some(WebhooksCommand::Test { name }) => test(client, json, name).await,
        Some(WebhooksCommand::Secret) => secret(json),
    }
}

async fn list(client: &Client, json: bool) -> CmdResult {
    let hooks: Vec<WebhookInfo> = client.get::<ListWebhooks>(&()).await?;
    if json {
        print_json(&hooks);
        return Ok(());
    }
    if hooks.is_empty() {
        println!("no webhooks configured: add a [[webhook]] entry to the config");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = hooks
        .iter()
        .map(|w| {
            vec![
                w.name.clone(),
                w.format.clone(),
                w.url.clone(),
                w.pending.to_string(),
                w.dead.to_string(),
                w.delivered.to_string(),
                w.next_attempt_at
                    .filter(|_| w.pending > 0)
                    .map_or("-".into(), |t| {
                        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
                    }),
                w.last_error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table::print(
        Some(&[
            "NAME",
            "FORMAT",
            "URL",
            "PENDING",
            "DEAD",
            "DELIVERED",
            "NEXT TRY",
            "LAST ERROR",
        ]),
        &rows,
    );
    Ok(())
}

async fn retry(client: &Client, json: bool, name: Option<String>, all: bool) -> CmdResult {
    let r: WebhookRetryResponse = client
        .post::<RetryWebhooks>(&(), &WebhookRetryRequest { name, all })
        .await?;
    if json {
        print_json(&r);
    } else {
        println!(
            "{} dead deliveries queued again, {} pending ones due now",
            r.requeued, r.due_now
        );
    }
    Ok(())
}

async fn test(client: &Client, json: bool, name: String) -> CmdResult {
    let r: WebhookTestResponse = client
        .post::<TestWebhook>(&name, &Default::default())
        .await?;
    if json {
        print_json(&r);
    }
    match (&r.error, r.status) {
        (None, Some(code)) => {
            if !json {
                println!("{}: answered {code} in {} ms", r.name, r.millis);
            }
            Ok(())
        }
        (error, _) => Err(CliError::Failed(format!(
            "{}: the test failed after {} ms: {}",
            r.name,
            r.millis,
            error.as_deref().unwrap_or("no answer")
        ))),
    }
}

fn secret(json: bool) -> CmdResult {
    let secret = crate::config::webhook::new_secret().map_err(CliError::Failed)?;
    if json {
        print_json(&serde_json::json!({ "secret": secret }));
        return Ok(());
    }
    println!("{secret}");
    eprintln!(
        "Store it where vigild (root) reads it and other users do not, e.g.\n  \
         install -m 600 /dev/null /etc/vigil/webhook-NAME.secret\n  \
         vigil webhooks secret 2>/dev/null > /etc/vigil/webhook-NAME.secret\n\
         name that file in the endpoint's [[webhook]] secret_file, give the same secret to \
         the receiver (it verifies webhook-signature with it, e.g. with a Standard Webhooks \
         library), and reload."
    );
    Ok(())
}

/// One line for `vigil status`.
pub fn status_line(w: Option<&WebhooksStatus>) -> String {
    let Some(w) = w else {
        return "unknown (see the vigild log)".into();
    };
    let mut line = format!("{} pending, {} dead", w.pending, w.dead);
    for f in &w.failing {
        line.push_str(&format!("; {} failing: {}", f.name, f.error));
    }
    line
}
