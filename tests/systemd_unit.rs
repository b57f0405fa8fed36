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

const INSTALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/install.sh");

/// The install script parses, and ships the standard plugins by name: every cdylib plugin
/// crate under plugins/ and nothing else (not the test fixtures' library).
#[test]
fn install_script_ships_exactly_the_standard_plugins() {
    let out = Command::new("bash")
        .arg("-n")
        .arg(INSTALL)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash -n install.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = std::fs::read_to_string(INSTALL).unwrap();
    assert!(
        !script.contains("libvigil_*"),
        "install.sh must not glob the libraries"
    );
    let listed: Vec<&str> = script
        .lines()
        .find_map(|l| l.strip_prefix("PLUGINS=("))
        .and_then(|l| l.strip_suffix(')'))
        .expect("a PLUGINS=(...) line in install.sh")
        .split_whitespace()
        .collect();
    assert_eq!(
        listed,
        ["files", "packages", "accounts", "services", "sysctl", "ports"]
    );
    let plugins = concat!(env!("CARGO_MANIFEST_DIR"), "/plugins");
    let mut cdylibs: Vec<String> = std::fs::read_dir(plugins)
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("Cargo.toml")).ok())
        .filter(|toml| toml.contains("\"cdylib\""))
        .filter_map(|toml| {
            toml.lines()
                .find_map(|l| l.strip_prefix("name = \"vigil_"))
                .map(|n| n.trim_end_matches('"').to_owned())
        })
        .collect();
    cdylibs.sort();
    let mut want: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(cdylibs, want, "a plugin crate is missing from install.sh");
}
