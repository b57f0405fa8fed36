//! Tests of `vigil ui` without a daemon: the state machine as data (`update`), and the
//! rendered screens as snapshots on ratatui's `TestBackend` (fixed size, fixed clock, the
//! UTC zone), fed by [`FakeApi`]. The fake is only for these: the end-to-end test in
//! `tests/ui.rs` drives the real `vigil ui` against the real vigild in tmux.

mod snapshots;
mod update;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use serde_json::{json, Value as Json};

use super::state::{ApiError, App, Effect, Event};
use crate::proto::{
    LogPage, QueueTask, Status, UserTask, UserTaskDetail, UserTaskList, UserTaskReport,
    UserTaskStatusFilter,
};

/// The fixed clock of every test.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 2, 9, 30, 0).unwrap()
}

pub fn app() -> App {
    App::new(
        "/run/vigil/vigil.sock".into(),
        false,
        now(),
        FixedOffset::east_opt(0).unwrap(),
    )
}

fn from<T: serde::de::DeserializeOwned>(v: Json) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v:#}"))
}

pub fn status(admin: bool, open: u64, mine: u64) -> Status {
    let (email, role, uid) = if admin {
        ("root@example.com", "admin", 0)
    } else {
        ("alice@example.com", "user", 65534)
    };
    from(json!({
        "version": "0.1.0", "pid": 4242, "started_at": "2026-04-02T06:00:00Z",
        "uptime_secs": 12600, "config_path": "/etc/vigil/config.toml",
        "config_loaded_at": "2026-04-02T06:00:00Z", "last_reload_error": null,
        "caller": {"uid": uid, "email": email, "role": role},
        "nodes": 3, "slots": 4,
        "queue": {"queued": 1, "running": 1, "slots": 4, "capacity": 1000,
                  "dropped_scheduled": 0, "oldest_running_secs": 40},
        "outbox": null, "open_tasks": open, "my_open_tasks": mine,
    }))
}

pub fn task(
    id: u64,
    kind: &str,
    title: &str,
    assignee: Option<&str>,
    open: bool,
    hours_ago: i64,
) -> UserTask {
    let last = now() - chrono::Duration::hours(hours_ago);
    from(json!({
        "id": id, "kind": kind, "title": title, "description": "",
        "status": if open { "open" } else { "closed" },
        "assignee": assignee, "created_at": "2026-04-01T02:00:00Z", "last_event_at": last,
        "closed_by": if open { None } else { Some("root@example.com") },
        "closed_at": if open { None } else { Some(last) },
        "events": id + 1, "nodes": if id == 5 || id == 3 { 1 } else { 2 },
        "change_count": if kind == "drift" { 2 } else { 0 },
        "first_nodes": ["web-0"], "fingerprint": format!("{kind}:web:{id}"),
        "recurrence_of": null,
    }))
}

/// The fleet the snapshots show: a drift task, a policy task, a scan failure, a closed one,
/// and a drift task on a node with a hostile account name.
pub fn fleet() -> Vec<UserTask> {
    vec![
        task(
            7,
            "drift",
            "openssl changed on 2 nodes (web)",
            Some("alice@example.com"),
            true,
            1,
        ),
        task(
            6,
            "policy",
            "ssh-hardening/no-root-login fails on db-0",
            None,
            true,
            3,
        ),
        task(
            5,
            "scan-failure",
            "Scan of db-1 failed: packages",
            None,
            true,
            5,
        ),
        task(
            4,
            "drift",
            "account evil\x1b]0;PWNED\x07 added on db-0",
            Some("bob@example.com"),
            true,
            26,
        ),
        task(
            3,
            "drift",
            "sysctl changed on web-1",
            Some("root@example.com"),
            false,
            50,
        ),
    ]
}

pub fn drift_detail(id: u64) -> (UserTaskDetail, UserTaskReport) {
    let t = fleet().into_iter().find(|t| t.id == id).unwrap();
    let t = serde_json::to_value(t).unwrap();
    let detail = from(json!({
        "task": t,
        "nodes": [{"node": "web-0", "events": 1}, {"node": "web-1", "events": 1}],
        "events": [
            {"node": "web-1", "time": "2026-04-02T08:30:00Z", "source": "Scan #12", "day": "2026-04-02",
             "details": "1 change: ~ openssl"},
            {"node": "web-0", "time": "2026-04-02T08:29:00Z", "source": "Scan #11", "day": "2026-04-02",
             "details": "1 change: ~ openssl"},
        ],
        "events_total": 2,
    }));
    let drift = |node: &str, scan: &str| {
        json!({
            "node": node, "plugin": "packages", "day": "2026-04-02", "scan": scan,
            "baseline_day": "2026-04-01", "items": 412,
            "changes": [{
                "key": "openssl", "kind": "modified",
                "attributes": [{"name": "version", "previous": "3.0.11-1~deb12u2", "current": "3.0.13-1~deb12u1"}],
                "current_digest": null,
            }, {
                "key": "/etc/ssl/openssl.cnf", "kind": "modified", "attributes": [],
                "content_diff": "--- previous\n+++ current\n@@ -1,2 +1,2 @@\n-MinProtocol = TLSv1.2\n+MinProtocol = TLSv1.3\n CipherString = DEFAULT",
                "current_digest": null,
            }],
            "coverage_notes": [],
        })
    };
    let report = from(json!({
        "task": t,
        "nodes": [
            {"node": "web-0", "day": "2026-04-02", "source": "Scan #11", "drift": [drift("web-0", "Scan #11")], "message": null},
            {"node": "web-1", "day": "2026-04-02", "source": "Scan #12", "drift": [drift("web-1", "Scan #12")], "message": null},
        ],
    }));
    (detail, report)
}

pub fn policy_detail() -> (UserTaskDetail, UserTaskReport) {
    let t = serde_json::to_value(fleet().into_iter().find(|t| t.id == 6).unwrap()).unwrap();
    let detail = from(json!({
        "task": t, "nodes": [{"node": "db-0", "events": 7}],
        "events": [{"node": "db-0", "time": "2026-04-02T06:30:00Z", "source": "Audit #3",
                    "day": "2026-04-02", "details": "check failed"}],
        "events_total": 7,
    }));
    let report = from(json!({
        "task": t,
        "nodes": [{"node": "db-0", "day": "2026-04-02", "source": "Audit #3", "drift": [],
                   "message": "/etc/ssh/sshd_config: PermitRootLogin is yes, expected no\nline 32: PermitRootLogin yes"}],
    }));
    (detail, report)
}

pub fn queue() -> Vec<QueueTask> {
    from(json!([
        {"id": "Scan #12", "target": "web-1", "scope": "all", "initiator": "Schedule",
         "schedule": "nightly", "plugins": null, "policies": null,
         "queued_at": "2026-04-02T09:29:00Z", "started_at": "2026-04-02T09:29:20Z",
         "status": "Running", "attempt": 1},
        {"id": "Scan #13", "target": "db-0", "scope": "group:db", "initiator": "root@example.com",
         "schedule": null, "plugins": ["packages"], "policies": null,
         "queued_at": "2026-04-02T09:29:30Z", "started_at": null, "status": "Queued", "attempt": 1},
    ]))
}

pub fn scan_log() -> LogPage {
    let row = |n: u64, node: &str, status: &str, errors: u32, messages: Vec<&str>| {
        json!({
            "id": format!("Scan #{n}"), "target": node, "scope": "all", "initiator": "Schedule",
            "schedule": "nightly", "queued_at": "2026-04-02T02:00:00Z",
            "started_at": "2026-04-02T02:00:01Z", "finished_at": "2026-04-02T02:00:09Z",
            "status": status, "errors": errors, "messages": messages, "summary": null,
            "attempt": 1, "items_scanned": 412, "changes_found": 1, "checks": [],
            "drift_fingerprint": null, "user_tasks_created": 0, "user_tasks_updated": 0, "plugins": [],
        })
    };
    from(json!({"rows": [
        row(11, "web-0", "Finished", 0, vec![]),
        row(10, "db-1", "Failed", 1, vec!["packages: no dpkg status file under the node root"]),
    ], "total": 2}))
}

/// A daemon in memory for the snapshots: filters and pages its tasks as the real one does
/// for the fields the screen sets (status, assignee, text, kind, offset, limit).
pub struct FakeApi {
    pub status: Status,
    pub tasks: Vec<UserTask>,
}

impl FakeApi {
    pub fn admin() -> FakeApi {
        FakeApi {
            status: status(true, 4, 0),
            tasks: fleet(),
        }
    }

    pub fn site_user() -> FakeApi {
        FakeApi {
            status: status(false, 4, 1),
            tasks: fleet(),
        }
    }

    fn list(&self, q: &crate::proto::UserTaskQuery) -> UserTaskList {
        let me = self.status.caller.email.clone();
        let f = &q.filter;
        let matching: Vec<UserTask> = self
            .tasks
            .iter()
            .filter(|t| match f.status.unwrap_or_default() {
                UserTaskStatusFilter::Open => t.is_open(),
                UserTaskStatusFilter::Closed => !t.is_open(),
                UserTaskStatusFilter::All => true,
            })
            .filter(|t| match f.assignee.as_deref() {
                None => true,
                Some("me") => t.assignee == me,
                Some("none") => t.assignee.is_none(),
                Some(a) => t.assignee.as_deref() == Some(a),
            })
            .filter(|t| f.kind.is_none_or(|k| k == t.kind))
            .filter(|t| {
                f.q.as_deref()
                    .is_none_or(|q| t.title.to_lowercase().contains(&q.to_lowercase()))
            })
            .filter(|t| !q.closable || t.is_open())
            .cloned()
            .collect();
        UserTaskList {
            total: matching.len(),
            tasks: matching
                .into_iter()
                .skip(q.offset)
                .take(q.limit.unwrap_or(100))
                .collect(),
        }
    }

    /// The event that answers `effect` (`None` for Quit).
    pub fn answer(&self, effect: &Effect) -> Option<Event> {
        Some(match effect {
            Effect::Quit => return None,
            Effect::Debounce { generation } => Event::FilterDue(*generation),
            Effect::LoadStatus => Event::Status(Ok(Box::new(self.status.clone()))),
            Effect::LoadTasks { generation, query } => Event::Tasks {
                generation: *generation,
                answer: Ok(self.list(query)),
            },
            Effect::LoadDetail { id } => Event::Detail {
                id: *id,
                answer: Ok(Box::new(if *id == 6 {
                    policy_detail()
                } else {
                    drift_detail(*id)
                })),
            },
            Effect::LoadQueue => Event::Queue(Ok(queue())),
            Effect::LoadUsers if self.status.caller.role == Some(crate::proto::Role::Admin) => {
                Event::Users(Ok([
                    "alice@example.com",
                    "bob@example.com",
                    "carol@example.com",
                ]
                .into_iter()
                .map(|email| crate::proto::UserInfo {
                    email: email.into(),
                    role: crate::proto::Role::User,
                })
                .collect()))
            }
            Effect::LoadUsers => Event::Users(Err(ApiError {
                message: "listing the users needs the admin role".into(),
                unreachable: false,
            })),
            Effect::LoadLog { log } => Event::Log {
                log: *log,
                answer: Ok(scan_log()),
            },
            Effect::PreviewCloseAll { filter } => Event::CloseAllPreview {
                answer: Ok(self.list(&crate::proto::UserTaskQuery {
                    filter: filter.clone(),
                    offset: 0,
                    limit: Some(super::state::CLOSE_ALL_PREVIEW),
                    closable: true,
                })),
            },
            Effect::Close { id } if self.status.caller.role != Some(crate::proto::Role::Admin) => {
                Event::Done(Err(ApiError {
                    message: format!(
                        "task {id} is not assigned to you: a Site User closes only their own tasks"
                    ),
                    unreachable: false,
                }))
            }
            Effect::Assign { .. }
            | Effect::Close { .. }
            | Effect::Reopen { .. }
            | Effect::CloseAll { .. }
            | Effect::Cancel { .. } => Event::Done(Ok("done".into())),
        })
    }

    /// Feeds the app the answers of its effects (and of theirs) until it asks for nothing.
    pub fn settle(&self, app: &mut App, mut effects: Vec<Effect>) {
        for _ in 0..100 {
            let Some(effect) = effects.pop() else { return };
            if let Some(event) = self.answer(&effect) {
                effects.extend(app.update(event));
            }
        }
        panic!("the app keeps asking: {effects:?}");
    }
}
