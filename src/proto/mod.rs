//! Request and response types of the control API, shared by the daemon and the CLI.
//! Nothing else defines what crosses the socket.

mod drift;
pub mod endpoints;
mod events;
mod outbox;
mod policies;
mod queue;
mod tasks;
mod webhooks;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use drift::*;
pub use events::*;
pub use outbox::*;
pub use policies::*;
pub use queue::*;
pub use tasks::*;
pub use webhooks::*;

/// Reply header: how many stored rows the reply leaves out because they do not decode
/// (absent when none; `vigild check` names them). The reply's JSON is unchanged.
pub const UNDECODABLE_ROWS_HEADER: &str = "vigil-undecodable-rows";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Site User: views everything, acts on what is assigned to them.
    User,
    /// Site Administrator: may do everything.
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::User => "user",
        })
    }
}

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
    pub code: ErrorCode,
    /// One sentence for a person: what failed and what to do.
    pub message: String,
}

/// The machine-readable code of an API error; each has one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: bad JSON, unknown field, invalid value.
    BadRequest,
    /// 403: the caller's role does not allow it.
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 408: the request took too long to arrive or to serve.
    Timeout,
    /// 409: the action conflicts with the state (reopening a duplicate).
    Conflict,
    /// 413
    PayloadTooLarge,
    /// 415: a request body that is not `application/json`.
    UnsupportedMediaType,
    /// 503: the caller's uid holds as many connections as it may (or the socket is full).
    TooManyConnections,
    /// 422: the new config was rejected.
    InvalidConfig,
    /// 422: an assignee that is neither a configured user nor a group owner.
    UnknownAssignee,
    /// 429: the queue is full.
    QueueFull,
    /// 500: a bug or a store failure; the daemon's log says more.
    Internal,
    /// 503: the daemon is stopping.
    Stopping,
    /// 503: the database cannot be written (a full disk); the message says why.
    StoreFailing,
    /// 500: the database is damaged; the message says to run `vigild check`.
    StoreCorrupt,
    /// Any other failure status.
    Error,
    /// A code this build does not know (from a newer daemon).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status the daemon answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Timeout => 408,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::TooManyConnections => 503,
            ErrorCode::InvalidConfig | ErrorCode::UnknownAssignee => 422,
            ErrorCode::QueueFull => 429,
            ErrorCode::Internal
            | ErrorCode::Error
            | ErrorCode::Unknown
            | ErrorCode::StoreCorrupt => 500,
            ErrorCode::Stopping | ErrorCode::StoreFailing => 503,
        }
    }
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

/// A configured user (`GET /v1/users`): whom a task can be assigned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub email: String,
    pub role: Role,
}

/// Whether the database can be used: `{"state": "ok"}`, or `{"state": "failing", "since",
/// "error"}` (a full disk), with the stored rows that did not decode since vigild started.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoreHealth {
    pub state: StoreState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Rows left out because they did not decode, by kind of row ("queue task", ...);
    /// `vigild check` looks for the damage.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub undecodable_rows: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreState {
    #[default]
    Ok,
    Failing,
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
    /// What is wrong with the config in force without stopping it (a node root that is not
    /// there, a plugin library that is missing): only those nodes' or plugins' scans fail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_warnings: Vec<String>,
    /// The database's health (a full disk shows here, not only in the log).
    #[serde(default)]
    pub store: StoreHealth,
    pub caller: Identity,
    pub nodes: usize,
    pub slots: u32,
    pub queue: Option<QueueFigures>,
    /// Outbox figures; `null` if they could not be read.
    pub outbox: Option<OutboxStatus>,
    /// Webhook backlog, beside the outbox's; `null` if it could not be read, absent for a
    /// caller shown nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<WebhooksStatus>,
    /// Open user tasks of the organisation.
    pub open_tasks: Option<u64>,
    /// Open user tasks assigned to the caller; `null` for a caller without an email.
    pub my_open_tasks: Option<u64>,
    /// For a uid that is not a configured user: that it is not, and what to do. Such a
    /// caller is shown the version and this, nothing about the daemon's config or state
    /// (the other fields are empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// `POST /v1/reload` body; unknown fields are refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadRequest {
    /// Accept a config that removes every node or every admin (a deliberate change; a
    /// file watcher's or SIGHUP's reload never does).
    #[serde(default)]
    pub allow_empty: bool,
}

/// `POST /v1/reload` reply when the new config was accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reloaded {
    pub loaded_at: DateTime<Utc>,
    pub summary: String,
}
