//! Wire types of snapshots and drift: changes, a node's drift, nodes with their last scan.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use vigil_plugin::Value;

use super::{FinalStatus, QueueTaskId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Modified,
}

/// One attribute's previous and current value (`null` where it did not exist).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeChange {
    pub name: String,
    pub previous: Option<Value>,
    pub current: Option<Value>,
}

/// One item that drifted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub key: String,
    pub kind: ChangeKind,
    /// Modified: every changed attribute. Added/removed: the item's attributes.
    pub attributes: Vec<AttributeChange>,
    /// Unified diff of captured text content, when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_diff: Option<String>,
    /// The content is from a file others may not read (before or after): its diff is shown
    /// to admins only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub content_private: bool,
    /// Digest of the current value without ignored attributes (`null` when removed).
    pub current_digest: Option<String>,
    /// Digest of the previous value without ignored attributes (`null` when added, and in
    /// drift recorded before this field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_digest: Option<String>,
}

/// One plugin's drift on one node for one day, against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginDrift {
    pub node: String,
    pub plugin: String,
    pub day: chrono::NaiveDate,
    /// The scan that produced this day's snapshot.
    pub scan: QueueTaskId,
    /// The day compared with; `null` on a node's first scan (no drift is reported then).
    pub baseline_day: Option<chrono::NaiveDate>,
    pub items: u64,
    pub changes: Vec<Change>,
    /// What the scan could not see (permission denied, over size caps): not "unchanged".
    pub coverage_notes: Vec<String>,
}

/// `GET /v1/nodes/{name}/drift`: a node's drift for one day, all plugins.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeDrift {
    pub node: String,
    pub day: chrono::NaiveDate,
    pub plugins: Vec<PluginDrift>,
    /// Number of changes over all plugins.
    pub changes: usize,
}

/// Query of `GET /v1/nodes/{name}/drift`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftQuery {
    /// `YYYY-MM-DD`; default: the newest day with a recorded scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<chrono::NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
}

/// Query of `GET /v1/nodes/{name}/items`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemQuery {
    pub plugin: String,
    pub key: String,
}

/// `GET /v1/nodes/{name}/items`: an item's value in the newest snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemValue {
    pub node: String,
    pub plugin: String,
    pub key: String,
    pub day: chrono::NaiveDate,
    pub attributes: std::collections::BTreeMap<String, Value>,
    pub content: Option<String>,
    /// The content is from a file others may not read: admins only (`content` is `null`
    /// for Site Users).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub content_private: bool,
}

/// Whether a `mode` attribute (octal text) says others may not read the item.
pub fn private_mode(attributes: &std::collections::BTreeMap<String, Value>) -> bool {
    match attributes.get("mode") {
        Some(Value::Str(mode)) => u32::from_str_radix(mode, 8).map_or(true, |m| m & 0o004 == 0),
        _ => false,
    }
}

/// What a Site User reads instead of a private file's content diff.
pub const PRIVATE_CONTENT: &str =
    "content changed (hidden: the file is not world-readable; only admins see its content)\n";

impl Change {
    /// Hides the content diff of a private file (for callers who are not admins).
    pub fn redact_private(&mut self) {
        if self.content_private && self.content_diff.is_some() {
            self.content_diff = Some(PRIVATE_CONTENT.to_owned());
        }
    }
}

impl PluginDrift {
    pub fn redact_private(&mut self) {
        self.changes.iter_mut().for_each(Change::redact_private);
    }
}

impl NodeDrift {
    pub fn redact_private(&mut self) {
        self.plugins
            .iter_mut()
            .for_each(PluginDrift::redact_private);
    }
}

impl ItemValue {
    /// Leaves out a private file's content (for callers who are not admins).
    pub fn redact_private(&mut self) {
        if self.content_private {
            self.content = None;
        }
    }
}

/// A node's last scan, for `GET /v1/nodes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastScan {
    pub id: QueueTaskId,
    pub finished_at: DateTime<Utc>,
    pub status: FinalStatus,
    pub items_scanned: u64,
    pub changes_found: u64,
    /// The scan reached the node (false: a remote node it could not connect to).
    #[serde(default = "yes")]
    pub reached: bool,
}

fn yes() -> bool {
    true
}

/// `POST /v1/nodes/{name}/trust`: without a fingerprint, only what the node offers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustRequest {
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// The host keys a node offered, and whether one was recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustResponse {
    pub node: String,
    pub target: String,
    /// `SHA256:… (ED25519)` per offered key.
    pub offered: Vec<String>,
    pub trusted: bool,
    pub known_hosts: String,
}

/// `GET /v1/nodes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub groups: Vec<String>,
    pub root: String,
    /// How the node is reached: `local` or `ssh USER@HOST:PORT`.
    #[serde(default)]
    pub reached: String,
    /// Whether the last scan reached the node (`None`: never scanned). Only from scans:
    /// vigil does not probe nodes in the background.
    #[serde(default)]
    pub reachable: Option<bool>,
    pub last_scan: Option<LastScan>,
    /// Items in the newest snapshot, per plugin.
    pub items: std::collections::BTreeMap<String, u64>,
    /// Day of the newest snapshot, per plugin.
    pub snapshot_days: std::collections::BTreeMap<String, chrono::NaiveDate>,
}
