//! Request bodies: a CloudEvents 1.0 structured-mode envelope, or a PagerDuty Events API v2
//! event; and the Standard Webhooks signature over them.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::config::{WebhookConfig, WebhookFormat};
use crate::proto::{pagerduty_action, LogEvent};

pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json";
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// PagerDuty's limit on a summary.
const PD_SUMMARY_CHARS: usize = 1024;

/// A body ready to send and its content type.
#[derive(Debug, Clone)]
pub struct Body {
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// The instance part of an event id (`<instance>-<seq>`).
fn instance_of(e: &LogEvent) -> &str {
    e.id.rsplit_once('-').map_or(e.id.as_str(), |(i, _)| i)
}

/// The body of `event` for `endpoint`; `None` for an event its format does not send (a
/// PagerDuty endpoint and an event without a task).
pub fn body(endpoint: &WebhookConfig, event: &LogEvent) -> Option<Body> {
    let value = match endpoint.format {
        WebhookFormat::Cloudevents => cloudevent(event),
        WebhookFormat::Pagerduty => pagerduty(endpoint.routing_key.as_deref()?, event)?,
    };
    Some(Body {
        content_type: match endpoint.format {
            WebhookFormat::Cloudevents => CLOUDEVENTS_CONTENT_TYPE,
            WebhookFormat::Pagerduty => JSON_CONTENT_TYPE,
        },
        bytes: value.to_string().into_bytes(),
    })
}

/// CloudEvents 1.0, structured mode: the event is `data`, its kind the `type`.
pub fn cloudevent(e: &LogEvent) -> Value {
    let mut v = json!({
        "specversion": "1.0",
        "id": e.id,
        "source": format!("/vigil/{}", instance_of(e)),
        "type": format!("vigil.{}", e.kind),
        "time": e.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "datacontenttype": "application/json",
        "data": e,
    });
    if let Some(task) = e.task {
        v["subject"] = json!(format!("task/{task}"));
    }
    v
}

/// PagerDuty Events API v2: trigger for opened, reopened and updated, resolve for closed,
/// keyed by the task's dedup key.
pub fn pagerduty(routing_key: &str, e: &LogEvent) -> Option<Value> {
    let action = pagerduty_action(e.kind)?;
    let dedup_key = e.dedup_key.as_deref()?;
    if action == "resolve" {
        return Some(json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        }));
    }
    let summary: String = e.title.chars().take(PD_SUMMARY_CHARS).collect();
    let source = e
        .event_nodes
        .first()
        .cloned()
        .unwrap_or_else(|| format!("vigil/{}", instance_of(e)));
    let mut v = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "client": "vigil",
        "payload": {
            "summary": summary,
            "source": source,
            "severity": "warning",
            "timestamp": e.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "class": e.kind.as_str(),
            "custom_details": e,
        },
    });
    // PagerDuty's optional fields are strings when present, never null.
    if let Some(kind) = e.task_kind {
        v["payload"]["group"] = json!(kind);
    }
    Some(v)
}

/// `v1,<base64 HMAC-SHA256 of id.timestamp.body>` (Standard Webhooks).
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification's reference libraries.
        let key =
            crate::config::webhook::parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
