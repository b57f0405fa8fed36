//! Queue unit tests on a real store whose dispatcher never starts.

use super::*;
use crate::config::Config;
use crate::outbox::Outbox;
use crate::setup::{Setup, SetupCell};

/// A queue on a fresh store whose dispatcher never starts: tasks stay Queued.
async fn idle_queue(dir: &std::path::Path) -> (Queue, Arc<Config>) {
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
    let tasks = UserTasks::open(store.clone(), Outbox::new(store.clone(), cell.clone()))
        .await
        .unwrap();
    let worker = WorkerCommand::new("/nonexistent/vigild");
    let queue = Queue::open(store, cell.clone(), worker, tasks)
        .await
        .unwrap();
    (queue, cell.config())
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Regression: a fire that checked the last due time before another fire for the same
/// due time committed (a catch-up on reload racing the job) queued that due time again
/// once the first run's task had left Queued (so coalescing did not catch it).
#[tokio::test]
async fn a_due_time_runs_once_even_when_fires_race() {
    let tmp = tempfile::tempdir().unwrap();
    let (queue, config) = idle_queue(tmp.path()).await;
    let schedule = &config.schedules[0];
    let due = at("2026-10-25T01:15:00Z");
    assert!(queue.enqueue_scheduled(schedule, due).await.unwrap());
    // The run's task leaves Queued, as if it had started and ended.
    let cancelled = queue.cancel(&["Scan #1".to_owned()]).await.unwrap();
    assert_eq!(cancelled[0].outcome, CancelOutcome::Cancelled);

    // The racing fire: same due time, and an older one (a slow fire from before).
    assert!(!queue.enqueue_scheduled(schedule, due).await.unwrap());
    assert!(!queue
        .enqueue_scheduled(schedule, at("2026-10-25T01:00:00Z"))
        .await
        .unwrap());
    assert!(queue.list(&QueueFilter::default()).await.is_empty());
    assert_eq!(queue.schedule_fired("often").await.unwrap(), Some(due));

    // Two fires at once for the next due time: one run.
    let next = at("2026-10-25T01:30:00Z");
    let (a, b) = tokio::join!(
        queue.enqueue_scheduled(schedule, next),
        queue.enqueue_scheduled(schedule, next)
    );
    assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|r| **r).count(), 1);
    let queued = queue.list(&QueueFilter::default()).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].id().to_string(), "Scan #2");

    // First sight of a schedule records it; later sightings keep the recorded run.
    queue
        .schedule_seen("often", at("2026-10-26T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(queue.schedule_fired("often").await.unwrap(), Some(next));
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
