//! A scan that times out keeps what it found so far: its notes and its items count.

use crate::common::TestDir;

#[test]
fn a_timed_out_scan_keeps_its_notes_and_items_so_far() {
    let dir = TestDir::new();
    let d = super::start(&dir, 1, "task_timeout = \"1s\"", "");
    let rows = d.queue_and_wait(serde_json::json!({"kind": "scan", "plugins": ["stall"]}));
    let row = &rows[0];
    assert_eq!(row["status"], "Failed", "{row}");
    assert!(
        row["messages"][0]
            .as_str()
            .unwrap()
            .contains("timed out after 1s"),
        "{row}"
    );
    assert_eq!(row["items_scanned"], 5, "{row}");
    let run = &row["plugins"][0];
    assert_eq!(run["items"], 5, "{row}");
    assert_eq!(run["notes"][0], "fixture: seen so far", "{row}");
}
