//! The CLI for active tasks and the logs: `vigil queue`, `vigil queue cancel`, `vigil scan`
//! (`--wait`), `vigil log scans` — the real `vigil` binary against the real daemon, with the
//! fixture plugins.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{json, stderr, stdout, Daemon, TestDir, VIGILD};

fn fixture_lib() -> PathBuf {
    Path::new(VIGILD)
        .parent()
        .unwrap()
        .join("libvigil_test_plugins.so")
}

/// `nodes` nodes (`n1`…) with roots in the test dir, and the fixture plugin as `ok`
/// (5 items), `bad` (fails) and `slow` (an item a minute: runs until cancelled, in practice;
/// fewer than 10 items, as the fixture's keys would sort out of order after `item-9`).
fn start(dir: &TestDir, nodes: usize) -> Daemon {
    let mut extra = String::new();
    for i in 1..=nodes {
        let root = dir.node_root(&format!("root-{i}"));
        extra += &format!(
            "[[node]]\nname = \"n{i}\"\nroot = \"{}\"\n\n",
            root.display()
        );
    }
    for (name, cfg) in [
        ("ok", "mode = \"ok\"\ncount = 5"),
        ("bad", "mode = \"error\""),
        ("slow", "mode = \"slow\"\ncount = 5\nms = 60000"),
    ] {
        extra += &format!(
            "[[plugin]]\nname = \"{name}\"\nlibrary = \"{}\"\n[plugin.config]\n{cfg}\n\n",
            fixture_lib().display()
        );
    }
    Daemon::start(dir, &extra)
}

fn queue(d: &Daemon) -> Vec<Value> {
    let (code, text) = d.http("GET", "/v1/queue", None);
    assert_eq!(code, 200, "{text}");
    json(&text).as_array().unwrap().clone()
}

#[test]
fn scan_wait_follows_the_tasks_of_every_node_until_they_finish() {
    let dir = TestDir::new();
    let d = start(&dir, 2);
    let out = d.vigil_exits(&["scan", "--plugin", "ok", "--wait"], 0);
    assert!(out.contains("queued 2 scans: Scan #1, Scan #2"), "{out}");
    for node in ["n1", "n2"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("Scan #")
                    && l.contains(&format!(" {node} Finished (5 items)"))),
            "a Finished line for {node}:\n{out}"
        );
    }
    assert!(out.contains("2 scans: 2 Finished"), "{out}");
    assert!(queue(&d).is_empty());

    // `--json --wait`: the final log rows, and nothing else on stdout.
    let out = d.vigil_exits(&["--json", "scan", "--plugin", "ok", "--wait"], 0);
    let rows = json(&out);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{out}");
    let mut ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["Scan #3", "Scan #4"]);
    assert!(rows
        .iter()
        .all(|r| r["status"] == "Finished" && r["items_scanned"] == 5));

    // Without --wait: the new ids, and the API's answer with --json.
    let out = d.vigil_exits(
        &["--json", "scan", "--scope", "node:n2", "--plugin", "ok"],
        0,
    );
    assert_eq!(json(&out)["ids"], serde_json::json!(["Scan #5"]));
}

#[test]
fn scan_wait_exits_1_when_a_task_fails() {
    let dir = TestDir::new();
    let d = start(&dir, 1);
    let o = d.vigil(&["scan", "--plugin", "bad", "--wait"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("Scan #1 n1 Failed") && out.contains("fixture error"),
        "{out}"
    );
    assert!(out.contains("1 scan: 1 Failed"), "{out}");
    assert!(stderr(&o).contains("did not finish"), "{}", stderr(&o));

    // The log shows it with its first message.
    let out = d.vigil_exits(&["log", "scans", "--status", "failed"], 0);
    let line = out.lines().find(|l| l.starts_with("Scan #1")).expect(&out);
    assert!(
        line.contains("Failed") && line.contains("fixture error"),
        "{out}"
    );
}

#[test]
fn queue_lists_a_running_task_and_cancel_ends_it() {
    let dir = TestDir::new();
    let d = start(&dir, 1);
    let out = d.vigil_exits(&["queue"], 0);
    assert!(out.contains("The queue is empty"), "{out}");

    let out = d.vigil_exits(&["scan", "--plugin", "slow"], 0);
    assert!(out.contains("Scan #1"), "{out}");
    d.wait_for("Scan #1 Running", |d| {
        queue(d)
            .iter()
            .any(|t| t["id"] == "Scan #1" && t["status"] == "Running")
    });

    let out = d.vigil_exits(&["queue"], 0);
    let header = out.lines().next().unwrap();
    for col in [
        "Device/Resource",
        "Task",
        "Start date",
        "Scope",
        "Initiator",
        "Status",
    ] {
        assert!(header.contains(col), "column {col} in:\n{out}");
    }
    let row = out.lines().nth(1).expect(&out);
    for cell in ["n1", "Scan #1", "all", "Running"] {
        assert!(row.contains(cell), "{cell} in:\n{out}");
    }
    let out = d.vigil_exits(&["--json", "queue", "--status", "running"], 0);
    assert_eq!(json(&out)[0]["id"], "Scan #1", "{out}");
    let out = d.vigil_exits(&["queue", "--kind", "audit"], 0);
    assert!(out.contains("No active task matches"), "{out}");

    let out = d.vigil_exits(&["queue", "cancel", "S1"], 0);
    assert!(out.contains("S1") && out.contains("cancelled"), "{out}");
    assert!(queue(&d).is_empty());

    let out = d.vigil_exits(&["log", "scans"], 0);
    let line = out.lines().find(|l| l.starts_with("Scan #1")).expect(&out);
    assert!(line.contains("n1") && line.contains("Cancelled"), "{out}");
    let page = json(&d.vigil_exits(&["--json", "log", "scans"], 0));
    assert_eq!(page["total"], 1);
    assert_eq!(page["rows"][0]["status"], "Cancelled");

    // Cancelling it again: it has ended, which is not a success.
    let out = d.vigil_exits(&["queue", "cancel", "scan-1"], 1);
    assert!(out.contains("already finished"), "{out}");
}

#[test]
fn cancel_of_an_unknown_id_reports_not_found_and_exits_1() {
    let dir = TestDir::new();
    let d = start(&dir, 1);
    let o = d.vigil(&["queue", "cancel", "scan-999", "nonsense"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "one line per id:\n{out}");
    assert!(
        lines[0].starts_with("scan-999") && lines[0].contains("not found"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("nonsense") && lines[1].contains("invalid"),
        "{out}"
    );
    assert!(
        stderr(&o).contains("2 of 2 task(s) were not cancelled"),
        "{}",
        stderr(&o)
    );

    let o = d.vigil(&["--json", "queue", "cancel", "Scan #999"]);
    assert_eq!(o.status.code(), Some(1));
    let resp = json(&stdout(&o));
    assert_eq!(resp["results"][0]["outcome"], "not_found");
}

#[test]
fn empty_log_and_bad_options_are_told_plainly() {
    let dir = TestDir::new();
    let d = start(&dir, 1);
    let out = d.vigil_exits(&["log", "audits"], 0);
    assert!(out.contains("The audit log is empty"), "{out}");
    d.vigil_exits(&["scan", "--scope", "everything"], 64);
    d.vigil_exits(&["queue", "--status", "done"], 64);
    let o = d.vigil(&["scan", "--scope", "node:nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}
