//! UserTasks unit tests on a real store: index copies arriving out of order, rights
//! checked on the stored task, and the index a restart loads.

use super::*;
use crate::config::QueueTaskKind;
use crate::outbox::Outbox;
use crate::proto::{QueueTaskId, Role};
use crate::setup::{Setup, SetupCell};
use crate::store::Commit;

struct Fixture {
    _dir: tempfile::TempDir,
    config: Config,
    cell: Arc<SetupCell>,
    store: Store,
    outbox: Outbox,
    tasks: UserTasks,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[daemon]\nstate_dir = \"state\"\n\n\
         [[user]]\nemail = \"alice@example.com\"\nuid = 4242\nrole = \"user\"\n\n\
         [[user]]\nemail = \"bob@example.com\"\nuid = 4243\nrole = \"user\"\n\n\
         [[node]]\nname = \"n1\"\nroot = \"/\"\n\n[[node]]\nname = \"n2\"\nroot = \"/\"\n",
    )
    .unwrap();
    let config = crate::config::load(&path).unwrap();
    let store = Store::open(&dir.path().join("state")).unwrap();
    let cell = Arc::new(SetupCell::new(Setup::new(config.clone(), Vec::new())));
    let outbox = Outbox::new(store.clone(), cell.clone());
    let tasks = UserTasks::open(store.clone(), outbox.clone(), cell.clone())
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        config,
        cell,
        store,
        outbox,
        tasks,
    }
}

impl Fixture {
    /// Commits the scan failure of `node` as a scan would, without telling the index.
    fn scan(&self, node: &str, number: u64) -> Ingested {
        self.failure(
            node,
            number,
            "files",
            &format!("cannot open /srv/{node}: denied"),
        )
    }

    /// Commits `plugin` failing with `message` on `node` in Scan #`number`, without
    /// telling the index.
    fn failure(&self, node: &str, number: u64, plugin: &str, message: &str) -> Ingested {
        let mut f = NodeFindings::new(
            node,
            QueueTaskId {
                kind: QueueTaskKind::Scan,
                number,
            },
            chrono::NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
        );
        f.failures.push(PluginFailed {
            plugin: plugin.to_owned(),
            message: message.to_owned(),
        });
        self.store
            .write_blocking(Commit::Durable, |tx| {
                UserTasks::ingest_single(tx, &self.config, &f)
            })
            .unwrap()
    }

    /// Changes the stored task behind the index's back (an action whose commit has not
    /// reached the index yet).
    fn assign_in_store(&self, id: u64, assignee: &str) {
        self.store
            .write_blocking(Commit::Durable, |tx| -> Result<(), StoreError> {
                let mut t = persist::get(tx, id)?.unwrap();
                t.assignee = Some(assignee.to_owned());
                persist::put(tx, &mut t)
            })
            .unwrap();
    }

    async fn stored(&self, id: u64) -> UserTask {
        let fresh = UserTasks::open(self.store.clone(), self.outbox.clone(), self.cell.clone())
            .await
            .unwrap();
        fresh.get(id).unwrap()
    }

    async fn mails(&self) -> u64 {
        self.outbox.status().await.unwrap().pending
    }
}

fn admin() -> Caller {
    Caller {
        uid: 0,
        email: None,
        role: Some(Role::Admin),
    }
}

fn site_user(email: &str) -> Caller {
    Caller {
        uid: 4244,
        email: Some(email.to_owned()),
        role: Some(Role::User),
    }
}

/// The index loaded at start pairs every task with exactly its own nodes (the two
/// tables are merged in one pass), whatever their order and gaps.
#[tokio::test]
async fn a_restart_loads_every_task_with_its_own_nodes() {
    let fx = fixture().await;
    let fail = |node: &str, number: u64, plugin: &str| {
        let out = fx.failure(node, number, plugin, "the plugin reported an error");
        fx.tasks.committed(&out);
    };
    fail("n2", 1, "files"); // task 1: n2, n1
    fail("n1", 2, "files");
    fail("n1", 3, "packages"); // task 2: n1
    fail("n2", 4, "sysctl"); // task 3: n2
    fail("n3", 5, "ports"); // task 4: n3 (not a configured node any more: still kept)

    let fresh = UserTasks::open(fx.store.clone(), fx.outbox.clone(), fx.cell.clone())
        .await
        .unwrap();
    for (node, want) in [("n1", vec![1, 2]), ("n2", vec![1, 3]), ("n3", vec![4])] {
        let filter = UserTaskFilter {
            node: Some(node.to_owned()),
            ..UserTaskFilter::default()
        };
        let mut ids: Vec<u64> = fresh
            .list(&filter, &admin(), 0, 100)
            .await
            .unwrap()
            .tasks
            .iter()
            .map(|t| t.id)
            .collect();
        ids.sort();
        assert_eq!(ids, want, "tasks on {node} after a restart");
    }
    for id in 1..=4 {
        assert_eq!(fresh.get(id), fx.tasks.get(id), "task {id} as loaded");
    }
    assert_eq!(fresh.open_counts(None), (4, 0));
}

#[tokio::test]
async fn a_scan_copy_arriving_after_an_assignment_does_not_undo_it() {
    let fx = fixture().await;
    let first = fx.scan("n1", 1);
    fx.tasks.committed(&first);
    let id = first.created[0];
    // A second scan adds an event and commits, but reaches the index only after an
    // administrator's assignment has committed and updated it.
    let late = fx.scan("n2", 2);
    let assigned = fx
        .tasks
        .assign(id, "bob@example.com".into(), &admin())
        .await
        .unwrap();
    assert_eq!(assigned.events, 2, "the assignment read the scan's commit");
    fx.tasks.committed(&late);
    let held = fx.tasks.get(id).unwrap();
    assert_eq!(held.assignee.as_deref(), Some("bob@example.com"));
    assert_eq!(held, fx.stored(id).await, "the index holds the stored task");
    assert_eq!(fx.tasks.open_counts(Some("bob@example.com")), (1, 1));
}

#[tokio::test]
async fn rights_are_checked_on_the_task_as_stored_not_as_indexed() {
    let fx = fixture().await;
    let first = fx.scan("n1", 1);
    fx.tasks.committed(&first);
    let id = first.created[0];
    let bob = site_user("bob@example.com");

    // The index still shows the task unassigned; the store has it assigned to alice.
    fx.assign_in_store(id, "alice@example.com");
    let before = fx.stored(id).await;
    let err = fx
        .tasks
        .assign(id, "bob@example.com".into(), &bob)
        .await
        .unwrap_err();
    assert!(matches!(err, UserTaskError::Forbidden(_)), "{err}");
    assert_eq!(fx.stored(id).await, before, "the refusal wrote nothing");
    assert_eq!(fx.mails().await, 0, "and mailed nobody");

    // The other way round: the index shows bob's task, the store has it back on alice.
    fx.assign_in_store(id, "bob@example.com");
    fx.tasks.update_index(&[fx.stored(id).await]);
    fx.assign_in_store(id, "alice@example.com");
    let before = fx.stored(id).await;
    let err = fx.tasks.set_open(id, false, &bob).await.unwrap_err();
    assert!(matches!(err, UserTaskError::Forbidden(_)), "{err}");
    let resp = fx
        .tasks
        .close_all(&UserTaskFilter::default(), &bob)
        .await
        .unwrap();
    assert_eq!(resp.count, 0, "Close All checks each task as stored too");
    assert_eq!(fx.stored(id).await, before);

    // Reopening is for administrators, even of one's own task.
    let alice = site_user("alice@example.com");
    let closed = fx.tasks.set_open(id, false, &alice).await.unwrap();
    assert_eq!(closed.status(), UserTaskStatus::Closed);
    let err = fx.tasks.set_open(id, true, &alice).await.unwrap_err();
    assert!(matches!(err, UserTaskError::Forbidden(_)), "{err}");
    assert_eq!(fx.stored(id).await, closed);
    let reopened = fx.tasks.set_open(id, true, &admin()).await.unwrap();
    assert_eq!(reopened.status(), UserTaskStatus::Open);
    assert_eq!(fx.tasks.open_counts(Some("alice@example.com")), (1, 1));
}

/// Every change of a task is one event in the log, in the order of the commits: opened
/// (one per ingest, whatever its nodes), updated by a later scan, assigned, closed by a
/// user, reopened, closed by a clean scan; a refused action records nothing.
#[tokio::test]
async fn each_task_change_is_one_event_in_commit_order() {
    use crate::proto::{ClosedHow, EventKind};
    let fx = fixture().await;
    let first = fx.scan("n1", 1);
    fx.tasks.committed(&first);
    let id = first.created[0];
    fx.tasks.committed(&fx.scan("n2", 2));
    fx.tasks
        .assign(id, "bob@example.com".into(), &admin())
        .await
        .unwrap();
    let alice = site_user("alice@example.com");
    assert!(fx.tasks.set_open(id, false, &alice).await.is_err());
    fx.tasks.set_open(id, false, &admin()).await.unwrap();
    fx.tasks.set_open(id, true, &admin()).await.unwrap();
    // Clean scans of the plugin on both nodes close it by themselves.
    for (node, number) in [("n1", 3), ("n2", 4)] {
        let mut f = NodeFindings::new(
            node,
            QueueTaskId {
                kind: QueueTaskKind::Scan,
                number,
            },
            chrono::NaiveDate::from_ymd_opt(2026, 4, 2).unwrap(),
        );
        f.clean_plugins.push("files".to_owned());
        let out = fx
            .store
            .write_blocking(Commit::Durable, |tx| {
                UserTasks::ingest_single(tx, &fx.config, &f)
            })
            .unwrap();
        fx.tasks.committed(&out);
    }
    let log = fx.tasks.events().after(0, 100).await.unwrap();
    let kinds: Vec<(EventKind, Option<ClosedHow>)> = log.iter().map(|e| (e.kind, e.how)).collect();
    assert_eq!(
        kinds,
        [
            (EventKind::TaskOpened, None),
            (EventKind::TaskUpdated, None),
            (EventKind::TaskAssigned, None),
            (EventKind::TaskClosed, Some(ClosedHow::User)),
            (EventKind::TaskReopened, None),
            (EventKind::TaskClosed, Some(ClosedHow::Scan)),
        ]
    );
    let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    let task = fx.tasks.get(id).unwrap();
    assert!(task.dedup_key.starts_with("vigil/") && task.dedup_key.ends_with("/task/1"));
    for e in &log {
        assert_eq!(e.task, Some(id));
        assert_eq!(e.dedup_key.as_deref(), Some(task.dedup_key.as_str()));
    }
    assert_eq!(log[0].event_nodes, ["n1"]);
    assert_eq!(log[1].event_nodes, ["n2"]);
    assert_eq!((log[1].events, log[1].nodes), (2, 2));
    assert_eq!(log[2].assignee.as_deref(), Some("bob@example.com"));
    assert_eq!(log[5].event_nodes, ["n2"], "the node whose scan closed it");
    assert_eq!(log[5].by.as_deref(), Some("Scan #4"));
}

/// Close All records one `task.closed` per task it closed, each saying so.
#[tokio::test]
async fn close_all_records_one_closed_event_per_task() {
    use crate::proto::{ClosedHow, EventKind};
    let fx = fixture().await;
    fx.tasks.committed(&fx.failure("n1", 1, "files", "denied"));
    fx.tasks
        .committed(&fx.failure("n1", 2, "packages", "no dpkg status"));
    let resp = fx
        .tasks
        .close_all(&UserTaskFilter::default(), &admin())
        .await
        .unwrap();
    assert_eq!(resp.count, 2);
    let log = fx.tasks.events().after(2, 100).await.unwrap();
    let closed: Vec<(EventKind, Option<ClosedHow>, Option<u64>)> =
        log.iter().map(|e| (e.kind, e.how, e.task)).collect();
    assert_eq!(
        closed,
        [
            (EventKind::TaskClosed, Some(ClosedHow::CloseAll), Some(1)),
            (EventKind::TaskClosed, Some(ClosedHow::CloseAll), Some(2)),
        ]
    );
    assert!(log.iter().all(|e| e.by.as_deref() == Some("uid 0")));
}
