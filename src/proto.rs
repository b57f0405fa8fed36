//! Request and response types of the control API, shared by the daemon and the CLI.
//! Nothing else defines what crosses the socket.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::config::Role;

/// Every error the API returns: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `bad_request`, `forbidden`, `not_found`, ...
    pub code: String,
    /// One sentence for a person: what failed and what to do.
    pub message: String,
}

/// Who the daemon thinks the caller is (from SO_PEERCRED of the connection).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    pub uid: u32,
    /// The configured user's email; `null` for an unknown uid (or uid 0 without a `[[user]]`).
    pub email: Option<String>,
    /// `null` for a uid that is not a vigil user: such a caller may only read status.
    pub role: Option<Role>,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub uptime_secs: u64,
    pub config_path: String,
    pub config_loaded_at: DateTime<Utc>,
    /// The error of the last reload that was rejected; `null` once a reload succeeds.
    pub last_reload_error: Option<String>,
    pub caller: Identity,
    pub nodes: usize,
    pub slots: u32,
    pub queue: Option<QueueStatus>,
    /// Outbox figures; `null` if they could not be read.
    pub outbox: Option<OutboxStatus>,
    /// Open user tasks of the organisation.
    pub open_tasks: Option<u64>,
    /// Open user tasks assigned to the caller; `null` for a caller without an email.
    pub my_open_tasks: Option<u64>,
}

/// Outbox figures in `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxStatus {
    /// Mails waiting for delivery (first try or retry).
    pub pending: u64,
    /// Mails given up on; `vigil outbox retry` sends them again.
    pub dead: u64,
    /// The last delivery error; `null` once a mail was delivered after it.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    /// Waiting for its first or next delivery attempt.
    Pending,
    /// Given up on (permanent failure, or `email.give_up_after` passed): a dead letter.
    Dead,
}

/// One undelivered mail (`GET /v1/outbox`). Bodies are not listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: u64,
    pub to: String,
    pub subject: String,
    /// Why the mail exists, e.g. `task 42 assigned to alice@example.com`.
    pub cause: String,
    pub message_id: String,
    pub state: OutboxState,
    pub created_at: DateTime<Utc>,
    /// Delivery attempts since it was queued (or requeued).
    pub attempts: u32,
    /// Pending: when the next attempt is due. Dead: `null`.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// `POST /v1/outbox/retry`: `{"ids": [3, 4]}` or `{"all": true}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxRetryRequest {
    #[serde(default)]
    pub ids: Vec<u64>,
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxRetryResponse {
    /// Dead letters queued for delivery again.
    pub requeued: Vec<u64>,
    /// Ids that were not dead letters, with the reason.
    pub skipped: Vec<OutboxRetrySkip>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxRetrySkip {
    pub id: u64,
    pub reason: String,
}

/// `POST /v1/outbox/test`: queue a test mail to check the mail settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxTestRequest {
    pub to: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxTestResponse {
    pub id: u64,
    pub message_id: String,
}

/// `POST /v1/reload` body: nothing to say yet, but unknown fields are refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadRequest {}

/// `POST /v1/reload` reply when the new config was accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reloaded {
    pub loaded_at: DateTime<Utc>,
    pub summary: String,
}

pub use crate::config::{Scope, TaskKind};

/// `Scan #12` / `Audit #3`: numbered per kind, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    pub kind: TaskKind,
    pub number: u64,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            TaskKind::Scan => write!(f, "Scan #{}", self.number),
            TaskKind::Audit => write!(f, "Audit #{}", self.number),
        }
    }
}

impl std::str::FromStr for TaskId {
    type Err = String;
    /// Accepts `Scan #12`, `scan#12`, `scan-12`, `scan 12`, `S12` (and the same for audits).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid task id {s:?}: write it like \"Scan #12\", \"scan-12\" or \"S12\"");
        let t = s.trim();
        let split = t.find(|c: char| c.is_ascii_digit()).ok_or_else(bad)?;
        let (word, num) = t.split_at(split);
        let word = word.trim_end_matches(|c: char| c == '#' || c == '-' || c.is_whitespace());
        let kind = match word.to_ascii_lowercase().as_str() {
            "scan" | "s" => TaskKind::Scan,
            "audit" | "a" => TaskKind::Audit,
            _ => return Err(bad()),
        };
        let number = num.parse().map_err(|_| bad())?;
        Ok(TaskId { kind, number })
    }
}

impl Serialize for TaskId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TaskId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Initiator of scheduled tasks (the schedule's name is a separate field).
pub const SCHEDULE_INITIATOR: &str = "Schedule";

/// An active queue task (`GET /v1/queue`). Also its stored form in the queue table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueTask {
    pub id: TaskId,
    /// Device/Resource: the node's name.
    pub target: String,
    pub scope: Scope,
    /// The caller's email for ad-hoc requests, `Schedule` for scheduled ones.
    pub initiator: String,
    pub schedule: Option<String>,
    /// Scan: the plugins to run (`null`: all configured). Audit: unused.
    pub plugins: Option<Vec<String>>,
    /// Audit: the policies to evaluate (`null`: all). Scan: unused.
    pub policies: Option<Vec<String>>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub status: ActiveStatus,
    /// 1 for the first run; incremented when a run is interrupted by a daemon stop.
    pub attempt: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActiveStatus {
    Queued,
    Running,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinalStatus {
    Finished,
    Cancelled,
    Failed,
}

/// How one plugin's part of a scan went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRun {
    pub plugin: String,
    pub items: u64,
    /// What the plugin could not see (bounded).
    pub notes: Vec<String>,
    /// `null` when the plugin succeeded.
    pub error: Option<String>,
}

/// A terminal task: one row of the Scan log or the Audit log. Also its stored form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    pub id: TaskId,
    pub target: String,
    pub scope: Scope,
    pub initiator: String,
    pub schedule: Option<String>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    pub status: FinalStatus,
    /// How many errors ended the task: the length of `messages` for a Failed task (at least
    /// 1), 0 otherwise.
    pub errors: u32,
    /// The errors of a Failed task; why a Cancelled one ended.
    pub messages: Vec<String>,
    /// Audits: the one-line outcome, e.g. "12 checks of 1 policies: 6 passed, 6 failed, 0
    /// could not be evaluated". Not an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub attempt: u32,
    pub items_scanned: u64,
    pub changes_found: u64,
    /// Audits: every check's outcome on this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckRecord>,
    /// Fingerprint of this scan's drift finding (the change set by destination); `null`
    /// without changes.
    #[serde(default)]
    pub drift_fingerprint: Option<String>,
    pub user_tasks_created: u64,
    pub user_tasks_updated: u64,
    pub plugins: Vec<PluginRun>,
}

/// `POST /v1/queue`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    pub kind: TaskKind,
    #[serde(default = "scope_all")]
    pub scope: Scope,
    #[serde(default)]
    pub plugins: Option<Vec<String>>,
    #[serde(default)]
    pub policies: Option<Vec<String>>,
}

fn scope_all() -> Scope {
    Scope::All
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnqueueResponse {
    pub ids: Vec<TaskId>,
}

/// `POST /v1/queue/cancel`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CancelResponse {
    pub results: Vec<CancelResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CancelResult {
    /// The id as the caller wrote it.
    pub id: String,
    pub outcome: CancelOutcome,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    Cancelled,
    NotFound,
    AlreadyFinished,
    Invalid,
}

/// Queue figures in `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueStatus {
    pub queued: usize,
    pub running: usize,
    pub slots: u32,
    pub capacity: u32,
    /// Scheduled tasks that did not fit in the queue since the state dir was created.
    pub dropped_scheduled: u64,
    /// Age of the oldest Running task: a task Running for hours is worth a look.
    pub oldest_running_secs: Option<u64>,
}

/// A page of log rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogPage {
    pub rows: Vec<LogRow>,
    /// Rows matching the filter, all pages together.
    pub total: usize,
}

pub use vigil_plugin::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Digest of the current value without ignored attributes (`null` when removed).
    pub current_digest: Option<String>,
}

/// One plugin's drift on one node for one day, against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginDrift {
    pub node: String,
    pub plugin: String,
    pub day: chrono::NaiveDate,
    /// The scan that produced this day's snapshot.
    pub scan: TaskId,
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

/// A node's last scan, for `GET /v1/nodes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastScan {
    pub id: TaskId,
    pub finished_at: DateTime<Utc>,
    pub status: FinalStatus,
    pub items_scanned: u64,
    pub changes_found: u64,
}

/// `GET /v1/nodes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub groups: Vec<String>,
    pub root: String,
    pub last_scan: Option<LastScan>,
    /// Items in the newest snapshot, per plugin.
    pub items: std::collections::BTreeMap<String, u64>,
    /// Day of the newest snapshot, per plugin.
    pub snapshot_days: std::collections::BTreeMap<String, chrono::NaiveDate>,
}

/// What produced a user task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserTaskKind {
    Drift,
    Policy,
    ScanFailure,
}

impl std::fmt::Display for UserTaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UserTaskKind::Drift => "drift",
            UserTaskKind::Policy => "policy",
            UserTaskKind::ScanFailure => "scan-failure",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserTaskStatus {
    Open,
    Closed,
}

/// A user task: one finding, seen on one or more nodes (its events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserTask {
    pub id: u64,
    pub kind: UserTaskKind,
    pub title: String,
    pub description: String,
    pub status: UserTaskStatus,
    pub assignee: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_event_at: DateTime<Utc>,
    pub closed_by: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub events: u64,
    /// Distinct nodes among the events.
    pub nodes: u64,
    /// Up to the first 10 nodes, in the order they were seen.
    pub first_nodes: Vec<String>,
    /// What groups findings into this task.
    pub fingerprint: String,
    /// The closed task this one recurs (same finding seen again after it was closed).
    pub recurrence_of: Option<u64>,
    /// Raised by every stored change of the task: of two copies, the higher revision is
    /// the newer. 0 in rows written before revisions existed.
    #[serde(default)]
    pub revision: u64,
}

/// One occurrence of a task's finding on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEvent {
    pub node: String,
    pub time: DateTime<Utc>,
    /// `Scan #N` / `Audit #N`.
    pub source: TaskId,
    /// The calendar day of the finding (drift: the snapshot day).
    pub day: chrono::NaiveDate,
    /// One line: what was found on this node.
    pub details: String,
}

/// `GET /v1/tasks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskList {
    pub tasks: Vec<UserTask>,
    /// Tasks matching the filter, all pages together.
    pub total: usize,
}

/// `GET /v1/tasks/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskDetail {
    pub task: UserTask,
    /// Every node with its number of events.
    pub nodes: Vec<NodeCount>,
    /// Events, newest first, paged.
    pub events: Vec<TaskEvent>,
    pub events_total: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeCount {
    pub node: String,
    pub events: u64,
    /// The audit that found this node's finding fixed (policy tasks); `null` while it fails.
    #[serde(default)]
    pub resolved_by: Option<String>,
}

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
    pub audit: Option<TaskId>,
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

/// `GET /v1/tasks/{id}/report`: per node, what was found ("view changes").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskReport {
    pub task: UserTask,
    pub nodes: Vec<NodeReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeReport {
    pub node: String,
    pub day: chrono::NaiveDate,
    pub source: TaskId,
    /// Drift tasks: the node's changes (previous → current, content diffs).
    pub drift: Vec<PluginDrift>,
    /// Scan-failure and policy tasks: the message on this node.
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    pub assignee: String,
}

/// Filters of `GET /v1/tasks`, `POST /v1/tasks/close` and export.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFilter {
    /// `open` (default), `closed` or `all`.
    #[serde(default)]
    pub status: Option<String>,
    /// An email, `me` or `none`.
    #[serde(default)]
    pub assignee: Option<String>,
    /// Case-insensitive text in title or description.
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub kind: Option<UserTaskKind>,
    #[serde(default)]
    pub node: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloseAllResponse {
    pub count: usize,
    pub ids: Vec<u64>,
}

/// A task with its events, as exported.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedTask {
    #[serde(flatten)]
    pub task: UserTask,
    pub event_list: Vec<TaskEvent>,
}
