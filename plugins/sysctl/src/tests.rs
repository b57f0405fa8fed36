use super::*;
use std::fs;
use vigil_plugin::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/nodes/debian"
);

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
    std::os::unix::fs::symlink(target, path).unwrap();
}

/// `key → (value, source, live)` for compact assertions.
fn table(scan: &Scan) -> Vec<(String, String, String, Option<String>)> {
    let s = |i: &Item, n: &str| match i.attributes.get(n) {
        Some(Value::Str(v)) => Some(v.clone()),
        _ => None,
    };
    scan.items
        .iter()
        .map(|i| {
            (
                i.key.clone(),
                s(i, "value").unwrap_or_default(),
                s(i, "source").unwrap_or_default(),
                s(i, "live"),
            )
        })
        .collect()
}

fn row(k: &str, v: &str, src: &str) -> (String, String, String, Option<String>) {
    (k.into(), v.into(), src.into(), None)
}

#[test]
fn fixture_precedence_and_sources() {
    let scan = scan_root(Path::new(FIXTURE), false);
    assert!(scan.notes.is_empty(), "{:?}", scan.notes);
    assert_eq!(
        table(&scan),
        [
            row(
                "fs.protected_symlinks",
                "1",
                "/usr/lib/sysctl.d/50-default.conf"
            ),
            row("kernel.kptr_restrict", "2", "/etc/sysctl.d/99-vigil.conf"),
            row("kernel.printk", "3 4 1 3", "/etc/sysctl.conf"),
            row(
                "kernel.sysrq",
                "0x01b6",
                "/usr/lib/sysctl.d/50-default.conf"
            ),
            row(
                "net.ipv4.conf.default.rp_filter",
                "2",
                "/usr/lib/sysctl.d/50-default.conf"
            ),
            row("net.ipv4.ip_forward", "1", "/etc/sysctl.conf"),
            row(
                "net.ipv4.tcp_syncookies",
                "1",
                "/etc/sysctl.d/99-vigil.conf"
            ),
            row(
                "net.ipv6.conf.all.disable_ipv6",
                "0",
                "/etc/sysctl.d/99-vigil.conf"
            ),
        ]
    );
}

#[test]
fn same_name_in_etc_hides_vendor_file_and_order_is_by_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "usr/lib/sysctl.d/10-a.conf",
        "a = vendor\nb = vendor\n",
    );
    write(root, "etc/sysctl.d/10-a.conf", "a = admin\n");
    write(root, "run/sysctl.d/10-a.conf", "a = runtime\n");
    write(root, "run/sysctl.d/20-b.conf", "b = runtime\n");
    write(root, "usr/lib/sysctl.d/30-c.conf", "b = vendor30\nc=1\n");
    write(root, "usr/lib/sysctl.d/40-masked.conf", "c = 2\n");
    link(root, "etc/sysctl.d/40-masked.conf", "/dev/null");
    write(root, "etc/sysctl.conf", "c = last\n");
    write(root, "usr/lib/sysctl.d/README", "not = a conf file\n");
    let scan = scan_root(root, false);
    assert!(scan.notes.is_empty(), "{:?}", scan.notes);
    assert_eq!(
        table(&scan),
        [
            row("a", "admin", "/etc/sysctl.d/10-a.conf"),
            row("b", "vendor30", "/usr/lib/sysctl.d/30-c.conf"),
            row("c", "last", "/etc/sysctl.conf"),
        ]
    );
}

#[test]
fn key_normalisation_follows_the_first_separator() {
    assert_eq!(normalise_key("net/ipv4/ip_forward"), "net.ipv4.ip_forward");
    assert_eq!(normalise_key("net.ipv4.ip_forward"), "net.ipv4.ip_forward");
    assert_eq!(
        normalise_key("net/ipv4/conf/eth0.1/rp_filter"),
        "net.ipv4.conf.eth0/1.rp_filter"
    );
    assert_eq!(
        normalise_key("net.ipv4.conf.eth0/1.rp_filter"),
        "net.ipv4.conf.eth0/1.rp_filter"
    );
}

#[test]
fn lines_comments_dashes_and_malformed() {
    let mut notes = Notes::default();
    let got = parse_conf(
        "# c\n; c\n\n  -kernel.x =  a \t b \nbogus line\n-net.ipv4.conf.*.exclude\n = novalue\nk=\n",
        "/etc/sysctl.d/x.conf",
        &mut notes,
    );
    assert_eq!(
        got,
        [
            ("kernel.x".to_owned(), "a b".to_owned()),
            ("k".to_owned(), String::new())
        ]
    );
    assert_eq!(
        notes.into_vec(),
        [
            "/etc/sysctl.d/x.conf:5: expected 'key = value', skipped",
            "/etc/sysctl.d/x.conf:7: empty key, skipped",
        ]
    );
}

#[test]
fn symlinked_conf_resolves_inside_root_only() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "evil.conf", "evil = 1\n");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "etc/sysctl.conf", "main = 1\n");
    write(root, "srv/extra.conf", "extra = 1\n");
    link(root, "etc/sysctl.d/60-abs.conf", "/srv/extra.conf");
    link(
        root,
        "etc/sysctl.d/70-climb.conf",
        "../../../../../../../../../tmp/evil.conf",
    );
    link(
        root,
        "etc/sysctl.d/80-out.conf",
        outside.path().join("evil.conf").to_str().unwrap(),
    );
    let scan = scan_root(root, false);
    let keys: Vec<&str> = scan.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["extra", "main"]);
    assert!(
        scan.notes
            .iter()
            .any(|n| n.contains("70-climb.conf points outside")),
        "{:?}",
        scan.notes
    );
    // An absolute target is taken inside the root, where the outside path does not exist.
    assert!(
        scan.notes.iter().any(|n| n.starts_with("not found: /tmp/")),
        "{:?}",
        scan.notes
    );
}

#[test]
fn symlinked_dropin_dir_is_not_followed_but_usr_merge_lib_is_silent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "usr/lib/sysctl.d/50-x.conf", "x = 1\n");
    link(root, "lib", "usr/lib");
    link(root, "etc/sysctl.d", "/etc/sysctl.d");
    let scan = scan_root(root, false);
    assert_eq!(scan.items.len(), 1);
    assert_eq!(
        scan.notes,
        ["not read: /etc/sysctl.d is a symlink (symlinks are not followed)"]
    );
}

#[test]
fn live_values_are_read_below_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "etc/sysctl.conf", "kernel.printk = 4 4 1 7\nnet/ipv4/ip_forward = 1\nfs.gone = 1\nnet.ipv4.conf.*.rp_filter = 2\n");
    write(root, "proc/sys/kernel/printk", "4\t4\t1\t7\n");
    write(root, "proc/sys/net/ipv4/ip_forward", "0\n");
    let scan = scan_root(root, true);
    let t = table(&scan);
    assert_eq!(t[1].0, "kernel.printk");
    assert_eq!(t[1].3.as_deref(), Some("4 4 1 7"));
    assert_eq!(t[3].0, "net.ipv4.ip_forward");
    assert_eq!(t[3].3.as_deref(), Some("0"));
    assert_eq!(t[0].3, None);
    assert_eq!(t[2].3, None, "glob keys have no single live value");
    assert_eq!(scan.notes.len(), 1, "{:?}", scan.notes);
    assert!(
        scan.notes[0].contains("live value of fs.gone not read"),
        "{:?}",
        scan.notes
    );
}

#[test]
fn host_live_read_works() {
    // On the test machine itself: /proc/sys/kernel/ostype always exists on Linux.
    let mut notes = Notes::default();
    assert_eq!(
        live_value(Path::new("/"), "kernel.ostype", &mut notes).as_deref(),
        Some("Linux")
    );
}

#[test]
fn config_defaults_and_refuses_unknown_fields() {
    assert!(serde_json::from_str::<Config>("{}").unwrap().live);
    assert!(
        !serde_json::from_str::<Config>(r#"{"live": false}"#)
            .unwrap()
            .live
    );
    assert!(serde_json::from_str::<Config>(r#"{"proc": "/x"}"#).is_err());
}
