//! Snapshots and drift (issue 6), through the real daemon: fixture node roots changed
//! between two scans on injected days.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};

use crate::common::{Daemon, TestDir};

const DEBIAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nodes/debian");

const PLUGINS: &str = r#"
[[plugin]]
name = "files"
ignore_attributes = ["mtime"]
[plugin.config]
paths = ["/etc"]
content = ["/etc/ssh/sshd_config", "/etc/hosts"]

[[plugin]]
name = "packages"

[[plugin]]
name = "accounts"

[[plugin]]
name = "services"

[[plugin]]
name = "sysctl"
[plugin.config]
live = false
"#;

fn config(dir: &TestDir, nodes: &[(&str, &Path)], extra: &str) -> String {
    let mut c = format!(
        "policy_dir = \"no-policies\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nplugin_dir = \"{}\"\nslots = 4\n\n",
        dir.plugin_dir().display()
    );
    for (name, root) in nodes {
        c += &format!(
            "[[node]]\nname = \"{name}\"\nroot = \"{}\"\n\n",
            root.display()
        );
    }
    c + PLUGINS + extra
}

/// Runs a scan over `scope` and waits until its tasks are in the log; returns their rows.
fn scan(d: &Daemon, scope: &str) -> Vec<Value> {
    scan_with(d, json!({"kind": "scan", "scope": scope}))
}

fn scan_with(d: &Daemon, request: Value) -> Vec<Value> {
    let rows = d.queue_and_wait(request);
    for r in &rows {
        assert_eq!(r["status"], "Finished", "{r}");
    }
    rows
}

fn drift(d: &Daemon, node: &str, query: &str) -> Value {
    let (code, body) = d.http("GET", &format!("/v1/nodes/{node}/drift{query}"), None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// All changes of a drift report as (plugin, key, kind) → change.
fn changes(report: &Value) -> Vec<(String, String, String, Value)> {
    let mut out = Vec::new();
    for p in report["plugins"].as_array().unwrap() {
        for c in p["changes"].as_array().unwrap() {
            out.push((
                p["plugin"].as_str().unwrap().to_owned(),
                c["key"].as_str().unwrap().to_owned(),
                c["kind"].as_str().unwrap().to_owned(),
                c.clone(),
            ));
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

fn attr_change<'a>(c: &'a Value, name: &str) -> (&'a Value, &'a Value) {
    let a = c["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no change of {name} in {c}"));
    (&a["previous"], &a["current"])
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

#[test]
fn each_change_appears_once_with_previous_and_current_values() {
    let dir = TestDir::new();
    let root = dir.copy_tree(Path::new(DEBIAN), "node");
    dir.set_today("2026-03-01");
    dir.write_config(&config(&dir, &[("web-1", &root)], ""));
    let d = Daemon::start_on(&dir).unwrap();

    let first = scan(&d, "all");
    assert_eq!(
        first[0]["changes_found"], 0,
        "a first scan is the baseline, not drift"
    );
    assert!(first[0]["drift_fingerprint"].is_null());
    let report = drift(&d, "web-1", "");
    assert_eq!(report["day"], "2026-03-01");
    assert!(report["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["baseline_day"].is_null()));

    // The night's changes.
    std::fs::write(root.join("etc/motd"), "welcome\n").unwrap();
    std::fs::remove_file(root.join("etc/hosts")).unwrap();
    edit(
        &root.join("etc/ssh/sshd_config"),
        "PermitRootLogin yes",
        "PermitRootLogin no",
    );
    edit(
        &root.join("var/lib/dpkg/status"),
        "Version: 3.0.11-1~deb12u2",
        "Version: 3.0.13-1~deb12u1",
    );
    let mut passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    passwd += "newbie:x:1002:1002:New User:/home/newbie:/bin/bash\n";
    std::fs::write(root.join("etc/passwd"), passwd).unwrap();
    std::os::unix::fs::symlink(
        "/lib/systemd/system/cron.service",
        root.join("etc/systemd/system/multi-user.target.wants/cron.service"),
    )
    .unwrap();
    edit(
        &root.join("etc/sysctl.conf"),
        "net.ipv4.ip_forward=1",
        "net.ipv4.ip_forward=0",
    );

    dir.set_today("2026-03-02");
    let second = scan(&d, "all");
    let report = drift(&d, "web-1", "?date=2026-03-02");
    let all = changes(&report);
    let keys: Vec<(&str, &str, &str)> = all
        .iter()
        .map(|(p, k, kind, _)| (p.as_str(), k.as_str(), kind.as_str()))
        .collect();
    for want in [
        ("files", "/etc/motd", "added"),
        ("files", "/etc/hosts", "removed"),
        ("files", "/etc/ssh/sshd_config", "modified"),
        ("packages", "openssl", "modified"),
        ("accounts", "user:newbie", "added"),
        ("services", "cron.service", "modified"),
        ("sysctl", "net.ipv4.ip_forward", "modified"),
    ] {
        assert_eq!(
            keys.iter().filter(|k| **k == want).count(),
            1,
            "{want:?} exactly once in {keys:#?}"
        );
    }
    let get = |p: &str, k: &str| &all.iter().find(|c| c.0 == p && c.1 == k).unwrap().3;
    assert_eq!(
        attr_change(get("packages", "openssl"), "version"),
        (&json!("3.0.11-1~deb12u2"), &json!("3.0.13-1~deb12u1"))
    );
    assert_eq!(
        attr_change(get("services", "cron.service"), "state"),
        (&json!("disabled"), &json!("enabled"))
    );
    assert_eq!(
        attr_change(get("sysctl", "net.ipv4.ip_forward"), "value"),
        (&json!("1"), &json!("0"))
    );
    let sshd = get("files", "/etc/ssh/sshd_config");
    let diff = sshd["content_diff"].as_str().unwrap();
    assert!(
        diff.contains("-PermitRootLogin yes\n") && diff.contains("+PermitRootLogin no\n"),
        "{diff}"
    );
    assert!(
        sshd["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["name"] != "mtime"),
        "mtime is ignored"
    );
    // Directory /etc changed only its mtime (ignored): not drift.
    assert!(!keys.iter().any(|k| k.1 == "/etc"), "{keys:?}");
    assert_eq!(second[0]["changes_found"], all.len() as u64);
    assert!(second[0]["drift_fingerprint"].is_string());

    // Same-day rescan: same baseline, same drift, no second copy.
    let again = scan(&d, "all");
    assert_eq!(again[0]["changes_found"], second[0]["changes_found"]);
    assert_eq!(
        again[0]["drift_fingerprint"],
        second[0]["drift_fingerprint"]
    );
    let report2 = drift(&d, "web-1", "?date=2026-03-02");
    assert_eq!(
        changes(&report2).len(),
        all.len(),
        "no duplicate changes after a same-day rescan"
    );
    assert_eq!(report2["plugins"][0]["baseline_day"], "2026-03-01");

    // Ignore rules apply when the report is read: no rescan needed.
    dir.write_config(&config(&dir, &[("web-1", &root)], "").replace(
        "ignore_attributes = [\"mtime\"]",
        "ignore_attributes = [\"mtime\"]\nignore_keys = [\"/etc/motd\"]",
    ));
    d.wait_for("the reload", |d| d.log_text().contains("config reloaded"));
    let report3 = drift(&d, "web-1", "?date=2026-03-02&plugin=files");
    let keys3: Vec<String> = changes(&report3).into_iter().map(|c| c.1).collect();
    assert!(!keys3.contains(&"/etc/motd".to_owned()), "{keys3:?}");
    assert!(keys3.contains(&"/etc/hosts".to_owned()));

    // The current value of one item.
    let (code, body) = d.http(
        "GET",
        "/v1/nodes/web-1/items?plugin=packages&key=openssl",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let item: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(item["attributes"]["version"], "3.0.13-1~deb12u1");

    // Nodes list shows the last scan and item counts.
    let (_, body) = d.http("GET", "/v1/nodes", None);
    let nodes: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(nodes[0]["name"], "web-1");
    assert_eq!(nodes[0]["last_scan"]["status"], "Finished");
    assert_eq!(nodes[0]["items"]["packages"], 9);
}

#[test]
fn the_same_change_on_many_nodes_has_one_fingerprint() {
    let dir = TestDir::new();
    let mut nodes = Vec::new();
    for i in 0..100 {
        let root = dir.copy_tree(Path::new(DEBIAN), &format!("node-{i}"));
        if i % 3 == 0 {
            // Some nodes start from another old version: the fingerprint is by destination.
            edit(
                &root.join("var/lib/dpkg/status"),
                "Version: 3.0.11-1~deb12u2",
                "Version: 3.0.9-1",
            );
        }
        nodes.push((format!("n{i}"), root));
    }
    let odd = dir.copy_tree(Path::new(DEBIAN), "odd");
    let mut list: Vec<(&str, &Path)> = nodes
        .iter()
        .map(|(n, r)| (n.as_str(), r.as_path()))
        .collect();
    list.push(("odd", &odd));
    dir.set_today("2026-03-01");
    dir.write_config(&config(&dir, &list, ""));
    let d = Daemon::start_on(&dir).unwrap();
    let packages_only = json!({"kind": "scan", "scope": "all", "plugins": ["packages"]});
    scan_with(&d, packages_only.clone());
    for (_, root) in &nodes {
        let status = root.join("var/lib/dpkg/status");
        let text = std::fs::read_to_string(&status).unwrap();
        let text = text
            .replace("Version: 3.0.11-1~deb12u2", "Version: 3.0.13-1~deb12u1")
            .replace("Version: 3.0.9-1", "Version: 3.0.13-1~deb12u1");
        std::fs::write(&status, text).unwrap();
    }
    edit(
        &odd.join("var/lib/dpkg/status"),
        "Version: 3.0.11-1~deb12u2",
        "Version: 3.0.14-1",
    );
    dir.set_today("2026-03-02");
    let rows = scan_with(&d, packages_only);
    assert_eq!(rows.len(), 101);
    let prints: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r["target"] != "odd")
        .map(|r| r["drift_fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(
        prints.len(),
        1,
        "one fingerprint for the same change set: {prints:?}"
    );
    let odd_print = rows.iter().find(|r| r["target"] == "odd").unwrap()["drift_fingerprint"]
        .as_str()
        .unwrap();
    assert!(
        !prints.contains(odd_print),
        "a different destination is a different finding"
    );
}

#[test]
fn retention_prunes_old_snapshots_but_keeps_the_baseline() {
    let dir = TestDir::new();
    let root = dir.copy_tree(Path::new(DEBIAN), "node");
    dir.set_today("2026-03-01");
    dir.write_config(
        &config(&dir, &[("n", &root)], "").replace("slots = 4", "slots = 4\nretention_days = 2"),
    );
    let d = Daemon::start_on(&dir).unwrap();
    for day in ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"] {
        dir.set_today(day);
        scan(&d, "all");
    }
    drop(d);
    // Prune runs at start: days before 03-02 go; the newest day of each plugin always stays.
    let d = Daemon::start_on(&dir).unwrap();
    d.wait_for("pruning", |d| d.log_text().contains("pruned"));
    let (code, body) = d.http("GET", "/v1/nodes/n/drift?date=2026-03-01", None);
    assert_eq!(code, 404, "day 1 pruned: {body}");
    let report = drift(&d, "n", "?date=2026-03-04");
    assert_eq!(report["plugins"][0]["baseline_day"], "2026-03-03");

    // `vigild compact` refuses while the daemon runs, and shrinks the file once it stopped.
    let compact = || {
        std::process::Command::new(crate::common::VIGILD)
            .arg("compact")
            .arg("--config")
            .arg(dir.config_path())
            .output()
            .unwrap()
    };
    let out = compact();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another vigild is already running"));
    drop(d);
    let db = dir.path().join("state/vigil.redb");
    let before = std::fs::metadata(&db).unwrap().len();
    let out = compact();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("compacted from"));
    let after = std::fs::metadata(&db).unwrap().len();
    assert!(after <= before, "{after} > {before}");
    let d = Daemon::start_on(&dir).unwrap();
    let report = drift(&d, "n", "?date=2026-03-04");
    assert_eq!(
        report["plugins"][0]["baseline_day"], "2026-03-03",
        "data intact"
    );
}

/// What a scan could not see is recorded with the snapshot and shown in the drift report,
/// every note counted even past the ones kept, so an unread file never reads as unchanged.
#[test]
fn what_a_scan_could_not_see_is_in_the_drift_report() {
    let dir = TestDir::new();
    let root = dir.path().join("node");
    std::fs::create_dir_all(root.join("etc/big")).unwrap();
    std::fs::write(root.join("etc/small.conf"), "a = 1\n").unwrap();
    for i in 0..300 {
        std::fs::write(root.join(format!("etc/big/f{i:03}")), "x".repeat(200)).unwrap();
    }
    let mut c = format!(
        "policy_dir = \"no-policies\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nplugin_dir = \"{}\"\n\n\
         [[node]]\nname = \"n\"\nroot = \"{}\"\n\n",
        dir.plugin_dir().display(),
        root.display()
    );
    c += "[[plugin]]\nname = \"files\"\n[plugin.config]\npaths = [\"/etc\"]\nmax_hash_size = 100\n";
    dir.set_today("2026-05-01");
    dir.write_config(&c);
    let d = Daemon::start_on(&dir).unwrap();
    let rows = scan(&d, "all");
    let notes = rows[0]["plugins"][0]["notes"].as_array().unwrap().clone();
    assert_eq!(
        notes.len(),
        51,
        "50 in the log row and a count of the rest: {notes:?}"
    );
    assert_eq!(notes[50], "… and 250 more notes (300 in all)");
    assert!(notes[0]
        .as_str()
        .unwrap()
        .starts_with("not hashed: over max_hash_size: /etc/big/f"));

    dir.set_today("2026-05-02");
    std::fs::write(root.join("etc/big/f007"), "y".repeat(200)).unwrap();
    scan(&d, "all");
    let report = drift(&d, "n", "?date=2026-05-02");
    let files = &report["plugins"][0];
    let coverage: Vec<&str> = files["coverage_notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        coverage.contains(&"not hashed: over max_hash_size: /etc/big/f007"),
        "{coverage:?}"
    );
    assert_eq!(
        coverage.last(),
        Some(&"… and 100 more notes (300 in all)"),
        "{}",
        coverage.len()
    );
    // The CLI report says plainly that some things were not seen.
    let out = d.vigil(&["drift", "n", "--date", "2026-05-02"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("not seen"), "{text}");
    assert!(text.contains("/etc/big/f007"), "{text}");
}
