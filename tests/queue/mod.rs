//! Active tasks (issue 4): slots, FIFO, capacity, cancel, timeout, failures, restart,
//! schedules — against the real daemon, with fixture plugins whose duration the test
//! controls through a gate file.

use std::path::{Path, PathBuf};

use std::os::unix::fs::PermissionsExt;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::common::{check_results, http_as, is_root, Daemon, TestDir, VIGILD};

mod audits;
mod schedules;

fn fixture_lib() -> PathBuf {
    Path::new(VIGILD)
        .parent()
        .unwrap()
        .join("libvigil_test_plugins.so")
}

/// Config with `nodes` nodes (roots in the test dir) and the fixture plugin under several
/// names: `gated` (waits for `dir/gate`), `ok`, `bad` (fails), `hang`.
fn queue_config(dir: &TestDir, nodes: usize, daemon: &str) -> String {
    let mut c = format!(
        "policy_dir = \"no-policies\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nshutdown_grace = \"2s\"\n{daemon}\n"
    );
    for i in 1..=nodes {
        let root = dir.node_root(&format!("root-{i}"));
        c += &format!(
            "[[node]]\nname = \"n{i}\"\nroot = \"{}\"\n\n",
            root.display()
        );
    }
    let lib = fixture_lib();
    let gate = dir.path().join("gate");
    for (name, cfg) in [
        (
            "gated",
            format!("mode = \"gate\"\ngate = \"{}\"\ncount = 4", gate.display()),
        ),
        ("ok", "mode = \"ok\"\ncount = 7".to_owned()),
        ("bad", "mode = \"error\"".to_owned()),
        ("hang", "mode = \"hang\"".to_owned()),
    ] {
        c += &format!(
            "[[plugin]]\nname = \"{name}\"\nlibrary = \"{}\"\n[plugin.config]\n{cfg}\n\n",
            lib.display()
        );
    }
    c
}

fn start(dir: &TestDir, nodes: usize, daemon: &str, extra: &str) -> Daemon {
    dir.write_config(&(queue_config(dir, nodes, daemon) + extra));
    Daemon::start_on(dir).expect("vigild starts")
}

fn open_gate(dir: &TestDir) {
    std::fs::write(dir.path().join("gate"), b"open").unwrap();
}

fn enqueue(d: &Daemon, body: Value) -> (u16, Value) {
    let (code, text) = d.http("POST", "/v1/queue", Some(&body.to_string()));
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn queue(d: &Daemon) -> Vec<Value> {
    let (code, text) = d.http("GET", "/v1/queue", None);
    assert_eq!(code, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn scan_log(d: &Daemon, query: &str) -> Value {
    let (code, text) = d.http("GET", &format!("/v1/logs/scans{query}"), None);
    assert_eq!(code, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn running(q: &[Value]) -> Vec<String> {
    q.iter()
        .filter(|t| t["status"] == "Running")
        .map(|t| t["target"].as_str().unwrap().to_owned())
        .collect()
}

fn wait_log_total(d: &Daemon, total: u64) -> Value {
    d.wait_for(&format!("{total} scan log rows"), |d| {
        scan_log(d, "?limit=1000")["total"] == total
    });
    scan_log(d, "?limit=1000")
}

#[test]
fn slots_are_respected_and_tasks_start_in_fifo_order() {
    let dir = TestDir::new();
    let d = start(&dir, 5, "slots = 2", "");
    let (code, body) = enqueue(&d, json!({"kind": "scan", "plugins": ["gated"]}));
    assert_eq!(code, 200, "{body}");
    let ids: Vec<&str> = body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids, ["Scan #1", "Scan #2", "Scan #3", "Scan #4", "Scan #5"]);

    d.wait_for("two tasks Running", |d| running(&queue(d)).len() == 2);
    let q = queue(&d);
    let mut r = running(&q);
    r.sort();
    assert_eq!(r, ["n1", "n2"], "the oldest tasks run first");
    assert_eq!(q.iter().filter(|t| t["status"] == "Queued").count(), 3);
    assert_eq!(
        q[0]["initiator"], "uid 0",
        "an unconfigured root is named by uid"
    );
    let status = d.status_json();
    assert_eq!(status["queue"]["running"], 2);
    assert_eq!(status["queue"]["queued"], 3);
    assert!(status["queue"]["oldest_running_secs"].is_u64());

    open_gate(&dir);
    let mut max_running = 0;
    d.wait_for("the queue to drain", |d| {
        let q = queue(d);
        max_running = max_running.max(running(&q).len());
        q.is_empty()
    });
    assert!(
        max_running <= 2,
        "never more than `slots` Running, saw {max_running}"
    );
    let log = wait_log_total(&d, 5);
    let rows = log["rows"].as_array().unwrap();
    assert!(rows
        .iter()
        .all(|r| r["status"] == "Finished" && r["errors"] == 0 && r["items_scanned"] == 4));
    // Newest first, and started in queue order.
    let mut starts: Vec<(u64, String)> = rows
        .iter()
        .map(|r| {
            let n = r["id"]
                .as_str()
                .unwrap()
                .trim_start_matches("Scan #")
                .parse()
                .unwrap();
            (n, r["started_at"].as_str().unwrap().to_owned())
        })
        .collect();
    // Newest end first (two slots: #4 may end after #5).
    let ends: Vec<&str> = rows
        .iter()
        .map(|r| r["finished_at"].as_str().unwrap())
        .collect();
    assert!(
        ends.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {ends:?}"
    );
    starts.sort();
    assert!(
        starts.windows(2).all(|w| w[0].1 <= w[1].1),
        "FIFO starts: {starts:?}"
    );
}

#[test]
fn a_request_that_does_not_fit_is_refused_whole() {
    let dir = TestDir::new();
    let d = start(&dir, 5, "slots = 1\nqueue_capacity = 3", "");
    let (code, body) = enqueue(&d, json!({"kind": "scan", "plugins": ["gated"]}));
    assert_eq!(code, 429, "{body}");
    assert_eq!(body["error"]["code"], "queue_full");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("capacity 3") && msg.contains("0 task(s) queued") && msg.contains("needs 5"),
        "{msg}"
    );
    assert!(queue(&d).is_empty(), "nothing was queued");

    let (code, body) = enqueue(
        &d,
        json!({"kind": "scan", "scope": "node:n1", "plugins": ["gated"]}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["ids"],
        json!(["Scan #1"]),
        "refused requests used no ids"
    );

    let (code, body) = enqueue(&d, json!({"kind": "scan", "scope": "group:nope"}));
    assert_eq!(code, 400, "{body}");
    let (code, body) = enqueue(&d, json!({"kind": "scan", "plugins": ["nope"]}));
    assert_eq!(code, 400, "{body}");
    open_gate(&dir);
}

#[test]
fn cancel_queued_and_running_tasks() {
    let dir = TestDir::new();
    let d = start(&dir, 2, "slots = 1", "");
    enqueue(&d, json!({"kind": "scan", "plugins": ["gated"]}));
    d.wait_for("n1 Running", |d| running(&queue(d)) == ["n1"]);
    // Running is committed before the worker is spawned: wait for the worker too.
    d.wait_for("one worker", |d| worker_pids(d.child.id()).len() == 1);
    let worker_pid = worker_pids(d.child.id());
    assert_eq!(worker_pid.len(), 1, "one worker runs");

    let body = json!({"ids": ["Scan #2", "scan-1", "S99", "Audit #1", "garbage"]}).to_string();
    let (code, text) = d.http("POST", "/v1/queue/cancel", Some(&body));
    assert_eq!(code, 200, "{text}");
    let r: Value = serde_json::from_str(&text).unwrap();
    let outcomes: Vec<&str> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "cancelled",
            "cancelled",
            "not_found",
            "not_found",
            "invalid"
        ]
    );

    assert!(queue(&d).is_empty());
    assert!(
        !Path::new(&format!("/proc/{}", worker_pid[0])).exists(),
        "the worker is gone"
    );
    let log = wait_log_total(&d, 2);
    for row in log["rows"].as_array().unwrap() {
        assert_eq!(row["status"], "Cancelled", "{row}");
        assert_eq!(row["errors"], 0);
    }
    // Cancelling again: already ended.
    let (_, text) = d.http(
        "POST",
        "/v1/queue/cancel",
        Some(&json!({"ids": ["Scan #1"]}).to_string()),
    );
    assert!(text.contains("already_finished"), "{text}");
}

/// Worker processes (children of the daemon running `vigil-worker`).
fn worker_pids(daemon: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(daemon) && String::from_utf8_lossy(&cmd).contains("vigil-worker") {
            out.push(pid);
        }
    }
    out
}

/// A local worker starts with a cleared environment: nothing of the daemon's (here
/// NOTIFY_SOCKET and RUST_LOG, which the harness gives vigild) reaches the plugin.
#[test]
fn a_worker_gets_none_of_the_daemons_environment() {
    let dir = TestDir::new();
    let d = start(&dir, 1, "", "");
    enqueue(&d, json!({"kind": "scan", "plugins": ["hang"]}));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let pid = loop {
        if let Some(pid) = worker_pids(d.child.id()).first() {
            break *pid;
        }
        assert!(std::time::Instant::now() < deadline, "no worker started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mut names: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v.split(|b| *b == b'=').next().unwrap()).into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["PATH", "VIGIL_WORKER_PARENT"], "{names:?}");
    let (code, text) = d.http(
        "POST",
        "/v1/queue/cancel",
        Some(&json!({"ids": ["Scan #1"]}).to_string()),
    );
    assert_eq!(code, 200, "{text}");
}

#[test]
fn timeout_and_plugin_failure_fail_the_task_with_messages() {
    let dir = TestDir::new();
    let d = start(&dir, 1, "task_timeout = \"1s\"", "");
    enqueue(&d, json!({"kind": "scan", "plugins": ["hang"]}));
    enqueue(&d, json!({"kind": "scan", "plugins": ["bad", "ok"]}));
    let log = wait_log_total(&d, 2);
    let rows = log["rows"].as_array().unwrap();
    let by_id = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();

    let hang = by_id("Scan #1");
    assert_eq!(hang["status"], "Failed");
    assert!(hang["errors"].as_u64().unwrap() >= 1);
    assert!(
        hang["messages"][0]
            .as_str()
            .unwrap()
            .contains("timed out after 1s"),
        "{hang}"
    );

    let bad = by_id("Scan #2");
    assert_eq!(bad["status"], "Failed", "never Finished with errors");
    assert_eq!(bad["errors"], 1);
    assert!(
        bad["messages"][0].as_str().unwrap().starts_with("bad: "),
        "{bad}"
    );
    assert_eq!(bad["items_scanned"], 7, "the other plugin still ran");
    assert_eq!(bad["plugins"][1]["error"], Value::Null);

    let failed = scan_log(&d, "?status=Failed&node=n1");
    assert_eq!(failed["total"], 2);
    assert_eq!(scan_log(&d, "?status=Finished")["total"], 0);
}

/// Regression: a plugin's own error that mentions a timeout was reported as the task's
/// `daemon.task_timeout` (the scan runner matched the message text, not the outcome).
#[test]
fn a_plugin_error_about_a_timeout_is_not_the_tasks_timeout() {
    let dir = TestDir::new();
    let plugin = format!(
        "[[plugin]]\nname = \"remote\"\nlibrary = \"{}\"\n[plugin.config]\n\
         mode = \"error\"\nmessage = \"connect timed out after 5s\"\n",
        fixture_lib().display()
    );
    let d = start(&dir, 1, "", &plugin);
    enqueue(&d, json!({"kind": "scan", "plugins": ["remote"]}));
    let row = wait_log_total(&d, 1)["rows"][0].clone();
    assert_eq!(row["status"], "Failed", "{row}");
    let message = row["messages"][0].as_str().unwrap();
    assert!(message.starts_with("remote: "), "{message}");
    assert!(message.contains("connect timed out after 5s"), "{message}");
    assert!(!message.contains("daemon.task_timeout"), "{message}");
}

#[test]
fn sigkill_mid_run_then_restart_requeues_and_completes_once() {
    let dir = TestDir::new();
    let mut d = start(&dir, 1, "slots = 1", "");
    enqueue(&d, json!({"kind": "scan", "plugins": ["gated"]}));
    d.wait_for("Scan #1 Running", |d| running(&queue(d)) == ["n1"]);
    let daemon_pid = d.child.id();
    let workers = worker_pids(daemon_pid);
    d.signal(Signal::SIGKILL);
    d.wait_exit();
    // The worker dies with its daemon (PR_SET_PDEATHSIG).
    for w in workers {
        let gone = (0..400).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            !Path::new(&format!("/proc/{w}")).exists()
        });
        assert!(gone, "worker {w} outlived its daemon");
    }

    let d = Daemon::start_on(&dir).expect("restarts after SIGKILL");
    d.wait_for("Scan #1 Running again", |d| running(&queue(d)) == ["n1"]);
    assert_eq!(queue(&d)[0]["attempt"], 2, "attempt counted");
    open_gate(&dir);
    let log = wait_log_total(&d, 1);
    let row = &log["rows"][0];
    assert_eq!(row["id"], "Scan #1");
    assert_eq!(row["status"], "Finished");
    assert_eq!(row["attempt"], 2);
    let (_, body) = enqueue(&d, json!({"kind": "scan", "plugins": ["ok"]}));
    assert_eq!(body["ids"], json!(["Scan #2"]), "ids are never reused");
    wait_log_total(&d, 2);
}

#[test]
fn graceful_stop_leaves_running_tasks_for_requeue() {
    let dir = TestDir::new();
    let mut d = start(&dir, 1, "slots = 1", "");
    enqueue(&d, json!({"kind": "scan", "plugins": ["gated"]}));
    d.wait_for("Running", |d| running(&queue(d)).len() == 1);
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit().code(), Some(0));
    let d = Daemon::start_on(&dir).unwrap();
    d.wait_for("requeued", |d| {
        queue(d).first().is_some_and(|t| t["attempt"] == 2)
    });
    open_gate(&dir);
    let log = wait_log_total(&d, 1);
    assert_eq!(log["rows"][0]["status"], "Finished");
}

#[test]
fn a_site_user_cannot_cancel_and_nothing_changes() {
    if !is_root() {
        eprintln!(
            "SKIPPED a_site_user_cannot_cancel_and_nothing_changes: needs root to call as another uid"
        );
        return;
    }
    let dir = TestDir::new();
    let user = "[[user]]\nemail = \"site-user@example.com\"\nuid = 65534\nrole = \"user\"\n";
    let d = start(&dir, 2, "slots = 1", user);
    // Let other uids connect: the socket's group would normally do this.
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(
        d.socket.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    enqueue(&d, json!({"kind": "scan", "plugins": ["gated"]}));
    d.wait_for("n1 Running", |d| running(&queue(d)) == ["n1"]);
    // Running is committed before the worker is spawned: wait for the worker too.
    d.wait_for("n1's worker", |d| worker_pids(d.child.id()).len() == 1);
    let workers = worker_pids(d.child.id());
    let before = queue(&d);

    let body = json!({"ids": ["Scan #1", "Scan #2"]}).to_string();
    let (code, text) = http_as(65534, &d.socket, "POST", "/v1/queue/cancel", Some(&body));
    assert_eq!(code, 403, "{text}");
    let err: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(err["error"]["code"], "forbidden", "{text}");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("admin") && msg.contains("site-user@example.com"),
        "{msg}"
    );
    // Nothing changed: the same tasks in the same states, the worker still running, no row.
    assert_eq!(queue(&d), before);
    assert_eq!(worker_pids(d.child.id()), workers);
    assert_eq!(scan_log(&d, "")["total"], 0);
    // The user may still look.
    let (code, text) = http_as(65534, &d.socket, "GET", "/v1/queue", None);
    assert_eq!(code, 200, "{text}");

    open_gate(&dir);
    let log = wait_log_total(&d, 2);
    for row in log["rows"].as_array().unwrap() {
        assert_eq!(row["status"], "Finished", "{row}");
    }
}

#[test]
fn three_interrupted_attempts_fail_the_task() {
    let dir = TestDir::new();
    let mut d = start(&dir, 1, "slots = 1", "");
    enqueue(&d, json!({"kind": "scan", "plugins": ["gated"]}));
    for attempt in 1..=3 {
        d.wait_for(&format!("attempt {attempt} Running"), |d| {
            queue(d)
                .first()
                .is_some_and(|t| t["status"] == "Running" && t["attempt"] == attempt)
        });
        d.signal(Signal::SIGKILL);
        d.wait_exit();
        d = Daemon::start_on(&dir).expect("restarts after SIGKILL");
    }
    let log = wait_log_total(&d, 1);
    let row = &log["rows"][0];
    assert_eq!(row["id"], "Scan #1");
    assert_eq!(row["status"], "Failed", "{row}");
    assert_eq!(row["attempt"], 3, "the last attempt that ran: {row}");
    assert_eq!(row["errors"], 1);
    let msg = row["messages"][0].as_str().unwrap();
    assert!(msg.contains("interrupted 3 times"), "{msg}");
    assert!(
        row["started_at"].is_string(),
        "the last start is kept: {row}"
    );
    assert!(queue(&d).is_empty(), "not run a fourth time");
    assert!(
        d.log_text()
            .contains("task interrupted 3 times, marked Failed"),
        "{}",
        d.log_text()
    );
}

/// A scan's snapshot is committed lazily and made durable by the commit that records the
/// task's end: once the row is in the log, a SIGKILL must not lose the snapshot.
#[test]
fn a_finished_scan_keeps_its_snapshot_through_sigkill() {
    let dir = TestDir::new();
    dir.set_today("2026-03-01");
    let mut d = start(&dir, 1, "", "");
    enqueue(&d, json!({"kind": "scan", "plugins": ["ok"]}));
    wait_log_total(&d, 1);
    d.signal(Signal::SIGKILL);
    d.wait_exit();

    dir.set_today("2026-03-02");
    let d = Daemon::start_on(&dir).unwrap();
    enqueue(&d, json!({"kind": "scan", "plugins": ["ok"]}));
    let log = wait_log_total(&d, 2);
    assert_eq!(log["rows"][0]["status"], "Finished", "{log}");
    assert_eq!(log["rows"][0]["changes_found"], 0);
    let (code, text) = d.http("GET", "/v1/nodes/n1/drift", None);
    assert_eq!(code, 200, "{text}");
    let drift: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        drift["plugins"][0]["baseline_day"], "2026-03-01",
        "the first day's snapshot survived: {drift}"
    );
}
