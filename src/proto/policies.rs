//! Wire types of policies: check records and per-policy results.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{QueueTaskId, Scope};

/// The outcome of one policy check on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckOutcome {
    Pass,
    Fail,
    /// The check could not be evaluated (plugin failed, no content captured, ...).
    Error,
}

/// One check's result on one node, as recorded in the Audit log and per check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub policy: String,
    pub check: String,
    pub outcome: CheckOutcome,
    /// The actual value against the expectation, in one line.
    pub evidence: String,
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub audit: Option<QueueTaskId>,
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// The plugin whose items the check reads.
    #[serde(default)]
    pub plugin: String,
    /// The check's description from its policy file.
    #[serde(default)]
    pub description: String,
}

/// `GET /v1/policies`: a policy with its checks and the latest results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyInfo {
    pub name: String,
    pub description: String,
    pub scope: Option<Scope>,
    pub file: String,
    pub checks: Vec<CheckInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckInfo {
    pub id: String,
    pub description: String,
    pub plugin: String,
    /// Nodes whose latest audit passed, failed, or could not evaluate the check.
    pub pass: u64,
    pub fail: u64,
    pub error: u64,
    /// `GET /v1/policies/{name}` only: the latest result per node that did not pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<CheckRecord>,
}
