//! Drift of 1,000,000 unchanged items: writes two days of the same snapshot and times the
//! second commit (which diffs against the first) and a report-time re-diff.
//! Run: `cargo bench --bench diff_1m` (numbers go to the issue notes, not to tests).

use std::time::Instant;

use chrono::NaiveDate;
use vigil::drift::{self, DiffRules};
use vigil::proto::{QueueTaskId, QueueTaskKind};
use vigil::snapshot::{self, SnapshotWriter};
use vigil::store::{Commit, Store};
use vigil_plugin::Item;

const N: usize = 1_000_000;

fn item(i: usize, changed: bool) -> Item {
    Item::new(format!("/srv/data/{:03}/{i:07}", i % 997))
        .attr("type", "file")
        .attr("mode", "0644")
        .attr("size", (i % 65536) as i64)
        .attr(
            "blake3",
            if changed {
                format!("x{i}")
            } else {
                format!("{:064x}", i * 2654435761)
            },
        )
}

async fn day(store: &Store, d: NaiveDate, changed: Option<usize>) -> (f64, f64, usize) {
    let mut keys: Vec<usize> = (0..N).collect();
    keys.sort_by_key(|i| format!("/srv/data/{:03}/{i:07}", i % 997));
    let start = Instant::now();
    let mut w = SnapshotWriter::new(store.clone(), "node", "files", d);
    for i in keys {
        w.push(item(i, Some(i) == changed)).await.unwrap();
    }
    let streamed = start.elapsed().as_secs_f64();
    let commit = Instant::now();
    let id = QueueTaskId {
        kind: QueueTaskKind::Scan,
        number: 1,
    };
    let drift = w
        .commit(Commit::Durable, id, snapshot::Taken::default(), |tx, c| {
            drift::record(tx, c, &DiffRules::default(), &drift::ReadyDiffs::default())
        })
        .await
        .unwrap();
    (
        streamed,
        commit.elapsed().as_secs_f64(),
        drift.changes.len(),
    )
}

#[tokio::main]
async fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let d1 = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let d2 = d1.succ_opt().unwrap();
    let d3 = d2.succ_opt().unwrap();
    let (s1, c1, _) = day(&store, d1, None).await;
    println!("day 1: stream+store {N} items {s1:.2} s, commit {c1:.3} s");
    let (s2, c2, n2) = day(&store, d2, None).await;
    println!("day 2 (unchanged): stream+store {s2:.2} s, commit incl. diff of {N} items {c2:.3} s, {n2} changes");
    let (s3, c3, n3) = day(&store, d3, Some(123_456)).await;
    println!("day 3 (1 change): stream+store {s3:.2} s, commit incl. diff {c3:.3} s, {n3} changes");
    let size = std::fs::metadata(tmp.path().join("vigil.redb"))
        .unwrap()
        .len();
    let bytes = store.read(snapshot::stored_bytes).await.unwrap();
    println!(
        "store file {:.1} MB, snapshot bytes {:.1} MB for 3 days",
        size as f64 / 1e6,
        bytes as f64 / 1e6
    );
}
