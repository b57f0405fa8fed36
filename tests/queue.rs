//! Active tasks (issue 4): slots, FIFO, capacity, cancel, timeout, failures, restart,
//! schedules — against the real daemon, with fixture plugins whose duration the test
//! controls through a gate file.

use std::path::{Path, PathBuf};

use std::os::unix::fs::PermissionsExt;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::common::{check_results, http_as, is_root, Daemon, TestDir, VIGILD};

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
        "[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nshutdown_grace = \"2s\"\n{daemon}\n"
    );
    for i in 1..=nodes {
        let root = dir.path().join(format!("root-{i}"));
        std::fs::create_dir_all(&root).unwrap();
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
    assert_eq!(starts[0].0, 5, "newest first");
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

/// Worker processes (children of the daemon running `__worker`).
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
        if ppid == Some(daemon) && String::from_utf8_lossy(&cmd).contains("__worker") {
            out.push(pid);
        }
    }
    out
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
fn schedules_fire_coalesce_and_follow_reloads() {
    let dir = TestDir::new();
    let every_second = "[[schedule]]\nname = \"often\"\nkind = \"scan\"\ncron = \"* * * * * *\"\nplugins = [\"gated\"]\n";
    let d = start(&dir, 2, "slots = 1", every_second);
    // Fires every second; with n1 stuck Running, at most one Queued task per node remains.
    d.wait_for("three fires", |d| {
        d.log_text().matches("schedule fired").count() >= 3
    });
    let q = queue(&d);
    for node in ["n1", "n2"] {
        let queued = q
            .iter()
            .filter(|t| t["target"] == node && t["status"] == "Queued")
            .count();
        assert!(
            queued <= 1,
            "{node}: {queued} Queued tasks from one schedule: {q:?}"
        );
    }
    assert!(
        q.iter()
            .all(|t| t["initiator"] == "Schedule" && t["schedule"] == "often"),
        "{q:?}"
    );

    // Reload without the schedule: no more fires; queued work is kept.
    dir.write_config(&queue_config(&dir, 2, "slots = 1"));
    d.wait_for("schedules re-applied", |d| {
        d.log_text().contains("schedules=0")
    });
    let fires = d.log_text().matches("schedule fired").count();
    let before = queue(&d).len();
    assert!(before >= 2, "queued and running work survives the reload");
    open_gate(&dir);
    d.wait_for("the queue to drain", |d| queue(d).is_empty());
    assert!(d.log_text().matches("schedule fired").count() <= fires + 1);
}

#[test]
fn a_run_missed_while_down_is_caught_up_once() {
    let dir = TestDir::new();
    let yearly = |cron: &str| {
        format!("[[schedule]]\nname = \"nightly\"\nkind = \"scan\"\ncron = \"{cron}\"\nplugins = [\"ok\"]\n")
    };
    let mut d = start(&dir, 1, "", &yearly("0 0 0 1 1 *"));
    d.wait_for("the schedule to be recorded", |d| {
        d.log_text().contains("schedules active")
    });
    d.signal(Signal::SIGTERM);
    d.wait_exit();
    // A due time after the schedule was first recorded, and before the restart.
    let seen = chrono::Utc::now();
    while chrono::Utc::now() < seen + chrono::Duration::milliseconds(1100) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let due = chrono::Utc::now();
    let cron = due.format("%S %M %H * * *").to_string();
    dir.write_config(&(queue_config(&dir, 1, "") + &yearly(&cron)));
    let mut d = Daemon::start_on(&dir).unwrap();
    let log = wait_log_total(&d, 1);
    assert_eq!(log["rows"][0]["schedule"], "nightly");
    assert_eq!(log["rows"][0]["initiator"], "Schedule");
    assert!(d.log_text().contains("catching up a run missed"));
    d.signal(Signal::SIGTERM);
    d.wait_exit();
    // Restarting again does not run the same due time twice.
    let d = Daemon::start_on(&dir).unwrap();
    d.wait_for("schedules active", |d| {
        d.log_text().contains("schedules active")
    });
    assert_eq!(scan_log(&d, "")["total"], 1, "{}", d.log_text());
    assert!(!d.log_text().contains("catching up"), "{}", d.log_text());
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

#[test]
fn scheduled_runs_that_do_not_fit_are_counted_and_logged() {
    let dir = TestDir::new();
    // Three nodes, room for one Queued task, n1 stuck Running: every fire drops some.
    let every_second = "[[schedule]]\nname = \"often\"\nkind = \"scan\"\ncron = \"* * * * * *\"\nplugins = [\"gated\"]\n";
    let mut d = start(&dir, 3, "slots = 1\nqueue_capacity = 1", every_second);
    d.wait_for("dropped_scheduled in status", |d| {
        d.status_json()["queue"]["dropped_scheduled"]
            .as_u64()
            .unwrap()
            >= 4
    });
    let warned = |log: &str| -> u64 {
        log.lines()
            .filter(|l| l.contains("WARN") && l.contains("scheduled tasks dropped"))
            .map(|l| {
                let n = l.split("dropped=").nth(1).expect(l);
                n.split_whitespace().next().unwrap().parse::<u64>().unwrap()
            })
            .sum()
    };
    let log = d.log_text();
    assert!(warned(&log) >= 4, "logged at warn:\n{log}");
    assert!(
        log.contains("schedule=often") && log.contains("capacity=1"),
        "{log}"
    );
    assert!(
        queue(&d).iter().filter(|t| t["status"] == "Queued").count() <= 1,
        "capacity holds"
    );
    let seen = d.status_json()["queue"]["dropped_scheduled"]
        .as_u64()
        .unwrap();
    d.signal(Signal::SIGTERM);
    d.wait_exit();
    let logged = warned(&d.log_text());

    // The count survives a restart (without the schedule, nothing adds to it).
    dir.write_config(&queue_config(&dir, 3, "slots = 1\nqueue_capacity = 1"));
    let d = Daemon::start_on(&dir).unwrap();
    let after = d.status_json()["queue"]["dropped_scheduled"]
        .as_u64()
        .unwrap();
    assert!(
        after >= seen && after == logged,
        "{after} vs {seen}, {logged} logged"
    );
    open_gate(&dir);
}

/// Rows of the Scan log that schedule `name` queued.
fn runs_of(d: &Daemon, name: &str) -> usize {
    scan_log(d, "?limit=1000")["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["schedule"] == name)
        .count()
}

#[test]
fn reloads_add_schedules_and_change_crons() {
    let dir = TestDir::new();
    let schedule = |name: &str, cron: &str| {
        format!(
            "[[schedule]]\nname = \"{name}\"\nkind = \"scan\"\ncron = \"{cron}\"\nplugins = [\"ok\"]\n\n"
        )
    };
    const YEARLY: &str = "0 0 0 1 1 *";
    const EVERY_SECOND: &str = "* * * * * *";
    let config = |schedules: &str| queue_config(&dir, 1, "slots = 1") + schedules;
    let applied = |d: &Daemon| d.log_text().matches("schedules active").count();
    dir.write_config(&config(&schedule("nightly", YEARLY)));
    let d = Daemon::start_on(&dir).unwrap();
    d.wait_for("schedules active", |d| applied(d) == 1);

    // A reload that adds a schedule: it runs on its cron (not at once on first sight).
    dir.write_config(&config(
        &(schedule("nightly", YEARLY) + &schedule("often", EVERY_SECOND)),
    ));
    d.wait_for("the added schedule to run twice", |d| {
        runs_of(d, "often") >= 2
    });
    assert!(d.log_text().contains("schedules=2"), "{}", d.log_text());
    assert_eq!(runs_of(&d, "nightly"), 0);

    // A reload that changes both crons: `nightly` now runs every second, `often` no more.
    let before = applied(&d);
    dir.write_config(&config(
        &(schedule("nightly", EVERY_SECOND) + &schedule("often", YEARLY)),
    ));
    d.wait_for("the changed crons in force", |d| applied(d) > before);
    d.wait_for("the changed schedule to run", |d| {
        runs_of(d, "nightly") >= 2
    });
    // A fire of the old cron may have been in flight during the reload; none after it.
    let often = runs_of(&d, "often");
    let nightly = runs_of(&d, "nightly");
    d.wait_for("two more runs of the changed schedule", |d| {
        runs_of(d, "nightly") >= nightly + 2
    });
    assert_eq!(runs_of(&d, "often"), often, "the old cron no longer fires");
}

/// Config for audits over the fixture plugins: policies `fine` (a check `ok` passes),
/// `broken` (that, and one on `bad`, which fails) and `slow` (checks on `hang` and `ok`).
fn audit_config(dir: &TestDir, daemon: &str) -> String {
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let check = |id: &str, plugin: &str| {
        format!(
            "[[check]]\nid = \"{id}\"\nplugin = \"{plugin}\"\nkey = \"item-0\"\npresent = true\n\n"
        )
    };
    for (name, checks) in [
        ("fine", check("ok-item", "ok")),
        ("broken", check("ok-item", "ok") + &check("bad-item", "bad")),
        (
            "slow",
            check("hang-item", "hang") + &check("ok-item", "ok") + &check("ok-other", "ok"),
        ),
    ] {
        std::fs::write(
            policies.join(format!("{name}.toml")),
            format!("name = \"{name}\"\ndescription = \"{name} checks\"\n\n{checks}"),
        )
        .unwrap();
    }
    format!("policy_dir = \"{}\"\n", policies.display()) + &queue_config(dir, 1, daemon)
}

fn audit_row(d: &Daemon, policy: &str) -> Value {
    let mut rows = d.queue_and_wait(json!({"kind": "audit", "policies": [policy]}));
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.remove(0)
}

#[test]
fn audit_errors_count_real_errors_only() {
    let dir = TestDir::new();
    dir.write_config(&audit_config(&dir, ""));
    let d = Daemon::start_on(&dir).unwrap();

    let fine = audit_row(&d, "fine");
    assert_eq!(fine["status"], "Finished", "{fine}");
    assert_eq!(fine["errors"], 0);
    assert_eq!(fine["messages"], json!([]));
    assert_eq!(
        fine["summary"],
        "1 check of policy fine: 1 passed, 0 failed, 0 could not be evaluated"
    );

    let broken = audit_row(&d, "broken");
    assert_eq!(broken["status"], "Failed", "{broken}");
    assert_eq!(broken["errors"], 1, "one plugin error: {broken}");
    let messages = broken["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{broken}");
    assert!(
        messages[0].as_str().unwrap().starts_with("bad: ")
            && messages[0].as_str().unwrap().contains("fixture error"),
        "{broken}"
    );
    assert_eq!(
        broken["summary"],
        "2 checks of policy broken: 1 passed, 0 failed, 1 could not be evaluated"
    );

    // `vigil log audits` shows the error of the Failed row and the summary of the other.
    let out = d.vigil(&["log", "audits"]);
    let out = String::from_utf8_lossy(&out.stdout);
    let line = |id: &str| {
        out.lines()
            .find(|l| l.starts_with(id))
            .expect(&out)
            .to_owned()
    };
    assert!(line("Audit #2").contains("bad: "), "{out}");
    assert!(line("Audit #1").contains("1 passed"), "{out}");
}

#[test]
fn an_audit_stops_at_its_timeout() {
    let dir = TestDir::new();
    dir.write_config(&audit_config(&dir, "task_timeout = \"1s\""));
    let d = Daemon::start_on(&dir).unwrap();
    let row = audit_row(&d, "slow");
    assert_eq!(row["status"], "Failed", "{row}");
    assert_eq!(
        row["messages"],
        json!(["hang: timed out after 1s (daemon.task_timeout)"]),
        "one clear message: {row}"
    );
    assert_eq!(row["errors"], 1);
    let mut checks = check_results(&row);
    checks.sort();
    let not_evaluated = |id: &str| {
        (
            id.to_owned(),
            "error".to_owned(),
            "not evaluated: the audit timed out".to_owned(),
        )
    };
    assert_eq!(
        checks,
        [
            not_evaluated("hang-item"),
            not_evaluated("ok-item"),
            not_evaluated("ok-other")
        ],
        "{row}"
    );
    // The plugins after the deadline did not run at all.
    let plugins: Vec<&str> = row["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["plugin"].as_str().unwrap())
        .collect();
    assert_eq!(plugins, ["hang"], "{row}");
    assert_eq!(
        row["summary"],
        "3 checks of policy slow: 0 passed, 0 failed, 3 could not be evaluated"
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
