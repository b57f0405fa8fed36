//! A damaged database is found, not served: flipped bytes, an empty file and a truncated
//! one are refused at start (a message containing "corrupt" and how to restore) and by
//! `vigild check`; what does start serves exactly what the intact file held.

use std::io::{Seek, SeekFrom, Write};
use std::process::Command;

use nix::sys::signal::Signal;

use crate::common::{json, Daemon, TestDir, VIGILD};

fn db(dir: &TestDir) -> std::path::PathBuf {
    dir.path().join("state/vigil.redb")
}

fn check(dir: &TestDir, repair: bool) -> (Option<i32>, String) {
    let mut cmd = Command::new(VIGILD);
    cmd.arg("check").arg("--config").arg(dir.config_path());
    if repair {
        cmd.arg("--repair");
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// What a client sees of the stored history: the scan log and the node's items.
fn served(d: &Daemon) -> Vec<(u16, String)> {
    [
        "/v1/logs/scans?limit=100",
        "/v1/nodes",
        "/v1/tasks?limit=100",
    ]
    .iter()
    .map(|p| {
        let (code, body) = d.http("GET", p, None);
        // Times of the daemon itself change from run to run; the stored rows do not.
        (code, body)
    })
    .collect()
}

fn stop(mut d: Daemon) {
    d.signal(Signal::SIGTERM);
    assert!(d.wait_exit().success());
}

#[test]
fn flipped_bytes_are_refused_or_change_nothing_served() {
    let dir = TestDir::new();
    let d = super::start(&dir, 2, "", "");
    d.queue_and_wait(serde_json::json!({"kind": "scan", "plugins": ["ok"]}));
    let intact = served(&d);
    stop(d);
    let pristine = std::fs::read(db(&dir)).unwrap();
    let (code, text) = check(&dir, false);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("OK, no damage found"), "{text}");

    let len = pristine.len() as u64;
    let mut refused = 0;
    for i in 0..10u64 {
        // Spread over the file, past the first 4 KiB (the header and its two commit slots
        // are checked by redb's open already).
        let offset = 4096 + (len - 4096 - 64) * i / 10;
        std::fs::write(db(&dir), &pristine).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(db(&dir))
            .unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        let flipped: Vec<u8> = pristine[offset as usize..offset as usize + 64]
            .iter()
            .map(|b| !b)
            .collect();
        f.write_all(&flipped).unwrap();
        drop(f);
        let (check_code, check_text) = check(&dir, false);
        match Daemon::start_on(&dir) {
            Err(log) => {
                refused += 1;
                assert!(log.contains("corrupt"), "offset {offset}: {log}");
                assert!(log.contains("restore"), "offset {offset}: {log}");
                assert_eq!(check_code, Some(1), "offset {offset}: {check_text}");
                assert!(check_text.contains("corrupt"), "{check_text}");
            }
            Ok(d) => {
                // Undamaged live data (the bytes were free space): served as before.
                assert_eq!(
                    served(&d),
                    intact,
                    "offset {offset} started and served otherwise"
                );
                assert_eq!(d.status_json()["store"]["state"], "ok");
                stop(d);
                assert_eq!(check_code, Some(0), "offset {offset}: {check_text}");
            }
        }
    }
    eprintln!("flipped bytes: {refused} of 10 offsets refused, the rest in free pages");
    assert!(refused > 0, "some offsets hit live pages");

    // `--repair` on damage it cannot repair says corrupt and exits 1; the intact file is
    // then restored by copying it back, as the message says.
    std::fs::write(db(&dir), &pristine).unwrap();
    let d = Daemon::start_on(&dir).expect("the restored file starts");
    assert_eq!(served(&d), intact);
}

#[test]
fn an_empty_or_truncated_database_is_refused_with_how_to_restore() {
    let dir = TestDir::new();
    let d = super::start(&dir, 1, "", "");
    d.queue_and_wait(serde_json::json!({"kind": "scan", "plugins": ["ok"]}));
    stop(d);
    let pristine = std::fs::read(db(&dir)).unwrap();
    for (what, bytes) in [("empty", 0usize), ("truncated", pristine.len() / 2)] {
        std::fs::write(db(&dir), &pristine[..bytes]).unwrap();
        let log = Daemon::start_on(&dir).err().expect("refused");
        assert!(log.contains("corrupt"), "{what}: {log}");
        assert!(
            log.contains("restore the state directory from a backup"),
            "{what}: {log}"
        );
        let (code, text) = check(&dir, false);
        assert_eq!(code, Some(1), "{what}: {text}");
        assert!(text.contains("corrupt"), "{what}: {text}");
        // Never replaced by a fresh database.
        assert_eq!(
            std::fs::metadata(db(&dir)).unwrap().len(),
            bytes as u64,
            "{what}"
        );
    }
    std::fs::write(db(&dir), &pristine).unwrap();
    let d = Daemon::start_on(&dir).expect("the restored file starts");
    let (_, body) = d.http("GET", "/v1/logs/scans", None);
    assert_eq!(json(&body)["total"], 1, "{body}");
}

#[test]
fn the_integrity_check_can_be_turned_off() {
    let dir = TestDir::new();
    let d = super::start(&dir, 1, "check_integrity = false", "");
    assert!(!d.log_text().contains("verified in"), "{}", d.log_text());
    stop(d);
    let d = super::start(&dir, 1, "", "");
    assert!(d.log_text().contains("verified in"), "{}", d.log_text());
}

/// The head of the reply to `GET path` (status line and headers).
fn reply_head(d: &Daemon, path: &str) -> String {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split("\r\n\r\n").next().unwrap().to_ascii_lowercase()
}

#[test]
fn an_undecodable_row_is_named_by_check_and_counted_in_the_reply_that_lacks_it() {
    let dir = TestDir::new();
    let d = super::start(&dir, 2, "", "");
    d.queue_and_wait(serde_json::json!({"kind": "scan", "plugins": ["ok"]}));
    let head = reply_head(&d, "/v1/logs/scans");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("vigil-undecodable-rows"), "{head}");
    stop(d);
    let (code, text) = check(&dir, false);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("rows of"), "{text}");

    // A value redb holds intact that is not a row: written through redb itself, vigild
    // stopped (redb's integrity check cannot see this kind of damage).
    {
        let db = redb::Database::open(db(&dir)).unwrap();
        let table: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("scan_log");
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(table).unwrap();
            let first = redb::ReadableTable::first(&t).unwrap().unwrap().0.value();
            t.insert(first, b"{\"status\": 17".as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }
    let (code, text) = check(&dir, false);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("corrupt"), "{text}");
    assert!(
        text.contains("table scan_log: 1 of 2 scan log row rows"),
        "{text}"
    );
    let (code, text) = check(&dir, true);
    assert_eq!(code, Some(1), "--repair cannot mend a row: {text}");

    // vigild starts (the file itself is sound), serves the other row, and says in the reply
    // that one is missing; the CLI warns; /v1/status counts it.
    let d = Daemon::start_on(&dir).expect("vigild starts");
    let (code, body) = d.http("GET", "/v1/logs/scans", None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["rows"].as_array().unwrap().len(), 1, "{body}");
    let head = reply_head(&d, "/v1/logs/scans");
    assert!(head.contains("\r\nvigil-undecodable-rows: 1"), "{head}");
    let head = reply_head(&d, "/v1/nodes");
    assert!(!head.contains("vigil-undecodable-rows"), "{head}");
    let out = d.vigil(&["log", "scans"]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: 1 stored row(s) could not be read"),
        "{err}"
    );
    let out = d.vigil(&["--json", "log", "scans"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_ok(),
        "stdout stays JSON: {text}"
    );
    // Counted at every read that met it since the start (four replies so far).
    let status = d.status_json();
    assert!(
        status["store"]["undecodable_rows"]["scan log row"].as_u64() >= Some(1),
        "{status}"
    );
}
