//! `vigil policies` and `vigil policies show NAME`: the loaded policies with how their checks
//! fared in each node's latest audit; and the compliance summary `vigil audit --wait` prints.

use clap::Subcommand;

use super::{print_json, table, CmdResult};
use crate::client::Client;
use crate::proto::endpoints::{GetPolicy, ListPolicies};
use crate::proto::{CheckOutcome, LogRow, PolicyInfo, Scope};

#[derive(Subcommand)]
pub enum PoliciesCommand {
    /// One policy: per check, the nodes that do not pass and why.
    Show {
        /// The policy's name (see `vigil policies`).
        name: String,
    },
}

pub async fn run(client: &Client, command: Option<PoliciesCommand>, json: bool) -> CmdResult {
    match command {
        None => list(client, json).await,
        Some(PoliciesCommand::Show { name }) => show(client, &name, json).await,
    }
}

async fn list(client: &Client, json: bool) -> CmdResult {
    let policies: Vec<PolicyInfo> = client.get::<ListPolicies>(&()).await?;
    if json {
        print_json(&policies);
        return Ok(());
    }
    if policies.is_empty() {
        println!("No policies are loaded: put *.toml policy files in the config's policy_dir.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = policies
        .iter()
        .map(|p| {
            let sum = |f: fn(&crate::proto::CheckInfo) -> u64| p.checks.iter().map(f).sum::<u64>();
            vec![
                p.name.clone(),
                p.checks.len().to_string(),
                scope_word(p.scope.as_ref()),
                sum(|c| c.pass).to_string(),
                sum(|c| c.fail).to_string(),
                sum(|c| c.error).to_string(),
                p.description.clone(),
            ]
        })
        .collect();
    table::print(
        Some(&[
            "NAME",
            "CHECKS",
            "SCOPE",
            "PASS",
            "FAIL",
            "ERROR",
            "DESCRIPTION",
        ]),
        &rows,
    );
    println!("\nPASS/FAIL/ERROR count check results of each node's latest audit.");
    Ok(())
}

async fn show(client: &Client, name: &str, json: bool) -> CmdResult {
    let p: PolicyInfo = client.get::<GetPolicy>(&name.to_owned()).await?;
    if json {
        print_json(&p);
        return Ok(());
    }
    println!("{}: {}", p.name, p.description);
    println!("scope {}, from {}\n", scope_word(p.scope.as_ref()), p.file);
    let rows: Vec<Vec<String>> = p
        .checks
        .iter()
        .map(|c| {
            vec![
                c.id.clone(),
                c.plugin.clone(),
                c.pass.to_string(),
                c.fail.to_string(),
                c.error.to_string(),
                c.description.clone(),
            ]
        })
        .collect();
    table::print(
        Some(&["CHECK", "PLUGIN", "PASS", "FAIL", "ERROR", "DESCRIPTION"]),
        &rows,
    );
    let failing: Vec<Vec<String>> = p
        .checks
        .iter()
        .flat_map(|c| c.failing.iter())
        .map(|r| {
            vec![
                r.check.clone(),
                r.node.clone(),
                outcome_word(r.outcome).to_owned(),
                r.audit.map(|a| a.to_string()).unwrap_or_default(),
                r.evidence.clone(),
            ]
        })
        .collect();
    if failing.is_empty() {
        println!("\nNo node fails a check of {} in its latest audit.", p.name);
    } else {
        println!();
        table::print_fit(
            Some(&["CHECK", "NODE", "RESULT", "AUDIT", "EVIDENCE"]),
            &failing,
            4,
        );
    }
    Ok(())
}

fn scope_word(scope: Option<&Scope>) -> String {
    scope.map_or("all".to_owned(), |s| s.to_string())
}

pub fn outcome_word(o: CheckOutcome) -> &'static str {
    match o {
        CheckOutcome::Pass => "pass",
        CheckOutcome::Fail => "fail",
        CheckOutcome::Error => "error",
    }
}

/// What `vigil audit --wait` prints at the end: per node, how many checks passed, failed or
/// could not be evaluated, then every check that did not pass with its evidence.
pub fn compliance_summary(rows: &[LogRow]) -> String {
    let count = |r: &LogRow, o| {
        r.checks
            .iter()
            .filter(|c| c.outcome == o)
            .count()
            .to_string()
    };
    let per_node: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.target.clone(),
                r.id.to_string(),
                count(r, CheckOutcome::Pass),
                count(r, CheckOutcome::Fail),
                count(r, CheckOutcome::Error),
            ]
        })
        .collect();
    let mut out = String::from("\nCompliance:\n");
    out += &table::render(
        Some(&["NODE", "AUDIT", "PASSED", "FAILED", "ERROR"]),
        &per_node,
    );
    let problems: Vec<Vec<String>> = rows
        .iter()
        .flat_map(|r| r.checks.iter())
        .filter(|c| c.outcome != CheckOutcome::Pass)
        .map(|c| {
            vec![
                c.node.clone(),
                format!("{}/{}", c.policy, c.check),
                outcome_word(c.outcome).to_owned(),
                c.evidence.clone(),
            ]
        })
        .collect();
    if !problems.is_empty() {
        out.push('\n');
        out += &table::render_fit(
            Some(&["NODE", "CHECK", "RESULT", "EVIDENCE"]),
            &problems,
            3,
            table::width(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_per_node_and_lists_what_did_not_pass() {
        let row: LogRow = serde_json::from_value(serde_json::json!({
            "id": "Audit #7", "target": "web-1", "scope": "all", "initiator": "Schedule",
            "schedule": null, "queued_at": "2025-03-01T10:00:00Z", "started_at": null,
            "finished_at": "2025-03-01T10:01:00Z", "status": "Finished", "errors": 0,
            "messages": [], "attempt": 1, "items_scanned": 9, "changes_found": 0,
            "user_tasks_created": 1, "user_tasks_updated": 0, "plugins": [],
            "checks": [
                {"policy": "p", "check": "a", "outcome": "pass", "evidence": "ok", "node": "web-1"},
                {"policy": "p", "check": "b", "outcome": "fail", "evidence": "telnetd: present, expected absent", "node": "web-1"},
                {"policy": "p", "check": "c", "outcome": "error", "evidence": "no content", "node": "web-1"}
            ]
        }))
        .unwrap();
        let s = compliance_summary(&[row]);
        assert!(s.contains("web-1  Audit #7  1       1       1"), "{s}");
        assert!(
            s.contains("web-1  p/b    fail    telnetd: present, expected absent"),
            "{s}"
        );
        assert!(s.contains("p/c    error"), "{s}");
        assert!(!s.contains("p/a"), "{s}");
    }
}
