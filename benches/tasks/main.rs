//! User tasks at scale (issue 7). Builds a store with 100,000 tasks and 1,000,000 events
//! through the real ingest code (large transactions, straight into the redb file of a temp
//! state dir), then starts the real `vigild` on it and measures over its Unix socket:
//! filtered lists, status, Close All of 10,000 matching tasks, the ingest of 10,000
//! findings from one scan on each of 10,000 nodes, and p50/p99 under many concurrent
//! clients. It prints numbers and asserts nothing about them.
//!
//! Run `benches/tasks/run.sh` (it builds vigild and the fixture plugin in release first), or
//! `cargo bench --bench tasks -- --vigild PATH --plugin PATH [--clients N] [--requests N]
//! [--work DIR]`. With `--work`, the built store is kept in DIR and reused by later runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value as Json;
use vigil::config::{Config, QueueTaskKind};
use vigil::proto::{AttributeChange, Change, ChangeKind, QueueTaskId, Value};
use vigil::store::{Store, StoreError};
use vigil::tasks::{
    ingest, persist, task_change, FailedCheck, NodeFindings, PluginFailed, UserTasks,
};

mod client;
mod store;

use client::*;
use store::*;

/// Tasks and events in the store before the daemon starts.
const TASKS: u64 = 100_000;
const EVENTS: u64 = 1_000_000;
/// Simulated nodes (in 20 groups); the daemon scans each once in the ingest run.
const NODES: u64 = 10_000;
const GROUPS: u64 = 20;
/// Groups from this one on do not auto-assign: their tasks stay unassigned.
const FIRST_MANUAL_GROUP: u64 = 15;
/// Tasks the timed in-process ingest creates at the end of the build (100 findings each).
const TIMED_TASKS: u64 = 100;
/// Built in bulk: the rest.
const BULK_TASKS: u64 = TASKS - TIMED_TASKS;
/// Open tasks whose text holds the Close All marker.
const CLOSE_ALL: u64 = 10_000;
const MARKER: &str = "bench-closeall";
/// Findings per bulk transaction.
const BATCH: usize = 20_000;

const PACKAGES: [&str; 20] = [
    "openssl",
    "libssl3",
    "bash",
    "systemd",
    "openssh-server",
    "curl",
    "nginx",
    "postgresql-15",
    "libc6",
    "tzdata",
    "sudo",
    "rsyslog",
    "cron",
    "python3.11",
    "perl-base",
    "libxml2",
    "git",
    "zlib1g",
    "apt",
    "dpkg",
];
const POLICIES: [&str; 8] = [
    "ssh-hardening",
    "password-policy",
    "kernel-params",
    "auditd",
    "firewall",
    "time-sync",
    "packages-baseline",
    "file-permissions",
];

struct Args {
    vigild: PathBuf,
    plugin: PathBuf,
    clients: usize,
    requests: usize,
    work: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        vigild: PathBuf::from("target/release/vigild"),
        plugin: PathBuf::from("target/release/libvigil_test_plugins.so"),
        clients: 64,
        requests: 100,
        work: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--vigild" => a.vigild = value().into(),
            "--plugin" => a.plugin = value().into(),
            "--clients" => a.clients = value().parse().expect("--clients N"),
            "--requests" => a.requests = value().parse().expect("--requests N"),
            "--work" => a.work = Some(value().into()),
            // `cargo bench` passes --bench to harness-less benches.
            "--bench" => {}
            other => panic!("unknown argument {other:?}"),
        }
    }
    a
}

fn node(n: u64) -> String {
    format!("node-{n:05}")
}

fn config_text() -> String {
    let mut c = String::from(
        "[daemon]\nstate_dir = \"state\"\nsocket = \"vigil.sock\"\nplugin_dir = \"plugins\"\n\
         slots = 4\nqueue_capacity = 10000\nretention_days = 3650\n\n\
         [tasks]\ngroup_across_owners = true\n\n\
         [[plugin]]\nname = \"fixture\"\nlibrary = \"libvigil_test_plugins.so\"\n\
         [plugin.config]\nmode = \"error\"\n\n",
    );
    for g in 0..GROUPS {
        c += &format!(
            "[[group]]\nname = \"g{g:02}\"\nowners = [\"owner-{g:02}@example.com\"]\nauto_assign = {}\n\n",
            g < FIRST_MANUAL_GROUP
        );
    }
    for n in 0..NODES {
        c += &format!(
            "[[node]]\nname = \"{}\"\ngroups = [\"g{:02}\"]\nroot = \"root\"\n\n",
            node(n),
            n % GROUPS
        );
    }
    c
}

fn scan(n: u64) -> QueueTaskId {
    QueueTaskId {
        kind: QueueTaskKind::Scan,
        number: n,
    }
}

fn day(d: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + Days::new(d)
}

fn is_marker(i: u64) -> bool {
    i % 9 == 3 && i / 9 < CLOSE_ALL
}

/// Closed in the built store: about 30% of the tasks, never a marker task.
fn is_closed(i: u64) -> bool {
    !is_marker(i) && matches!(i % 10, 2 | 5 | 8)
}

/// Events of bulk task `i`: 9 or 10, 990,000 in all.
fn events_of(i: u64) -> u64 {
    if i % 111 < 10 {
        9
    } else {
        10
    }
}

fn rss_mb(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (get("VmRSS:"), get("VmHWM:"))
}

struct Vigild(Child);

impl Drop for Vigild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn queue_busy(conn: &mut Conn) -> u64 {
    let s = conn.json("GET", "/v1/status", None).await;
    s["queue"]["queued"].as_u64().unwrap_or(0) + s["queue"]["running"].as_u64().unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let a = args();
    let tmp;
    let work = match &a.work {
        Some(w) => w.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("vigil-tasks-bench-")
                .tempdir()
                .expect("temp dir");
            tmp.path().to_owned()
        }
    };
    std::fs::create_dir_all(work.join("root")).unwrap();
    std::fs::create_dir_all(work.join("plugins")).unwrap();
    let lib = work.join("plugins/libvigil_test_plugins.so");
    std::fs::copy(&a.plugin, &lib)
        .unwrap_or_else(|e| panic!("copy {}: {e} (build it first)", a.plugin.display()));
    let config_path = work.join("config.toml");
    std::fs::write(&config_path, config_text()).unwrap();
    let config = vigil::config::load(&config_path).unwrap_or_else(|e| panic!("{e}"));

    // The built store is kept as `pristine.redb`; every run starts from a copy of it.
    let pristine = work.join("pristine.redb");
    let state = work.join("state");
    if !pristine.exists() {
        let building = work.join("building");
        let _ = std::fs::remove_dir_all(&building);
        build(&building, &config);
        std::fs::rename(building.join(vigil::store::DB_FILE), &pristine).unwrap();
        let _ = std::fs::remove_dir_all(&building);
    } else {
        println!("reusing the store built in {}", pristine.display());
    }
    ingest_probe(&work, &pristine, &config);
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    std::fs::copy(&pristine, state.join(vigil::store::DB_FILE)).unwrap();

    let socket = work.join("vigil.sock");
    let _ = std::fs::remove_file(&socket);
    let log = std::fs::File::create(work.join("vigild.log")).unwrap();
    let started = Instant::now();
    let daemon = Vigild(
        Command::new(&a.vigild)
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", a.vigild.display())),
    );
    let pid = daemon.0.id();
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "vigild did not open its socket; see {}",
            work.join("vigild.log").display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut conn = Conn::open(&socket).await;
    let status = conn.json("GET", "/v1/status", None).await;
    let (rss, _) = rss_mb(pid);
    println!(
        "vigild ready in {:.2} s (index of {} tasks loaded), {rss:.0} MB RSS; open tasks {}",
        started.elapsed().as_secs_f64(),
        TASKS,
        status["open_tasks"]
    );
    // The auto-assignment mails of the timed ingest go out first (to the maildir).
    while conn.json("GET", "/v1/status", None).await["outbox"]["pending"] != 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    sequential(&mut conn, 50).await;
    // vigild serves 64 connections at once (`api::Limits`); with this one held, a 64th load
    // client would wait for a slot and time the wait, not the request.
    drop(conn);
    load(&socket, a.clients, a.requests, "load").await;
    let mut conn = Conn::open(&socket).await;

    // Close All of the 10,000 marker tasks.
    let before = conn.json("GET", "/v1/status", None).await["open_tasks"]
        .as_u64()
        .unwrap_or(0);
    let preview = conn
        .json("GET", &format!("/v1/tasks?q={MARKER}&limit=10"), None)
        .await;
    let t0 = Instant::now();
    let closed = conn
        .json(
            "POST",
            "/v1/tasks/close",
            Some(&format!(r#"{{"q": "{MARKER}"}}"#)),
        )
        .await;
    let took = t0.elapsed();
    let after = conn.json("GET", "/v1/status", None).await["open_tasks"]
        .as_u64()
        .unwrap_or(0);
    println!(
        "POST /v1/tasks/close {{q: {MARKER}}}: closed {} of {} matching in {} (open tasks {before} -> {after})",
        closed["count"],
        preview["total"],
        ms(took)
    );
    assert_eq!(
        closed["count"].as_u64(),
        Some(CLOSE_ALL),
        "Close All closed the marker tasks"
    );

    // Ingest through the daemon: one scan on each of the 10,000 nodes; the fixture plugin
    // fails the same way everywhere, so the 10,000 findings group into one task. Readers
    // keep reading meanwhile.
    let t0 = Instant::now();
    let queued = conn
        .json("POST", "/v1/queue", Some(r#"{"kind": "scan"}"#))
        .await;
    let n = queued["ids"].as_array().map_or(0, Vec::len);
    let readers = {
        let socket = socket.clone();
        tokio::spawn(async move {
            load(&socket, 16, 50, "reads during the ingest").await;
        })
    };
    while queue_busy(&mut conn).await > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = t0.elapsed();
    readers.await.expect("readers");
    let list = conn
        .json("GET", "/v1/tasks?kind=scan-failure&q=fixture%20error", None)
        .await;
    let task = &list["tasks"][0];
    println!(
        "ingest through vigild: {n} scans (one per node, worker process each) with 10,000 findings \
         grouped into {} task(s) ({} events, {} nodes) in {:.2} s = {:.0} scans/s",
        list["total"],
        task["events"],
        task["nodes"],
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    let s = conn.json("GET", "/v1/status", None).await;
    let (rss, peak) = rss_mb(pid);
    println!(
        "end: open tasks {}, vigild RSS {rss:.0} MB (peak {peak:.0} MB)",
        s["open_tasks"]
    );
    drop(daemon);
}
