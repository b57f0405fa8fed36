//! Wire types of the webhooks: their figures in status, `/v1/webhooks` and its actions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::EventKind;

/// What a PagerDuty endpoint does with an event of `kind`: `trigger` for opened, reopened
/// and updated (a trigger with the task's dedup key on an open alert adds to its log, so
/// the alert shows the new nodes), `resolve` for closed; `None` for kinds it is not sent.
pub fn pagerduty_action(kind: EventKind) -> Option<&'static str> {
    match kind {
        EventKind::TaskOpened | EventKind::TaskReopened | EventKind::TaskUpdated => Some("trigger"),
        EventKind::TaskClosed => Some("resolve"),
        EventKind::TaskAssigned | EventKind::ScanFailed | EventKind::AuditFailed => None,
    }
}

/// Webhook figures in `GET /v1/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WebhooksStatus {
    /// Deliveries waiting (first try or retry), over every endpoint.
    pub pending: u64,
    /// Deliveries given up on; `vigil webhooks retry` sends them again.
    pub dead: u64,
    /// Endpoints whose last attempt failed (or, after a restart, whose next delivery had
    /// failed), with that error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<WebhookFailing>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookFailing {
    pub name: String,
    pub error: String,
}

/// One configured endpoint (`GET /v1/webhooks`, admin).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookInfo {
    pub name: String,
    pub url: String,
    pub format: String,
    pub events: Vec<EventKind>,
    pub pending: u64,
    pub dead: u64,
    /// Deliveries made (kept for `daemon.retention_days`).
    pub delivered: u64,
    /// The last failed attempt's error; `null` once a delivery succeeded after it.
    pub last_error: Option<String>,
    /// When the head of the backlog is tried next (absent when nothing waits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// `POST /v1/webhooks/retry`: `{"name": "ops"}` or `{"all": true}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookRetryRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookRetryResponse {
    /// Dead deliveries queued again.
    pub requeued: u64,
    /// Pending deliveries made due now.
    pub due_now: u64,
}

/// `POST /v1/webhooks/{name}/test`: what the endpoint answered a test request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookTestResponse {
    pub name: String,
    /// The HTTP status, if the endpoint answered.
    pub status: Option<u16>,
    /// Why the test failed; `null` for a 2xx.
    pub error: Option<String>,
    pub millis: u64,
}
