//! Findings: what one queue task found on its node — its drift as a list of changes, the
//! plugins that failed, the policy checks that failed or passed, and the plugins that
//! scanned cleanly (which resolve earlier failures). A run keeps each node's findings until
//! its last task ends; then they are grouped into user tasks together (`grouping`).

use std::sync::OnceLock;

use chrono::NaiveDate;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::proto::{QueueTaskId, TaskChange};

/// What one queue task found on its node. Also the stored form in a run's findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeFindings {
    pub node: String,
    pub source: QueueTaskId,
    /// The calendar day of the findings (drift: the snapshot day).
    pub day: NaiveDate,
    /// The day the drift was compared with, if any.
    #[serde(default)]
    pub baseline: Option<NaiveDate>,
    /// Every change of the node's drift (of the plugins that completed).
    #[serde(default)]
    pub changes: Vec<TaskChange>,
    #[serde(default)]
    pub failures: Vec<PluginFailed>,
    #[serde(default)]
    pub failed_checks: Vec<FailedCheck>,
    #[serde(default)]
    pub passing_checks: Vec<CheckRef>,
    /// Plugins that scanned the node without an error.
    #[serde(default)]
    pub clean_plugins: Vec<String>,
}

impl NodeFindings {
    pub fn new(node: &str, source: QueueTaskId, day: NaiveDate) -> NodeFindings {
        NodeFindings {
            node: node.to_owned(),
            source,
            day,
            baseline: None,
            changes: Vec::new(),
            failures: Vec::new(),
            failed_checks: Vec::new(),
            passing_checks: Vec::new(),
            clean_plugins: Vec::new(),
        }
    }
}

/// A plugin that failed on a node, and its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginFailed {
    pub plugin: String,
    pub message: String,
}

/// A policy check failing on a node, with what its task's text needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedCheck {
    pub policy: String,
    pub policy_description: String,
    pub check: String,
    pub check_description: String,
    pub plugin: String,
    pub evidence: String,
}

/// A policy check by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRef {
    pub policy: String,
    pub check: String,
}

/// Takes node names and other host names, addresses, ports, paths and numbers out of a
/// message, so that the same failure on many nodes groups into one task. `names` are the
/// node's own names (its node name, its SSH host).
pub fn normalise(message: &str, names: &[&str]) -> String {
    static PATTERNS: OnceLock<[(Regex, &str); 4]> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        let re = |p: &str| Regex::new(p).expect("valid regex");
        [
            // IPv6 addresses (at least two groups around a `::` or seven colons).
            (
                re(r"\b[0-9a-fA-F]{0,4}(:[0-9a-fA-F]{0,4}){2,7}\b"),
                "<address>",
            ),
            // IPv4 addresses, with a port or not.
            (re(r"\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b"), "<address>"),
            (re(r#"/[^\s:;,'"()]*"#), "<path>"),
            (re(r"\b\d+(\.\d+)*\b"), "<n>"),
        ]
    });
    let mut text = message.to_owned();
    for name in names.iter().filter(|n| !n.is_empty()) {
        text = text.replace(name, "<node>");
    }
    for (re, with) in patterns {
        text = re.replace_all(&text, *with).into_owned();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_group_without_nodes_addresses_paths_and_numbers() {
        let a = normalise(
            "web-1: permission denied: /srv/a/b after 3 tries",
            &["web-1"],
        );
        let b = normalise(
            "web-2: permission denied: /etc/x after 12 tries",
            &["web-2"],
        );
        assert_eq!(a, b);
        assert_eq!(a, "<node>: permission denied: <path> after <n> tries");
        let c = normalise("connect to 10.0.0.7:22 refused", &[]);
        let d = normalise("connect to 192.168.1.20:2222 refused", &[]);
        assert_eq!(c, d);
        assert_eq!(
            normalise("no route to fe80::1", &[]),
            normalise("no route to 2001:db8::42", &[])
        );
    }
}
