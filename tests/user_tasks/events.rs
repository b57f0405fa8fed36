//! The event log (issue 19), end to end: one event per task per run however many nodes it
//! covers, `vigil events --follow` printing them as they commit, and a follower that keeps
//! going across a daemon killed and restarted without losing or repeating an event.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::common::vigil_cmd;

/// `vigil events --follow --json`, its lines collected by a thread as they come.
struct Follower {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Follower {
    fn start(d: &Daemon, after: u64) -> Follower {
        let mut child = vigil_cmd(
            &d.socket,
            &[
                "events",
                "--follow",
                "--json",
                "--after",
                &after.to_string(),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line).unwrap();
                sink.lock().unwrap().push(v);
            }
        });
        Follower { child, lines }
    }

    fn seqs(&self) -> Vec<u64> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    }

    fn wait_for(&self, d: &Daemon, n: usize) -> Vec<Value> {
        d.wait_for(&format!("{n} events from the follower"), |_| {
            self.lines.lock().unwrap().len() >= n
        });
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn events_after(d: &Daemon, after: u64) -> Vec<Value> {
    let (code, body) = d.http("GET", &format!("/v1/events?after={after}"), None);
    assert_eq!(code, 200, "{body}");
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

#[test]
fn a_run_over_20_nodes_is_one_event_per_task_and_a_follower_survives_a_restart() {
    let f = fleet(20, 2);
    f.dir.set_today("2026-04-01");
    let mut d = f.start("");
    scan_all(&d);
    assert!(
        events_after(&d, 0).is_empty(),
        "a first scan changes no task"
    );

    let follower = Follower::start(&d, 0);
    // web-1 and web-10..web-19 first.
    f.patch_openssl("web-1");
    f.dir.set_today("2026-04-02");
    scan_all(&d);
    let seen = follower.wait_for(&d, 2);
    assert_eq!(kinds(&seen), ["task.opened", "task.assigned"], "{seen:?}");
    let opened = &seen[0];
    let id = opened["task"].as_u64().unwrap();
    assert_eq!(opened["nodes_in_event"], 11);
    assert_eq!(opened["event_nodes"].as_array().unwrap().len(), 11);
    assert_eq!(opened["event_nodes"][0], "web-1");
    assert_eq!(opened["nodes"], 11);
    assert_eq!(opened["events"], 11);
    assert_eq!(opened["task_kind"], "drift");
    assert_eq!(opened["status"], "open");
    assert_eq!(seen[1]["assignee"], "alice@example.com");
    assert!(seen[1]["by"].as_str().unwrap().starts_with("auto-assign"));
    let key = opened["dedup_key"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with("vigil/") && key.ends_with(&format!("/task/{id}")),
        "{key}"
    );
    let (_, task) = d.http("GET", &format!("/v1/tasks/{id}"), None);
    assert_eq!(
        serde_json::from_str::<Value>(&task).unwrap()["task"]["dedup_key"],
        key
    );
    assert_eq!(events_after(&d, 0), seen, "the stream and a read agree");

    // The other nine the next night join the open task: one update naming the nine.
    for (name, root) in &f.roots {
        if name.starts_with("web") && !name.starts_with("web-1") {
            edit(&root.join("var/lib/dpkg/status"), OLD_SSL, NEW_SSL);
        }
    }
    f.dir.set_today("2026-04-03");
    scan_all(&d);
    let seen = follower.wait_for(&d, 3);
    assert_eq!(seen[2]["kind"], "task.updated", "{seen:?}");
    assert_eq!(seen[2]["task"], id);
    assert_eq!(seen[2]["nodes_in_event"], 9);
    assert_eq!(seen[2]["event_nodes"][0], "web-0");
    assert_eq!(
        (&seen[2]["nodes"], &seen[2]["events"]),
        (&json!(20), &json!(20))
    );

    let (code, body) = d.http("POST", &format!("/v1/tasks/{id}/close"), None);
    assert_eq!(code, 200, "{body}");
    let seen = follower.wait_for(&d, 4);
    assert_eq!(seen[3]["kind"], "task.closed");
    assert_eq!(seen[3]["how"], "user");
    assert_eq!(seen[3]["status"], "closed");

    // Killed with the follower connected; it reconnects to the restarted daemon and
    // resumes after the last event it printed.
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait_exit();
    drop(d);
    let d = f.start("");
    let (code, body) = d.http("POST", &format!("/v1/tasks/{id}/reopen"), None);
    assert_eq!(code, 200, "{body}");
    let seen = follower.wait_for(&d, 5);
    assert_eq!(seen[4]["kind"], "task.reopened");
    assert_eq!(
        follower.seqs(),
        [1, 2, 3, 4, 5],
        "nothing lost, nothing twice"
    );
    assert_eq!(
        seen[4]["dedup_key"],
        key.as_str(),
        "the key survives the restart"
    );
    let rest = events_after(&d, 3);
    assert_eq!(kinds(&rest), ["task.closed", "task.reopened"]);

    // The table form names each event once.
    let table = d.vigil_exits(&["events", "--after", "1"], 0);
    assert_eq!(
        table.lines().count(),
        5,
        "a header and four events:\n{table}"
    );
    assert!(
        table.lines().nth(1).unwrap().contains("task.assigned"),
        "{table}"
    );
}

/// While nothing happens a followed stream sends heartbeats (chunked, as they come).
#[test]
fn a_quiet_followed_stream_sends_heartbeats() {
    let f = fleet(1, 0);
    let d = f.start("");
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /v1/events?follow=true&heartbeat=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&got)
        .matches("\"heartbeat\"")
        .count()
        < 2
    {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert!(text.contains("application/x-ndjson"), "{text}");
    assert!(text.contains("\"last_seq\":0"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let (code, body) = d.http("GET", "/v1/events?follow=true&heartbeat=0", None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("from 1 to 300"), "{body}");

    // Every configured user reads the log, like the task list; other uids do not.
    if is_root() {
        let (code, body) = http_as(65534, &d.socket, "GET", "/v1/events", None);
        assert_eq!(code, 200, "a Site User: {body}");
        let (code, body) = http_as(4300, &d.socket, "GET", "/v1/events", None);
        assert_eq!(code, 403, "an unconfigured uid: {body}");
    }
}

/// A scan that ends Failed is a `scan.failed` event with its first error, besides the
/// scan-failure task it opens; the clean scan after it closes that task by itself
/// (`how: scan`, by the scan that did).
#[test]
fn a_failed_scan_is_an_event_and_a_clean_one_closes_its_task_by_itself() {
    let f = fleet(2, 0);
    f.dir.set_today("2026-04-01");
    let d = f.start("");
    scan_all(&d);
    let status = f.roots[0].1.join("var/lib/dpkg/status");
    let saved = std::fs::read(&status).unwrap();
    std::fs::remove_file(&status).unwrap();
    f.dir.set_today("2026-04-02");
    let rows = scan(&d, "node:web-0");
    assert_eq!(rows[0]["status"], "Failed", "{}", rows[0]);
    let log = events_after(&d, 0);
    assert_eq!(
        kinds(&log),
        ["scan.failed", "task.opened", "task.assigned"],
        "{log:#?}"
    );
    assert_eq!(log[0]["source"], rows[0]["id"]);
    assert_eq!(log[0]["event_nodes"], json!(["web-0"]));
    assert!(log[0].get("task").is_none(), "{}", log[0]);
    assert!(
        log[0]["title"].as_str().unwrap().contains("dpkg status"),
        "{}",
        log[0]
    );
    assert_eq!(log[1]["task_kind"], "scan-failure");

    std::fs::write(&status, saved).unwrap();
    let rows = scan(&d, "node:web-0");
    assert_eq!(rows[0]["status"], "Finished", "{}", rows[0]);
    let log = events_after(&d, 3);
    assert_eq!(kinds(&log), ["task.closed"], "{log:#?}");
    assert_eq!(log[0]["how"], "scan");
    assert_eq!(log[0]["by"], rows[0]["id"]);
    assert_eq!(log[0]["event_nodes"], json!(["web-0"]));
}
