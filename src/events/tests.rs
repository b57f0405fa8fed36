//! The event log on a real store: numbering, paging, the instance id, pruning.

use super::*;
use crate::proto::{QueueTaskId, QueueTaskKind};

fn failed(number: u64) -> NewLogEvent {
    NewLogEvent {
        kind: EventKind::ScanFailed,
        task: None,
        title: format!("failure {number}"),
        nodes: (0..150).map(|i| format!("n{i:03}")).collect(),
        by: None,
        how: None,
        source: Some(QueueTaskId {
            kind: QueueTaskKind::Scan,
            number,
        }),
    }
}

#[test]
fn events_are_numbered_in_commit_order_and_paged_after_a_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let write = |events: Vec<NewLogEvent>| {
        store
            .write_blocking(Commit::Durable, |tx| record(tx, events))
            .unwrap()
    };
    assert_eq!(store.read_blocking(last_seq).unwrap(), 0);
    assert_eq!(write(Vec::new()), 0, "no events, no sequence number");
    assert_eq!(write(vec![failed(1), failed(2)]), 2);
    assert_eq!(write(vec![failed(3)]), 1);
    let all = store.read_blocking(|tx| after(tx, 0, 100)).unwrap();
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    let instance = store.write_blocking(Commit::Durable, instance).unwrap();
    assert_eq!(instance.len(), 16);
    assert_eq!(all[2].id, format!("{instance}-3"));
    assert_eq!(all[0].event_nodes.len(), MAX_EVENT_NODES);
    assert_eq!(all[0].nodes_in_event, 150);
    let rest = store.read_blocking(|tx| after(tx, 1, 1)).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].title, "failure 2");
    assert_eq!(store.read_blocking(last_seq).unwrap(), 3);

    // The instance is created once: a reopened store keeps it.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let again = store
        .write_blocking(Commit::Durable, super::instance)
        .unwrap();
    assert_eq!(again, instance);
}

#[test]
fn pruning_removes_only_events_older_than_the_cutoff_and_keeps_the_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let write = |n: u64| {
        store
            .write_blocking(Commit::Durable, |tx| {
                record(tx, (0..n).map(failed).collect::<Vec<_>>())
            })
            .unwrap();
    };
    write(2_500);
    let cutoff = Utc::now() + chrono::Duration::seconds(1);
    // 2,500 old events: more than one prune batch.
    assert_eq!(prune_blocking(&store, cutoff).unwrap(), 2_500);
    assert!(store
        .read_blocking(|tx| after(tx, 0, 10))
        .unwrap()
        .is_empty());
    assert_eq!(prune_blocking(&store, Utc::now()).unwrap(), 0);
    write(1);
    let kept = store.read_blocking(|tx| after(tx, 0, 10)).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].seq, 2_501, "sequence numbers are never reused");
    assert_eq!(
        prune_blocking(&store, Utc::now() - chrono::Duration::days(1)).unwrap(),
        0
    );
}

#[test]
fn each_event_gets_a_delivery_row_per_endpoint_in_force_that_takes_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let write = |events: Vec<NewLogEvent>| {
        store
            .write_blocking(Commit::Durable, |tx| record(tx, events))
            .unwrap()
    };
    write(vec![failed(1)]);
    let routes = vec![
        ("all".to_owned(), EventKind::ALL.to_vec()),
        ("tasks".to_owned(), vec![EventKind::TaskOpened]),
    ];
    store
        .write_blocking(Commit::Durable, |tx| deliveries::set_routes(tx, &routes))
        .unwrap();
    write(vec![failed(2), failed(3)]);
    let counts = |name: &'static str| {
        store
            .read_blocking(|tx| deliveries::counts(tx, name, true))
            .unwrap()
    };
    assert_eq!(
        counts("all").pending,
        2,
        "events before the route are not sent"
    );
    assert_eq!(
        counts("tasks").pending,
        0,
        "a kind the endpoint does not take"
    );
    let (seq, row, event) = store
        .read_blocking(|tx| deliveries::head(tx, "all"))
        .unwrap()
        .unwrap();
    assert_eq!((seq, row.attempts), (2, 0));
    assert_eq!(event.unwrap().title, "failure 2");

    // Delivered, the head moves on; dead, it is skipped until retried.
    let now = Utc::now();
    store
        .write_blocking(Commit::Durable, |tx| {
            deliveries::delivered(tx, "all", 2, now)
        })
        .unwrap();
    let dead = deliveries::StoredDelivery {
        attempts: 1,
        dead: true,
        last_error: Some("410".into()),
        since: now,
        next_at: None,
    };
    store
        .write_blocking(Commit::Durable, |tx| {
            deliveries::failed(tx, "all", 3, &dead)
        })
        .unwrap();
    let c = counts("all");
    assert_eq!((c.pending, c.dead, c.delivered), (0, 1, 1));
    assert!(store
        .read_blocking(|tx| deliveries::head(tx, "all"))
        .unwrap()
        .is_none());
    let (requeued, _) = store
        .write_blocking(Commit::Durable, |tx| deliveries::retry(tx, "all", now))
        .unwrap();
    assert_eq!(requeued, 1);
    assert_eq!(counts("all").pending, 1);

    // Removing every route stops the rows; pruning drops what is older than the cutoff.
    store
        .write_blocking(Commit::Durable, |tx| deliveries::set_routes(tx, &[]))
        .unwrap();
    write(vec![failed(4)]);
    assert_eq!(counts("all").pending, 1);
    let later = Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(
        deliveries::prune_blocking(&store, later, &["all".to_owned()]).unwrap(),
        1,
        "the delivered row; the pending one of a configured endpoint stays"
    );
    assert_eq!(deliveries::prune_blocking(&store, later, &[]).unwrap(), 1);
    assert_eq!(counts("all").pending, 0);
}
