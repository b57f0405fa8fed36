//! User tasks (issue 7): who may do what (Site Users act only on their own tasks, refusals
//! change nothing), assignment mail through the API, list order and paging, and counters
//! that stay exact while API actions race scans.

use super::*;

const ALICE: u32 = 65534;
const BOB: u32 = 4244;
/// A uid that is not in the config.
const STRANGER: u32 = 4245;

/// The ids of a list, in the order the daemon gave them.
fn order(list: &Value) -> Vec<u64> {
    list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect()
}

/// Every task as the daemon lists it (each change raises `revision`), the undelivered mails,
/// and the mails the sink received: what a refused request must leave as it was.
#[derive(Debug, PartialEq)]
struct World {
    tasks: Value,
    outbox: Value,
    mails: usize,
}

fn world(d: &Daemon, sink: &Sink) -> World {
    let (code, outbox) = d.http("GET", "/v1/outbox", None);
    assert_eq!(code, 200, "{outbox}");
    World {
        tasks: tasks(d, "?status=all&limit=10000")["tasks"].clone(),
        outbox: serde_json::from_str(&outbox).unwrap(),
        mails: sink.messages().len(),
    }
}

/// Recipients of the mails the sink received.
fn recipients(sink: &Sink) -> Vec<String> {
    sink.messages()
        .iter()
        .map(|m| parse(m)["to"].as_str().unwrap().to_owned())
        .collect()
}

/// Issue 7 rights: admins assign, close and reopen any task; a Site User closes tasks
/// assigned to them and takes unassigned ones for themselves; everything else is 403 and
/// changes nothing: no task, no outbox row, no mail.
#[test]
fn site_users_act_only_on_their_own_tasks_and_refusals_change_nothing() {
    if !is_root() {
        eprintln!(
            "SKIPPED site_users_act_only_on_their_own_tasks_and_refusals_change_nothing: \
             needs root to call the daemon as other uids"
        );
        return;
    }
    let f = fleet(2, 2);
    let port = free_port();
    let sink = Sink::start(port, &f.dir.path().join("mail"));
    f.dir.set_today("2026-04-01");
    let d = f.start(&smtp(port));
    scan_all(&d);
    f.patch_openssl("web");
    add_intruder(root_of(&f, "db-0"));
    add_intruder(root_of(&f, "db-1"));
    f.dir.set_today("2026-04-02");
    scan_all(&d);
    let all = tasks(&d, "");
    assert_eq!(all["total"], 2, "{all}");
    let find = |assignee: Value| -> u64 {
        all["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["assignee"] == assignee)
            .unwrap_or_else(|| panic!("no task assigned to {assignee} in {all}"))["id"]
            .as_u64()
            .unwrap()
    };
    let (web, db) = (find(json!("alice@example.com")), find(Value::Null));
    let delivered = |d: &Daemon| d.status_json()["outbox"]["pending"] == 0;
    d.wait_for("the auto-assignment mail", |d| {
        delivered(d) && sink.messages().len() == 1
    });

    let refused = |uid: u32, path: String, body: Option<&str>, why: &str| {
        let before = world(&d, &sink);
        let (code, text) = http_as(uid, &d.socket, "POST", &path, body);
        assert_eq!(code, 403, "{why}: {text}");
        let e: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(e["error"]["code"], "forbidden", "{why}: {text}");
        assert_eq!(
            world(&d, &sink),
            before,
            "{why}: the refusal changed something"
        );
    };
    let to_bob = Some(r#"{"assignee":"bob@example.com"}"#);
    let to_alice = Some(r#"{"assignee":"alice@example.com"}"#);
    refused(
        ALICE,
        format!("/v1/tasks/{db}/assign"),
        to_bob,
        "alice assigns an unassigned task to bob",
    );
    refused(
        ALICE,
        format!("/v1/tasks/{web}/assign"),
        to_bob,
        "alice hands her own task to bob",
    );
    refused(
        BOB,
        format!("/v1/tasks/{web}/assign"),
        Some(r#"{"assignee":"bob@example.com"}"#),
        "bob takes alice's task",
    );
    refused(
        BOB,
        format!("/v1/tasks/{web}/close"),
        None,
        "bob closes alice's task",
    );
    refused(
        BOB,
        format!("/v1/tasks/{db}/close"),
        None,
        "bob closes an unassigned task",
    );
    refused(
        STRANGER,
        format!("/v1/tasks/{db}/assign"),
        Some(r#"{"assignee":"bob@example.com"}"#),
        "a uid that is not a vigil user assigns",
    );
    refused(
        STRANGER,
        format!("/v1/tasks/{web}/close"),
        None,
        "a uid that is not a vigil user closes",
    );
    // Close All by bob, who has no task: closes nothing.
    let before = world(&d, &sink);
    let (code, body) = http_as(BOB, &d.socket, "POST", "/v1/tasks/close", Some("{}"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["count"], 0);
    assert_eq!(world(&d, &sink), before);

    // bob takes the unassigned task for himself: assigned, and mailed once.
    let (code, body) = http_as(
        BOB,
        &d.socket,
        "POST",
        &format!("/v1/tasks/{db}/assign"),
        to_bob,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["assignee"],
        "bob@example.com"
    );
    d.wait_for("bob's mail", |d| delivered(d) && sink.messages().len() == 2);
    let mut to = recipients(&sink);
    to.sort();
    assert_eq!(to, ["alice@example.com", "bob@example.com"]);
    // Now it is bob's: alice may not take it.
    refused(
        ALICE,
        format!("/v1/tasks/{db}/assign"),
        to_alice,
        "alice takes bob's task",
    );

    // alice's Close All closes only what is hers.
    let (code, body) = http_as(ALICE, &d.socket, "POST", "/v1/tasks/close", Some("{}"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["ids"],
        json!([web])
    );
    let closed = &tasks(&d, "?status=closed")["tasks"][0];
    assert_eq!(closed["closed_by"], "alice@example.com");
    assert_eq!(ids(&tasks(&d, "")), [db], "bob's task stays open");

    // Reopening is for admins only, even for the task's own assignee.
    refused(
        ALICE,
        format!("/v1/tasks/{web}/reopen"),
        None,
        "alice reopens her own task",
    );
    refused(
        BOB,
        format!("/v1/tasks/{web}/reopen"),
        None,
        "bob reopens alice's task",
    );
    let (code, body) = d.http("POST", &format!("/v1/tasks/{web}/reopen"), None);
    assert_eq!(code, 200, "{body}");
    let reopened: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reopened["status"], "open");
    assert!(reopened["closed_by"].is_null(), "{reopened}");

    // alice closes her task; bob closes his.
    let (code, body) = http_as(
        ALICE,
        &d.socket,
        "POST",
        &format!("/v1/tasks/{web}/close"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_as(
        BOB,
        &d.socket,
        "POST",
        &format!("/v1/tasks/{db}/close"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(tasks(&d, "")["total"], 0);
    assert_eq!(d.status_json()["open_tasks"], 0);
    assert_eq!(sink.messages().len(), 2, "closing mails nobody");
}

/// Issue 7: an assignment through the API mails the assignee once, and a restart does not
/// send it again.
#[test]
fn an_api_assignment_mails_the_assignee_exactly_once() {
    let f = fleet(0, 2);
    let port = free_port();
    let sink = Sink::start(port, &f.dir.path().join("mail"));
    f.dir.set_today("2026-04-01");
    let mut d = f.start(&smtp(port));
    scan_all(&d);
    add_intruder(root_of(&f, "db-0"));
    add_intruder(root_of(&f, "db-1"));
    f.dir.set_today("2026-04-02");
    scan_all(&d);
    let list = tasks(&d, "");
    assert_eq!(list["total"], 1, "{list}");
    let id = list["tasks"][0]["id"].as_u64().unwrap();
    assert!(
        list["tasks"][0]["assignee"].is_null(),
        "db does not auto-assign"
    );
    assert_eq!(d.status_json()["outbox"]["pending"], 0);
    assert!(sink.messages().is_empty());

    let (code, body) = d.http(
        "POST",
        &format!("/v1/tasks/{id}/assign"),
        Some(r#"{"assignee":"bob@example.com"}"#),
    );
    assert_eq!(code, 200, "{body}");
    d.wait_for("the assignment mail", |d| {
        d.status_json()["outbox"]["pending"] == 0 && !sink.messages().is_empty()
    });
    assert_one_assignment_mail(&sink, id, "bob@example.com");

    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_exit().success());
    let d = f.start(&smtp(port));
    assert_eq!(d.status_json()["outbox"]["pending"], 0);
    let (code, outbox) = d.http("GET", "/v1/outbox", None);
    assert_eq!((code, outbox.as_str()), (200, "[]"));
    assert_eq!(
        sink.messages().len(),
        1,
        "a delivered mail is not sent again"
    );
    assert_eq!(tasks(&d, "")["tasks"][0]["assignee"], "bob@example.com");
}

/// `GET /v1/tasks` pages with limit and offset over tasks ordered by their last event,
/// newest first; `GET /v1/status` counts the caller's open tasks.
#[test]
fn lists_page_newest_first_and_status_counts_the_callers_tasks() {
    let f = fleet(4, 0);
    // The daemon's own uid is an admin; give it an email so that it has tasks of its own.
    let me = nix::unistd::geteuid().as_raw();
    f.dir.write_config(&format!(
        "{}[[user]]\nemail = \"ops@example.com\"\nuid = {me}\nrole = \"admin\"\n",
        f.config("")
    ));
    f.dir.set_today("2026-04-01");
    let d = Daemon::start_on(&f.dir).unwrap();
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    scan_all(&d);

    // Day 2: three different changes on three nodes, scanned one after the other.
    f.dir.set_today("2026-04-02");
    edit_dpkg(&f, "web-0", OLD_SSL, NEW_SSL);
    scan(&d, "node:web-0");
    add_intruder(root_of(&f, "web-1"));
    scan(&d, "node:web-1");
    edit_dpkg(&f, "web-2", "Version: 5.2.15-2+b2", "Version: 5.2.21-2");
    scan(&d, "node:web-2");
    let created = order(&tasks(&d, ""));
    assert_eq!(created.len(), 3, "{created:?}");
    let (a, b, c) = (created[2], created[1], created[0]);
    assert!(a < b && b < c, "newest first: {created:?}");
    // Day 3: web-3 makes web-0's change: a new event on the oldest task, now the newest.
    f.dir.set_today("2026-04-03");
    edit_dpkg(&f, "web-3", OLD_SSL, NEW_SSL);
    scan(&d, "node:web-3");
    let list = tasks(&d, "");
    assert_eq!(order(&list), [a, c, b], "{list}");
    assert_eq!(list["tasks"][0]["events"], 2);
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t["last_event_at"].as_str().unwrap()).unwrap()
        })
        .collect();
    assert!(times[0] > times[1] && times[1] > times[2], "{times:?}");

    for offset in 0..5 {
        let page = tasks(&d, &format!("?limit=1&offset={offset}"));
        assert_eq!(page["total"], 3, "offset {offset}: {page}");
        let want: Vec<u64> = [a, c, b].into_iter().skip(offset).take(1).collect();
        assert_eq!(order(&page), want, "offset {offset}");
    }
    assert_eq!(order(&tasks(&d, "?limit=2&offset=1")), [c, b]);
    assert_eq!(order(&tasks(&d, "?offset=2")), [b]);
    let none = tasks(&d, "?limit=0");
    assert_eq!((order(&none).len(), none["total"].as_u64()), (0, Some(3)));
    let (code, _) = d.http("GET", "/v1/tasks?limit=-1", None);
    assert_eq!(code, 400);

    // Status: every task is alice's (auto-assigned); ops has none until given one.
    let counts = |s: Value| (s["open_tasks"].as_u64(), s["my_open_tasks"].as_u64());
    assert_eq!(counts(d.status_json()), (Some(3), Some(0)));
    let (code, body) = d.http(
        "POST",
        &format!("/v1/tasks/{a}/assign"),
        Some(r#"{"assignee":"ops@example.com"}"#),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(counts(d.status_json()), (Some(3), Some(1)));
    let (code, _) = d.http("POST", &format!("/v1/tasks/{a}/close"), None);
    assert_eq!(code, 200);
    assert_eq!(counts(d.status_json()), (Some(2), Some(0)));
    let (code, _) = d.http("POST", &format!("/v1/tasks/{a}/reopen"), None);
    assert_eq!(code, 200);
    assert_eq!(counts(d.status_json()), (Some(3), Some(1)));

    if is_root() {
        let status_as = |uid: u32| -> Value {
            let (code, body) = http_as(uid, &d.socket, "GET", "/v1/status", None);
            assert_eq!(code, 200, "{body}");
            serde_json::from_str(&body).unwrap()
        };
        assert_eq!(counts(status_as(ALICE)), (Some(3), Some(2)));
        assert_eq!(counts(status_as(BOB)), (Some(3), Some(0)));
        // A uid that is not configured is told so, and nothing about the tasks (issue 16).
        let stranger = status_as(STRANGER);
        assert!(stranger["open_tasks"].is_null(), "{stranger}");
        assert!(stranger["my_open_tasks"].is_null(), "{stranger}");
        assert!(stranger["notice"].is_string(), "{stranger}");
    } else {
        eprintln!(
            "SKIPPED the other-uid part of lists_page_newest_first_and_status_counts_the_callers_tasks: needs root"
        );
    }
}

/// Issue 7, counters exact under concurrency: API actions race the ingest of many scans;
/// afterwards every counter matches the events stored, and the index the daemon served
/// from is exactly what a fresh start rebuilds from the store.
#[test]
fn index_and_counters_match_the_store_after_actions_race_scans() {
    use std::sync::atomic::{AtomicBool, Ordering};

    let f = fleet(30, 0);
    f.dir.set_today("2026-04-01");
    let mut d = f.start("");
    scan_all(&d);
    f.patch_openssl("web");
    f.dir.set_today("2026-04-02");
    let done = AtomicBool::new(false);
    let socket = d.socket.clone();
    let rows = std::thread::scope(|s| {
        for worker in 0..2 {
            let (socket, done) = (&socket, &done);
            s.spawn(move || {
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let (_, body) =
                        crate::common::http_raw(socket, "GET", "/v1/tasks?status=all", None);
                    let list: Value = serde_json::from_str(&body).unwrap();
                    for id in order(&list) {
                        n += 1;
                        let act = |path: String, body: Option<&str>| {
                            let (code, text) = crate::common::http_raw(socket, "POST", &path, body);
                            assert!(matches!(code, 200 | 409), "{path}: {code} {text}");
                        };
                        if worker == 0 {
                            let who = if n % 2 == 0 { "alice" } else { "bob" };
                            act(
                                format!("/v1/tasks/{id}/assign"),
                                Some(&format!(r#"{{"assignee":"{who}@example.com"}}"#)),
                            );
                        } else if n % 3 == 0 {
                            act(format!("/v1/tasks/{id}/close"), None);
                        } else {
                            act(format!("/v1/tasks/{id}/reopen"), None);
                        }
                    }
                }
            });
        }
        let rows = scan_all(&d);
        done.store(true, Ordering::Relaxed);
        rows
    });
    assert_eq!(rows.len(), 30);
    let before = tasks(&d, "?status=all&limit=10000");
    let list = before["tasks"].as_array().unwrap();
    let created: u64 = rows
        .iter()
        .map(|r| r["user_tasks_created"].as_u64().unwrap())
        .sum();
    assert_eq!(list.len() as u64, created, "{before}");
    let mut events = 0;
    for t in list {
        let id = t["id"].as_u64().unwrap();
        let (code, body) = d.http("GET", &format!("/v1/tasks/{id}?events_limit=10000"), None);
        assert_eq!(code, 200, "{body}");
        let detail: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(detail["task"], *t, "the list and the task agree");
        assert_eq!(
            detail["events"].as_array().unwrap().len() as u64,
            t["events"].as_u64().unwrap(),
            "task #{id}: its event counter is the events stored"
        );
        assert_eq!(
            detail["nodes"].as_array().unwrap().len() as u64,
            t["nodes"].as_u64().unwrap(),
            "task #{id}: its node counter is the nodes stored"
        );
        events += t["events"].as_u64().unwrap();
    }
    assert_eq!(
        events, 30,
        "one event per node that changed, whatever the races"
    );
    let open = list.iter().filter(|t| t["status"] == "open").count() as u64;
    assert_eq!(d.status_json()["open_tasks"], open);

    // A fresh start builds its index from the store alone: it must hold the same.
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_exit().success());
    let d = f.start("");
    assert_eq!(tasks(&d, "?status=all&limit=10000"), before);
    assert_eq!(d.status_json()["open_tasks"], open);
}
