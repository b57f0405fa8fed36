//! The daemon's lifecycle: load config, open the store, bind the socket, serve, react to
//! signals and config changes, and stop gracefully.

pub mod socket;
mod systemd;
pub mod tools;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState, Limits};
use crate::app::{self, App};
use crate::outbox::Outbox;
use crate::plugin::supervisor::WorkerCommand;
use crate::queue::Queue;
use crate::schedule::Scheduler;
use crate::setup::{self, SetupCell};
use crate::snapshot;
use crate::store::{Integrity, Store};
use crate::tasks::UserTasks;

/// Quiet time after the last change to the config file before it is re-read, so that an
/// editor's write-rename-chmod sequence causes one reload, not three.
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(300);

/// Runs the daemon to completion on its own runtime. Entry point of `vigild`.
pub fn main(config_path: PathBuf) -> ExitCode {
    limit_malloc_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vigild")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigild: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config_path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("vigild: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Asks glibc for a single malloc arena, before any thread exists.
///
/// By default glibc gives each thread that allocates its own arena (up to 8 per core), and
/// memory freed in one is not reused by another: the runtime's blocking threads, each doing
/// a few redb writes, left vigild 25 MB over its live heap after one 100,000-file scan. The
/// daemon's threads mostly wait on I/O and redb, so one arena costs no measurable time
/// (`benches/drift/run.sh`: 2.52 s either way) and peak RSS drops from 52 to 39 MB.
/// `MALLOC_ARENA_MAX` in the environment still wins, for anyone who measures otherwise.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only adjusts allocator parameters; called before other threads.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// The daemon: returns when stopped by SIGTERM/SIGINT, or with the reason it cannot run.
pub async fn run(config_path: PathBuf) -> anyhow::Result<()> {
    // Signals first: a SIGTERM that arrives while we start up must stop us gracefully, and a
    // SIGHUP must not kill us (its default action) once systemd thinks we are ready.
    let mut signals = signal_hook_tokio::Signals::new([SIGHUP, SIGTERM, SIGINT])
        .context("cannot install signal handlers")?;

    let config_path = std::path::absolute(&config_path).unwrap_or(config_path);
    let path = config_path.clone();
    let setup = tokio::task::spawn_blocking(move || setup::load(&path))
        .await?
        .map_err(|errors| anyhow::anyhow!("the config was not accepted:\n{errors}"))?;
    let config = &setup.config;

    let state_dir = config.daemon.state_dir.clone();
    let integrity = if config.daemon.check_integrity {
        Integrity::Check
    } else {
        Integrity::Trust
    };
    let store =
        tokio::task::spawn_blocking(move || Store::open_with(&state_dir, integrity)).await??;

    let socket_path = config.daemon.socket.clone();
    let listener = socket::bind(&socket_path, config.daemon.socket_group.as_deref())?;
    let socket_meta = std::fs::symlink_metadata(&socket_path).with_context(|| {
        format!(
            "control socket {} vanished after bind",
            socket_path.display()
        )
    })?;

    let summary = format!(
        "{}, {} policies",
        app::summary_line(config),
        setup.policies.len()
    );
    let policy_dir = config.policy_dir.clone();
    let limits = Limits::of(&config.daemon);
    let cell = Arc::new(SetupCell::new(setup));
    let worker = WorkerCommand::locate().context("cannot find the plugin worker")?;
    let sweep_store = store.clone();
    match tokio::task::spawn_blocking(move || snapshot::sweep_blocking(&sweep_store)).await? {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} snapshot chunks left by interrupted scans"),
        Err(e) => tracing::warn!("cannot sweep unreferenced snapshot chunks: {e}"),
    }
    let outbox = Outbox::new(store.clone(), cell.clone());
    let tasks = UserTasks::open(store.clone(), outbox.clone(), cell.clone()).await?;
    let queue = Queue::open(store.clone(), cell.clone(), worker, tasks.clone()).await?;
    let webhooks =
        crate::webhook::Webhooks::new(store.clone(), cell.clone(), tasks.events().clone());
    tokio::spawn(prune_loop(store.clone(), cell.clone()));
    let app = Arc::new(App::new(app::Parts {
        config_path: config_path.clone(),
        cell,
        store,
        queue: queue.clone(),
        outbox,
        tasks,
        webhooks,
    }));
    queue.start();
    let scheduler = Scheduler::start(queue.clone(), app.config())
        .await
        .context("cannot start the schedules")?;
    app.set_scheduler(scheduler);
    app.outbox.start();
    app.webhooks
        .apply()
        .await
        .context("cannot put the webhook endpoints in force")?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(api::serve(
        listener,
        AppState { app: app.clone() },
        limits,
        shutdown.clone(),
    ));

    let (changed_tx, mut changed_rx) = mpsc::channel(1);
    let _watch = match watch::watch(&config_path, &policy_dir, changed_tx) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(
                "cannot watch {} for changes ({e}); reload with SIGHUP",
                config_path.display()
            );
            None
        }
    };

    app::log_warnings(&app.setup());
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        socket = %socket_path.display(),
        config = %config_path.display(),
        "vigild ready: {summary}"
    );
    systemd::ready(&format!("serving on {}; {summary}", socket_path.display()));

    let mut watchdog = systemd::watchdog_interval().map(tokio::time::interval);
    let mut store_failed = None;
    loop {
        tokio::select! {
            signal = signals.next() => match signal {
                Some(SIGHUP) => reload(&app, "SIGHUP").await,
                Some(sig) => {
                    let name = if sig == SIGTERM { "SIGTERM" } else { "SIGINT" };
                    tracing::info!("{name} received, stopping");
                    break;
                }
                None => break,
            },
            Some(()) = changed_rx.recv() => {
                // Debounce: wait until the file has been quiet for a moment.
                while let Ok(Some(())) = tokio::time::timeout(RELOAD_DEBOUNCE, changed_rx.recv()).await {}
                reload(&app, "config file changed").await;
            }
            _ = tick(&mut watchdog) => systemd::watchdog(),
            error = store_recovery(&app.store) => {
                tracing::error!(
                    "the state dir's filesystem takes writes again after the database failed \
                     ({error}): stopping, to be restarted on a reopened database"
                );
                store_failed = Some(error);
                break;
            }
        }
    }

    systemd::stopping();
    shutdown.cancel();
    app.tasks.events().stop_followers();
    // One deadline for all of it: running tasks, a mail being delivered and open control
    // connections share `shutdown_grace` (plus the few seconds killing leftover workers takes).
    let grace = app.config().daemon.shutdown_grace;
    let deadline = tokio::time::Instant::now() + grace;
    let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
    tokio::join!(
        queue.shutdown(grace),
        app.outbox.shutdown(grace),
        app.webhooks.shutdown(grace)
    );
    if tokio::time::timeout(left(), server).await.is_err() {
        tracing::warn!("control connections still open after {grace:?}; closing them");
    }
    socket::remove(&socket_path, &socket_meta);
    drop(app);
    if let Some(error) = store_failed {
        anyhow::bail!(
            "the database failed ({error}); exiting non-zero so that systemd restarts vigild, \
             which reopens the database and re-reads the queue"
        );
    }
    tracing::info!("vigild stopped");
    Ok(())
}

/// How often a failing store's filesystem is probed.
const STORE_PROBE: Duration = Duration::from_secs(1);

/// Returns (with the failure's cause) once the store has failed and its filesystem takes a
/// probe write again. redb latches an I/O error until the database is reopened, and the
/// services' in-memory state (the queue, the outbox's pause, the task index) may be ahead of
/// what the failed commits left on disk; a restart rebuilds all of it from the durable state
/// through the same path a crash takes, so the daemon exits rather than reopening in place.
async fn store_recovery(store: &Store) -> String {
    use crate::store::health::{probe_write, PROBE_BYTES};
    let mut every = tokio::time::interval(STORE_PROBE);
    loop {
        every.tick().await;
        let Some(failing) = store.failing() else {
            continue;
        };
        let dir = store.dir().to_owned();
        if let Ok(Ok(())) =
            tokio::task::spawn_blocking(move || probe_write(&dir, PROBE_BYTES)).await
        {
            return failing.error;
        }
    }
}

async fn reload(app: &App, trigger: &str) {
    systemd::reloading();
    let status = match app.reload(trigger, false).await {
        Ok(r) => format!("config reloaded: {}", r.summary),
        Err(_) => "config reload rejected; previous config in force (see log)".to_owned(),
    };
    systemd::ready(&status);
}

/// Prunes old snapshots, drift records and event-log entries at start and every hour after,
/// off the executor.
async fn prune_loop(store: Store, cell: Arc<SetupCell>) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        let config = cell.config();
        let today = snapshot::today(config.daemon.tz());
        let keep = config.daemon.retention_days;
        let store = store.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            let snapshots = snapshot::prune_blocking(&store, today, keep)?;
            let drift = crate::drift::prune_blocking(&store, today, keep)?;
            let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(keep));
            let events = crate::events::prune_blocking(&store, cutoff)?;
            if events > 0 {
                tracing::info!("pruned {events} log events older than {keep} days");
            }
            let configured: Vec<String> = config.webhooks.iter().map(|w| w.name.clone()).collect();
            let deliveries =
                crate::events::deliveries::prune_blocking(&store, cutoff, &configured)?;
            if deliveries > 0 {
                tracing::info!("pruned {deliveries} webhook deliveries older than {keep} days");
            }
            Ok::<_, crate::store::StoreError>((snapshots, drift))
        })
        .await;
        match pruned {
            Ok(Ok((0, _))) => {}
            Ok(Ok((n, _))) => tracing::info!("pruned {n} snapshots older than {keep} days"),
            Ok(Err(e)) => tracing::warn!("snapshot pruning failed: {e}; retrying in an hour"),
            Err(e) => tracing::warn!("snapshot pruning task failed: {e}"),
        }
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}
