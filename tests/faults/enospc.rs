//! A full disk: the state dir on a small tmpfs, filled up during a scan. The ENOSPC is
//! logged, status shows the store failing, writes get 503 with the cause, and once space is
//! back vigild exits non-zero (systemd restarts it) and starts clean on its data.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{is_root, json, Daemon, TestDir};

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// `Err` says why it cannot be mounted here (not root, no mount privilege in a container).
    fn mount(at: &std::path::Path, size: &str) -> Result<Tmpfs, String> {
        if !is_root() {
            return Err("not root: mounting a tmpfs needs root".to_owned());
        }
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` with `dir/filler` until a write fails.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0xa5u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    // Room for the small commits of a request, not for a scan's chunks.
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(256 << 10)).unwrap();
    path
}

#[test]
fn a_full_disk_is_loud_and_recovers_by_restart() {
    let dir = TestDir::new();
    let fs = match Tmpfs::mount(&dir.path().join("state"), "12m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED a_full_disk_is_loud_and_recovers_by_restart: {why}");
            return;
        }
    };
    let extra = format!(
        "[[plugin]]\nname = \"big\"\nlibrary = \"{}\"\n[plugin.config]\nmode = \"bulk\"\ncount = 8000\npad = 512\n",
        super::fixture_lib().display()
    );
    let d = super::start(&dir, 1, "", &extra);
    let first = d.queue_and_wait(serde_json::json!({"kind": "scan", "plugins": ["ok"]}));
    assert_eq!(first[0]["status"], "Finished", "{}", first[0]);
    assert_eq!(d.status_json()["store"]["state"], "ok");

    let filler = fill(&fs.0);
    let (code, body) = d.http(
        "POST",
        "/v1/queue",
        Some(r#"{"kind":"scan","plugins":["big"]}"#),
    );
    assert_eq!(code, 200, "{body}");
    d.wait_for("the store to be failing", |d| {
        d.status_json()["store"]["state"] == "failing"
    });
    let store = d.status_json()["store"].clone();
    let error = store["error"].as_str().unwrap();
    assert!(error.contains("No space left on device"), "{store}");
    assert!(store["since"].is_string(), "{store}");
    let log = d.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("No space left on device")),
        "the ENOSPC is logged:\n{log}"
    );
    // `vigil status` shows it.
    let out = String::from_utf8_lossy(&d.vigil(&["status"]).stdout).into_owned();
    assert!(
        out.contains("FAILING since") && out.contains("No space left"),
        "{out}"
    );
    // A write meanwhile: 503 with the cause, not 500.
    let (code, body) = d.http(
        "POST",
        "/v1/queue",
        Some(r#"{"kind":"scan","plugins":["ok"]}"#),
    );
    assert_eq!(code, 503, "{body}");
    let e = json(&body);
    assert_eq!(e["error"]["code"], "store_failing", "{body}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{body}"
    );

    // Space is back: vigild notices, stops and exits non-zero for systemd to restart it.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let mut d = d;
    let status = d.wait_exit();
    let exited = freed.elapsed();
    assert!(!status.success(), "{status:?}");
    assert!(
        d.log_text().contains("takes writes again"),
        "{}",
        d.log_text()
    );
    let restarted = Instant::now();
    let d = Daemon::start_on(&dir).expect("vigild restarts on its data");
    eprintln!(
        "ENOSPC recovery: exit {:?} after space was freed, restart ready in {:?}",
        exited,
        restarted.elapsed()
    );
    assert!(exited < Duration::from_secs(10), "{exited:?}");
    assert_eq!(d.status_json()["store"]["state"], "ok");
    let (code, body) = d.http("GET", "/v1/logs/scans?limit=10", None);
    assert_eq!(code, 200, "{body}");
    let rows = json(&body)["rows"].as_array().unwrap().clone();
    assert!(
        rows.iter().any(|r| r["id"] == first[0]["id"]),
        "the scan before the failure is intact: {body}"
    );
    // The interrupted big scan is resumed or ended; new work is taken.
    let again = d.queue_and_wait(serde_json::json!({"kind": "scan", "plugins": ["ok"]}));
    assert_eq!(again[0]["status"], "Finished", "{}", again[0]);
}
