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
