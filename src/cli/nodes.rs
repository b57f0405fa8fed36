//! `vigil nodes` (the configured nodes with their last scan) and `vigil drift NODE` (a node's
//! drift for one day, against its baseline).

use std::collections::BTreeSet;

use chrono::NaiveDate;
use clap::Args;

use super::drift_view::{self, clean, Paint};
use super::{print_json, table, text, CliError, CmdResult};
use crate::client::Client;
use crate::proto::endpoints::{GetNodeDrift, ListNodes, TrustNode};
use crate::proto::{DriftQuery, NodeDrift, NodeInfo, PluginDrift, TrustRequest, TrustResponse};

#[derive(Args)]
pub struct DriftArgs {
    /// The node, as named in the config.
    #[arg(value_name = "NODE")]
    node: String,

    /// The day whose snapshot to compare with its baseline (default: the newest scanned day).
    #[arg(long, value_name = "YYYY-MM-DD")]
    date: Option<NaiveDate>,

    /// Only this plugin.
    #[arg(long, value_name = "PLUGIN")]
    plugin: Option<String>,
}

#[derive(Args)]
pub struct NodesArgs {
    #[command(subcommand)]
    command: Option<NodesCommand>,
}

#[derive(clap::Subcommand)]
enum NodesCommand {
    /// Record a remote node's host key in vigil's known_hosts (admin): shows the SHA256
    /// fingerprints the node offers and asks, or pins the one given.
    Trust {
        /// The node, as named in the config.
        #[arg(value_name = "NODE")]
        node: String,
        /// Record the key with this fingerprint without asking (`SHA256:…`, as
        /// `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints it on the node).
        #[arg(long, value_name = "SHA256:…")]
        fingerprint: Option<String>,
    },
}

pub async fn nodes(client: &Client, args: NodesArgs, json: bool) -> CmdResult {
    match args.command {
        None => list(client, json).await,
        Some(NodesCommand::Trust { node, fingerprint }) => {
            trust(client, node, fingerprint, json).await
        }
    }
}

async fn trust(
    client: &Client,
    node: String,
    fingerprint: Option<String>,
    json: bool,
) -> CmdResult {
    use std::io::IsTerminal;
    let fingerprint = match fingerprint {
        Some(f) => f,
        None => {
            let offered: TrustResponse = client
                .post::<TrustNode>(&node, &TrustRequest { fingerprint: None })
                .await?;
            println!("{} ({}) offers:", offered.node, offered.target);
            for k in &offered.offered {
                println!("  {k}");
            }
            if !std::io::stdin().is_terminal() {
                return Err(CliError::Failed(
                    "not trusting a host key without confirmation: stdin is not a terminal; \
                     check the fingerprint on the node and pass --fingerprint SHA256:…"
                        .into(),
                ));
            }
            let first = offered
                .offered
                .first()
                .and_then(|k| k.split_whitespace().next())
                .unwrap_or_default()
                .to_owned();
            if !super::tasks::actions::confirm(&format!(
                "Trust {first} for {}? Compare it with `ssh-keygen -lf \
                 /etc/ssh/ssh_host_ed25519_key.pub` on the node. [y/N] ",
                offered.node
            )) {
                eprintln!("Nothing recorded.");
                return Ok(());
            }
            first
        }
    };
    let done: TrustResponse = client
        .post::<TrustNode>(
            &node,
            &TrustRequest {
                fingerprint: Some(fingerprint.clone()),
            },
        )
        .await?;
    if json {
        print_json(&done);
    } else {
        println!(
            "Recorded {fingerprint} for {} in {}.",
            done.node, done.known_hosts
        );
    }
    Ok(())
}

async fn list(client: &Client, json: bool) -> CmdResult {
    let nodes: Vec<NodeInfo> = client.get::<ListNodes>(&()).await?;
    if json {
        print_json(&nodes);
        return Ok(());
    }
    if nodes.is_empty() {
        println!("No node is configured: add [[node]] sections to the config.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = nodes.iter().map(node_row).collect();
    table::print(
        Some(&["NAME", "GROUPS", "REACHED", "LAST SCAN", "CHANGES", "ITEMS"]),
        &rows,
    );
    Ok(())
}

fn node_row(n: &NodeInfo) -> Vec<String> {
    let groups = if n.groups.is_empty() {
        "-".to_owned()
    } else {
        n.groups.join(",")
    };
    let (last, changes) = match &n.last_scan {
        Some(s) => (
            format!(
                "{} {} {}",
                s.id,
                text::final_status_word(s.status),
                text::local_time(s.finished_at)
            ),
            s.changes_found.to_string(),
        ),
        None => ("never".to_owned(), "-".to_owned()),
    };
    // The total, then per plugin: `1234 (files 1000, packages 234)`.
    let items = if n.items.is_empty() {
        "-".to_owned()
    } else {
        let each: Vec<String> = n.items.iter().map(|(p, c)| format!("{p} {c}")).collect();
        format!("{} ({})", n.items.values().sum::<u64>(), each.join(", "))
    };
    let reached = match n.reachable {
        Some(false) => format!("{} (unreachable)", n.reached),
        _ => n.reached.clone(),
    };
    vec![n.name.clone(), groups, reached, last, changes, items]
}

pub async fn drift(client: &Client, args: DriftArgs, json: bool) -> CmdResult {
    let query = DriftQuery {
        date: args.date,
        plugin: args.plugin.clone(),
    };
    let drift: NodeDrift = client.query::<GetNodeDrift>(&args.node, &query).await?;
    if json {
        print_json(&drift);
        return Ok(());
    }
    let paint = Paint::for_stdout();
    print!("{}", render_drift(&drift, paint));
    Ok(())
}

fn render_drift(d: &NodeDrift, paint: Paint) -> String {
    let scans: BTreeSet<String> = d.plugins.iter().map(|p| p.scan.to_string()).collect();
    let scans: Vec<String> = scans.into_iter().collect();
    let mut out = format!(
        "{}  {}  {}  {}\n",
        paint.bold(&clean(&d.node)),
        d.day,
        scans.join(", "),
        summary(&d.plugins, d.changes)
    );
    drift_view::plugins(&mut out, &d.plugins, "  ", paint);
    out
}

/// `3 changes against baseline 2026-04-01`, the baseline per plugin when they differ, or the
/// first scan.
fn summary(plugins: &[PluginDrift], changes: usize) -> String {
    let baselines: BTreeSet<Option<NaiveDate>> = plugins.iter().map(|p| p.baseline_day).collect();
    let against = match baselines.into_iter().collect::<Vec<_>>().as_slice() {
        [None] => return "first scan: baseline recorded, no drift".to_owned(),
        [Some(day)] => format!("baseline {day}"),
        _ => {
            let each: Vec<String> = plugins
                .iter()
                .map(|p| match p.baseline_day {
                    Some(day) => format!("{} {day}", clean(&p.plugin)),
                    None => format!("{} first scan", clean(&p.plugin)),
                })
                .collect();
            format!("baselines {}", each.join(", "))
        }
    };
    let unread: usize = plugins.iter().map(|p| p.coverage_notes.len()).sum();
    let mut line = format!("{} against {against}", drift_view::changes_word(changes));
    if unread > 0 {
        line.push_str(&format!("; {unread} not seen (below)"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::endpoints::Endpoint;
    use crate::proto::{QueueTaskId, QueueTaskKind};

    fn plugin(name: &str, baseline: Option<&str>) -> PluginDrift {
        PluginDrift {
            node: "web-0".into(),
            plugin: name.into(),
            day: "2026-04-02".parse().unwrap(),
            scan: QueueTaskId {
                kind: QueueTaskKind::Scan,
                number: 3,
            },
            baseline_day: baseline.map(|b| b.parse().unwrap()),
            items: 1,
            changes: Vec::new(),
            coverage_notes: Vec::new(),
        }
    }

    #[test]
    fn the_summary_names_the_baseline() {
        let same = [
            plugin("packages", Some("2026-04-01")),
            plugin("accounts", Some("2026-04-01")),
        ];
        assert_eq!(summary(&same, 2), "2 changes against baseline 2026-04-01");
        let first = [plugin("packages", None)];
        assert_eq!(
            summary(&first, 0),
            "first scan: baseline recorded, no drift"
        );
        let mixed = [
            plugin("packages", Some("2026-04-01")),
            plugin("files", None),
        ];
        assert_eq!(
            summary(&mixed, 1),
            "1 change against baselines packages 2026-04-01, files first scan"
        );
    }

    #[test]
    fn node_names_are_encoded_in_paths() {
        assert!(GetNodeDrift::path(&"web-0".into()).contains("/web-0/"));
        let odd = GetNodeDrift::path(&"a/b c".into());
        assert!(odd.contains("/a%2Fb%20c/"), "{odd}");
    }
}
