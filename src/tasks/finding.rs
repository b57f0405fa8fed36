//! Findings: what a scan or audit found on one node, with the fingerprint that groups equal
//! findings on many nodes into one user task, and the human text of that task.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::NaiveDate;
use regex::Regex;

use crate::drift;
use crate::proto::{ChangeKind, PluginDrift, QueueTaskId, UserTaskKind, Value};

/// Longest title; longer ones end in an ellipsis.
const MAX_TITLE: usize = 120;
/// Change lines listed in a drift task's description.
const MAX_DESCRIPTION_LINES: usize = 100;

/// One finding on one node.
#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: UserTaskKind,
    /// Equal fingerprints group into one task. Namespaced by kind.
    pub fingerprint: String,
    pub node: String,
    pub source: QueueTaskId,
    pub day: NaiveDate,
    /// Title and description of a task opened for this finding.
    pub title: String,
    pub description: String,
    /// The event line for this node.
    pub details: String,
}

/// The task fingerprint of a node's drift (none without changes).
pub fn drift_fingerprint(drifts: &[PluginDrift]) -> Option<String> {
    drift::Fingerprint::of(drifts).map(|fp| format!("drift:{fp}"))
}

/// The drift finding of one scan on one node, if anything changed.
pub fn from_drift(
    node: &str,
    source: QueueTaskId,
    day: NaiveDate,
    drifts: &[PluginDrift],
) -> Option<Finding> {
    let fingerprint = drift_fingerprint(drifts)?;
    let changes: usize = drifts.iter().map(|d| d.changes.len()).sum();
    let summary = drift_summary(drifts);
    let baseline = drifts.iter().find_map(|d| d.baseline_day);
    let mut description = format!(
        "Configuration drift: {changes} change(s) found by {source} on {node} ({day}{}).\n\n",
        baseline
            .map(|b| format!(" compared with {b}"))
            .unwrap_or_default()
    );
    let mut lines = 0;
    for d in drifts {
        for c in &d.changes {
            if lines == MAX_DESCRIPTION_LINES {
                description.push_str(&format!("… and {} more changes\n", changes - lines));
                break;
            }
            description.push_str(&change_line(&d.plugin, c));
            description.push('\n');
            lines += 1;
        }
    }
    Some(Finding {
        kind: UserTaskKind::Drift,
        fingerprint,
        node: node.to_owned(),
        source,
        day,
        title: cap(&format!("Drift: {summary}")),
        description,
        details: format!("{changes} change(s): {summary}"),
    })
}

/// A plugin that failed on a node. Messages that differ only in node names, paths and
/// numbers are the same finding.
pub fn from_scan_failure(
    node: &str,
    source: QueueTaskId,
    day: NaiveDate,
    plugin: &str,
    message: &str,
) -> Finding {
    let normal = normalise(message, node);
    let fp = blake3::hash(format!("{plugin}\0{normal}").as_bytes()).to_hex()[..32].to_owned();
    Finding {
        kind: UserTaskKind::ScanFailure,
        fingerprint: format!("scan-failure:{fp}"),
        node: node.to_owned(),
        source,
        day,
        title: cap(&format!("Scan failure: {plugin} plugin: {normal}")),
        description: format!(
            "The {plugin} plugin failed while scanning (first seen on {node}, {source}).\n\nMessage: {message}\n\n\
             Grouped by: {normal}\n"
        ),
        details: message.to_owned(),
    }
}

/// Takes node names, paths and numbers out of a message, for grouping.
pub fn normalise(message: &str, node: &str) -> String {
    static PATH: OnceLock<Regex> = OnceLock::new();
    static NUMBER: OnceLock<Regex> = OnceLock::new();
    let path = PATH.get_or_init(|| Regex::new(r#"/[^\s:;,'"()]*"#).expect("valid regex"));
    let number = NUMBER.get_or_init(|| Regex::new(r"\b\d+(\.\d+)*\b").expect("valid regex"));
    let text = if node.is_empty() {
        message.to_owned()
    } else {
        message.replace(node, "<node>")
    };
    let text = path.replace_all(&text, "<path>");
    number.replace_all(&text, "<n>").into_owned()
}

fn cap(s: &str) -> String {
    if s.chars().count() <= MAX_TITLE {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(MAX_TITLE - 1).collect();
    out.push('…');
    out
}

/// "3 files modified, openssl 3.0.11-1 → 3.0.13-1, 1 account added".
fn drift_summary(drifts: &[PluginDrift]) -> String {
    let mut parts = Vec::new();
    for d in drifts {
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut versions = Vec::new();
        for c in &d.changes {
            *counts.entry(kind_word(c.kind)).or_default() += 1;
            if d.plugin == "packages" && c.kind == ChangeKind::Modified {
                if let Some(v) = c.attributes.iter().find(|a| a.name == "version") {
                    versions.push(format!(
                        "{} {} → {}",
                        c.key,
                        show(&v.previous),
                        show(&v.current)
                    ));
                }
            }
        }
        for (kind, n) in counts {
            if kind == "modified" && !versions.is_empty() && versions.len() == n && n <= 2 {
                parts.append(&mut versions);
                continue;
            }
            parts.push(format!("{n} {} {kind}", noun(&d.plugin, n)));
        }
    }
    parts.join(", ")
}

fn kind_word(k: ChangeKind) -> &'static str {
    match k {
        ChangeKind::Added => "added",
        ChangeKind::Removed => "removed",
        ChangeKind::Modified => "modified",
    }
}

fn noun(plugin: &str, n: usize) -> String {
    let (one, many) = match plugin {
        "files" => ("file", "files"),
        "packages" => ("package", "packages"),
        "accounts" => ("account", "accounts"),
        "services" => ("unit", "units"),
        "sysctl" => ("sysctl key", "sysctl keys"),
        "ports" => ("port", "ports"),
        other => return format!("{other} item{}", if n == 1 { "" } else { "s" }),
    };
    (if n == 1 { one } else { many }).to_owned()
}

fn show(v: &Option<Value>) -> String {
    v.as_ref().map_or("(none)".to_owned(), |v| v.to_string())
}

fn change_line(plugin: &str, c: &crate::proto::Change) -> String {
    let mut line = format!("{plugin}: {} {}", kind_word(c.kind), c.key);
    if c.kind == ChangeKind::Modified {
        let attrs: Vec<String> = c
            .attributes
            .iter()
            .take(4)
            .map(|a| format!("{} {} → {}", a.name, show(&a.previous), show(&a.current)))
            .collect();
        if !attrs.is_empty() {
            line.push_str(" (");
            line.push_str(&attrs.join(", "));
            line.push(')');
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_group_without_nodes_paths_and_numbers() {
        let a = normalise("web-1: permission denied: /srv/a/b after 3 tries", "web-1");
        let b = normalise("web-2: permission denied: /etc/x after 12 tries", "web-2");
        assert_eq!(a, b);
        assert_eq!(a, "<node>: permission denied: <path> after <n> tries");
    }

    #[test]
    fn scan_failures_on_different_nodes_share_a_fingerprint() {
        let id = QueueTaskId {
            kind: crate::config::QueueTaskKind::Scan,
            number: 1,
        };
        let day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let a = from_scan_failure("n1", id, day, "files", "cannot open /n1/root: denied");
        let b = from_scan_failure("n2", id, day, "files", "cannot open /n2/root: denied");
        let c = from_scan_failure("n2", id, day, "packages", "cannot open /n2/root: denied");
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(
            a.fingerprint, c.fingerprint,
            "the plugin is part of the finding"
        );
        assert!(
            a.title
                .starts_with("Scan failure: files plugin: cannot open <path>"),
            "{}",
            a.title
        );
    }
}

/// What a failing policy check says about itself, for its task's text.
#[derive(Debug, Clone)]
pub struct FailedCheck<'a> {
    pub policy: &'a str,
    pub policy_description: &'a str,
    pub check: &'a str,
    pub check_description: &'a str,
    pub plugin: &'a str,
    pub evidence: &'a str,
}

/// The fingerprint of a policy check's finding: the policy and the check, whatever the node.
pub fn policy_fingerprint(policy: &str, check: &str) -> String {
    format!("policy:{policy}/{check}")
}

/// A policy check failing on a node.
pub fn from_policy(
    node: &str,
    source: QueueTaskId,
    day: NaiveDate,
    c: &FailedCheck<'_>,
) -> Finding {
    let what = if c.check_description.is_empty() {
        c.check
    } else {
        c.check_description
    };
    Finding {
        kind: UserTaskKind::Policy,
        fingerprint: policy_fingerprint(c.policy, c.check),
        node: node.to_owned(),
        source,
        day,
        title: cap(&format!("Policy {}: {what} (check {} fails)", c.policy, c.check)),
        description: format!(
            "Policy {} ({}), check {}: {what}.\nEvaluated on items of the {} plugin.\n\n\
             First failed on {node} ({source}): {}\n\nThe task closes itself when a later audit finds the check \
             passing on every node.\n",
            c.policy, c.policy_description, c.check, c.plugin, c.evidence
        ),
        details: c.evidence.to_owned(),
    }
}
