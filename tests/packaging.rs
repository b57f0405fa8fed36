//! What ships (issue 20): versions carry the commit, the installed config is the example with
//! production paths, and the Debian package, install.sh and the unit agree on the layout.

use std::process::Command;

use crate::common::{VIGIL, VIGILD};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// "NAME 0.1.0 (commit abc1234)", or "commit unknown" for a build outside git.
fn assert_version_line(bin: &str, name: &str) {
    let out = Command::new(bin).arg("--version").output().unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let rest = line
        .trim_end()
        .strip_prefix(&format!("{name} {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{name} --version printed {line:?}"));
    assert!(
        rest == "unknown" || (rest.len() >= 7 && rest.chars().all(|c| c.is_ascii_hexdigit())),
        "{name} --version printed {line:?}"
    );
}

#[test]
fn versions_name_the_commit() {
    assert_version_line(VIGIL, "vigil");
    assert_version_line(VIGILD, "vigild");
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef vigil"),
        ("fish", "complete -c vigil"),
    ] {
        let out = Command::new(VIGIL)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "vigil completions {shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(marker),
            "vigil completions {shell}: no {marker:?}"
        );
        assert!(
            text.contains("close-all"),
            "vigil completions {shell} lacks subcommands"
        );
    }
}

/// The config both install paths ship: the example with the installed layout's paths, parsed
/// by the daemon's own config types.
#[test]
fn production_config_is_the_example_with_installed_paths() {
    let out = Command::new("bash")
        .arg(format!("{ROOT}/packaging/production-config"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "production-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let config: vigil::config::Config = toml::from_str(&text).unwrap();
    assert_eq!(config.policy_dir.to_str(), Some("/etc/vigil/policies"));
    assert_eq!(config.daemon.state_dir.to_str(), Some("/var/lib/vigil"));
    assert_eq!(
        config.daemon.socket.to_str(),
        Some(vigil::config::DEFAULT_SOCKET)
    );
    assert_eq!(
        config.daemon.plugin_dir.to_str(),
        Some("/usr/lib/vigil/plugins")
    );
    assert_eq!(config.daemon.socket_group.as_deref(), Some("vigil"));
    assert!(
        !text.contains("cargo "),
        "the example's how-to-run header is left in"
    );
    // Everything else is the example, line for line.
    let example = std::fs::read_to_string(format!("{ROOT}/config.toml.example")).unwrap();
    let changed = example
        .lines()
        .filter(|l| !text.lines().any(|t| t == *l))
        .count();
    assert!(changed <= 8, "{changed} lines of the example changed");
}

fn deb_assets() -> Vec<(String, String)> {
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(format!("{ROOT}/Cargo.toml")).unwrap()).unwrap();
    manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .expect("[package.metadata.deb] assets")
        .iter()
        .map(|a| {
            let a = a.as_array().expect("assets as [source, dest, mode]");
            (
                a[0].as_str().unwrap().to_owned(),
                a[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The package puts vigild where the unit runs it and vigil on PATH, and install.sh installs
/// exactly the package's binaries and plugins, at the same places and modes.
#[test]
fn package_install_script_and_unit_agree_on_the_layout() {
    let assets = deb_assets();
    let dest_of = |src: &str| {
        assets
            .iter()
            .find(|(s, _)| s == src)
            .map(|(_, d)| d.as_str())
    };
    assert_eq!(dest_of("target/release/vigild"), Some("usr/sbin/"));
    assert_eq!(dest_of("target/release/vigil"), Some("usr/bin/"));

    let out = Command::new("bash")
        .arg(format!("{ROOT}/systemd/install.sh"))
        .arg("--list")
        .output()
        .unwrap();
    assert!(out.status.success(), "install.sh --list");
    let listed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_owned())
        .collect();
    let built: Vec<String> = assets
        .iter()
        .filter_map(|(src, dest)| {
            let name = src.strip_prefix("target/release/")?;
            let to = match dest.ends_with('/') {
                true => format!("/{dest}{name}"),
                false => format!("/{dest}"),
            };
            (!name.contains(['/', '*'])).then_some(to)
        })
        .collect();
    assert_eq!(
        listed, built,
        "install.sh and the package install different files"
    );

    let unit = std::fs::read_to_string(format!("{ROOT}/systemd/vigild.service")).unwrap();
    for line in unit.lines().filter(|l| l.starts_with("ExecStart")) {
        assert!(line.contains("=/usr/sbin/vigild "), "{line}");
    }
}

/// The package's changelog (/usr/share/doc/vigil/changelog.Debian.gz) starts at the version
/// being packaged: bump it with the crate.
#[test]
fn debian_changelog_is_at_the_crate_version() {
    let log = std::fs::read_to_string(format!("{ROOT}/packaging/debian/changelog")).unwrap();
    let top = log.lines().next().unwrap_or_default();
    let want = format!("vigil ({}-", env!("CARGO_PKG_VERSION"));
    assert!(
        top.starts_with(&want),
        "packaging/debian/changelog starts {top:?}, not {want:?}"
    );
}
