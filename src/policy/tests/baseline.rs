//! The shipped `policies/debian-baseline.toml`: it loads, and it tells a hardened node from a
//! weak one for the right reasons.

use std::collections::BTreeMap;
use std::path::Path;

use vigil_plugin::Item;

use super::super::{load_dir, Evaluator, Outcome, Policy};
use super::plugins;

fn baseline() -> Policy {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut all = load_dir(&dir, &plugins()).unwrap_or_else(|e| panic!("{e}"));
    let i = all
        .iter()
        .position(|p| p.name == "debian-baseline")
        .expect("shipped");
    all.swap_remove(i)
}

/// What the plugins of one node report, by plugin.
struct Node(BTreeMap<&'static str, Vec<Item>>);

impl Node {
    fn with(mut self, plugin: &'static str, item: Item) -> Self {
        self.0
            .entry(plugin)
            .or_default()
            .retain(|i| i.key != item.key);
        self.0.entry(plugin).or_default().push(item);
        self
    }

    fn without(mut self, plugin: &'static str, key: &str) -> Self {
        self.0.entry(plugin).or_default().retain(|i| i.key != key);
        self
    }

    /// Each check's (id, outcome), evaluating plugin by plugin as an audit does.
    fn audit(&self, p: &Policy) -> BTreeMap<String, (Outcome, String)> {
        let mut out = BTreeMap::new();
        for plugin in ["files", "packages", "accounts", "sysctl"] {
            let checks: Vec<_> = p.checks_for(plugin).collect();
            let mut ev = Evaluator::new(&checks);
            for item in self.0.get(plugin).into_iter().flatten() {
                ev.observe(item);
            }
            for r in ev.finish() {
                out.insert(r.check, (r.outcome, r.evidence));
            }
        }
        out
    }
}

fn file(key: &str, kind: &str, mode: &str) -> Item {
    Item::new(key)
        .attr("type", kind)
        .attr("mode", mode)
        .attr("uid", 0i64)
}

fn user(name: &str, uid: i64, password: &str) -> Item {
    Item::new(format!("user:{name}"))
        .attr("uid", uid)
        .attr("password", password)
}

const GOOD_SSHD: &str = "Port 22\nPermitRootLogin no\nPasswordAuthentication no\n";

fn hardened() -> Node {
    let mut sshd = file("/etc/ssh/sshd_config", "file", "0644");
    sshd.content = Some(GOOD_SSHD.to_owned());
    Node(BTreeMap::new())
        .with("files", file("/etc", "dir", "0755"))
        .with("files", file("/etc/passwd", "file", "0644"))
        .with("files", file("/etc/shadow", "file", "0640"))
        .with("files", file("/etc/mtab", "symlink", "0777"))
        .with("files", sshd)
        .with(
            "packages",
            Item::new("openssh-server").attr("version", "1:9.2p1-2+deb12u3"),
        )
        .with(
            "packages",
            Item::new("unattended-upgrades").attr("version", "2.9.1+nmu3"),
        )
        .with("accounts", user("root", 0, "set"))
        .with("accounts", user("daemon", 1, "locked"))
        .with("accounts", user("alice", 1000, "set"))
        .with(
            "sysctl",
            Item::new("net.ipv4.ip_forward").attr("value", "0"),
        )
}

#[test]
fn the_shipped_baseline_loads_with_every_required_check() {
    let p = baseline();
    let ids: Vec<&str> = p.checks.iter().map(|c| c.id.as_str()).collect();
    for want in [
        "ssh-no-root-login",
        "ssh-no-password-auth",
        "shadow-mode",
        "passwd-mode",
        "etc-not-world-writable",
        "no-telnetd",
        "no-rsh-server",
        "unattended-upgrades",
        "no-ip-forward",
        "only-root-has-uid-0",
        "no-empty-passwords",
    ] {
        assert!(ids.contains(&want), "{want} missing from {ids:?}");
    }
}

#[test]
fn a_hardened_node_passes_every_check() {
    let p = baseline();
    let results = hardened().audit(&p);
    assert_eq!(results.len(), p.checks.len());
    for (id, (outcome, evidence)) in &results {
        assert_eq!(*outcome, Outcome::Pass, "{id}: {evidence}");
    }
}

#[test]
fn a_weak_node_fails_each_check_for_its_own_reason() {
    let mut weak_sshd = file("/etc/ssh/sshd_config", "file", "0644");
    weak_sshd.content = Some("PermitRootLogin yes\nPasswordAuthentication yes\n".to_owned());
    let node = hardened()
        .with("files", weak_sshd)
        .with("files", file("/etc/shadow", "file", "0644"))
        .with("files", file("/etc/passwd", "file", "0664"))
        .with("files", file("/etc/cron.d/job", "file", "0666"))
        .with("packages", Item::new("telnetd").attr("version", "0.17-44"))
        .with(
            "packages",
            Item::new("rsh-server").attr("version", "0.17-24"),
        )
        .without("packages", "unattended-upgrades")
        .with(
            "sysctl",
            Item::new("net.ipv4.ip_forward").attr("value", "1"),
        )
        .with("accounts", user("toor", 0, "set"))
        .with("accounts", user("deploy", 1001, "empty"));
    let results = node.audit(&baseline());
    let want = [
        ("ssh-no-root-login", "content matches"),
        ("ssh-no-password-auth", "PasswordAuthentication yes"),
        (
            "shadow-mode",
            "/etc/shadow: mode is 0644, expected one of 0640, 0600",
        ),
        ("passwd-mode", "/etc/passwd: mode is 0664, expected 0644"),
        ("etc-not-world-writable", "/etc/cron.d/job"),
        ("no-telnetd", "telnetd: present, expected absent"),
        ("no-rsh-server", "rsh-server: present, expected absent"),
        (
            "unattended-upgrades",
            "unattended-upgrades: not found, expected present",
        ),
        ("no-ip-forward", "value is 1, expected 0"),
        ("only-root-has-uid-0", "user:toor"),
        ("no-empty-passwords", "user:deploy"),
    ];
    for (id, needle) in want {
        let (outcome, evidence) = &results[id];
        assert_eq!(*outcome, Outcome::Fail, "{id}: {evidence}");
        assert!(
            evidence.contains(needle),
            "{id}: {evidence:?} lacks {needle:?}"
        );
    }
    // The symlink /etc/mtab (always 0777) is not a world-writable file.
    assert!(!results["etc-not-world-writable"].1.contains("/etc/mtab"));
    assert_eq!(results["no-rsh-client"].0, Outcome::Pass);
}

#[test]
fn ssh_checks_without_captured_content_are_errors_not_failures() {
    let node = hardened().with("files", file("/etc/ssh/sshd_config", "file", "0644"));
    let results = node.audit(&baseline());
    for id in ["ssh-no-root-login", "ssh-no-password-auth"] {
        assert_eq!(results[id].0, Outcome::Error, "{id}: {}", results[id].1);
    }
}

#[test]
fn unset_ip_forward_passes() {
    let node = hardened().without("sysctl", "net.ipv4.ip_forward");
    assert_eq!(node.audit(&baseline())["no-ip-forward"].0, Outcome::Pass);
}
