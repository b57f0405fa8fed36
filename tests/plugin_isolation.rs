//! The running daemon survives misbehaving plugins: a scan through the real queue with a
//! plugin that segfaults after 10k items, one that floods huge notes, and an ordinary one
//! fails with the crash as its reason, keeps the daemon's memory bounded, and leaves the
//! daemon answering and scanning; an unseen record reaches the Scan log as a coverage note;
//! an item that is not item JSON fails its plugin with a protocol violation.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::{Daemon, TestDir, VIGILD};

/// A generous correctness bound on the daemon's peak RSS: keeping the flood's notes (64
/// notes of ~4 MiB) would take it well past this.
const MAX_DAEMON_HWM_KB: u64 = 200 * 1024;

fn fixture_lib() -> PathBuf {
    Path::new(VIGILD)
        .parent()
        .unwrap()
        .join("libvigil_test_plugins.so")
}

fn config(dir: &TestDir) -> String {
    let root = dir.node_root("root-1");
    let mut c = format!(
        "policy_dir = \"no-policies\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nshutdown_grace = \"2s\"\n\n\
         [[node]]\nname = \"n1\"\nroot = \"{}\"\n\n",
        root.display()
    );
    for (name, cfg) in [
        ("crash", "mode = \"segfault-mid-stream\"\ncount = 10000"),
        ("flood", "mode = \"note-flood\"\nhuge = 64\ncount = 5000"),
        ("ok", "mode = \"ok\"\ncount = 7"),
        ("unseen", "mode = \"unseen\"\ncount = 2"),
        ("badjson", "mode = \"bad-json\""),
    ] {
        c += &format!(
            "[[plugin]]\nname = \"{name}\"\nlibrary = \"{}\"\n[plugin.config]\n{cfg}\n\n",
            fixture_lib().display()
        );
    }
    c
}

fn scan_log(d: &Daemon) -> Value {
    let (code, text) = d.http("GET", "/v1/logs/scans?limit=100", None);
    assert_eq!(code, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn scan(d: &Daemon, plugins: &[&str]) -> Value {
    let body = json!({"kind": "scan", "plugins": plugins}).to_string();
    let (code, text) = d.http("POST", "/v1/queue", Some(&body));
    assert_eq!(code, 200, "{text}");
    let ids: Value = serde_json::from_str(&text).unwrap();
    let id = ids["ids"][0].as_str().unwrap().to_owned();
    d.wait_for(&format!("{id} in the scan log"), |d| {
        scan_log(d)["rows"]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|r| r["id"] == id.as_str()))
    });
    let log = scan_log(d);
    let rows = log["rows"].as_array().unwrap();
    rows.iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap()
        .clone()
}

/// The daemon's peak resident set size (`VmHWM`), in KiB.
fn peak_rss_kb(d: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

#[test]
fn the_daemon_survives_a_crashing_and_a_flooding_plugin() {
    let dir = TestDir::new();
    dir.write_config(&config(&dir));
    let d = Daemon::start_on(&dir).expect("vigild starts");

    let row = scan(&d, &["crash", "flood", "ok"]);
    assert_eq!(row["status"], "Failed", "{row}");
    assert!(row["errors"].as_u64().unwrap() > 0, "{row}");
    let message = row["messages"][0].as_str().unwrap();
    assert!(
        message.starts_with("crash: ") && message.contains("crashed with SIGSEGV"),
        "the reason is the crash, not the pipe: {message}"
    );
    let plugins = row["plugins"].as_array().unwrap();
    assert_eq!(plugins[0]["plugin"], "crash");
    assert!(plugins[0]["error"]
        .as_str()
        .unwrap()
        .contains("crashed with SIGSEGV"));
    // The other plugins of the task still ran, the flood's notes bounded and counted.
    assert_eq!(plugins[1]["plugin"], "flood");
    assert_eq!(plugins[1]["error"], Value::Null, "{}", plugins[1]["error"]);
    let notes = plugins[1]["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 51, "50 notes and a count");
    assert!(notes
        .iter()
        .all(|n| n.as_str().unwrap().len() <= vigil::plugin::supervisor::MAX_NOTE_BYTES));
    assert_eq!(
        notes[50],
        format!("… and {} more notes ({} in all)", 64 + 5000 - 50, 64 + 5000)
    );
    assert_eq!(plugins[2]["plugin"], "ok");
    assert_eq!(plugins[2]["items"], 7);
    assert_eq!(plugins[2]["error"], Value::Null);

    let hwm = peak_rss_kb(&d);
    assert!(
        hwm < MAX_DAEMON_HWM_KB,
        "the daemon peaked at {} MiB while plugins flooded it",
        hwm / 1024
    );

    // Still answering, and a following ordinary scan completes.
    let status = d.status_json();
    assert!(status.is_object(), "{status}");
    let row = scan(&d, &["ok"]);
    assert_eq!(row["status"], "Finished", "{row}");
    assert_eq!(row["errors"], 0);
    assert_eq!(row["items_scanned"], 7);
    assert!(
        d.child.id() > 0 && Path::new(&format!("/proc/{}", d.child.id())).exists(),
        "the daemon still runs"
    );
}

/// Until the daemon tells "not seen" from "removed" itself, the scan runner keeps each unseen
/// record as a coverage note of the scan.
#[test]
fn unseen_records_become_coverage_notes_of_the_scan() {
    let dir = TestDir::new();
    dir.write_config(&config(&dir));
    let d = Daemon::start_on(&dir).expect("vigild starts");
    let row = scan(&d, &["unseen"]);
    assert_eq!(row["status"], "Finished", "{row}");
    assert_eq!(row["items_scanned"], 2);
    assert_eq!(
        row["plugins"][0]["notes"],
        json!([
            "not seen: /locked (permission denied)",
            "not seen: /locked-1 (permission denied)"
        ]),
        "{row}"
    );
}

/// A scan stores items straight from the worker's JSON (`snapshot::item_json`): one that is
/// not an item fails its plugin as a protocol violation, stores nothing, and leaves the
/// node's snapshot of the day as it was.
#[test]
fn an_item_that_is_not_item_json_fails_its_plugin_and_stores_nothing() {
    let dir = TestDir::new();
    dir.write_config(&config(&dir));
    let d = Daemon::start_on(&dir).expect("vigild starts");
    let row = scan(&d, &["badjson", "ok"]);
    assert_eq!(row["status"], "Failed", "{row}");
    let plugins = row["plugins"].as_array().unwrap();
    assert_eq!(plugins[0]["plugin"], "badjson");
    let error = plugins[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("protocol violation") && error.contains("item #1 is not valid item JSON"),
        "{row}"
    );
    assert_eq!(plugins[1]["plugin"], "ok");
    assert_eq!(plugins[1]["error"], Value::Null, "{row}");
    assert_eq!(plugins[1]["items"], 7);
    let (code, text) = d.http("GET", "/v1/nodes", None);
    assert_eq!(code, 200, "{text}");
    let nodes: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        nodes[0]["items"],
        json!({"ok": 7}),
        "a snapshot of the ok plugin only: {text}"
    );
}
