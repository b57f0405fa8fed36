//! Webhooks: the event log pushed to the endpoints of `[[webhook]]` entries, signed as
//! Standard Webhooks, as CloudEvents or PagerDuty events. Deliveries are rows written with
//! their event (`events::deliveries`); [`Webhooks`] keeps the endpoints in force in the
//! store ([`Webhooks::apply`], at start and after each reload) and runs one `sender` per
//! endpoint; `payload` builds and signs the bodies. The only module that sends HTTP.

pub mod payload;
pub mod sender;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::events::deliveries;
use crate::events::EventLog;
use crate::proto::{
    LogEvent, WebhookFailing, WebhookInfo, WebhookRetryResponse, WebhookTestResponse,
    WebhooksStatus,
};
use crate::setup::SetupCell;
use crate::store::{Commit, Store, StoreError};

/// A sender's handle and what the endpoint last did.
struct Endpoint {
    stop: CancellationToken,
    wake: Arc<Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
    last_error: Option<String>,
}

/// The webhook service. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    store: Store,
    cell: Arc<SetupCell>,
    events: EventLog,
    clients: Arc<sender::Clients>,
    endpoints: Arc<Mutex<HashMap<String, Endpoint>>>,
    shutdown: CancellationToken,
}

impl Webhooks {
    pub fn new(store: Store, cell: Arc<SetupCell>, events: EventLog) -> Webhooks {
        let clients = sender::Clients::load();
        if let Some(e) = clients.tls_error() {
            if cell
                .config()
                .webhooks
                .iter()
                .any(|w| w.url.starts_with("https:"))
            {
                tracing::error!("{e}");
            }
        }
        Webhooks {
            store,
            cell,
            events,
            clients: Arc::new(clients),
            endpoints: Arc::new(Mutex::new(HashMap::new())),
            shutdown: CancellationToken::new(),
        }
    }

    /// Puts the config's endpoints in force (at start): [`Webhooks::set_routes`], then
    /// [`Webhooks::start_senders`].
    pub async fn apply(&self) -> Result<(), StoreError> {
        self.set_routes(&self.cell.config()).await?;
        self.start_senders();
        Ok(())
    }

    /// Records which kinds each endpoint of `config` receives: from the next event on, each
    /// gets a delivery row. A reload calls it before the new config is swapped in (an event
    /// in between is queued for the new endpoints, whose senders start right after).
    pub async fn set_routes(&self, config: &Config) -> Result<(), StoreError> {
        let routes: Vec<_> = config
            .webhooks
            .iter()
            .map(|w| (w.name.clone(), w.kinds()))
            .collect();
        self.store
            .write_as(Commit::Durable, move |tx| {
                deliveries::set_routes(tx, &routes)
            })
            .await
    }

    /// Starts a sender for each endpoint of the config in force that has none, stops those
    /// of removed ones (their undelivered rows stay until `daemon.retention_days`) and wakes
    /// the others (their settings may have changed).
    pub fn start_senders(&self) {
        let config = self.cell.config();
        let mut endpoints = crate::sync::lock(&self.endpoints);
        endpoints.retain(|name, e| {
            let keep = config.webhook(name).is_some();
            if !keep {
                e.stop.cancel();
                tracing::info!(webhook = %name, "webhook removed from the config: its sender stops");
            }
            keep
        });
        for w in &config.webhooks {
            let e = endpoints.entry(w.name.clone()).or_insert_with(|| Endpoint {
                stop: self.shutdown.child_token(),
                wake: Arc::new(Notify::new()),
                task: None,
                last_error: None,
            });
            if e.task.as_ref().is_none_or(|t| t.is_finished()) {
                e.task = Some(tokio::spawn(sender::run(
                    self.clone(),
                    w.name.clone(),
                    e.stop.clone(),
                )));
            } else {
                // Settings may have changed (a new timeout, a fixed url): look again now.
                e.wake.notify_one();
            }
        }
    }

    fn wake_of(&self, name: &str) -> Arc<Notify> {
        crate::sync::lock(&self.endpoints)
            .get(name)
            .map_or_else(|| Arc::new(Notify::new()), |e| e.wake.clone())
    }

    fn set_last_error(&self, name: &str, error: Option<String>) {
        if let Some(e) = crate::sync::lock(&self.endpoints).get_mut(name) {
            e.last_error = error;
        }
    }

    fn last_error(&self, name: &str) -> Option<String> {
        crate::sync::lock(&self.endpoints)
            .get(name)
            .and_then(|e| e.last_error.clone())
    }

    /// Stops every sender, waiting up to `grace` for a request in flight (its outcome is
    /// then committed; one cut off is sent again at the next start, with the same id).
    pub async fn shutdown(&self, grace: Duration) {
        self.shutdown.cancel();
        let tasks: Vec<_> = crate::sync::lock(&self.endpoints)
            .values_mut()
            .filter_map(|e| e.task.take())
            .collect();
        let _ = tokio::time::timeout(grace, futures::future::join_all(tasks)).await;
    }

    /// Every configured endpoint with its figures.
    pub async fn list(&self) -> Result<Vec<WebhookInfo>, StoreError> {
        self.figures(true).await
    }

    /// [`Webhooks::list`]; `delivered` counted only `with_delivered` (a walk over the
    /// retention period's deliveries, which status does not need).
    async fn figures(&self, with_delivered: bool) -> Result<Vec<WebhookInfo>, StoreError> {
        let config = self.cell.config();
        let names: Vec<String> = config.webhooks.iter().map(|w| w.name.clone()).collect();
        let counts = self
            .store
            .read(move |tx| {
                names
                    .iter()
                    .map(|n| deliveries::counts(tx, n, with_delivered))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        let heads = self.head_errors(&config).await?;
        Ok(config
            .webhooks
            .iter()
            .zip(counts)
            .zip(heads)
            .map(|((w, c), head_error)| WebhookInfo {
                name: w.name.clone(),
                url: w.url.clone(),
                format: w.format.as_str().to_owned(),
                events: w.kinds(),
                pending: c.pending,
                dead: c.dead,
                delivered: c.delivered,
                last_error: self.last_error(&w.name).or(head_error),
                next_attempt_at: c.next_at,
            })
            .collect())
    }

    /// The last error of each endpoint's head delivery (what a restart still knows).
    async fn head_errors(&self, config: &Config) -> Result<Vec<Option<String>>, StoreError> {
        let names: Vec<String> = config.webhooks.iter().map(|w| w.name.clone()).collect();
        self.store
            .read(move |tx| {
                names
                    .iter()
                    .map(|n| Ok(deliveries::head(tx, n)?.and_then(|(_, d, _)| d.last_error)))
                    .collect()
            })
            .await
    }

    /// The backlog over every endpoint, for `GET /v1/status`, and the endpoints whose last
    /// attempt failed.
    pub async fn status(&self) -> Result<WebhooksStatus, StoreError> {
        let mut s = WebhooksStatus::default();
        for w in self.figures(false).await? {
            s.pending += w.pending;
            s.dead += w.dead;
            if let Some(error) = w.last_error {
                s.failing.push(WebhookFailing {
                    name: w.name,
                    error,
                });
            }
        }
        Ok(s)
    }

    /// Dead deliveries of `name` (every endpoint for `None`) queued again, pending ones made
    /// due now.
    pub async fn retry(&self, name: Option<String>) -> Result<WebhookRetryResponse, StoreError> {
        let config = self.cell.config();
        let names: Vec<String> = match name {
            Some(n) => vec![n],
            None => config.webhooks.iter().map(|w| w.name.clone()).collect(),
        };
        let now = Utc::now();
        let woken = names.clone();
        let (requeued, due_now) = self
            .store
            .write_as(Commit::Durable, move |tx| {
                let mut sum = (0, 0);
                for n in &names {
                    let (r, d) = deliveries::retry(tx, n, now)?;
                    sum = (sum.0 + r, sum.1 + d);
                }
                Ok::<_, StoreError>(sum)
            })
            .await?;
        for n in &woken {
            self.wake_of(n).notify_one();
        }
        Ok(WebhookRetryResponse { requeued, due_now })
    }

    /// Sends a test event to endpoint `name` now, outside the log (nothing is recorded), and
    /// says what it answered. A PagerDuty test triggers and at once resolves its own key.
    pub async fn test(&self, name: &str, by: &str) -> Option<WebhookTestResponse> {
        let config = self.cell.config();
        let endpoint = config.webhook(name)?.clone();
        let instance = self
            .store
            .write_as(Commit::Durable, crate::events::instance)
            .await
            .unwrap_or_else(|_| "unknown".into());
        let started = Instant::now();
        let mut event = test_event(&instance, by);
        let mut result = (None, None);
        for kind in test_kinds(&endpoint) {
            event.kind = kind;
            let Some(body) = payload::body(&endpoint, &event) else {
                continue;
            };
            result = match sender::send(&self.clients, &endpoint, &event.id, body).await {
                sender::Outcome::Delivered(code) => (Some(code), None),
                sender::Outcome::Retry { error, .. } | sender::Outcome::Dead(error) => {
                    (None, Some(error))
                }
            };
            if result.1.is_some() {
                break;
            }
        }
        Some(WebhookTestResponse {
            name: name.to_owned(),
            status: result.0,
            error: result.1,
            millis: started.elapsed().as_millis() as u64,
        })
    }
}

/// The event a test sends: no task, a key of its own (`vigil/<instance>/test`).
fn test_event(instance: &str, by: &str) -> LogEvent {
    let now = Utc::now();
    LogEvent {
        seq: 0,
        id: format!("{instance}-test-{}", now.timestamp_millis()),
        time: now,
        kind: crate::proto::EventKind::TaskOpened,
        task: None,
        dedup_key: Some(format!("vigil/{instance}/test")),
        task_kind: None,
        title: format!("vigil webhook test (sent by {by})"),
        status: None,
        assignee: None,
        events: 0,
        nodes: 0,
        event_nodes: Vec::new(),
        nodes_in_event: 0,
        by: Some(by.to_owned()),
        how: None,
        source: None,
    }
}

/// The kinds a test sends: an opened task, and for PagerDuty its resolve too.
fn test_kinds(endpoint: &crate::config::WebhookConfig) -> Vec<crate::proto::EventKind> {
    use crate::proto::EventKind;
    match endpoint.format {
        crate::config::WebhookFormat::Cloudevents => vec![EventKind::TaskOpened],
        crate::config::WebhookFormat::Pagerduty => {
            vec![EventKind::TaskOpened, EventKind::TaskClosed]
        }
    }
}
