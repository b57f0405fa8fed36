//! Wire types of the outbox: its figures in status, `/v1/outbox` and its actions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Outbox figures in `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxStatus {
    /// Mails waiting for delivery (first try or retry) or being delivered.
    pub pending: u64,
    /// Mails given up on; `vigil outbox retry` sends them again.
    pub dead: u64,
    /// The last delivery error; `null` once a mail was delivered after it.
    pub last_error: Option<String>,
    /// Delivery waits until then: the mail server was unavailable (`vigil outbox flush`
    /// tries now). Absent when not paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    /// Waiting for its first or next delivery attempt.
    Pending,
    /// In an exchange with the mail server right now.
    Sending,
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

/// Query of `GET /v1/outbox`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<OutboxState>,
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
