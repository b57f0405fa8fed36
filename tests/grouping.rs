//! Findings into tasks, done right (issue 13), end to end through the daemon over two
//! calendar days: one task per change set that happened together, per owner; tasks made when
//! the run ends, so one mail per task names every node; honest coverage; scan-failure tasks
//! that close themselves; assignees must be known.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::{Daemon, TestDir};

const DEBIAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nodes/debian");
const OLD: &str = "3.0.11-1~deb12u2";
const NEW: &str = "3.0.13-1~deb12u1";

/// A fleet: each node a copy of the Debian fixture, in group `web` (owner alice) or `db`
/// (owner bob), listed in the config in `order`.
struct Fleet {
    dir: TestDir,
    nodes: Vec<(String, PathBuf)>,
}

impl Fleet {
    fn new(names: &[&str]) -> Fleet {
        let dir = TestDir::new();
        let nodes = names
            .iter()
            .map(|n| (n.to_string(), dir.copy_tree(Path::new(DEBIAN), n)))
            .collect();
        Fleet { dir, nodes }
    }

    fn config(&self, extra: &str) -> String {
        let mut c = format!(
            "policy_dir = \"no-policies\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nplugin_dir = \"{}\"\n\
             slots = 1\nshutdown_grace = \"5s\"\n\n{extra}\n\
             [[user]]\nemail = \"alice@example.com\"\nuid = 65534\nrole = \"user\"\n\n\
             [[user]]\nemail = \"bob@example.com\"\nuid = 4244\nrole = \"user\"\n\n\
             [[group]]\nname = \"web\"\nowners = [\"alice@example.com\"]\n\n\
             [[group]]\nname = \"db\"\nowners = [\"bob@example.com\"]\n\n\
             [[plugin]]\nname = \"packages\"\n\n[[plugin]]\nname = \"accounts\"\n\n\
             [[plugin]]\nname = \"files\"\nignore_attributes = [\"mtime\", \"ctime\", \"inode\"]\n\
             [plugin.config]\npaths = [\"/etc/ssh\"]\ncontent = [\"/etc/ssh/sshd_config\"]\n\n",
            self.dir.plugin_dir().display()
        );
        for (name, root) in &self.nodes {
            let group = if name.starts_with("web") { "web" } else { "db" };
            c += &format!(
                "[[node]]\nname = \"{name}\"\ngroups = [\"{group}\"]\nroot = \"{}\"\n\n",
                root.display()
            );
        }
        c
    }

    fn start(&self, extra: &str) -> Daemon {
        self.dir.write_config(&self.config(extra));
        Daemon::start_on(&self.dir).expect("vigild starts")
    }

    fn root(&self, node: &str) -> &Path {
        &self.nodes.iter().find(|(n, _)| n == node).unwrap().1
    }
}

/// Sets the version of `package` in the node's dpkg status.
fn set_version(root: &Path, package: &str, version: &str) {
    let path = root.join("var/lib/dpkg/status");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    let mut in_stanza = false;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("Package: ") {
            in_stanza = p == package;
        }
        if in_stanza && line.starts_with("Version: ") {
            out.push_str(&format!("Version: {version}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(&path, out).unwrap();
}

/// The patch: three packages upgraded and one config file changed.
fn patch(root: &Path) {
    set_version(root, "openssl", NEW);
    set_version(root, "libssl3", NEW);
    set_version(root, "openssh-server", "1:9.2p1-2+deb12u3");
    let conf = root.join("etc/ssh/sshd_config");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("KexAlgorithms sntrup761x25519-sha512@openssh.com\n");
    std::fs::write(conf, text).unwrap();
}

fn add_root_account(root: &Path, name: &str) {
    let path = root.join("etc/passwd");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("{name}:x:0:0::/root:/bin/bash\n"));
    std::fs::write(path, text).unwrap();
}

fn drift_tasks(d: &Daemon) -> Vec<Value> {
    let (code, body) = d.http("GET", "/v1/tasks?status=all&kind=drift&limit=1000", None);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["tasks"].as_array().unwrap().clone()
}

fn tasks(d: &Daemon, query: &str) -> Vec<Value> {
    let (code, body) = d.http("GET", &format!("/v1/tasks?{query}&limit=1000"), None);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["tasks"].as_array().unwrap().clone()
}

/// The nodes of a task, sorted.
fn nodes_of(d: &Daemon, id: u64) -> Vec<String> {
    let (_, body) = d.http("GET", &format!("/v1/tasks/{id}"), None);
    let v: Value = serde_json::from_str(&body).unwrap();
    let mut n: Vec<String> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap().to_owned())
        .collect();
    n.sort();
    n
}

/// What a task is, independent of ids and times: title, assignee, nodes, events.
fn shape(d: &Daemon, t: &Value) -> (String, String, Vec<String>, u64) {
    (
        t["title"].as_str().unwrap().to_owned(),
        t["assignee"].as_str().unwrap_or("").to_owned(),
        nodes_of(d, t["id"].as_u64().unwrap()),
        t["events"].as_u64().unwrap(),
    )
}

/// The mails in the maildir: (to, subject, text).
fn mails(dir: &TestDir) -> Vec<(String, String, String)> {
    let new = dir.path().join("state/maildir/new");
    let Ok(entries) = std::fs::read_dir(new) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap();
        let header = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap_or("")
                .to_owned()
        };
        out.push((header("To"), header("Subject"), text.clone()));
    }
    out
}

const NODES: [&str; 10] = [
    "web01", "web02", "web03", "web04", "web05", "db01", "db02", "db03", "db04", "db05",
];

/// Night 2 of the issue: the patch everywhere but on db03, which got only its openssl
/// upgrade; web03 also got a new uid-0 account.
fn night_two(f: &Fleet) {
    for n in NODES {
        if n == "db03" {
            set_version(f.root(n), "openssl", NEW);
        } else {
            patch(f.root(n));
        }
    }
    add_root_account(f.root("web03"), "toor");
}

fn run_two_nights(f: &Fleet, extra: &str) -> Daemon {
    f.dir.set_today("2026-05-01");
    let d = f.start(extra);
    d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
    assert!(drift_tasks(&d).is_empty(), "a first scan opens nothing");
    night_two(f);
    f.dir.set_today("2026-05-02");
    d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
    d
}

#[test]
fn a_patch_with_an_extra_change_and_a_partial_node_groups_into_change_sets_per_owner() {
    let f = Fleet::new(&NODES);
    let d = run_two_nights(&f, "");
    let tasks = drift_tasks(&d);
    let mut shapes: Vec<_> = tasks.iter().map(|t| shape(&d, t)).collect();
    shapes.sort();
    let web: Vec<String> = NODES[..5].iter().map(|s| s.to_string()).collect();
    let db: Vec<String> = {
        let mut v: Vec<String> = NODES[5..].iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    let db_whole: Vec<String> = db.iter().filter(|n| *n != "db03").cloned().collect();
    let by = |assignee: &str, nodes: &Vec<String>| {
        shapes
            .iter()
            .filter(|s| s.1 == assignee && &s.2 == nodes)
            .map(|s| s.0.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(shapes.len(), 4, "{shapes:#?}");
    // web: the whole patch on its 5 nodes, and toor alone on web03.
    let web_patch = by("alice@example.com", &web);
    assert_eq!(web_patch.len(), 1, "{shapes:#?}");
    assert!(
        web_patch[0].starts_with(&format!("openssl {OLD} → {NEW} (+2 packages)")),
        "{web_patch:?}"
    );
    assert!(
        web_patch[0].contains("/etc/ssh/sshd_config modified"),
        "{web_patch:?}"
    );
    let toor = by("alice@example.com", &vec!["web03".to_owned()]);
    assert_eq!(toor, ["account toor added (uid 0)"], "{shapes:#?}");
    // db (bob's): openssl on all five, the rest of the patch on the four that got it whole.
    let db_openssl = by("bob@example.com", &db);
    assert_eq!(
        db_openssl,
        [format!("openssl {OLD} → {NEW}")],
        "{shapes:#?}"
    );
    let db_rest = by("bob@example.com", &db_whole);
    assert_eq!(db_rest.len(), 1, "{shapes:#?}");
    assert!(!db_rest[0].contains("openssl "), "{db_rest:?}");
    for s in &shapes {
        assert_eq!(s.3, s.2.len() as u64, "one event per node: {s:?}");
        assert!(
            !s.0.contains(&"0".repeat(12)) && !s.0.contains("blake3"),
            "no hashes: {s:?}"
        );
    }

    // One assignment mail per task, to its owner, written when the run ended: it names
    // every node of the task.
    d.wait_for("the outbox to drain", |d| {
        d.status_json()["outbox"]["pending"] == 0
    });
    let mails = mails(&f.dir);
    assert_eq!(
        mails.len(),
        4,
        "{:#?}",
        mails.iter().map(|m| &m.1).collect::<Vec<_>>()
    );
    for t in &tasks {
        let id = t["id"].as_u64().unwrap();
        let subject = format!("[vigil] Task #{id} assigned to you");
        let mine: Vec<_> = mails.iter().filter(|m| m.1.starts_with(&subject)).collect();
        assert_eq!(mine.len(), 1, "one mail for task {id}");
        assert_eq!(mine[0].0, t["assignee"].as_str().unwrap());
        let nodes = t["nodes"].as_u64().unwrap();
        assert!(
            mine[0].2.contains(&format!("Nodes:       {nodes}")),
            "{}",
            mine[0].2
        );
    }

    // The Scan log counts, filled in when the run ended, add up to the run's.
    let (_, body) = d.http("GET", "/v1/logs/scans?limit=10", None);
    let rows: Value = serde_json::from_str(&body).unwrap();
    let created: u64 = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_tasks_created"].as_u64().unwrap())
        .sum();
    assert_eq!(created, 4);

    // Close All by filter takes exactly the tasks whose changes mention openssl: the toor
    // alert and the rest of the db patch stay open.
    let out = d.vigil(&["tasks", "close-all", "--filter", "openssl", "--yes"]);
    assert!(out.status.success(), "{out:?}");
    let open: BTreeSet<String> = drift_tasks(&d)
        .iter()
        .filter(|t| t["status"] == "open")
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect();
    let want: BTreeSet<String> = [toor[0].clone(), db_rest[0].clone()].into();
    assert_eq!(open, want);
}

/// The same night with the nodes scanned in another order gives the same tasks.
#[test]
fn the_grouping_does_not_depend_on_the_scan_order() {
    let a = Fleet::new(&NODES);
    let da = run_two_nights(&a, "");
    let mut reversed = NODES;
    reversed.reverse();
    reversed.swap(2, 7);
    let b = Fleet::new(&reversed);
    let db = run_two_nights(&b, "");
    let shapes = |d: &Daemon| {
        let mut v: Vec<_> = drift_tasks(d).iter().map(|t| shape(d, t)).collect();
        v.sort();
        v
    };
    assert_eq!(shapes(&da), shapes(&db));
}

/// With `group_across_owners`, one task for the whole organisation, assigned to the owner
/// of the group with the most affected nodes; the same patch for two owners otherwise is a
/// task each, naming the other.
#[test]
fn one_task_across_owners_when_asked_and_siblings_otherwise() {
    let names = ["web01", "web02", "db01", "db02", "db03"];
    for across in [true, false] {
        let f = Fleet::new(&names);
        f.dir.set_today("2026-05-01");
        let extra = if across {
            "[tasks]\ngroup_across_owners = true\n"
        } else {
            ""
        };
        let d = f.start(extra);
        d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
        for n in names {
            patch(f.root(n));
        }
        f.dir.set_today("2026-05-02");
        d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
        let tasks = drift_tasks(&d);
        if across {
            assert_eq!(tasks.len(), 1, "{tasks:#?}");
            assert_eq!(tasks[0]["nodes"], 5);
            assert_eq!(
                tasks[0]["assignee"], "bob@example.com",
                "db has the most nodes"
            );
        } else {
            assert_eq!(tasks.len(), 2, "{tasks:#?}");
            for t in &tasks {
                let other = tasks.iter().find(|o| o["id"] != t["id"]).unwrap();
                assert_eq!(t["siblings"], json!([other["id"]]), "{t}");
                assert!(
                    t["description"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("also on #{}", other["id"])),
                    "{t}"
                );
            }
        }
    }
}

/// A node root that is missing or empty, and a node without its dpkg status, fail their
/// scans with a clear reason; no drift task claims that everything was removed. The
/// config check warns about the missing root and still accepts the config.
#[test]
fn a_missing_or_empty_root_and_a_missing_dpkg_status_fail_honestly() {
    let f = Fleet::new(&["web01", "web02", "web03"]);
    f.dir.set_today("2026-05-01");
    let d = f.start("");
    d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
    // Overnight: web01's root vanishes, web02's is an empty mountpoint, web03 loses dpkg.
    std::fs::remove_dir_all(f.root("web01")).unwrap();
    std::fs::remove_dir_all(f.root("web02")).unwrap();
    std::fs::create_dir(f.root("web02")).unwrap();
    std::fs::remove_file(f.root("web03").join("var/lib/dpkg/status")).unwrap();
    f.dir.set_today("2026-05-02");
    let rows = d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
    assert!(
        drift_tasks(&d).is_empty(),
        "no drift from what was not there: {:#?}",
        drift_tasks(&d)
    );
    let message = |node: &str| {
        let r = rows.iter().find(|r| r["target"] == node).unwrap();
        assert_eq!(r["status"], "Failed", "{r}");
        r["messages"].to_string()
    };
    assert!(
        message("web01").contains("does not exist"),
        "{}",
        message("web01")
    );
    assert!(
        message("web02").contains("is empty"),
        "{}",
        message("web02")
    );
    assert!(
        message("web03").contains("dpkg status"),
        "{}",
        message("web03")
    );
    let failures = tasks(&d, "kind=scan-failure");
    assert_eq!(failures.len(), 3, "{failures:#?}");
    assert!(failures.iter().any(|t| t["title"]
        .as_str()
        .unwrap()
        .starts_with("Scan failure: node root:")));

    let out = std::process::Command::new(crate::common::VIGILD)
        .arg("--check-config")
        .arg(f.dir.config_path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a missing root is a warning: {err}");
    assert!(err.contains("warning: ") && err.contains("web01"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

/// A scan-failure task closes itself once a later scan of each of its nodes with that
/// plugin succeeds, and its assignee is told.
#[test]
fn a_scan_failure_task_closes_itself_after_a_clean_scan() {
    let f = Fleet::new(&["web01", "web02"]);
    f.dir.set_today("2026-05-01");
    let d = f.start("");
    let status = |n: &str| f.root(n).join("var/lib/dpkg/status");
    let saved: Vec<String> = ["web01", "web02"]
        .iter()
        .map(|n| std::fs::read_to_string(status(n)).unwrap())
        .collect();
    for n in ["web01", "web02"] {
        std::fs::remove_file(status(n)).unwrap();
    }
    d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
    let failures = tasks(&d, "kind=scan-failure");
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0]["nodes"], 2);
    let id = failures[0]["id"].as_u64().unwrap();
    // web01 is fixed: the task stays open (web02 still fails).
    std::fs::write(status("web01"), &saved[0]).unwrap();
    d.queue_and_wait(json!({"kind": "scan", "scope": "node:web01"}));
    assert_eq!(tasks(&d, "kind=scan-failure")[0]["status"], "open");
    std::fs::write(status("web02"), &saved[1]).unwrap();
    let rows = d.queue_and_wait(json!({"kind": "scan", "scope": "node:web02"}));
    let t = &tasks(&d, "kind=scan-failure&status=all")[0];
    assert_eq!(t["status"], "closed", "{t}");
    assert_eq!(t["closed_by"], rows[0]["id"], "{t}");
    d.wait_for("the outbox to drain", |d| {
        d.status_json()["outbox"]["pending"] == 0
    });
    assert!(
        mails(&f.dir)
            .iter()
            .any(|m| m.1.contains(&format!("Task #{id} closed by")) && m.0 == "alice@example.com"),
        "{:#?}",
        mails(&f.dir)
    );
}

/// An assignee must be someone vigil knows: a typo must not mail a stranger.
#[test]
fn assigning_to_an_unknown_address_is_refused() {
    let f = Fleet::new(&["web01"]);
    f.dir.set_today("2026-05-01");
    let d = f.start("");
    std::fs::remove_file(f.root("web01").join("var/lib/dpkg/status")).unwrap();
    d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
    let id = tasks(&d, "kind=scan-failure")[0]["id"].as_u64().unwrap();
    let (code, body) = d.http(
        "POST",
        &format!("/v1/tasks/{id}/assign"),
        Some(r#"{"assignee": "alcie@example.com"}"#),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("add a [[user]]"), "{body}");
    let (code, body) = d.http(
        "POST",
        &format!("/v1/tasks/{id}/assign"),
        Some(r#"{"assignee": "bob@example.com"}"#),
    );
    assert_eq!(code, 200, "a configured user: {body}");
}
