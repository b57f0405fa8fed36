use super::*;
use std::fs;
use std::os::unix::fs::symlink;
use vigil_plugin::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/nodes/debian"
);

fn find<'a>(items: &'a [Item], key: &str) -> &'a Item {
    items
        .iter()
        .find(|i| i.key == key)
        .unwrap_or_else(|| panic!("no item {key} in {items:?}"))
}

fn attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.attributes.get(name) {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, text).unwrap();
}

fn link(root: &Path, rel: &str, target: &str) {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    symlink(target, path).unwrap();
}

const INSTALLABLE: &str =
    "[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n";

#[test]
fn fixture_unit_states() {
    let scan = scan_root(Path::new(FIXTURE)).unwrap();
    assert!(scan.notes.is_empty(), "{:?}", scan.notes);
    let keys: Vec<&str> = scan.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "cron.service",
            "foo.service",
            "getty@.service",
            "getty@tty1.service",
            "multi-user.target",
            "ssh.service",
            "sshd.service",
            "systemd-journald.service",
        ]
    );
    let state = |k: &str| attr(find(&scan.items, k), "state").map(str::to_owned);
    assert_eq!(state("ssh.service").as_deref(), Some("enabled"));
    assert_eq!(state("cron.service").as_deref(), Some("disabled"));
    assert_eq!(state("foo.service").as_deref(), Some("masked"));
    assert_eq!(state("getty@.service").as_deref(), Some("disabled"));
    assert_eq!(state("getty@tty1.service").as_deref(), Some("enabled"));
    assert_eq!(state("systemd-journald.service").as_deref(), Some("static"));
    assert_eq!(state("multi-user.target").as_deref(), Some("static"));
    assert_eq!(state("sshd.service").as_deref(), Some("alias"));

    let ssh = find(&scan.items, "ssh.service");
    assert_eq!(
        attr(ssh, "path"),
        Some("/usr/lib/systemd/system/ssh.service")
    );
    assert_eq!(attr(ssh, "wanted_by"), Some("multi-user.target"));
    let bytes = fs::read(Path::new(FIXTURE).join("usr/lib/systemd/system/ssh.service")).unwrap();
    assert_eq!(
        attr(ssh, "blake3"),
        Some(blake3::hash(&bytes).to_hex().as_str())
    );

    let foo = find(&scan.items, "foo.service");
    assert_eq!(attr(foo, "path"), Some("/etc/systemd/system/foo.service"));
    assert_eq!(attr(foo, "blake3"), None);
    let tty1 = find(&scan.items, "getty@tty1.service");
    assert_eq!(attr(tty1, "template"), Some("getty@.service"));
    assert_eq!(attr(tty1, "wanted_by"), Some("getty.target"));
    assert_eq!(
        attr(tty1, "path"),
        Some("/usr/lib/systemd/system/getty@.service")
    );
    assert_eq!(
        attr(find(&scan.items, "sshd.service"), "alias_of"),
        Some("ssh.service")
    );
}

#[test]
fn etc_overrides_vendor_unit_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "usr/lib/systemd/system/a.service", INSTALLABLE);
    write(
        root,
        "etc/systemd/system/a.service",
        "[Service]\nExecStart=/bin/false\n",
    );
    let scan = scan_root(root).unwrap();
    let a = find(&scan.items, "a.service");
    assert_eq!(attr(a, "path"), Some("/etc/systemd/system/a.service"));
    assert_eq!(attr(a, "state"), Some("static"));
}

#[test]
fn real_lib_dir_is_read_below_usr_lib() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "lib/systemd/system/old.service", INSTALLABLE);
    write(root, "lib/systemd/system/both.service", INSTALLABLE);
    write(root, "usr/lib/systemd/system/both.service", "[Unit]\n");
    let scan = scan_root(root).unwrap();
    assert!(scan.notes.is_empty(), "{:?}", scan.notes);
    assert_eq!(
        attr(find(&scan.items, "old.service"), "path"),
        Some("/lib/systemd/system/old.service")
    );
    assert_eq!(
        attr(find(&scan.items, "both.service"), "path"),
        Some("/usr/lib/systemd/system/both.service")
    );
}

#[test]
fn symlinked_unit_dirs_are_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "evil.service", INSTALLABLE);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    link(root, "etc/systemd/system", outside.path().to_str().unwrap());
    link(root, "lib", outside.path().to_str().unwrap());
    // With nothing else to read, the scan fails and says why.
    let err = scan_root(root).unwrap_err();
    assert!(
        err.starts_with("no systemd unit directory could be read under the node root: "),
        "{err}"
    );
    assert!(err.contains("/etc/systemd/system is a symlink"), "{err}");
    assert!(err.contains("/lib is a symlink"), "{err}");

    write(root, "usr/lib/systemd/system/good.service", INSTALLABLE);
    let scan = scan_root(root).unwrap();
    let keys: Vec<&str> = scan.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["good.service"]);
    assert!(
        scan.notes
            .iter()
            .any(|n| n.contains("/etc/systemd/system is a symlink")),
        "{:?}",
        scan.notes
    );
    assert!(
        scan.notes.iter().any(|n| n.contains("/lib is a symlink")),
        "{:?}",
        scan.notes
    );
}

#[test]
fn no_unit_directory_fails_the_scan_some_missing_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert_eq!(
        scan_root(root).unwrap_err(),
        "no systemd unit directory under the node root (looked for /etc/systemd/system, \
         /usr/local/lib/systemd/system, /usr/lib/systemd/system, /lib/systemd/system; is the \
         root mounted? does the node use systemd?)"
    );
    // An empty unit directory is a legitimate 0 units.
    fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    let scan = scan_root(root).unwrap();
    assert!(scan.items.is_empty() && scan.notes.is_empty(), "{scan:?}");
}

#[test]
fn unlistable_unit_directory_fails_the_scan() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    vigil_rootfs::testing::open_up(root);
    write(root, "etc/systemd/system/a.service", INSTALLABLE);
    write(root, "usr/lib/systemd/system/b.service", INSTALLABLE);
    for d in ["etc", "etc/systemd", "usr", "usr/lib", "usr/lib/systemd"] {
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(
        root.join("usr/lib/systemd/system"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let err = vigil_rootfs::testing::as_nobody(|| scan_root(root)).unwrap_err();
    assert_eq!(
        err,
        "cannot list the systemd unit directory /usr/lib/systemd/system: permission denied: \
         /usr/lib/systemd/system (the units defined there would look removed)"
    );
}

#[test]
fn wants_link_without_unit_file_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    link(
        root,
        "etc/systemd/system/multi-user.target.wants/ghost.service",
        "/opt/ghost.service",
    );
    link(
        root,
        "etc/systemd/system/timers.target.wants/x.timer",
        "/usr/lib/systemd/system/x.timer",
    );
    link(
        root,
        "etc/systemd/system/sockets.target.requires/x.timer",
        "/usr/lib/systemd/system/x.timer",
    );
    write(
        root,
        "usr/lib/systemd/system/x.timer",
        "[Install]\nWantedBy=timers.target\n",
    );
    let scan = scan_root(root).unwrap();
    let ghost = find(&scan.items, "ghost.service");
    assert_eq!(attr(ghost, "state"), Some("enabled"));
    assert!(
        scan.notes.iter().any(|n| n.contains("ghost.service")),
        "{:?}",
        scan.notes
    );
    let x = find(&scan.items, "x.timer");
    assert_eq!(attr(x, "wanted_by"), Some("sockets.target,timers.target"));
}

#[test]
fn wants_link_under_an_alias_name_points_at_its_unit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "usr/lib/systemd/system/ssh.service", INSTALLABLE);
    link(
        root,
        "etc/systemd/system/multi-user.target.wants/sshd.service",
        "/lib/systemd/system/ssh.service",
    );
    let scan = scan_root(root).unwrap();
    assert!(scan.notes.is_empty(), "{:?}", scan.notes);
    let sshd = find(&scan.items, "sshd.service");
    assert_eq!(attr(sshd, "alias_of"), Some("ssh.service"));
    assert_eq!(attr(sshd, "state"), Some("enabled"));
    assert_eq!(
        attr(find(&scan.items, "ssh.service"), "state"),
        Some("disabled")
    );
}

#[test]
fn masked_wins_over_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert!(scan_root(root).is_err(), "no unit directory at all");
    write(root, "usr/lib/systemd/system/m.service", INSTALLABLE);
    link(root, "etc/systemd/system/m.service", "/dev/null");
    link(
        root,
        "etc/systemd/system/multi-user.target.wants/m.service",
        "/usr/lib/systemd/system/m.service",
    );
    let scan = scan_root(root).unwrap();
    assert_eq!(
        attr(find(&scan.items, "m.service"), "state"),
        Some("masked")
    );
}

#[test]
fn install_section_detection() {
    assert!(has_install(INSTALLABLE));
    assert!(has_install("[Install]\nAlias=x.service\n"));
    assert!(!has_install("[Service]\nWantedBy=x\n"));
    assert!(!has_install("[Install]\n# WantedBy=multi-user.target\n"));
    assert!(!has_install("[Install]\nWantedBy=\n[Unit]\nWantedBy=a\n"));
}

#[test]
fn unit_names_and_templates() {
    assert!(is_unit_name("ssh.service"));
    assert!(is_unit_name("getty@.service"));
    assert!(!is_unit_name(".service"));
    assert!(!is_unit_name("ssh.service.d"));
    assert!(!is_unit_name("README"));
    assert_eq!(
        template_of("getty@tty1.service").as_deref(),
        Some("getty@.service")
    );
    assert_eq!(template_of("getty@.service"), None);
    assert_eq!(template_of("ssh.service"), None);
}

#[test]
fn host_scan_completes_or_says_why() {
    // Smoke test on the machine running the tests: whatever it has, the scan completes
    // with sorted, unique keys, or fails saying there is no unit directory (a container).
    let scan = match scan_root(Path::new("/")) {
        Ok(scan) => scan,
        Err(e) => {
            assert!(e.starts_with("no systemd unit directory"), "{e}");
            return;
        }
    };
    let keys: Vec<&str> = scan.items.iter().map(|i| i.key.as_str()).collect();
    assert!(keys.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()));
}
