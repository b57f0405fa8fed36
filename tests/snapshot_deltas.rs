//! Chunks stored as edits of the baseline's (issue 15; see `snapshot::delta`): a night that changes one item in a
//! hundred stores those edits and the new values, not every chunk again; what a delta is
//! made from outlives the snapshots that listed it for as long as the delta does, and is
//! given back after. Library level, like `snapshot_storage`.

use chrono::NaiveDate;
use vigil::proto::{QueueTaskId, QueueTaskKind};
use vigil::snapshot::{self, SnapshotWriter};
use vigil::store::Store;
use vigil_plugin::Item;

use crate::snapshot_storage::{bytes, commit, day, digest_of};

const ITEMS: usize = 10_000;

/// Night `night`'s items: item `i` was modified on night `i % 100 + 1` (if that has come),
/// so each night modifies a different one item in a hundred, spread through the keys.
fn drifting(night: u32) -> impl Iterator<Item = Item> {
    (0..ITEMS).map(move |i| {
        let modified_on = (i % 100) as u32 + 1;
        let digest = if modified_on <= night {
            format!("after-{i}")
        } else {
            format!("before-{i}")
        };
        Item::new(format!("/etc/file-{i:06}"))
            .attr("type", "file")
            .attr("mode", "0644")
            .attr("blake3", digest)
    })
}

/// Every item different from every night of [`drifting`].
fn rewritten() -> impl Iterator<Item = Item> {
    (0..ITEMS).map(|i| {
        Item::new(format!("/etc/file-{i:06}"))
            .attr("type", "file")
            .attr("blake3", format!("rewritten-{i}"))
    })
}

/// Stores a night's snapshot with its drift, as a scan does; returns its number of changes.
async fn write(store: &Store, d: NaiveDate, items: impl Iterator<Item = Item>) -> usize {
    let mut w = SnapshotWriter::new(store.clone(), "a", "files", d);
    for item in items {
        w.push(item).await.unwrap();
    }
    let scan = QueueTaskId {
        kind: QueueTaskKind::Scan,
        number: 1,
    };
    commit(w, scan, Vec::new()).await.unwrap().changes.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn scattered_changes_store_their_edits_and_pruning_keeps_what_they_are_made_of() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    assert_eq!(write(&store, day(0), drifting(0)).await, 0);
    let first = bytes(&store).await;

    // Thirty nights, each modifying 100 items spread over every chunk, keeping five days:
    // from night 6 on, retention prunes the snapshots whose chunks the deltas are made of.
    let mut grown = Vec::new();
    for night in 1..=30 {
        let before = bytes(&store).await;
        assert_eq!(
            write(&store, day(night), drifting(night)).await,
            100,
            "night {night}"
        );
        grown.push(bytes(&store).await.saturating_sub(before));
        snapshot::prune_blocking(&store, day(night), 5).unwrap();
    }
    // Stored in full, each night's chunks would cost about a third of the first day (every
    // chunk holds a change), thirty nights ten times the first day; as deltas, a night costs
    // its 100 new values, its edits and the snapshot's chunk list, and every eighth night
    // the edits since the full chunks (the chains' length, see `delta`).
    let total: u64 = grown.iter().sum();
    println!("first day {first} B, nights grew by {grown:?} B");
    assert!(
        total < first,
        "thirty nights of 100 changes grew the store by {total} B, the first day took {first} B"
    );
    // Night 30 reads right, through deltas whose first snapshots were pruned long ago.
    assert_eq!(digest_of(&store, 0).await, (day(30), "after-0".into()));
    assert_eq!(digest_of(&store, 29).await.1, "after-29".into());
    assert_eq!(digest_of(&store, 30).await.1, "before-30".into());
    assert_eq!(digest_of(&store, 9_999).await.1, "before-9999".into());
    assert_eq!(
        snapshot::sweep_blocking(&store).unwrap(),
        0,
        "nothing dangles"
    );

    // A night that rewrites everything stores full chunks; once the drifting nights are
    // pruned, their deltas go and so do the chunks they were made of.
    assert_eq!(write(&store, day(40), rewritten()).await, ITEMS);
    snapshot::prune_blocking(&store, day(40), 0).unwrap();
    let last = bytes(&store).await;
    let alone = {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = Store::open(tmp.path()).unwrap();
        write(&fresh, day(40), rewritten()).await;
        bytes(&fresh).await
    };
    // (Only the snapshot rows' timestamps may differ in length.)
    assert!(
        last.abs_diff(alone) < 64,
        "only the last night is left, as if it were alone: {last} B vs {alone} B"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_scans_deltas_are_swept_and_release_what_they_were_made_of() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    write(&store, day(0), drifting(0)).await;
    let one_day = bytes(&store).await;

    // Night 1's scan fails after storing its chunks as deltas of night 0's.
    let mut w = SnapshotWriter::new(store.clone(), "a", "files", day(1));
    for item in drifting(1) {
        w.push(item).await.unwrap();
    }
    w.seal().await.unwrap();
    drop(w);
    assert!(bytes(&store).await > one_day, "the deltas were written");
    assert!(snapshot::sweep_blocking(&store).unwrap() > 0);
    assert_eq!(
        bytes(&store).await,
        one_day,
        "the sweep took the deltas and their values"
    );

    // Night 0's chunks are no longer counted by those deltas: replacing night 0 entirely
    // leaves nothing of it.
    write(&store, day(2), rewritten()).await;
    snapshot::prune_blocking(&store, day(2), 0).unwrap();
    let alone = {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = Store::open(tmp.path()).unwrap();
        write(&fresh, day(2), rewritten()).await;
        bytes(&fresh).await
    };
    let left = bytes(&store).await;
    assert!(left.abs_diff(alone) < 64, "{left} B left, alone {alone} B");
}
