//! User tasks (issue 7), end to end through the daemon: fixture nodes receive changes,
//! scans turn them into grouped tasks with events, assigned to group owners, mailed through a
//! real SMTP server; filters, Close All, rights, export, recurrence.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::{http_as, is_root, Daemon, TestDir};
use crate::email::{free_port, parse, Sink};

mod events;
mod rights;
mod webhooks;

const DEBIAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nodes/debian");
/// The openssl line of the fixture's dpkg status, before and after the patch.
const OLD_SSL: &str = "Version: 3.0.11-1~deb12u2";
const NEW_SSL: &str = "Version: 3.0.13-1~deb12u1";

struct Fleet {
    dir: TestDir,
    roots: Vec<(String, PathBuf)>,
}

/// `web-0..web-{web}` in group `web` (owner alice, auto-assign), `db-0..` in group `db`
/// (owner bob, no auto-assign); roots are copies of the Debian fixture.
fn fleet(web: usize, db: usize) -> Fleet {
    let dir = TestDir::new();
    let mut roots = Vec::new();
    for i in 0..web {
        roots.push((
            format!("web-{i}"),
            dir.copy_tree(Path::new(DEBIAN), &format!("web-{i}")),
        ));
    }
    for i in 0..db {
        roots.push((
            format!("db-{i}"),
            dir.copy_tree(Path::new(DEBIAN), &format!("db-{i}")),
        ));
    }
    Fleet { dir, roots }
}

impl Fleet {
    fn config(&self, email: &str) -> String {
        let mut c = format!(
            "policy_dir = \"no-policies\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nplugin_dir = \"{}\"\nslots = 4\n\n{email}\n\
             [[user]]\nemail = \"alice@example.com\"\nuid = 65534\nrole = \"user\"\n\n\
             [[user]]\nemail = \"bob@example.com\"\nuid = 4244\nrole = \"user\"\n\n\
             [[group]]\nname = \"web\"\nowners = [\"alice@example.com\"]\n\n\
             [[group]]\nname = \"db\"\nowners = [\"bob@example.com\"]\nauto_assign = false\n\n\
             [[plugin]]\nname = \"packages\"\n\n[[plugin]]\nname = \"accounts\"\n\n",
            self.dir.plugin_dir().display()
        );
        for (name, root) in &self.roots {
            let group = if name.starts_with("web") { "web" } else { "db" };
            c += &format!(
                "[[node]]\nname = \"{name}\"\ngroups = [\"{group}\"]\nroot = \"{}\"\n\n",
                root.display()
            );
        }
        c
    }

    fn start(&self, email: &str) -> Daemon {
        self.dir.write_config(&self.config(email));
        let d = Daemon::start_on(&self.dir).unwrap();
        // Other uids (the role tests) reach the socket as its group normally would allow.
        std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
        d
    }

    /// The nodes whose names start with `prefix` get the openssl patch.
    fn patch_openssl(&self, prefix: &str) {
        self.edit_all(prefix, OLD_SSL, NEW_SSL);
    }

    fn edit_all(&self, prefix: &str, from: &str, to: &str) {
        for (name, root) in &self.roots {
            if name.starts_with(prefix) {
                edit(&root.join("var/lib/dpkg/status"), from, to);
            }
        }
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

fn smtp(port: u16) -> String {
    format!(
        "[email]\nfrom = \"vigil@example.com\"\nmax_backoff = \"1s\"\n\
         [email.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"5s\"\n"
    )
}

/// Scans everything and waits for the scan log to hold the new rows.
fn scan_all(d: &Daemon) -> Vec<Value> {
    scan(d, "all")
}

/// Scans `scope` and waits for the scan log to hold the new rows.
fn scan(d: &Daemon, scope: &str) -> Vec<Value> {
    d.queue_and_wait(json!({"kind": "scan", "scope": scope}))
}

/// The sink holds exactly one mail: task `id`'s assignment to `to`, naming the command
/// that shows the task.
fn assert_one_assignment_mail(sink: &Sink, id: u64, to: &str) {
    let mails = sink.messages();
    assert_eq!(
        mails.len(),
        1,
        "exactly one mail for one assignment: {mails:?}"
    );
    let mail = parse(&mails[0]);
    assert_eq!(mail["to"], to);
    let subject = mail["subject"].as_str().unwrap();
    // The subject is the task's title, which says what changed (no "Drift:" any more).
    assert!(
        subject.starts_with(&format!("[vigil] Task #{id} assigned to you: ")),
        "{mail}"
    );
    assert!(!subject.contains("Drift:"), "{mail}");
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains(&format!("vigil tasks show {id}")), "{mail}");
}

fn tasks(d: &Daemon, query: &str) -> Value {
    let (code, body) = d.http("GET", &format!("/v1/tasks{query}"), None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn ids(list: &Value) -> Vec<u64> {
    let mut v: Vec<u64> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn one_patch_on_100_nodes_is_one_task_with_100_events_and_one_mail() {
    let f = fleet(100, 0);
    let port = free_port();
    let sink = Sink::start(port, &f.dir.path().join("mail"));
    f.dir.set_today("2026-04-01");
    let d = f.start(&smtp(port));
    scan_all(&d);
    assert_eq!(
        tasks(&d, "?status=all")["total"],
        0,
        "a first scan opens nothing"
    );

    f.patch_openssl("web");
    f.dir.set_today("2026-04-02");
    let rows = scan_all(&d);
    let list = tasks(&d, "");
    assert_eq!(list["total"], 1, "{list}");
    let task = &list["tasks"][0];
    assert_eq!(task["kind"], "drift");
    assert_eq!(task["events"], 100);
    assert_eq!(task["nodes"], 100);
    assert_eq!(task["assignee"], "alice@example.com");
    assert!(
        task["title"]
            .as_str()
            .unwrap()
            .contains("openssl 3.0.11-1~deb12u2 → 3.0.13-1~deb12u1"),
        "{task}"
    );
    let created: u64 = rows
        .iter()
        .map(|r| r["user_tasks_created"].as_u64().unwrap())
        .sum();
    let updated: u64 = rows
        .iter()
        .map(|r| r["user_tasks_updated"].as_u64().unwrap())
        .sum();
    assert_eq!((created, updated), (1, 99));

    d.wait_for("the assignment mail", |_| !sink.messages().is_empty());
    d.wait_for("the outbox to drain", |d| {
        d.status_json()["outbox"]["pending"] == 0
    });
    let id = task["id"].as_u64().unwrap();
    assert_one_assignment_mail(&sink, id, "alice@example.com");

    // A second night without change adds nothing; a same-day rescan adds nothing either.
    f.dir.set_today("2026-04-03");
    scan_all(&d);
    scan_all(&d);
    assert_eq!(tasks(&d, "")["tasks"][0]["events"], 100);

    // The report shows each node's change, previous → current.
    let (_, body) = d.http("GET", &format!("/v1/tasks/{id}/report"), None);
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["nodes"].as_array().unwrap().len(), 100);
    let packages = report["nodes"][0]["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["plugin"] == "packages")
        .unwrap();
    let change = packages["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "openssl")
        .unwrap();
    assert_eq!(change["key"], "openssl");
    assert_eq!(change["attributes"][0]["previous"], "3.0.11-1~deb12u2");
    assert_eq!(change["attributes"][0]["current"], "3.0.13-1~deb12u1");
    assert_eq!(d.status_json()["open_tasks"], 1);
}

#[test]
fn different_changes_filters_close_all_rights_export_and_recurrence() {
    let f = fleet(3, 2);
    f.dir.set_today("2026-04-01");
    let d = f.start("");
    scan_all(&d);
    // web nodes: openssl patched; db nodes: a new user.
    f.patch_openssl("web");
    for (name, root) in &f.roots {
        if name.starts_with("db") {
            let mut p = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
            p += "intruder:x:0:0::/root:/bin/bash\n";
            std::fs::write(root.join("etc/passwd"), p).unwrap();
        }
    }
    f.dir.set_today("2026-04-02");
    scan_all(&d);
    let all = tasks(&d, "");
    assert_eq!(
        all["total"], 2,
        "different change sets are different tasks: {all}"
    );
    let web = all["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["assignee"] == "alice@example.com")
        .unwrap()
        .clone();
    let db = all["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["assignee"].is_null())
        .unwrap()
        .clone();
    assert_eq!(
        (web["nodes"].as_u64(), db["nodes"].as_u64()),
        (Some(3), Some(2))
    );
    let (web_id, db_id) = (web["id"].as_u64().unwrap(), db["id"].as_u64().unwrap());

    // Filters.
    assert_eq!(ids(&tasks(&d, "?assignee=none")), [db_id]);
    assert_eq!(ids(&tasks(&d, "?assignee=alice@example.com")), [web_id]);
    assert_eq!(ids(&tasks(&d, "?node=db-1")), [db_id]);
    assert_eq!(
        ids(&tasks(&d, "?q=OPENSSL")),
        [web_id],
        "case-insensitive text search"
    );
    assert_eq!(ids(&tasks(&d, "?q=intruder")), [db_id]);
    assert_eq!(ids(&tasks(&d, "?kind=drift")).len(), 2);
    assert_eq!(tasks(&d, "?kind=scan-failure")["total"], 0);
    assert_eq!(tasks(&d, "?status=closed")["total"], 0);
    let (code, _) = d.http("GET", "/v1/tasks?status=maybe", None);
    assert_eq!(code, 400);

    // Export, JSON and CSV.
    let (code, body) = d.http("GET", "/v1/tasks/export?format=json&status=all", None);
    assert_eq!(code, 200);
    let exported: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(exported.as_array().unwrap().len(), 2);
    // Streamed a batch at a time, never built whole: the reply is chunked.
    {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
        s.write_all(
            b"GET /v1/tasks/export?format=json&status=all HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
    }
    assert_eq!(
        exported[0]["event_list"].as_array().unwrap().len() as u64,
        exported[0]["events"].as_u64().unwrap()
    );
    let (code, body) = d.http("GET", "/v1/tasks/export?format=csv&status=all", None);
    assert_eq!(code, 200);
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(&header[0], "task_id");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 5, "one row per event");
    let description = rows.iter().find(|r| r[0] == db_id.to_string()).unwrap()[4].to_owned();
    assert_eq!(
        description,
        db["description"].as_str().unwrap(),
        "multi-line text round-trips"
    );

    // Close All by filter closes exactly the matching tasks.
    let (code, body) = d.http("POST", "/v1/tasks/close", Some(r#"{"q": "openssl"}"#));
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["ids"],
        json!([web_id])
    );
    assert_eq!(ids(&tasks(&d, "")), [db_id]);

    // Recurrence: revert, then patch again: the closed task is not reopened; a new one names it.
    f.edit_all("web", NEW_SSL, OLD_SSL);
    f.dir.set_today("2026-04-03");
    scan_all(&d);
    f.patch_openssl("web");
    f.dir.set_today("2026-04-04");
    scan_all(&d);
    let again = tasks(&d, "?q=openssl%203.0.11-1~deb12u2%20%E2%86%92");
    let recurring = again["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["recurrence_of"] == web_id);
    let recurring = recurring.unwrap_or_else(|| panic!("no recurrence of #{web_id} in {again}"));
    assert!(recurring["description"]
        .as_str()
        .unwrap()
        .contains(&format!("task #{web_id}")));
    assert_eq!(
        d.status_json()["open_tasks"].as_u64().unwrap(),
        tasks(&d, "")["total"].as_u64().unwrap()
    );
}

#[test]
fn scan_failures_on_many_nodes_group_into_one_task() {
    let f = fleet(0, 0);
    // A missing root fails the scan before any plugin runs (issue 13 §6): one failure on
    // every node, one task.
    let mut c = f.config("") + "[[plugin]]\nname = \"files\"\n\n";
    for i in 0..4 {
        c += &format!(
            "[[node]]\nname = \"gone-{i}\"\nroot = \"{}/missing-{i}\"\n\n",
            f.dir.path().display()
        );
    }
    f.dir.write_config(&c);
    let d = Daemon::start_on(&f.dir).unwrap();
    let rows = scan_all(&d);
    assert!(rows.iter().all(|r| r["status"] == "Failed"));
    let list = tasks(&d, "?kind=scan-failure");
    assert_eq!(list["total"], 1, "{list}");
    let t = &list["tasks"][0];
    assert_eq!(t["nodes"], 4, "{t}");
    assert!(
        t["title"]
            .as_str()
            .unwrap()
            .starts_with("Scan failure: node root: "),
        "{t}"
    );

    // The report gives each node's own failure message, and no drift: the messages carry
    // the node's own path.
    let files = t;
    let id = files["id"].as_u64().unwrap();
    let (code, body) = d.http("GET", &format!("/v1/tasks/{id}/report"), None);
    assert_eq!(code, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["task"]["id"], id);
    assert_eq!(report["task"]["kind"], "scan-failure");
    let nodes = report["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(names, ["gone-0", "gone-1", "gone-2", "gone-3"], "{report}");
    let sources: BTreeSet<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    for (i, n) in nodes.iter().enumerate() {
        let message = n["message"].as_str().unwrap_or_else(|| panic!("{n}"));
        assert!(
            message.contains(&format!("missing-{i}")),
            "gone-{i} reports its own message: {n}"
        );
        assert!(n["drift"].as_array().unwrap().is_empty(), "{n}");
        assert!(sources.contains(n["source"].as_str().unwrap()), "{n}");
    }
    let out = d.vigil(&["tasks", "changes", &id.to_string()]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for i in 0..4 {
        assert!(text.contains(&format!("missing-{i}")), "{text}");
    }
}

fn add_intruder(root: &Path) {
    let mut p = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    p += "intruder:x:0:0::/root:/bin/bash\n";
    std::fs::write(root.join("etc/passwd"), p).unwrap();
}

/// Replaces `from` with `to` in the dpkg status of `node`.
fn edit_dpkg(f: &Fleet, node: &str, from: &str, to: &str) {
    edit(&root_of(f, node).join("var/lib/dpkg/status"), from, to);
}

fn root_of<'a>(f: &'a Fleet, node: &str) -> &'a Path {
    &f.roots.iter().find(|(n, _)| n == node).unwrap().1
}

/// A second scan on the same day after a further change replaces the day's snapshot. The
/// further change is a task of its own; the first task's report shows its own changes
/// alone. Once a later scan that day no longer finds the first task's changes, its report
/// says so. (Before wave 2 a node's whole change set was one task, so the rescan made a
/// second task for patch + intruder and the first task's report had the note at once.)
#[test]
fn a_report_says_when_the_days_drift_was_replaced_by_a_later_scan() {
    let f = fleet(1, 0);
    f.dir.set_today("2026-04-01");
    let d = f.start("");
    scan_all(&d);
    f.patch_openssl("web");
    f.dir.set_today("2026-04-02");
    scan_all(&d);
    let first = ids(&tasks(&d, "?kind=drift"));
    assert_eq!(first.len(), 1);
    let report = |id: u64| -> Value {
        let (code, body) = d.http("GET", &format!("/v1/tasks/{id}/report"), None);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    assert!(report(first[0])["nodes"][0].get("note").is_none());
    // Later that day another change: the rescan joins the patch task (no second event the
    // same day) and the intruder is a task of its own.
    add_intruder(root_of(&f, "web-0"));
    scan_all(&d);
    let both = ids(&tasks(&d, "?kind=drift"));
    assert_eq!(both.len(), 2, "{both:?}");
    let r = report(first[0]);
    assert!(r["nodes"][0].get("note").is_none(), "{r}");
    assert!(
        !r.to_string().contains("intruder"),
        "the patch task shows the patch alone: {r}"
    );
    let second = *both.iter().find(|id| **id != first[0]).unwrap();
    let r2 = report(second);
    assert!(r2.to_string().contains("intruder"), "{r2}");
    assert!(r2["nodes"][0].get("note").is_none());
    // The patch is rolled back and the node scanned again: the patch task's changes are no
    // longer in that day's drift.
    edit_dpkg(&f, "web-0", NEW_SSL, OLD_SSL);
    scan_all(&d);
    let note = report(first[0])["nodes"][0]["note"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(note.contains("no longer in the drift stored"), "{note}");
    let out = d.vigil(&["tasks", "changes", &first[0].to_string()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no longer in the drift stored"));
}
