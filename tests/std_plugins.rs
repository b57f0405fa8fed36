//! The standard plugins end to end: each cdylib built by `cargo build --workspace`, loaded by
//! the real `vigild plugin run` worker, on the Debian fixture root
//! (`tests/fixtures/nodes/debian`, see its README) or, for `files`, on a tree built here.
//!
//! Every run also checks what downstream diffing relies on: item keys strictly increasing
//! byte-wise (so sorted and unique).

use std::fs::{self, Permissions};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use vigil_plugin::{Item, Value};

const VIGILD: &str = env!("CARGO_BIN_EXE_vigild");
const DEBIAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nodes/debian");

/// One finished `vigild plugin run`, exit 0 and keys checked.
struct Run {
    stdout: String,
    stderr: String,
    items: Vec<Item>,
}

impl Run {
    fn keys(&self) -> Vec<&str> {
        self.items.iter().map(|i| i.key.as_str()).collect()
    }

    fn item(&self, key: &str) -> &Item {
        self.items
            .iter()
            .find(|i| i.key == key)
            .unwrap_or_else(|| panic!("no item {key:?} in {:?}", self.keys()))
    }

    /// Attribute `name` of item `key`, as text.
    fn attr(&self, key: &str, name: &str) -> String {
        match self.item(key).attributes.get(name) {
            Some(v) => v.to_string(),
            None => panic!("item {key:?} has no {name:?}: {:?}", self.item(key)),
        }
    }

    fn has_attr(&self, key: &str, name: &str) -> bool {
        self.item(key).attributes.contains_key(name)
    }

    /// The `note:` lines on stderr.
    fn notes(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("note: "))
            .collect()
    }
}

/// Runs `libvigil_NAME.so` on `root` and checks exit 0, NDJSON items and key order.
///
/// The library is copied into a private 0755 directory first: the worker refuses a library
/// whose directory is group- or world-writable, and the target dir's mode depends on the
/// umask of whoever built it.
fn run(name: &str, root: &Path, config: Option<&str>) -> Run {
    let file = format!("libvigil_{name}.so");
    let built = Path::new(VIGILD).with_file_name(&file);
    assert!(
        built.exists(),
        "{} missing: run `cargo build --workspace` before the tests",
        built.display()
    );
    let private = tempfile::tempdir().unwrap();
    fs::set_permissions(private.path(), Permissions::from_mode(0o755)).unwrap();
    let lib = private.path().join(&file);
    fs::copy(&built, &lib).unwrap();
    fs::set_permissions(&lib, Permissions::from_mode(0o755)).unwrap();

    let mut cmd = Command::new(VIGILD);
    cmd.args(["plugin", "run"])
        .arg(&lib)
        .arg("--root")
        .arg(root);
    if let Some(c) = config {
        cmd.args(["--config", c]);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
    let items: Vec<Item> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}")))
        .collect();
    for pair in items.windows(2) {
        assert!(
            pair[0].key.as_bytes() < pair[1].key.as_bytes(),
            "{name}: keys not strictly increasing byte-wise: {:?} then {:?}",
            pair[0].key,
            pair[1].key
        );
    }
    Run {
        stdout,
        stderr,
        items,
    }
}

/// Runs `libvigil_NAME.so` on `root` and returns its one `error:` line, checking exit 1 and
/// that no item was printed.
fn run_fails(name: &str, root: &Path) -> String {
    let file = format!("libvigil_{name}.so");
    let private = tempfile::tempdir().unwrap();
    fs::set_permissions(private.path(), Permissions::from_mode(0o755)).unwrap();
    let lib = private.path().join(&file);
    fs::copy(Path::new(VIGILD).with_file_name(&file), &lib).unwrap();
    fs::set_permissions(&lib, Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(VIGILD)
        .args(["plugin", "run"])
        .arg(&lib)
        .arg("--root")
        .arg(root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
    assert!(out.stdout.is_empty(), "{name}: items on stdout");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{name}: {stderr}");
    errors[0].to_owned()
}

fn debian() -> &'static Path {
    Path::new(DEBIAN)
}

#[test]
fn packages_reports_installed_dpkg_packages() {
    let r = run("packages", debian(), None);
    assert_eq!(
        r.keys(),
        [
            "base-files",
            "bash",
            "cron",
            "libc6:amd64",
            "libc6:i386",
            "libssl3",
            "openssh-server",
            "openssl",
            "systemd"
        ]
    );
    assert_eq!(r.attr("openssl", "version"), "3.0.11-1~deb12u2");
    assert_eq!(r.attr("openssl", "status"), "installed");
    assert_eq!(r.attr("openssh-server", "version"), "1:9.2p1-2+deb12u2");
    assert_eq!(r.attr("libssl3", "source"), "openssl");
    assert_eq!(r.attr("libc6:i386", "architecture"), "i386");
    assert!(r.notes().is_empty(), "{}", r.stderr);

    let all = run("packages", debian(), Some(r#"{"include_all": true}"#));
    assert_eq!(all.attr("rsyslog", "status"), "config-files");
    assert_eq!(all.items.len(), r.items.len() + 1);
}

#[test]
fn accounts_reports_users_and_groups_without_hashes() {
    let r = run("accounts", debian(), None);
    let users = r.keys().iter().filter(|k| k.starts_with("user:")).count();
    let groups = r.keys().iter().filter(|k| k.starts_with("group:")).count();
    assert_eq!(
        (users, groups, r.items.len()),
        (10, 12, 22),
        "{:?}",
        r.keys()
    );
    assert_eq!(r.item("user:alice").attributes["uid"], Value::Int(1000));
    assert_eq!(r.attr("user:alice", "gecos"), "Alice Example,,,");
    assert_eq!(r.attr("user:alice", "password"), "set");
    assert_eq!(r.attr("user:deploy", "password"), "empty");
    assert_eq!(r.attr("user:daemon", "password"), "locked");
    assert_eq!(r.attr("group:sudo", "members"), "alice,deploy");
    assert!(r.notes().is_empty(), "{}", r.stderr);

    // No hash, nor any recognisable piece of one, anywhere in the output.
    let shadow = fs::read_to_string(debian().join("etc/shadow")).unwrap();
    let mut hashes = 0;
    for line in shadow.lines() {
        let hash = line.split(':').nth(1).unwrap_or("");
        if hash.starts_with('$') {
            hashes += 1;
            for piece in std::iter::once(hash).chain(hash.split('$').filter(|p| p.len() > 3)) {
                assert!(!r.stdout.contains(piece), "{piece:?} in stdout");
                assert!(!r.stderr.contains(piece), "{piece:?} in stderr");
            }
        }
    }
    assert_eq!(hashes, 2, "the fixture should hold two fake hashes");
}

#[test]
fn services_reports_enabled_masked_and_alias_units() {
    let r = run("services", debian(), None);
    assert_eq!(r.attr("ssh.service", "state"), "enabled");
    assert_eq!(r.attr("ssh.service", "wanted_by"), "multi-user.target");
    assert_eq!(
        r.attr("ssh.service", "path"),
        "/usr/lib/systemd/system/ssh.service"
    );
    assert_eq!(r.attr("ssh.service", "blake3").len(), 64);
    assert_eq!(r.attr("foo.service", "state"), "masked");
    assert_eq!(r.attr("foo.service", "link_target"), "/dev/null");
    assert!(!r.has_attr("foo.service", "blake3"));
    assert_eq!(r.attr("sshd.service", "state"), "alias");
    assert_eq!(r.attr("sshd.service", "alias_of"), "ssh.service");
    assert_eq!(r.attr("cron.service", "state"), "disabled");
    assert_eq!(r.attr("getty@tty1.service", "state"), "enabled");
    assert_eq!(r.attr("getty@tty1.service", "template"), "getty@.service");
    assert_eq!(r.attr("systemd-journald.service", "state"), "static");
    assert_eq!(r.items.len(), 8, "{:?}", r.keys());
    assert!(r.notes().is_empty(), "{}", r.stderr);
}

#[test]
fn sysctl_resolves_overrides_with_their_source() {
    let r = run("sysctl", debian(), None);
    // Vendor default 1 in /usr/lib/sysctl.d/50-default.conf, overridden in /etc.
    assert_eq!(r.attr("kernel.kptr_restrict", "value"), "2");
    assert_eq!(
        r.attr("kernel.kptr_restrict", "source"),
        "/etc/sysctl.d/99-vigil.conf"
    );
    assert_eq!(r.attr("net.ipv4.ip_forward", "value"), "1");
    assert_eq!(r.attr("net.ipv4.ip_forward", "source"), "/etc/sysctl.conf");
    assert_eq!(
        r.attr("fs.protected_symlinks", "source"),
        "/usr/lib/sysctl.d/50-default.conf"
    );
    assert_eq!(r.items.len(), 8, "{:?}", r.keys());
    // Not the host's root: no live values.
    assert!(r.items.iter().all(|i| !i.attributes.contains_key("live")));
    assert!(r.notes().is_empty(), "{}", r.stderr);
}

#[test]
fn ports_is_empty_with_a_note_on_an_image() {
    let r = run("ports", debian(), None);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert_eq!(r.notes(), ["ports: live data only, root is not /"]);
}

#[test]
fn ports_reads_the_host_when_root_is_slash() {
    // What listens here depends on the machine; the run itself, the item shape and the key
    // order (checked by `run`) do not.
    let r = run("ports", Path::new("/"), None);
    for item in &r.items {
        let proto = item.attributes["protocol"].to_string();
        assert!(
            ["tcp", "tcp6", "udp", "udp6"].contains(&proto.as_str()),
            "{item:?}"
        );
        assert!(item.key.starts_with(&format!("{proto}:")), "{item:?}");
        assert!(
            matches!(item.attributes["port"], Value::Int(p) if p > 0),
            "{item:?}"
        );
    }
}

#[test]
fn files_reports_a_symlink_out_of_the_root_without_following_it() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), "host data\n").unwrap();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fs::create_dir(root.join("etc")).unwrap();
    fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(root.join("etc/empty"), "").unwrap();
    // `-` and `.` sort before `/`: byte-wise order is not pre-order.
    fs::create_dir(root.join("etc/a")).unwrap();
    fs::write(root.join("etc/a/x"), "x").unwrap();
    fs::write(root.join("etc/a-b"), "").unwrap();
    fs::write(root.join("etc/a.b"), "").unwrap();
    let target: PathBuf = outside.path().to_owned();
    symlink(&target, root.join("escape")).unwrap();

    let r = run("files", root, Some(r#"{"paths":["/"]}"#));
    assert_eq!(
        r.keys(),
        [
            "/",
            "/escape",
            "/etc",
            "/etc/a",
            "/etc/a-b",
            "/etc/a.b",
            "/etc/a/x",
            "/etc/empty",
            "/etc/hosts"
        ]
    );
    assert_eq!(r.attr("/escape", "type"), "symlink");
    assert_eq!(r.attr("/escape", "target"), target.to_str().unwrap());
    assert!(!r.has_attr("/escape", "blake3"));
    assert!(!r.stdout.contains("host data"));
    assert_eq!(r.attr("/etc", "type"), "dir");
    assert_eq!(r.attr("/etc/hosts", "type"), "file");
    assert_eq!(r.item("/etc/hosts").attributes["size"], Value::Int(20));
    // b3sum of the two files' contents.
    assert_eq!(
        r.attr("/etc/hosts", "blake3"),
        "f16092148f84b2eef72591be103e155d66601471464dfeb35590c334f45e85f0"
    );
    assert_eq!(
        r.attr("/etc/empty", "blake3"),
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    );
    assert!(!r.has_attr("/etc", "blake3"));
}

/// Issue 13 §6: a plugin whose primary source is missing fails its scan instead of reporting
/// 0 items, which the daemon would store as everything removed.
#[test]
fn a_missing_primary_source_fails_the_scan() {
    let empty = tempfile::tempdir().unwrap();
    let err = run_fails("packages", empty.path());
    assert!(
        err.contains("no dpkg status file at /var/lib/dpkg/status under the node root"),
        "{err}"
    );
    let err = run_fails("accounts", empty.path());
    assert!(
        err.contains("no passwd file at /etc/passwd under the node root"),
        "{err}"
    );
    let err = run_fails("services", empty.path());
    assert!(
        err.contains("no systemd unit directory under the node root"),
        "{err}"
    );
    // An existing but empty status file is a node with no packages.
    fs::create_dir_all(empty.path().join("var/lib/dpkg")).unwrap();
    fs::write(empty.path().join("var/lib/dpkg/status"), "").unwrap();
    let r = run("packages", empty.path(), None);
    assert!(r.items.is_empty() && r.notes().is_empty(), "{}", r.stderr);
}
