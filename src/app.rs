//! The running application: the services the API and the daemon's loop share (store,
//! queue, outbox, user tasks, node and policy views), the config in force and its reload.
//! Built by `daemon::run`; used by `api`, which therefore needs nothing of `daemon`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::audits::Audits;
use crate::config::Config;
use crate::located::{LocatedError, LocatedErrors};
use crate::nodes::Nodes;
use crate::outbox::Outbox;
use crate::proto::Reloaded;
use crate::queue::Queue;
use crate::schedule::Scheduler;
use crate::setup::{self, Setup, SetupCell};
use crate::store::Store;
use crate::tasks::UserTasks;
use crate::webhook::Webhooks;

/// What an [`App`] is built from, created in this order by `daemon::run`: outbox, user
/// tasks (which mail through the outbox), queue (whose tasks' findings become user tasks).
pub struct Parts {
    pub config_path: PathBuf,
    pub cell: Arc<SetupCell>,
    pub store: Store,
    pub queue: Queue,
    pub outbox: Outbox,
    pub tasks: UserTasks,
    pub webhooks: Webhooks,
}

pub struct App {
    pub config_path: PathBuf,
    pub store: Store,
    pub queue: Queue,
    /// Mail to send; modules that cause mail enqueue into it and wake it.
    pub outbox: Outbox,
    pub tasks: UserTasks,
    /// The event log's pushes to `[[webhook]]` endpoints.
    pub webhooks: Webhooks,
    /// Node views: last scans, drift, items.
    pub nodes: Nodes,
    /// Policy views: the latest audit results.
    pub audits: Audits,
    pub started_at: DateTime<Utc>,
    started: Instant,
    cell: Arc<SetupCell>,
    last_reload_error: Mutex<Option<String>>,
    // One reload at a time, whoever asked (SIGHUP, file watcher, API).
    reload_lock: tokio::sync::Mutex<()>,
    scheduler: std::sync::OnceLock<Scheduler>,
}

impl App {
    pub fn new(parts: Parts) -> Self {
        let Parts {
            config_path,
            cell,
            store,
            queue,
            outbox,
            tasks,
            webhooks,
        } = parts;
        App {
            config_path,
            outbox,
            tasks,
            webhooks,
            nodes: Nodes::new(store.clone(), cell.clone()),
            audits: Audits::new(store.clone(), cell.clone()),
            store,
            queue,
            started_at: Utc::now(),
            started: Instant::now(),
            cell,
            last_reload_error: Mutex::new(None),
            reload_lock: tokio::sync::Mutex::new(()),
            scheduler: std::sync::OnceLock::new(),
        }
    }

    /// Lets reloads re-register schedules. Set once, right after the scheduler starts.
    pub fn set_scheduler(&self, scheduler: Scheduler) {
        let _ = self.scheduler.set(scheduler);
    }

    /// The config in force now (see [`SetupCell::current`]).
    pub fn config(&self) -> Arc<Config> {
        self.cell.config()
    }

    /// The config and policies in force now.
    pub fn setup(&self) -> Setup {
        self.cell.current()
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    pub fn last_reload_error(&self) -> Option<String> {
        crate::sync::lock(&self.last_reload_error).clone()
    }

    /// Re-reads and validates the config file. A good config is swapped in whole; a bad one
    /// is logged, kept as `last_reload_error`, and the old config stays in force. A config
    /// that removes every node or every admin is bad unless `allow_empty` says it is meant.
    pub async fn reload(
        &self,
        trigger: &str,
        allow_empty: bool,
    ) -> Result<Reloaded, LocatedErrors> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let path = self.config_path.clone();
        let result = tokio::task::spawn_blocking(move || setup::load(&path))
            .await
            .unwrap_or_else(|e| {
                Err(LocatedErrors::one(LocatedError::in_file(
                    &self.config_path,
                    format!("reload task failed: {e}"),
                )))
            })
            .and_then(|new| {
                if allow_empty {
                    return Ok(new);
                }
                match emptied(&self.config(), &new.config) {
                    Some(why) => Err(LocatedErrors::one(LocatedError::in_file(
                        &self.config_path,
                        format!(
                            "the new config {why}; a file being rewritten looks like that, so \
                             it is refused: finish writing it, or if the change is meant, \
                             `vigil reload --allow-empty` (POST /v1/reload {{\"allow_empty\": true}})"
                        ),
                    ))),
                    None => Ok(new),
                }
            });
        match result {
            Ok(new) => {
                let old = self.config();
                warn_about_restart_only_changes(&old, &new.config);
                let summary = format!(
                    "{}, {} policies",
                    summary_line(&new.config),
                    new.policies.len()
                );
                let loaded_at = new.loaded_at;
                // The endpoints' routes first: once the new config is visible, its events
                // already go to its endpoints.
                if let Err(e) = self.webhooks.set_routes(&new.config).await {
                    tracing::error!(
                        "cannot put the reloaded webhook endpoints in force: {e}; events keep \
                         going to the endpoints of the previous config until the next reload"
                    );
                }
                // The error clears before the new config is visible, so no reader sees the
                // new config beside the old error (the scheduler's update below awaits).
                *crate::sync::lock(&self.last_reload_error) = None;
                self.cell.replace(new);
                self.webhooks.start_senders();
                // New slots or schedules: let the queue and the scheduler look again.
                self.queue.poke();
                if let Some(scheduler) = self.scheduler.get() {
                    scheduler.apply(self.config()).await;
                }
                tracing::info!(trigger, %summary, "config reloaded");
                log_warnings(&self.cell.current());
                Ok(Reloaded { loaded_at, summary })
            }
            Err(errors) => {
                tracing::error!(
                    trigger,
                    errors = errors.0.len(),
                    "config reload rejected, the previous config stays in force:\n{errors}"
                );
                *crate::sync::lock(&self.last_reload_error) = Some(errors.to_string());
                Err(errors)
            }
        }
    }
}

/// What a new config takes away entirely that the old one had: every node, every admin.
fn emptied(old: &Config, new: &Config) -> Option<String> {
    let admins = |c: &Config| {
        c.users
            .iter()
            .filter(|u| u.role == crate::proto::Role::Admin)
            .count()
    };
    let mut gone = Vec::new();
    if !old.nodes.is_empty() && new.nodes.is_empty() {
        gone.push(format!("every node (had {})", old.nodes.len()));
    }
    if admins(old) > 0 && admins(new) == 0 {
        gone.push(format!("every admin (had {})", admins(old)));
    }
    (!gone.is_empty()).then(|| format!("removes {}", gone.join(" and ")))
}

/// "3 nodes, 2 plugins, ..." for logs and replies.
pub fn summary_line(config: &Config) -> String {
    config
        .summary()
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn warn_about_restart_only_changes(old: &Config, new: &Config) {
    let (o, n) = (&old.daemon, &new.daemon);
    for (name, changed) in [
        ("daemon.state_dir", o.state_dir != n.state_dir),
        ("daemon.socket", o.socket != n.socket),
        ("daemon.socket_group", o.socket_group != n.socket_group),
        (
            "daemon.max_connections",
            o.max_connections != n.max_connections,
        ),
        (
            "daemon.client_timeout",
            o.client_timeout != n.client_timeout,
        ),
        (
            "daemon.request_timeout",
            o.request_timeout != n.request_timeout,
        ),
    ] {
        if changed {
            tracing::warn!("{name} changed: it takes effect only when vigild restarts");
        }
    }
}

/// Logs what is wrong with the config in force but does not stop it (see `Setup::warnings`).
pub fn log_warnings(setup: &Setup) {
    for w in setup.warnings.iter() {
        tracing::warn!("{w}");
    }
}

/// Every table of encoded rows, from the modules that own them: what `vigild check` decodes.
pub fn stored_rows() -> Vec<&'static dyn crate::store::RowCheck> {
    [
        crate::queue::STORED_ROWS,
        crate::queue::RUN_ROWS,
        crate::tasks::STORED_ROWS,
        crate::drift::STORED_ROWS,
        crate::snapshot::STORED_ROWS,
        crate::audits::STORED_ROWS,
        crate::outbox::STORED_ROWS,
        crate::events::STORED_ROWS,
    ]
    .concat()
}
