//! A scheduled run's due time is claimed in the commit that queues it, on a real queue and
//! store whose dispatcher never starts.

use chrono::{DateTime, Utc};

use super::fired;
use crate::proto::CancelOutcome;
use crate::queue::tests::{at, idle_queue};
use crate::queue::{Claim, QueueFilter};

fn claim(due: DateTime<Utc>) -> Claim {
    fired::claim("often", due)
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
    assert!(queue
        .enqueue_scheduled(schedule, due, claim(due))
        .await
        .unwrap());
    // The run's task leaves Queued, as if it had started and ended.
    let cancelled = queue.cancel(&["Scan #1".to_owned()]).await.unwrap();
    assert_eq!(cancelled[0].outcome, CancelOutcome::Cancelled);

    // The racing fire: same due time, and an older one (a slow fire from before).
    assert!(!queue
        .enqueue_scheduled(schedule, due, claim(due))
        .await
        .unwrap());
    assert!(!queue
        .enqueue_scheduled(
            schedule,
            at("2026-10-25T01:00:00Z"),
            claim(at("2026-10-25T01:00:00Z")),
        )
        .await
        .unwrap());
    assert!(queue.list(&QueueFilter::default()).await.is_empty());
    assert_eq!(
        fired::last(queue.store(), "often").await.unwrap(),
        Some(due)
    );

    // Two fires at once for the next due time: one run.
    let next = at("2026-10-25T01:30:00Z");
    let (a, b) = tokio::join!(
        queue.enqueue_scheduled(schedule, next, claim(next)),
        queue.enqueue_scheduled(schedule, next, claim(next))
    );
    assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|r| **r).count(), 1);
    let queued = queue.list(&QueueFilter::default()).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].id().to_string(), "Scan #2");

    // First sight of a schedule records it; later sightings keep the recorded run.
    fired::seen(queue.store(), "often", at("2026-10-26T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        fired::last(queue.store(), "often").await.unwrap(),
        Some(next)
    );
}
