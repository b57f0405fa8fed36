//! One sender per endpoint: takes the endpoint's deliveries in sequence order (so the events
//! of one task reach it in order), sends each, and commits the outcome durably after the
//! endpoint answered. An event is sent twice only if vigild died between the endpoint's 2xx
//! and that commit, and then with the same `webhook-id`.
//!
//! Connection errors, timeouts, 5xx, 408 and 429 retry with jittered exponential backoff
//! (at least `Retry-After` when the endpoint says it), capped at the endpoint's
//! `max_backoff`, until `give_up_after`; any other answer that is not 2xx (4xx, a redirect,
//! which is never followed) is a dead letter at once. A failing endpoint holds up only its
//! own deliveries: each sender is a task of its own and shares nothing with mail or the
//! queue but the store.
//!
//! This is the only code that sends HTTP requests.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::payload::{self, Body};
use super::Webhooks;
use crate::config::WebhookConfig;
use crate::events::deliveries::{self, StoredDelivery};
use crate::proto::LogEvent;
use crate::store::Commit;

/// The first retry comes after about this long (with jitter: between half of it and all).
const FIRST_RETRY: Duration = Duration::from_secs(10);
/// No retry sooner than this.
const MIN_RETRY: Duration = Duration::from_millis(50);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);
/// A sender looks at its deliveries at least this often, even if nobody woke it.
const IDLE_LOOK: Duration = Duration::from_secs(5);
/// The most of an error answer's body kept for the error message.
const ERROR_BODY_CHARS: usize = 200;

pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;
pub type PlainClient = Client<HttpConnector, Full<Bytes>>;

/// The HTTP clients: for `https://`, rustls verifying against the system's CA certificates
/// (loaded at start; `Err` says why there are none), and for `http://` a plain one, so an
/// endpoint on this machine works without them. HTTP/1.1; redirects are never followed
/// (hyper's client does not).
pub struct Clients {
    tls: Result<HttpsClient, String>,
    plain: PlainClient,
}

impl Clients {
    pub fn load() -> Clients {
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map(|b| {
                let https = b.https_only().enable_http1().build();
                Client::builder(TokioExecutor::new()).build(https)
            })
            .map_err(|e| {
                format!(
                    "cannot load the system's CA certificates for https webhooks: {e}; install \
                     ca-certificates and restart vigild"
                )
            });
        Clients {
            tls,
            plain: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Why https requests cannot be made, if they cannot.
    pub fn tls_error(&self) -> Option<&str> {
        self.tls.as_ref().err().map(String::as_str)
    }
}

/// Delay before retry number `attempts` (1 = after the first failure): exponential from
/// [`FIRST_RETRY`], capped at `max`, scaled by `0.5 + 0.5 * jitter` (`jitter` in 0..1).
pub fn backoff(attempts: u32, max: Duration, jitter: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(24);
    let base = FIRST_RETRY.saturating_mul(1u32 << exp).min(max);
    base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
        .max(MIN_RETRY)
}

/// What one attempt came to.
#[derive(Debug)]
pub enum Outcome {
    Delivered(u16),
    /// Try again later (at least `after`, when the endpoint said so).
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Never try again without an administrator.
    Dead(String),
}

/// Sends `body` as event `id` to `endpoint`, signed, within its timeout.
pub async fn send(clients: &Clients, endpoint: &WebhookConfig, id: &str, body: Body) -> Outcome {
    let https = endpoint.url.starts_with("https:");
    if let (true, Err(e)) = (https, &clients.tls) {
        return Outcome::Retry {
            error: e.clone(),
            after: None,
        };
    }
    let timestamp = Utc::now().timestamp();
    let signature = payload::signature(&endpoint.key, id, timestamp, &body.bytes);
    let request = hyper::Request::post(endpoint.url.as_str())
        .header(hyper::header::CONTENT_TYPE, body.content_type)
        .header(
            hyper::header::USER_AGENT,
            concat!("vigil/", env!("CARGO_PKG_VERSION")),
        )
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(Full::new(Bytes::from(body.bytes)));
    let request = match request {
        Ok(r) => r,
        Err(e) => return Outcome::Dead(format!("cannot build the request: {e}")),
    };
    let exchange = async {
        let response = match &clients.tls {
            Ok(tls) if https => tls.request(request).await?,
            _ => clients.plain.request(request).await?,
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let location = response
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, location, body))
    };
    let (status, retry_after, location, answer) =
        match tokio::time::timeout(endpoint.timeout, exchange).await {
            Err(_) => {
                return Outcome::Retry {
                    error: format!("no answer within {:?} (timeout)", endpoint.timeout),
                    after: None,
                }
            }
            Ok(Err(e)) => {
                return Outcome::Retry {
                    error: format!(
                        "cannot reach {}: {}",
                        origin(&endpoint.url),
                        error_chain(&e)
                    ),
                    after: None,
                }
            }
            Ok(Ok(answer)) => answer,
        };
    let code = status.as_u16();
    if status.is_success() {
        return Outcome::Delivered(code);
    }
    let text: String = String::from_utf8_lossy(&answer)
        .chars()
        .filter(|c| !c.is_control())
        .take(ERROR_BODY_CHARS)
        .collect();
    let error = format!(
        "{} answered {status}{}",
        origin(&endpoint.url),
        if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        }
    );
    if status.is_server_error() || code == 429 || code == 408 {
        Outcome::Retry {
            error,
            after: retry_after,
        }
    } else if status.is_redirection() {
        Outcome::Dead(format!(
            "{error} (a redirect to {}, not followed: point url at the final address)",
            location.as_deref().unwrap_or("?")
        ))
    } else {
        Outcome::Dead(error)
    }
}

/// `scheme://host[:port]` of a URL: what errors and logs name, since the path or query of a
/// webhook URL is often a token.
fn origin(url: &str) -> String {
    url::Url::parse(url).map_or_else(
        |_| "the endpoint".to_owned(),
        |u| u.origin().ascii_serialization(),
    )
}

/// The causes of a hyper client error, joined: "client error (Connect): connection refused".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `Retry-After`: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let secs = (at.with_timezone(&Utc) - Utc::now()).num_seconds().max(0) as u64;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// The sender of endpoint `name` until it is stopped or the endpoint leaves the config.
pub(super) async fn run(w: Webhooks, name: String, stop: tokio_util::sync::CancellationToken) {
    let mut feed = w.events.subscribe();
    let wake = w.wake_of(&name);
    tracing::debug!(webhook = %name, "webhook sender started");
    loop {
        if stop.is_cancelled() {
            return;
        }
        let config = w.cell.config();
        let Some(endpoint) = config.webhook(&name).cloned() else {
            return;
        };
        feed.borrow_and_update();
        let key = name.clone();
        let head = w.store.read(move |tx| deliveries::head(tx, &key)).await;
        let wait = match head {
            Err(e) => {
                tracing::error!(webhook = %name, "cannot read the webhook deliveries: {e}");
                Duration::from_secs(5)
            }
            Ok(None) => IDLE_LOOK,
            Ok(Some((seq, row, event))) => {
                let now = Utc::now();
                match row.next_at.filter(|at| *at > now) {
                    Some(at) => (at - now).to_std().unwrap_or(MIN_RETRY),
                    None => {
                        attempt(&w, &endpoint, seq, row, event).await;
                        continue;
                    }
                }
            }
        };
        tokio::select! {
            _ = feed.changed() => {}
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One attempt at delivery `seq`, its outcome committed.
async fn attempt(
    w: &Webhooks,
    endpoint: &WebhookConfig,
    seq: u64,
    mut row: StoredDelivery,
    event: Option<LogEvent>,
) {
    let name = endpoint.name.clone();
    let started = Instant::now();
    let outcome = match event.as_ref().map(|e| (e, payload::body(endpoint, e))) {
        None => Outcome::Dead(format!(
            "event {seq} is no longer in the event log (pruned after daemon.retention_days)"
        )),
        Some((e, None)) => Outcome::Dead(format!(
            "a {} event has nothing to send as {}",
            e.kind,
            endpoint.format.as_str()
        )),
        Some((e, Some(body))) => send(&w.clients, endpoint, &e.id, body).await,
    };
    let now = Utc::now();
    match &outcome {
        Outcome::Delivered(code) => {
            tracing::debug!(webhook = %name, seq, code, elapsed = ?started.elapsed(), "webhook delivered");
        }
        Outcome::Retry { error, after } => {
            row.attempts += 1;
            let waited = (now - row.since).to_std().unwrap_or_default();
            if waited >= endpoint.give_up_after {
                row.dead = true;
                row.next_at = None;
                tracing::warn!(webhook = %name, seq, "webhook delivery given up after {:?}: {error}", endpoint.give_up_after);
            } else {
                let delay = backoff(row.attempts, endpoint.max_backoff, fastrand::f64())
                    .max(after.unwrap_or_default());
                row.next_at = Some(now + chrono::Duration::from_std(delay).unwrap_or_default());
                tracing::warn!(webhook = %name, seq, attempt = row.attempts, "webhook delivery failed, retrying in {delay:?}: {error}");
            }
            row.last_error = Some(error.clone());
        }
        Outcome::Dead(error) => {
            row.attempts += 1;
            row.dead = true;
            row.next_at = None;
            row.last_error = Some(error.clone());
            tracing::warn!(webhook = %name, seq, "webhook delivery is a dead letter (`vigil webhooks retry {name}` sends it again): {error}");
        }
    }
    w.set_last_error(
        &name,
        match &outcome {
            Outcome::Delivered(_) => None,
            Outcome::Retry { error, .. } | Outcome::Dead(error) => Some(error.clone()),
        },
    );
    let delivered = matches!(outcome, Outcome::Delivered(_));
    let key = name.clone();
    let committed = w
        .store
        .write_as(Commit::Durable, move |tx| {
            if delivered {
                deliveries::delivered(tx, &key, seq, now)
            } else {
                deliveries::failed(tx, &key, seq, &row)
            }
        })
        .await;
    if let Err(e) = committed {
        // Not recorded: the delivery stays as it was and is tried again.
        tracing::error!(webhook = %name, seq, "cannot record the webhook delivery's outcome: {e}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_below_it() {
        let max = Duration::from_secs(3600);
        assert_eq!(backoff(1, max, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(2, max, 1.0), Duration::from_secs(20));
        assert_eq!(backoff(2, max, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(30, max, 1.0), max);
        assert_eq!(backoff(1, Duration::from_millis(1), 0.0), MIN_RETRY);
    }

    #[test]
    fn errors_name_the_origin_never_the_path_or_query() {
        assert_eq!(
            origin("https://hooks.example.com:8443/services/T0/B0/s3cr3t?token=x"),
            "https://hooks.example.com:8443"
        );
        assert_eq!(origin("not a url"), "the endpoint");
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("99999999"), Some(MAX_RETRY_AFTER));
    }
}
