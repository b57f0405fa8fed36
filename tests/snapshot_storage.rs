//! Snapshot storage (issue 6): unchanged data does not grow the store day after day,
//! identical nodes share storage, and pruning gives space back. Library level: the store
//! and the snapshot writer, without a daemon, so thirty days take a second.

use chrono::NaiveDate;
use vigil::drift::{self, DiffRules};
use vigil::proto::{PluginDrift, QueueTaskId, QueueTaskKind};
use vigil::snapshot::{self, SnapshotWriter};
use vigil::store::{Commit, Store};
use vigil_plugin::Item;

/// Commits a snapshot as a scan does: durably here, with its drift recorded by the hook.
pub(crate) async fn commit(
    w: SnapshotWriter,
    scan: QueueTaskId,
    volatile: Vec<String>,
) -> Result<PluginDrift, snapshot::SnapshotError> {
    let taken = snapshot::Taken {
        volatile,
        ..Default::default()
    };
    w.commit(Commit::Durable, scan, taken, |tx, c| {
        drift::record(tx, c, &DiffRules::default(), &drift::ReadyDiffs::default())
    })
    .await
}

fn items(n: usize, changed: Option<usize>) -> impl Iterator<Item = Item> {
    (0..n).map(move |i| {
        let hash = if Some(i) == changed {
            format!("changed-{i}")
        } else {
            format!("{:064x}", i * 7919)
        };
        Item::new(format!("/etc/file-{i:06}"))
            .attr("type", "file")
            .attr("mode", "0644")
            .attr("uid", 0i64)
            .attr("size", (i * 13 % 4096) as i64)
            .attr("blake3", hash)
    })
}

async fn write_day(
    store: &Store,
    node: &str,
    day: NaiveDate,
    n: usize,
    changed: Option<usize>,
) -> usize {
    let mut w = SnapshotWriter::new(store.clone(), node, "files", day);
    for item in items(n, changed) {
        w.push(item).await.unwrap();
    }
    let scan = QueueTaskId {
        kind: QueueTaskKind::Scan,
        number: 1,
    };
    let drift = commit(w, scan, Vec::new()).await.unwrap();
    drift.changes.len()
}

pub(crate) async fn bytes(store: &Store) -> u64 {
    store.read(snapshot::stored_bytes).await.unwrap()
}

pub(crate) fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Duration::days(i64::from(n))
}

#[tokio::test(flavor = "multi_thread")]
async fn unchanged_days_and_identical_nodes_share_storage_and_pruning_frees_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();

    assert_eq!(
        write_day(&store, "a", day(0), 10_000, None).await,
        0,
        "first scan: no drift"
    );
    let one_day = bytes(&store).await;
    for d in 1..30 {
        assert_eq!(write_day(&store, "a", day(d), 10_000, None).await, 0);
    }
    let thirty_days = bytes(&store).await;
    let ratio = thirty_days as f64 / one_day as f64;
    println!("one day: {one_day} B, thirty days: {thirty_days} B, ratio {ratio:.3}");
    assert!(ratio <= 1.2, "30 unchanged days cost {ratio:.3}x one day");

    // A second node with identical items shares every chunk and value.
    write_day(&store, "b", day(29), 10_000, None).await;
    let two_nodes = bytes(&store).await;
    assert!(
        (two_nodes - thirty_days) * 50 < one_day,
        "an identical node added {} B to {one_day} B",
        two_nodes - thirty_days
    );

    // One modified item is one change, and costs about one chunk.
    assert_eq!(write_day(&store, "a", day(30), 10_000, Some(4242)).await, 1);

    // Pruning to 5 days drops the rest; the newest snapshot per node and plugin stays.
    let pruned = snapshot::prune_blocking(&store, day(30), 5).unwrap();
    assert_eq!(pruned, 25, "days 0..=24 of node a");
    let after = bytes(&store).await;
    assert!(after < two_nodes + one_day, "pruning does not leak");
    let latest = store
        .read(|tx| snapshot::latest_per_plugin(tx, "b"))
        .await
        .unwrap();
    assert_eq!(
        latest["files"].0,
        day(29),
        "node b's only snapshot is kept though it is older"
    );

    // Dropping every reference of a value frees it: prune a node down to nothing changed.
    let orphans = snapshot::sweep_blocking(&store).unwrap();
    assert_eq!(
        orphans, 0,
        "committed snapshots leave no unreferenced chunks"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_scan_leaves_chunks_that_the_sweep_removes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let mut w = SnapshotWriter::new(store.clone(), "n", "files", day(0));
    for item in items(5_000, None) {
        w.push(item).await.unwrap();
    }
    drop(w); // the plugin failed: no commit
    assert!(
        bytes(&store).await > 0,
        "chunks were written while streaming"
    );
    assert!(snapshot::sweep_blocking(&store).unwrap() > 0);
    assert_eq!(bytes(&store).await, 0, "nothing left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn items_out_of_order_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let mut w = SnapshotWriter::new(store, "n", "files", day(0));
    w.push(Item::new("/b")).await.unwrap();
    let err = w.push(Item::new("/a")).await.unwrap_err();
    assert!(err.to_string().contains("out of order"), "{err}");
    assert!(w.push(Item::new("/b")).await.is_err(), "duplicates too");
}

fn distinct_items(n: usize, generation: usize) -> impl Iterator<Item = Item> {
    (0..n).map(move |i| {
        Item::new(format!("/etc/file-{i:06}"))
            .attr("type", "file")
            .attr("blake3", format!("gen-{generation}-{i}"))
    })
}

async fn write_items(store: &Store, node: &str, d: NaiveDate, items: impl Iterator<Item = Item>) {
    let mut w = SnapshotWriter::new(store.clone(), node, "files", d);
    for item in items {
        w.push(item).await.unwrap();
    }
    let scan = QueueTaskId {
        kind: QueueTaskKind::Scan,
        number: 1,
    };
    commit(w, scan, Vec::new()).await.unwrap();
}

/// Days whose data all differ share nothing: pruning them gives their space back.
#[tokio::test(flavor = "multi_thread")]
async fn pruning_gives_back_the_space_of_data_no_snapshot_keeps() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    write_items(&store, "a", day(0), distinct_items(2_000, 0)).await;
    let one = bytes(&store).await;
    for d in 1..10 {
        write_items(&store, "a", day(d), distinct_items(2_000, d as usize)).await;
    }
    let ten = bytes(&store).await;
    assert!(ten > one * 9, "ten distinct days: {ten} B vs one: {one} B");
    // Keep 3 days: days 7, 8 and 9 remain (day 6 is older than the cutoff).
    assert_eq!(snapshot::prune_blocking(&store, day(9), 2).unwrap(), 7);
    let after = bytes(&store).await;
    println!("one day {one} B, ten days {ten} B, after pruning to three {after} B");
    assert!(
        after < one * 4,
        "three days left cost {after} B, one day {one} B"
    );
    assert_eq!(snapshot::sweep_blocking(&store).unwrap(), 0);
}

/// A scan that finds its chunks already stored (unchanged data) keeps them even when the
/// only snapshot listing them is pruned while it runs.
#[tokio::test(flavor = "multi_thread")]
async fn pruning_during_a_scan_does_not_take_the_chunks_it_reuses() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    // Day 0 has data X, day 1 data Y; day 40's scan finds X again (a change was reverted).
    write_items(&store, "a", day(0), distinct_items(10_000, 0)).await;
    write_items(&store, "a", day(1), distinct_items(10_000, 1)).await;
    let mut w = SnapshotWriter::new(store.clone(), "a", "files", day(40));
    for item in distinct_items(10_000, 0) {
        w.push(item).await.unwrap();
    }
    // While it streams, retention prunes day 0, the only snapshot that lists X's chunks.
    assert_eq!(snapshot::prune_blocking(&store, day(40), 30).unwrap(), 1);
    let scan = QueueTaskId {
        kind: QueueTaskKind::Scan,
        number: 2,
    };
    let drift = commit(w, scan, Vec::new())
        .await
        .expect("the scan's chunks survived the pruning");
    assert_eq!(
        drift.changes.len(),
        10_000,
        "every item differs from day 1's"
    );
    // Nothing is left dangling, and the reused chunks are counted again.
    assert_eq!(snapshot::sweep_blocking(&store).unwrap(), 0);
    let latest = store
        .read(|tx| snapshot::latest_per_plugin(tx, "a"))
        .await
        .unwrap();
    assert_eq!(latest["files"].0, day(40));
}

/// Values are collected by a sweep, not counted: a value the sweep took because no stored
/// chunk listed it any more is stored again by the next scan that has it, and a day whose
/// chunks are all new but whose values are mostly stored writes only the new values.
#[tokio::test(flavor = "multi_thread")]
async fn a_value_swept_away_is_stored_again_by_the_scan_that_has_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    write_items(&store, "a", day(0), distinct_items(10_000, 0)).await;
    write_items(&store, "a", day(1), distinct_items(10_000, 1)).await;
    let two_days = bytes(&store).await;
    // Day 0 is pruned (day 1 stays as the node's newest): its chunks and values go.
    assert_eq!(snapshot::prune_blocking(&store, day(40), 30).unwrap(), 1);
    let one_day = bytes(&store).await;
    assert!(
        one_day * 3 < two_days * 2,
        "pruning day 0 freed its values: {two_days} B -> {one_day} B"
    );
    // Day 40 has day 0's values again, with one item in fifty changed, so that every
    // chunk is new while nearly every value was swept away above.
    let day40 = distinct_items(10_000, 0).enumerate().map(|(i, item)| {
        if i % 50 == 0 {
            item.attr("blake3", format!("gen-2-{i}"))
        } else {
            item
        }
    });
    write_items(&store, "a", day(40), day40).await;
    for (i, want) in [(1, "gen-0-1"), (50, "gen-2-50"), (9_999, "gen-0-9999")] {
        assert_eq!(
            digest_of(&store, i).await,
            (day(40), vigil_plugin::Value::from(want)),
            "item {i}"
        );
    }
    // Rescanning day 40 with the same items stores nothing new.
    let before = bytes(&store).await;
    let again = distinct_items(10_000, 0).enumerate().map(|(i, item)| {
        if i % 50 == 0 {
            item.attr("blake3", format!("gen-2-{i}"))
        } else {
            item
        }
    });
    write_items(&store, "a", day(40), again).await;
    // (The snapshot row is rewritten: its timestamp may take a few digits more or fewer.)
    let after = bytes(&store).await;
    assert!(
        after.abs_diff(before) < 8,
        "the same day again shares it all: {before} B, then {after} B"
    );
    assert_eq!(snapshot::sweep_blocking(&store).unwrap(), 0);
}

/// Item `i`'s digest (`/etc/file-NNNNNN` of node `a`'s newest `files` snapshot) and its day.
pub(crate) async fn digest_of(store: &Store, i: usize) -> (NaiveDate, vigil_plugin::Value) {
    let key = format!("/etc/file-{i:06}");
    let (d, value) = store
        .read(move |tx| snapshot::current_item(tx, "a", "files", &key))
        .await
        .unwrap()
        .expect("the item is stored");
    (d, value.attributes["blake3"].clone())
}

/// Attributes a plugin declares volatile (a pid, an inode) are not drift.
#[tokio::test(flavor = "multi_thread")]
async fn volatile_attributes_are_not_drift() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let scan = QueueTaskId {
        kind: QueueTaskKind::Scan,
        number: 1,
    };
    let write = |d: u32, pid: i64, volatile: Vec<String>| {
        let store = store.clone();
        async move {
            let mut w = SnapshotWriter::new(store, "n", "ports", day(d));
            w.push(Item::new("tcp:22").attr("pid", pid).attr("process", "sshd"))
                .await
                .unwrap();
            commit(w, scan, volatile).await.unwrap()
        }
    };
    write(0, 100, vec!["pid".into()]).await;
    let drift = write(1, 200, vec!["pid".into()]).await;
    assert!(drift.changes.is_empty(), "{:?}", drift.changes);
    // Not declared volatile: the same change is drift.
    let drift = write(2, 300, Vec::new()).await;
    assert_eq!(drift.changes.len(), 1, "{:?}", drift.changes);
}

/// Drift records are pruned in batches: every record from before the cutoff goes, however
/// many batches that takes, and newer ones stay.
#[tokio::test(flavor = "multi_thread")]
async fn pruning_removes_old_drift_records_across_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    // More node × day records than one pruning batch (256) holds.
    let nodes: Vec<String> = (0..150).map(|i| format!("n{i:03}")).collect();
    for d in 0..4 {
        for node in &nodes {
            write_day(&store, node, day(d), 3, Some(d as usize)).await;
        }
    }
    let count = |store: &Store, d: u32| {
        let nodes = nodes.clone();
        store
            .read_blocking(move |tx| -> Result<usize, vigil::store::StoreError> {
                let mut n = 0;
                for node in &nodes {
                    n += drift::of_day(tx, node, day(d))?.len();
                }
                Ok(n)
            })
            .unwrap()
    };
    let counts = |store: &Store| [0, 1, 2, 3].map(|d| count(store, d));
    assert_eq!(counts(&store), [150; 4]);
    // On day 3, keeping one day: the 300 records of days 0 and 1 go, days 2 and 3 stay.
    drift::prune_blocking(&store, day(3), 1).unwrap();
    assert_eq!(counts(&store), [0, 0, 150, 150]);
}

/// What a scan could not see is kept from the baseline, not reported as removed, and the
/// next scan that sees it again is compared with what was last known (no false "added").
#[tokio::test(flavor = "multi_thread")]
async fn unseen_subtrees_are_kept_from_the_baseline_not_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let scan = QueueTaskId {
        kind: QueueTaskKind::Scan,
        number: 1,
    };
    // Enough items under the unseen directory to span several chunks.
    let private: Vec<Item> = (0..600)
        .map(|i| Item::new(format!("/etc/ssl/private/k{i:04}")).attr("size", i as i64))
        .collect();
    let write = |d: u32, with_private: Option<usize>, unseen: Vec<String>| {
        let store = store.clone();
        let private = private.clone();
        async move {
            let mut w = SnapshotWriter::new(store, "n", "files", day(d));
            w.push(Item::new("/etc/hosts").attr("size", 1i64))
                .await
                .unwrap();
            if let Some(changed) = with_private {
                for (i, item) in private.into_iter().enumerate() {
                    let item = if i == changed {
                        item.attr("size", 99_999i64)
                    } else {
                        item
                    };
                    w.push(item).await.unwrap();
                }
            }
            w.push(Item::new("/etc/zz").attr("size", 2i64))
                .await
                .unwrap();
            let taken = snapshot::Taken {
                unseen,
                ..Default::default()
            };
            w.commit(Commit::Durable, scan, taken, |tx, c| {
                drift::record(tx, c, &DiffRules::default(), &drift::ReadyDiffs::default())
            })
            .await
            .unwrap()
        }
    };
    write(0, Some(usize::MAX), Vec::new()).await;
    // Day 1: /etc/ssl could not be read.
    let blind = write(1, None, vec!["/etc/ssl".into()]).await;
    assert!(blind.changes.is_empty(), "{:?}", blind.changes);
    assert_eq!(blind.items, 602, "the unseen items are kept");
    assert!(
        blind.coverage_notes.iter().any(|n| n.contains("600 items")),
        "{:?}",
        blind.coverage_notes
    );
    // Day 2: seen again, one of them changed: that change alone.
    let seen = write(2, Some(17), Vec::new()).await;
    let keys: Vec<&str> = seen.changes.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["/etc/ssl/private/k0017"]);
}
