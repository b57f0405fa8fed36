//! The CLI never panics on a closed pipe, and `--json` errors are JSON on stderr.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use crate::common::{vigil_cmd, TestDir};

#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    let dir = TestDir::new();
    let d = super::start(&dir, 2, "", "");
    let (code, body) = d.http(
        "POST",
        "/v1/queue",
        Some(r#"{"kind":"scan","plugins":["ok"]}"#),
    );
    assert_eq!(code, 200, "{body}");
    d.wait_for("the scans", |d| {
        d.vigil(&["log", "scans"]).stdout.len() > 100
    });
    for args in [
        &["log", "scans", "--limit", "1000"][..],
        &["status"],
        &["status", "--json"],
        &["completions", "bash"],
    ] {
        // The reader is gone before the first write: every write is EPIPE.
        let mut child = vigil_cmd(&d.socket, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "vigil {args:?} panicked: {err}");
        assert!(
            out.status.signal() == Some(libc::SIGPIPE) || out.status.success(),
            "vigil {args:?} ended with {:?}: {err}",
            out.status
        );
        assert_ne!(out.status.code(), Some(101), "{args:?}");
    }
    // The shell form of the report.
    let pipeline = format!(
        "{} --socket {} log scans --limit 1000 | head -1; echo \"status=${{PIPESTATUS[0]}}\"",
        crate::common::VIGIL,
        d.socket.display()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&pipeline)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        text.contains("status=0") || text.contains("status=141"),
        "{text}{err}"
    );
}

#[test]
fn json_errors_are_json_on_stderr() {
    let dir = TestDir::new();
    let d = super::start(&dir, 1, "", "");
    let out = d.vigil(&["--json", "tasks", "show", "999999"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).expect("stderr is JSON");
    assert_eq!(err["error"]["code"], "not_found", "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("999999"));
    // Unreachable too (exit 2).
    let out = vigil_cmd(&dir.path().join("nowhere.sock"), &["--json", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).expect("stderr is JSON");
    assert_eq!(err["error"]["code"], "unreachable", "{err}");
}
