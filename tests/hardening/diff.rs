//! Issue 16: content diffs cannot stall the database. The probe of the issue: three captured
//! 64,000-byte files change from `a\n` lines to `b\n` lines. The scan ends within 2 s, an
//! admin's close of an unrelated task meanwhile answers within 100 ms, and a Site User's
//! `GET …/drift` is served from what the scan stored.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{http_as, is_root, json, Daemon, TestDir};

fn node(dir: &TestDir, name: &str, files: &[(&str, String)]) -> std::path::PathBuf {
    let root = dir.path().join(name);
    std::fs::create_dir_all(root.join("etc")).unwrap();
    for (path, text) in files {
        std::fs::write(root.join(path), text).unwrap();
    }
    root
}

fn config(dir: &TestDir, big: &Path, other: &Path) -> String {
    format!(
        "policy_dir = \"no-policies\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nplugin_dir = \"{}\"\nslots = 2\n\n\
         [[user]]\nemail = \"alice@example.com\"\nuid = 65534\nrole = \"user\"\n\n\
         [[group]]\nname = \"web\"\nowners = [\"alice@example.com\"]\n\n\
         [[plugin]]\nname = \"files\"\n[plugin.config]\npaths = [\"/etc\"]\ncontent = [\"/etc/*.txt\"]\n\n\
         [[node]]\nname = \"big\"\ngroups = [\"web\"]\nroot = \"{}\"\n\n\
         [[node]]\nname = \"other\"\ngroups = [\"web\"]\nroot = \"{}\"\n",
        dir.plugin_dir().display(),
        big.display(),
        other.display()
    )
}

fn big_files(line: &str) -> Vec<(&'static str, String)> {
    let text = line.repeat(32_000);
    assert_eq!(text.len(), 64_000);
    ["etc/big1.txt", "etc/big2.txt", "etc/big3.txt"]
        .into_iter()
        .map(|p| (p, text.clone()))
        .collect()
}

fn seconds(row: &Value, field: &str) -> chrono::DateTime<chrono::Utc> {
    row[field].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_huge_content_diff_does_not_stall_the_store() {
    let dir = TestDir::new();
    let big = node(&dir, "big", &big_files("a\n"));
    let other = node(&dir, "other", &[("etc/motd.txt", "hello\n".into())]);
    dir.set_today("2026-03-01");
    dir.write_config(&config(&dir, &big, &other));
    let d = Daemon::start_on(&dir).unwrap();
    // Let the Site User connect: the socket's group would normally do this.
    let open = |p: &Path, mode| {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap()
    };
    open(&d.socket, 0o666);
    open(d.socket.parent().unwrap(), 0o755);
    d.queue_and_wait(json!({"kind": "scan"}));

    // An unrelated task to close later: the other node's motd changed.
    dir.set_today("2026-03-02");
    std::fs::write(other.join("etc/motd.txt"), "changed\n").unwrap();
    d.queue_and_wait(json!({"kind": "scan", "scope": "node:other"}));
    let (_, tasks) = d.http("GET", "/v1/tasks", None);
    let tasks = json(&tasks);
    let task = tasks["tasks"][0]["id"]
        .as_u64()
        .expect("a task for node other");

    // The probe.
    dir.set_today("2026-03-03");
    for (path, text) in big_files("b\n") {
        std::fs::write(big.join(path), text).unwrap();
    }
    let (code, body) = d.http(
        "POST",
        "/v1/queue",
        Some(&json!({"kind": "scan", "scope": "node:big"}).to_string()),
    );
    assert_eq!(code, 200, "{body}");
    let id = json(&body)["ids"][0].as_str().unwrap().to_owned();
    let start = Instant::now();
    let (code, body) = d.http("POST", &format!("/v1/tasks/{task}/close"), None);
    let close = start.elapsed();
    assert_eq!(code, 200, "{body}");
    assert!(
        close < Duration::from_millis(100),
        "closing an unrelated task took {close:?} during the scan"
    );
    let mut row = Value::Null;
    d.wait_for("the probe's scan to end", |d| {
        let (_, log) = d.http("GET", "/v1/logs/scans?limit=100", None);
        row = json(&log)["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id.as_str())
            .cloned()
            .unwrap_or(Value::Null);
        !row.is_null()
    });
    assert_eq!(row["status"], "Finished", "{row}");
    let took = seconds(&row, "finished_at") - seconds(&row, "started_at");
    assert!(
        took < chrono::Duration::seconds(2),
        "the probe's scan took {took} ({row})"
    );

    // A Site User's drift view: served from the store, with the fallback the scan stored.
    let start = Instant::now();
    let (code, body) = if is_root() {
        http_as(65534, &d.socket, "GET", "/v1/nodes/big/drift", None)
    } else {
        d.http("GET", "/v1/nodes/big/drift", None)
    };
    let get = start.elapsed();
    assert_eq!(code, 200, "{body}");
    assert!(
        get < Duration::from_millis(1000),
        "GET …/drift took {get:?}"
    );
    let drift = json(&body);
    let changes: Vec<&Value> = drift["plugins"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(changes.len(), 3, "{drift}");
    for c in changes {
        assert_eq!(
            c["content_diff"], "content changed (diff too large: 64000 lines)\n",
            "{c}"
        );
    }
}

/// The diff a scan recorded is the one every later view shows, also after a reload changes
/// the ignore rules (the views re-diff attributes, never contents).
#[test]
fn views_show_the_content_diff_recorded_at_scan_time() {
    let dir = TestDir::new();
    let big = node(&dir, "big", &[("etc/a.txt", "one\ntwo\nthree\n".into())]);
    let other = node(&dir, "other", &[("etc/b.txt", "x\n".into())]);
    dir.set_today("2026-03-01");
    dir.write_config(&config(&dir, &big, &other));
    let d = Daemon::start_on(&dir).unwrap();
    d.queue_and_wait(json!({"kind": "scan"}));
    dir.set_today("2026-03-02");
    std::fs::write(big.join("etc/a.txt"), "one\nTWO\nthree\n").unwrap();
    d.queue_and_wait(json!({"kind": "scan", "scope": "node:big"}));
    let view = |d: &Daemon| {
        let (code, body) = d.http("GET", "/v1/nodes/big/drift", None);
        assert_eq!(code, 200, "{body}");
        json(&body)["plugins"][0]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == "/etc/a.txt")
            .cloned()
            .unwrap()
    };
    let before = view(&d);
    let diff = before["content_diff"].as_str().unwrap().to_owned();
    assert!(diff.contains("-two\n+TWO\n"), "{diff}");
    // Ignoring mtime now: the attributes re-diff, the content diff is the recorded one.
    let text = config(&dir, &big, &other).replace(
        "name = \"files\"\n",
        "name = \"files\"\nignore_attributes = [\"mtime\"]\n",
    );
    dir.write_config(&text);
    d.vigil_exits(&["reload"], 0);
    let after = view(&d);
    assert_eq!(after["content_diff"], diff.as_str());
    let names = |c: &Value| -> Vec<String> {
        c["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(!names(&after).contains(&"mtime".to_owned()), "{after}");
}
