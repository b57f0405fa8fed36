//! The shipped unit file: `systemd-analyze verify` is clean and the sandboxing scores 3.5 or
//! lower ("OK" or better) in `systemd-analyze security --offline=yes`.

use std::process::Command;

use crate::common::VIGILD;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/vigild.service");

fn systemd_analyze() -> bool {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: systemd-analyze is not installed");
    }
    found
}

/// The unit with ExecStart pointing at the freshly built binary (verify checks it exists).
fn unit_with_built_binary() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(UNIT)
        .unwrap()
        .replace("/usr/bin/vigild", VIGILD);
    std::fs::write(dir.path().join("vigild.service"), text).unwrap();
    dir
}

#[test]
fn unit_verifies_cleanly() {
    if !systemd_analyze() {
        return;
    }
    let dir = unit_with_built_binary();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("vigild.service"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
}

#[test]
fn unit_sandboxing_scores_ok() {
    if !systemd_analyze() {
        return;
    }
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(UNIT)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score in output: {text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read score from {line:?}"));
    assert!(score <= 3.5, "exposure {score} > 3.5: {line}");
}
