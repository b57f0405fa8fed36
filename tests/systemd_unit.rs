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
        .replace("/usr/sbin/vigild", VIGILD);
    std::fs::write(dir.path().join("vigild.service"), text).unwrap();
    dir
}

#[test]
fn unit_verifies_cleanly() {
    if !systemd_analyze() {
        return;
    }
    let dir = unit_with_built_binary();
    // --man=no: the Documentation= pages exist once installed; vigil-dist's tests check that
    // it generates each of them, and .ci/deb-test verifies the installed unit with them.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
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

/// The install script parses and lists the standard plugins by name: every cdylib plugin
/// crate under plugins/ and nothing else (not the test fixtures' library). Its list is the
/// Debian package's asset list in Cargo.toml, so the two ship the same.
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
    let out = Command::new("bash")
        .arg(INSTALL)
        .arg("--list")
        .output()
        .unwrap();
    assert!(out.status.success(), "install.sh --list");
    let list = String::from_utf8(out.stdout).unwrap();
    let mut listed: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|dest| dest.strip_prefix("/usr/lib/vigil/plugins/libvigil_"))
        .filter_map(|so| so.strip_suffix(".so"))
        .collect();
    listed.sort();
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
    assert_eq!(listed.len(), 6, "install.sh --list: {list}");
    assert_eq!(
        listed, cdylibs,
        "a plugin crate is missing from the package's assets"
    );
}
