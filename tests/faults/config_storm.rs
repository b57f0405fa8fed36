//! An empty or emptied config is refused (start, --check-config, reload, and a storm of
//! half-written files); a deliberate emptying needs `allow_empty`; a queued task whose node
//! a reload removed says so in its log row.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use super::{config, open_gate, start};
use crate::common::{json, Daemon, TestDir, VIGILD};

fn scan_rows(d: &Daemon) -> Vec<Value> {
    let (code, text) = d.http("GET", "/v1/logs/scans?limit=1000", None);
    assert_eq!(code, 200, "{text}");
    json(&text)["rows"].as_array().unwrap().clone()
}

#[test]
fn an_empty_config_is_refused_by_check_config_and_at_start() {
    let dir = TestDir::new();
    for text in ["", "# only a comment\n\n   # and another\n"] {
        std::fs::write(dir.config_path(), text).unwrap();
        let out = Command::new(VIGILD)
            .arg("--check-config")
            .arg(dir.config_path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text:?}: {err}");
        assert!(err.contains("empty or has only comments"), "{err}");
        let refused = Daemon::start_on(&dir)
            .err()
            .expect("vigild refuses to start");
        assert!(refused.contains("empty or has only comments"), "{refused}");
    }
}

/// 100 writes in 2 seconds or less, as editors and config management make them: rename
/// over, truncate-and-write in place, empty and comment-only files in between, SIGHUPs. Not
/// one reload may take an empty config in, and the queued work is untouched.
#[test]
fn a_reload_storm_never_swaps_in_an_empty_config() {
    let dir = TestDir::new();
    let d = start(&dir, 3, "slots = 1", "");
    let (code, body) = d.http(
        "POST",
        "/v1/queue",
        Some(&json!({"kind": "scan", "plugins": ["gated"]}).to_string()),
    );
    assert_eq!(code, 200, "{body}");
    let full = config(&dir, 3, "slots = 1", "");
    let rejected = |d: &Daemon| d.log_text().matches("config reload rejected").count();
    let started = Instant::now();
    for i in 0..100 {
        let text = match i % 5 {
            0 | 3 => format!("{full}# write {i}\n"),
            2 => "# being rewritten\n".to_owned(),
            _ => String::new(),
        };
        if i % 2 == 0 {
            dir.write_config(&text);
        } else {
            // In place: truncate first, then write (what `>` and many tools do).
            let mut f = std::fs::File::create(dir.config_path()).unwrap();
            f.write_all(text.as_bytes()).unwrap();
        }
        if i % 10 == 9 {
            // The file is empty now: a SIGHUP's reload sees it (the file watcher, debounced,
            // sees some of the others).
            let before = rejected(&d);
            d.signal(Signal::SIGHUP);
            d.wait_for("a reload to refuse the empty file", |d| {
                rejected(d) > before
            });
            // Read what it told systemd: the harness's notify socket is ours to drain.
            d.notify_messages();
        }
        assert_eq!(d.status_json()["nodes"], 3, "after write {i}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the storm is bounded: {:?}",
        started.elapsed()
    );
    // The storm ends on a good file: an explicit reload takes it.
    dir.write_config(&full);
    let (code, body) = d.http("POST", "/v1/reload", Some("{}"));
    assert_eq!(code, 200, "{body}");
    let log = d.log_text();
    let accepted_empty = log
        .lines()
        .filter(|l| l.contains("config reloaded") && l.contains("0 nodes"))
        .count();
    assert_eq!(accepted_empty, 0, "an empty config was swapped in:\n{log}");
    assert!(
        log.contains("empty or has only comments"),
        "the refusals are logged:\n{log}"
    );
    // The tasks queued before the storm all run, on their nodes.
    open_gate(&dir);
    d.wait_for("the 3 scans to end", |d| scan_rows(d).len() == 3);
    for row in scan_rows(&d) {
        assert_eq!(row["status"], "Finished", "{row}");
    }
}

#[test]
fn a_reload_that_removes_every_node_or_admin_needs_allow_empty() {
    let dir = TestDir::new();
    let d = start(&dir, 2, "", "");
    // Every node gone.
    dir.write_config(
        &dir.base_config("[[user]]\nemail = \"admin@example.org\"\nuid = 4243\nrole = \"admin\"\n"),
    );
    let (code, body) = d.http("POST", "/v1/reload", Some("{}"));
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("removes every node (had 2)"), "{body}");
    assert!(body.contains("allow_empty"), "{body}");
    assert_eq!(d.status_json()["nodes"], 2);
    // The watcher's reload of the same file is refused too, and shown in status.
    d.wait_for("the watcher's refusal in status", |d| {
        d.status_json()["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("every node"))
    });
    // Every admin gone (the nodes stay).
    dir.write_config(&config(&dir, 2, "", "").replace("role = \"admin\"", "role = \"user\""));
    let (code, body) = d.http("POST", "/v1/reload", None);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("removes every admin (had 1)"), "{body}");
    // Meant: allow_empty takes it, through the API and the CLI.
    let (code, body) = d.http("POST", "/v1/reload", Some(r#"{"allow_empty": true}"#));
    assert_eq!(code, 200, "{body}");
    dir.write_config(&dir.base_config(""));
    let out = d.vigil(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = d.vigil(&["reload", "--allow-empty"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(d.status_json()["nodes"], 0);
}

#[test]
fn a_queued_task_whose_node_a_reload_removed_says_so() {
    let dir = TestDir::new();
    let d = start(&dir, 2, "slots = 1", "");
    let (code, body) = d.http(
        "POST",
        "/v1/queue",
        Some(&json!({"kind": "scan", "plugins": ["gated"]}).to_string()),
    );
    assert_eq!(code, 200, "{body}");
    // n1 runs, n2 waits; the reload removes n2.
    let without_n2 = config(&dir, 2, "slots = 1", "");
    let cut = without_n2.find("[[node]]\nname = \"n2\"").unwrap();
    let end = cut + without_n2[cut..].find("\n\n").unwrap() + 2;
    let text = format!("{}{}", &without_n2[..cut], &without_n2[end..]);
    dir.write_config(&text);
    let (code, body) = d.http("POST", "/v1/reload", Some("{}"));
    assert_eq!(code, 200, "{body}");
    open_gate(&dir);
    d.wait_for("both scans to end", |d| scan_rows(d).len() == 2);
    let rows = scan_rows(&d);
    let n2 = rows.iter().find(|r| r["target"] == "n2").unwrap();
    assert_eq!(n2["status"], "Failed", "{n2}");
    let message = n2["messages"][0].as_str().unwrap();
    assert!(
        message.contains("no longer in the config (the config reloaded at")
            && message.contains("after this task was queued at")
            && message.contains("removed it"),
        "{message}"
    );
    let n1 = rows.iter().find(|r| r["target"] == "n1").unwrap();
    assert_eq!(n1["status"], "Finished", "{n1}");
}
