//! Snapshot storage (issue 6): unchanged data does not grow the store day after day,
//! identical nodes share storage, and pruning gives space back. Library level: the store
//! and the snapshot writer, without a daemon, so thirty days take a second.

use chrono::NaiveDate;
use vigil::drift::DiffRules;
use vigil::proto::{TaskId, TaskKind};
use vigil::snapshot::{self, SnapshotWriter};
use vigil::store::Store;
use vigil_plugin::Item;

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
    let scan = TaskId {
        kind: TaskKind::Scan,
        number: 1,
    };
    let drift = w
        .commit(scan, Vec::new(), Vec::new(), DiffRules::default())
        .await
        .unwrap();
    drift.changes.len()
}

async fn bytes(store: &Store) -> u64 {
    store.read(snapshot::stored_bytes).await.unwrap()
}

fn day(n: u32) -> NaiveDate {
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
