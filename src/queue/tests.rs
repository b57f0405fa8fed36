//! Queue unit tests on a real store whose dispatcher never starts.

use super::*;
use crate::config::Config;
use crate::outbox::Outbox;
use crate::setup::{Setup, SetupCell};

/// A queue on a fresh store whose dispatcher never starts: tasks stay Queued.
pub(crate) async fn idle_queue(dir: &std::path::Path) -> (Queue, Arc<Config>) {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        "[daemon]\nstate_dir = \"state\"\n\n[[node]]\nname = \"n1\"\nroot = \"/\"\n\n\
         [[schedule]]\nname = \"often\"\nkind = \"scan\"\ncron = \"0 */15 * * * *\"\n",
    )
    .unwrap();
    let config = crate::config::load(&path).unwrap();
    let store = Store::open(&config.daemon.state_dir).unwrap();
    let cell = Arc::new(SetupCell::new(Setup::new(config, Vec::new())));
    let outbox = Outbox::new(store.clone(), cell.clone());
    let tasks = UserTasks::open(store.clone(), outbox, cell.clone())
        .await
        .unwrap();
    let worker = WorkerCommand::new("/nonexistent/vigild");
    let queue = Queue::open(store, cell.clone(), worker, tasks)
        .await
        .unwrap();
    (queue, cell.config())
}

pub(crate) fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// `/v1/status` must answer while a commit holds the queue: it shows the figures of the
/// last change, which a change publishes as it releases the lock.
#[tokio::test]
async fn status_does_not_wait_for_the_queue_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let (queue, _) = idle_queue(tmp.path()).await;
    let request = EnqueueRequest {
        kind: QueueTaskKind::Scan,
        scope: crate::config::Scope::All,
        plugins: None,
        policies: None,
    };
    queue.enqueue(request, "root".into()).await.unwrap();
    assert_eq!(queue.status().await.queued, 1);

    let held = queue.shared.lock().await;
    let status = tokio::time::timeout(Duration::from_secs(5), queue.status())
        .await
        .expect("status answers while the queue is locked");
    assert_eq!((status.queued, status.running), (1, 0));
    drop(held);
}
