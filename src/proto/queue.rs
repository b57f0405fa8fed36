//! Wire types of the queue: task ids, active tasks, requests, cancel, the Scan and Audit logs.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::CheckRecord;

/// What a queue task does: scan a node, or audit it against policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueTaskKind {
    Scan,
    Audit,
}

/// What a request covers: every node, one group's nodes, or one node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Scope {
    All,
    Group(String),
    Node(String),
}

impl TryFrom<String> for Scope {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Scope> for String {
    fn from(s: Scope) -> String {
        s.to_string()
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid scope {s:?}: expected \"all\", \"group:NAME\" or \"node:NAME\"");
        match s.split_once(':') {
            None if s == "all" => Ok(Scope::All),
            Some(("group", name)) if !name.is_empty() => Ok(Scope::Group(name.to_owned())),
            Some(("node", name)) if !name.is_empty() => Ok(Scope::Node(name.to_owned())),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("all"),
            Scope::Group(g) => write!(f, "group:{g}"),
            Scope::Node(n) => write!(f, "node:{n}"),
        }
    }
}

/// `Scan #12` / `Audit #3`: numbered per kind, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueTaskId {
    pub kind: QueueTaskKind,
    pub number: u64,
}

impl std::fmt::Display for QueueTaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            QueueTaskKind::Scan => write!(f, "Scan #{}", self.number),
            QueueTaskKind::Audit => write!(f, "Audit #{}", self.number),
        }
    }
}

impl std::str::FromStr for QueueTaskId {
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
            "scan" | "s" => QueueTaskKind::Scan,
            "audit" | "a" => QueueTaskKind::Audit,
            _ => return Err(bad()),
        };
        let number = num.parse().map_err(|_| bad())?;
        Ok(QueueTaskId { kind, number })
    }
}

impl Serialize for QueueTaskId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for QueueTaskId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Initiator of scheduled tasks (the schedule's name is a separate field).
pub const SCHEDULE_INITIATOR: &str = "Schedule";

/// An active queue task (`GET /v1/queue`).
///
/// On the wire it is one flat object (`id`, `plugins`/`policies`, `status`, `started_at`,
/// `attempt`, ...) as it always was; in code the kind of work and the state carry what each
/// has, so that a Running task without a start or an audit with plugins cannot be written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "wire::QueueTask", try_from = "wire::QueueTask")]
pub struct QueueTask {
    /// `N` of `Scan #N` / `Audit #N`; the kind is the work's.
    pub number: u64,
    /// Device/Resource: the node's name.
    pub target: String,
    pub scope: Scope,
    /// The caller's email for ad-hoc requests, `Schedule` for scheduled ones.
    pub initiator: String,
    pub schedule: Option<String>,
    pub work: QueueWork,
    pub queued_at: DateTime<Utc>,
    pub state: QueueTaskState,
    /// The run this task is part of; `None` for a single-node scan or audit.
    pub run: Option<u64>,
}

impl QueueTask {
    pub fn id(&self) -> QueueTaskId {
        QueueTaskId {
            kind: self.work.kind(),
            number: self.number,
        }
    }

    pub fn status(&self) -> QueueTaskStatus {
        self.state.status()
    }
}

/// What a queue task does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueWork {
    /// Scan the node with these plugins (`None`: every configured plugin).
    Scan { plugins: Option<Vec<String>> },
    /// Audit the node against these policies (`None`: every policy that applies).
    Audit { policies: Option<Vec<String>> },
}

impl QueueWork {
    pub fn kind(&self) -> QueueTaskKind {
        match self {
            QueueWork::Scan { .. } => QueueTaskKind::Scan,
            QueueWork::Audit { .. } => QueueTaskKind::Audit,
        }
    }
}

/// Where an active task is in its life. Its end is a Scan log / Audit log row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueTaskState {
    /// Waiting for a slot; `attempt` is the run it will be (1, or more after interruptions).
    Queued { attempt: u32 },
    /// Running since `started_at`, its `attempt`-th run.
    Running {
        started_at: DateTime<Utc>,
        attempt: u32,
    },
}

impl QueueTaskState {
    pub fn status(self) -> QueueTaskStatus {
        match self {
            QueueTaskState::Queued { .. } => QueueTaskStatus::Queued,
            QueueTaskState::Running { .. } => QueueTaskStatus::Running,
        }
    }

    /// 1 for the first run; raised when a run is interrupted by a daemon stop.
    pub fn attempt(self) -> u32 {
        match self {
            QueueTaskState::Queued { attempt } | QueueTaskState::Running { attempt, .. } => attempt,
        }
    }

    pub fn started_at(self) -> Option<DateTime<Utc>> {
        match self {
            QueueTaskState::Queued { .. } => None,
            QueueTaskState::Running { started_at, .. } => Some(started_at),
        }
    }
}

/// The flat JSON form of [`QueueTask`].
mod wire {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};

    use super::{QueueTaskId, QueueTaskKind, QueueTaskState, QueueTaskStatus, QueueWork, Scope};

    #[derive(Serialize, Deserialize)]
    pub struct QueueTask {
        id: QueueTaskId,
        target: String,
        scope: Scope,
        initiator: String,
        schedule: Option<String>,
        /// Scan: the plugins to run (`null`: all configured). Audit: `null`.
        plugins: Option<Vec<String>>,
        /// Audit: the policies to evaluate (`null`: all). Scan: `null`.
        policies: Option<Vec<String>>,
        queued_at: DateTime<Utc>,
        started_at: Option<DateTime<Utc>>,
        status: QueueTaskStatus,
        attempt: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<u64>,
    }

    impl From<super::QueueTask> for QueueTask {
        fn from(t: super::QueueTask) -> Self {
            let id = t.id();
            let (plugins, policies) = match t.work {
                QueueWork::Scan { plugins } => (plugins, None),
                QueueWork::Audit { policies } => (None, policies),
            };
            QueueTask {
                id,
                target: t.target,
                scope: t.scope,
                initiator: t.initiator,
                schedule: t.schedule,
                plugins,
                policies,
                queued_at: t.queued_at,
                started_at: t.state.started_at(),
                status: t.state.status(),
                attempt: t.state.attempt(),
                run: t.run,
            }
        }
    }

    impl TryFrom<QueueTask> for super::QueueTask {
        type Error = String;
        fn try_from(t: QueueTask) -> Result<Self, String> {
            let work = match (t.id.kind, t.plugins, t.policies) {
                (QueueTaskKind::Scan, plugins, None) => QueueWork::Scan { plugins },
                (QueueTaskKind::Audit, None, policies) => QueueWork::Audit { policies },
                (QueueTaskKind::Scan, _, Some(_)) => {
                    return Err(format!("{}: a scan has no `policies`", t.id))
                }
                (QueueTaskKind::Audit, Some(_), _) => {
                    return Err(format!("{}: an audit has no `plugins`", t.id))
                }
            };
            let state = match (t.status, t.started_at) {
                (QueueTaskStatus::Queued, _) => QueueTaskState::Queued { attempt: t.attempt },
                (QueueTaskStatus::Running, Some(started_at)) => QueueTaskState::Running {
                    started_at,
                    attempt: t.attempt,
                },
                (QueueTaskStatus::Running, None) => {
                    return Err(format!("{}: Running without `started_at`", t.id))
                }
            };
            Ok(super::QueueTask {
                number: t.id.number,
                target: t.target,
                scope: t.scope,
                initiator: t.initiator,
                schedule: t.schedule,
                work,
                queued_at: t.queued_at,
                state,
                run: t.run,
            })
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueTaskStatus {
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
    pub id: QueueTaskId,
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
    /// Audits: the one-line outcome, e.g. "12 checks of policy debian-baseline: 6 passed,
    /// 6 failed, 0 could not be evaluated". Not an error.
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
    /// The run this task was part of: its user tasks are made when the run ends, and these
    /// counts are filled in then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
}

/// `POST /v1/queue`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    pub kind: QueueTaskKind,
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
    pub ids: Vec<QueueTaskId>,
    /// The run the tasks form when the request covers more than one node: its user tasks
    /// are made when its last task ends (`GET /v1/runs/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
}

/// A run: the queue tasks of one request or schedule fire that covers more than one node.
/// Its findings become user tasks together, once its last task has ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: u64,
    pub kind: QueueTaskKind,
    pub scope: Scope,
    pub initiator: String,
    pub schedule: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Queue tasks in the run, and how many have ended.
    pub tasks: u32,
    pub ended: u32,
    pub state: RunState,
    /// When the run's user tasks were made; `null` until then.
    pub completed_at: Option<DateTime<Utc>>,
    pub user_tasks_created: u64,
    pub user_tasks_updated: u64,
    pub user_tasks_closed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Tasks are still queued or running.
    Running,
    /// Every task ended; its findings are being grouped into user tasks.
    Grouping,
    /// The run's user tasks exist.
    Complete,
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
pub struct QueueFigures {
    pub queued: usize,
    pub running: usize,
    pub slots: u32,
    pub capacity: u32,
    /// Scheduled tasks that did not fit in the queue since the state dir was created.
    pub dropped_scheduled: u64,
    /// Age of the oldest Running task: a task Running for hours is worth a look.
    pub oldest_running_secs: Option<u64>,
}

/// Query of `GET /v1/queue`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<QueueTaskStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<QueueTaskKind>,
}

/// Query of `GET /v1/logs/{log}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<FinalStatus>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: usize,
    /// Default 50, at most 1,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The two logs, as named in `/v1/logs/{log}`.
pub fn log_name(kind: QueueTaskKind) -> &'static str {
    match kind {
        QueueTaskKind::Scan => "scans",
        QueueTaskKind::Audit => "audits",
    }
}

/// A page of log rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogPage {
    pub rows: Vec<LogRow>,
    /// Rows matching the filter, all pages together.
    pub total: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON of queue tasks as the API has always shown them (and as the queue table
    /// stored them before the renovation).
    #[test]
    fn queue_tasks_keep_their_flat_json_form() {
        let running = r#"{"id":"Scan #7","target":"web-1","scope":"group:web","initiator":"Schedule","schedule":"nightly","plugins":["files"],"policies":null,"queued_at":"2026-03-01T02:00:00Z","started_at":"2026-03-01T02:00:05Z","status":"Running","attempt":2}"#;
        let t: QueueTask = serde_json::from_str(running).unwrap();
        assert_eq!(t.id().to_string(), "Scan #7");
        assert_eq!(
            t.work,
            QueueWork::Scan {
                plugins: Some(vec!["files".into()])
            }
        );
        assert!(matches!(
            t.state,
            QueueTaskState::Running { attempt: 2, .. }
        ));
        assert_eq!(serde_json::to_string(&t).unwrap(), running);

        let queued = r#"{"id":"Audit #3","target":"db-1","scope":"all","initiator":"alice@example.com","schedule":null,"plugins":null,"policies":null,"queued_at":"2026-03-01T02:00:00Z","started_at":null,"status":"Queued","attempt":1}"#;
        let t: QueueTask = serde_json::from_str(queued).unwrap();
        assert_eq!(t.work, QueueWork::Audit { policies: None });
        assert_eq!(t.state, QueueTaskState::Queued { attempt: 1 });
        assert_eq!(serde_json::to_string(&t).unwrap(), queued);
    }

    #[test]
    fn impossible_queue_tasks_do_not_decode() {
        let bad = [
            r#"{"id":"Scan #1","target":"n","scope":"all","initiator":"x","schedule":null,"plugins":null,"policies":["p"],"queued_at":"2026-03-01T02:00:00Z","started_at":null,"status":"Queued","attempt":1}"#,
            r#"{"id":"Audit #1","target":"n","scope":"all","initiator":"x","schedule":null,"plugins":["f"],"policies":null,"queued_at":"2026-03-01T02:00:00Z","started_at":null,"status":"Queued","attempt":1}"#,
            r#"{"id":"Scan #1","target":"n","scope":"all","initiator":"x","schedule":null,"plugins":null,"policies":null,"queued_at":"2026-03-01T02:00:00Z","started_at":null,"status":"Running","attempt":1}"#,
        ];
        for b in bad {
            assert!(serde_json::from_str::<QueueTask>(b).is_err(), "{b}");
        }
    }

    #[test]
    fn scope_parses_and_prints() {
        for s in ["all", "group:web", "node:web-1"] {
            assert_eq!(s.parse::<Scope>().unwrap().to_string(), s);
        }
        for bad in ["", "group:", "host:x", "everything"] {
            assert!(bad.parse::<Scope>().is_err(), "{bad}");
        }
    }
}
