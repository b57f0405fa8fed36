//! Scans of fixture trees built in a tempdir, through the same `scan` the plugin calls.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use vigil_plugin::{Item, Stopped, Value};

use crate::{escape, scan, Config, Output};

mod coverage;

#[derive(Default)]
struct Collect {
    items: Vec<Item>,
    notes: Vec<String>,
    /// (key, reason) of unseen records.
    unseen: Vec<(String, String)>,
    /// Stop after this many items (simulates the host cancelling).
    stop_after: Option<usize>,
}

impl Output for Collect {
    fn item(&mut self, item: &Item) -> Result<(), Stopped> {
        if self.stop_after.is_some_and(|n| self.items.len() >= n) {
            return Err(Stopped);
        }
        self.items.push(item.clone());
        Ok(())
    }
    fn note(&mut self, message: &str) -> Result<(), Stopped> {
        self.notes.push(message.to_owned());
        Ok(())
    }
    fn unseen(&mut self, key: &str, reason: &str) -> Result<(), Stopped> {
        self.unseen.push((key.to_owned(), reason.to_owned()));
        Ok(())
    }
}

impl Collect {
    fn get(&self, key: &str) -> &Item {
        self.items
            .iter()
            .find(|i| i.key == key)
            .unwrap_or_else(|| panic!("no item {key}; keys: {:?}", self.keys()))
    }
    fn has(&self, key: &str) -> bool {
        self.items.iter().any(|i| i.key == key)
    }
    fn keys(&self) -> Vec<&str> {
        self.items.iter().map(|i| i.key.as_str()).collect()
    }
    fn attr(&self, key: &str, name: &str) -> Option<Value> {
        self.get(key).attributes.get(name).cloned()
    }
    fn has_attr(&self, key: &str, name: &str) -> bool {
        self.get(key).attributes.contains_key(name)
    }
}

fn config(json: &str) -> Config {
    serde_json::from_str(json).expect("test config parses")
}

fn run(root: &Path, json: &str) -> Collect {
    let mut c = Collect::default();
    scan(root, &config(json), &mut c).expect("scan succeeds");
    assert_sorted(&c);
    c
}

fn assert_sorted(c: &Collect) {
    for w in c.items.windows(2) {
        assert!(
            w[0].key < w[1].key,
            "out of order: {:?} then {:?}",
            w[0].key,
            w[1].key
        );
    }
}

fn s(v: &str) -> Option<Value> {
    Some(Value::Str(v.to_owned()))
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// A small /etc with passwd/group naming the test's own uid/gid, so names provably come
/// from the fixture and not from the host.
fn fixture() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let etc = t.path().join("etc");
    fs::create_dir_all(etc.join("ssh")).unwrap();
    // SAFETY: getegid has no preconditions.
    let gid = unsafe { libc::getegid() };
    fs::write(
        etc.join("passwd"),
        format!("fixture-user:x:{}:{gid}::/:/bin/sh\n", euid()),
    )
    .unwrap();
    fs::write(etc.join("group"), format!("fixture-group:x:{gid}:\n")).unwrap();
    fs::write(etc.join("hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::set_permissions(etc.join("hosts"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(etc.join("ssh/sshd_config"), "PermitRootLogin no\n").unwrap();
    fs::write(etc.join("suid"), "x").unwrap();
    fs::set_permissions(etc.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::create_dir(etc.join("tmp")).unwrap();
    fs::set_permissions(etc.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    symlink("hosts", etc.join("link-in")).unwrap();
    symlink("/etc/shadow", etc.join("link-abs")).unwrap();
    symlink("../../../../outside", etc.join("link-out")).unwrap();
    mkfifo(&etc.join("fifo"));
    t
}

#[test]
fn fixture_items_have_metadata_hash_and_fixture_names() {
    let t = fixture();
    let c = run(t.path(), "{}");
    let hosts = c.get("/etc/hosts");
    assert_eq!(hosts.attributes.get("type"), s("file").as_ref());
    assert_eq!(c.attr("/etc/hosts", "mode"), s("0644"));
    assert_eq!(c.attr("/etc/hosts", "size"), Some(Value::Int(20)));
    assert_eq!(
        c.attr("/etc/hosts", "uid"),
        Some(Value::Int(i64::from(euid())))
    );
    assert_eq!(c.attr("/etc/hosts", "user"), s("fixture-user"));
    assert_eq!(c.attr("/etc/hosts", "group"), s("fixture-group"));
    let want = blake3::hash(b"127.0.0.1 localhost\n").to_hex().to_string();
    assert_eq!(c.attr("/etc/hosts", "blake3"), s(&want));
    assert!(matches!(c.attr("/etc/hosts", "mtime"), Some(Value::Int(m)) if m > 1_600_000_000));
    assert_eq!(c.attr("/etc", "type"), s("dir"));
    assert_eq!(c.attr("/etc", "size"), None);
    assert!(c.has("/etc/ssh/sshd_config"));
    assert!(!c.has("/"), "only the configured path and below");
    assert!(c.notes.is_empty(), "{:?}", c.notes);
}

#[test]
fn setuid_and_sticky_modes_have_four_digits() {
    let t = fixture();
    let c = run(t.path(), "{}");
    assert_eq!(c.attr("/etc/suid", "mode"), s("4755"));
    assert_eq!(c.attr("/etc/tmp", "mode"), s("1777"));
}

#[test]
fn symlinks_are_reported_never_followed() {
    let t = fixture();
    let c = run(t.path(), "{}");
    assert_eq!(c.attr("/etc/link-in", "type"), s("symlink"));
    assert_eq!(c.attr("/etc/link-in", "target"), s("hosts"));
    assert_eq!(c.attr("/etc/link-in", "blake3"), None);
    assert_eq!(c.attr("/etc/link-abs", "target"), s("/etc/shadow"));
    assert_eq!(c.attr("/etc/link-out", "target"), s("../../../../outside"));
    assert_eq!(c.attr("/etc/link-out", "size"), Some(Value::Int(19)));
}

#[test]
fn configured_symlink_path_is_an_item_and_symlinked_parent_is_refused() {
    let t = fixture();
    fs::create_dir(t.path().join("real")).unwrap();
    fs::write(t.path().join("real/f"), "x").unwrap();
    symlink("real", t.path().join("alias")).unwrap();
    let c = run(t.path(), r#"{"paths": ["/alias", "/alias/f", "/nope"]}"#);
    // "/alias/f" is covered by "/alias", which is a symlink: reported, not walked.
    assert_eq!(c.keys(), vec!["/alias"]);
    assert_eq!(c.attr("/alias", "target"), s("real"));
    assert_eq!(c.notes, vec!["path does not exist: /nope"]);
    let c = run(t.path(), r#"{"paths": ["/alias/f"]}"#);
    assert!(c.items.is_empty());
    assert_eq!(c.notes.len(), 1);
    assert!(
        c.notes[0].starts_with("not scanned: /alias/f"),
        "{:?}",
        c.notes
    );
}

#[test]
fn fifo_is_described_without_hanging() {
    let t = fixture();
    let root = t.path().to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let c = run(&root, "{}");
        let _ = tx.send(c.get("/etc/fifo").clone());
    });
    let fifo = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("scan with a FIFO finished");
    assert_eq!(fifo.attributes.get("type"), s("fifo").as_ref());
    assert!(!fifo.attributes.contains_key("blake3"));
}

#[test]
fn output_is_bytewise_sorted_with_tricky_siblings() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    for d in ["a", "a/b", "a.b", "a-b/c", "b", "a/b/c"] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    for f in ["a/x", "a-b/y", "a0", "a.b/z", "a/b/c/d", "a/b-c", "a\\b"] {
        fs::write(r.join(f), "").unwrap();
    }
    let c = run(r, r#"{"paths": ["/"]}"#);
    let keys = c.keys();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(
        keys,
        vec![
            "/", "/a", "/a-b", "/a-b/c", "/a-b/y", "/a.b", "/a.b/z", "/a/b", "/a/b-c", "/a/b/c",
            "/a/b/c/d", "/a/x", "/a0", "/a\\\\b", "/b"
        ]
    );
}

#[test]
fn many_files_stay_sorted_across_threads() {
    let t = tempfile::tempdir().unwrap();
    for d in 0..30 {
        let dir = t.path().join(format!("d{d}")).join(format!("e{}", d % 7));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            fs::write(dir.join(format!("f{f}")), format!("{d}-{f}").repeat(f)).unwrap();
        }
    }
    let c = run(t.path(), r#"{"paths": ["/"], "threads": 4}"#);
    assert_eq!(c.items.len(), 1 + 30 * 2 + 3000);
    let c2 = run(t.path(), r#"{"paths": ["/"], "threads": 1}"#);
    assert_eq!(
        c.items, c2.items,
        "output does not depend on the thread count"
    );
}

#[test]
fn odd_names_are_escaped_losslessly() {
    let t = tempfile::tempdir().unwrap();
    let names: [&[u8]; 3] = [b"new\nline", b"bad\xff\xfename", b"back\\slash"];
    for n in names {
        fs::write(t.path().join(OsStr::from_bytes(n)), "x").unwrap();
    }
    let c = run(t.path(), r#"{"paths": ["/"]}"#);
    assert!(c.has("/new\\x0aline"));
    assert!(c.has("/bad\\xff\\xfename"));
    assert!(c.has("/back\\\\slash"));
    for item in &c.items[1..] {
        let raw = escape::unescape(&item.key).unwrap();
        let on_disk = t.path().join(OsStr::from_bytes(&raw[1..]));
        assert!(on_disk.exists(), "key {:?} does not round-trip", item.key);
        assert!(!item.key.contains('\n'));
    }
    // A configured path may name an odd file using the same escapes.
    let c = run(t.path(), r#"{"paths": ["/new\\x0aline"]}"#);
    assert_eq!(c.keys(), vec!["/new\\x0aline"]);
}

#[test]
fn include_and_exclude_globs() {
    let t = fixture();
    fs::write(t.path().join("etc/hosts.bak"), "old").unwrap();
    let c = run(t.path(), r#"{"exclude": ["/etc/ssh", "**/*.bak"]}"#);
    assert!(!c.has("/etc/ssh"));
    assert!(!c.has("/etc/ssh/sshd_config"), "excluded dir is pruned");
    assert!(!c.has("/etc/hosts.bak"));
    assert!(c.has("/etc/hosts"));
    let c = run(t.path(), r#"{"include": ["/etc/**/*_config"]}"#);
    assert_eq!(c.keys(), vec!["/etc/ssh/sshd_config"]);
}

#[test]
fn content_is_captured_within_its_cap() {
    let t = fixture();
    let etc = t.path().join("etc");
    fs::write(etc.join("big.conf"), "y".repeat(100)).unwrap();
    fs::write(etc.join("bin.conf"), b"\xff\xfe").unwrap();
    for f in ["big.conf", "bin.conf"] {
        fs::set_permissions(etc.join(f), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let c = run(
        t.path(),
        r#"{"content": ["/etc/*.conf", "/etc/hosts"], "max_content_size": 50}"#,
    );
    assert_eq!(
        c.get("/etc/hosts").content.as_deref(),
        Some("127.0.0.1 localhost\n")
    );
    assert_eq!(c.get("/etc/big.conf").content, None);
    assert_eq!(
        c.attr("/etc/big.conf", "content_skipped"),
        s("over max_content_size")
    );
    assert!(c.attr("/etc/big.conf", "blake3").is_some());
    assert_eq!(c.attr("/etc/bin.conf", "content_skipped"), s("not UTF-8"));
    assert_eq!(
        c.get("/etc/ssh/sshd_config").content,
        None,
        "not matched by a content glob"
    );
}

#[test]
fn files_over_max_hash_size_get_a_note_and_no_hash() {
    let t = fixture();
    fs::write(t.path().join("etc/large"), vec![7u8; 4096]).unwrap();
    let c = run(t.path(), r#"{"max_hash_size": 1000}"#);
    assert_eq!(c.attr("/etc/large", "blake3"), None);
    assert_eq!(c.attr("/etc/large", "size"), Some(Value::Int(4096)));
    assert!(c.attr("/etc/hosts", "blake3").is_some());
    assert_eq!(c.notes, vec!["not hashed: over max_hash_size: /etc/large"]);
}

#[test]
fn bad_roots_fail_missing_paths_do_not() {
    let t = fixture();
    let mut c = Collect::default();
    assert!(scan(&t.path().join("nope"), &Config::default(), &mut c).is_err());
    assert!(scan(&t.path().join("etc/hosts"), &Config::default(), &mut c).is_err());
    let c = run(t.path(), r#"{"paths": ["/missing", "/etc/hosts"]}"#);
    assert_eq!(c.keys(), vec!["/etc/hosts"]);
    assert_eq!(c.notes, vec!["path does not exist: /missing"]);
    // Also when the path itself is not an item the include globs want.
    let c = run(
        t.path(),
        r#"{"paths": ["/missing"], "include": ["**/*.conf"]}"#,
    );
    assert_eq!(c.notes, vec!["path does not exist: /missing"]);
    assert!(scan(
        t.path(),
        &config(r#"{"paths": ["/etc/../x"]}"#),
        &mut Collect::default()
    )
    .is_err());
}

#[test]
fn stopping_ends_the_scan_promptly() {
    let t = tempfile::tempdir().unwrap();
    for d in 0..20 {
        let dir = t.path().join(format!("d{d}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..100 {
            fs::write(dir.join(format!("f{f}")), "x").unwrap();
        }
    }
    let mut c = Collect {
        stop_after: Some(5),
        ..Collect::default()
    };
    let r = scan(t.path(), &config(r#"{"paths": ["/"]}"#), &mut c);
    assert_eq!(r, Err("scan stopped by the host".to_owned()));
    assert_eq!(c.items.len(), 5);
}

#[test]
fn other_filesystems_are_not_descended() {
    // Light check against the host: /proc is normally its own filesystem.
    let (Ok(root), Ok(proc_)) = (fs::metadata("/"), fs::metadata("/proc/self")) else {
        println!("skipped: no /proc");
        return;
    };
    use std::os::unix::fs::MetadataExt;
    if root.dev() == proc_.dev() {
        println!("skipped: /proc is on the root filesystem");
        return;
    }
    // Exclude every top-level name but /proc.
    let c = run(
        Path::new("/"),
        r#"{"paths": ["/"], "exclude": ["/[!p]*", "/p[!r]*", "/pr[!o]*", "/pro[!c]*", "/proc?*"]}"#,
    );
    assert_eq!(c.keys(), vec!["/", "/proc"]);
    assert_eq!(c.notes, vec!["not descended: other filesystem: /proc"]);
}

#[test]
fn plugin_entry_point_streams_json_items() {
    use std::ffi::c_void;
    use vigil_plugin::{ScanRequest, Sink, RECORD_ITEM, SCAN_OK};
    unsafe extern "C" fn collect(ctx: *mut c_void, kind: u32, data: *const u8, len: usize) -> i32 {
        // SAFETY: the test passes a Vec as ctx and the host contract makes data valid.
        let v = unsafe { &mut *(ctx as *mut Vec<(u32, Vec<u8>)>) };
        v.push((
            kind,
            unsafe { std::slice::from_raw_parts(data, len) }.to_vec(),
        ));
        0
    }
    let t = fixture();
    let mut got: Vec<(u32, Vec<u8>)> = Vec::new();
    let sink = Sink {
        ctx: &mut got as *mut _ as *mut c_void,
        emit: collect,
    };
    let root = t.path().as_os_str().as_bytes();
    let cfg = br#"{"paths": ["/etc/hosts"]}"#;
    let req = ScanRequest {
        root: root.as_ptr(),
        root_len: root.len(),
        config: cfg.as_ptr(),
        config_len: cfg.len(),
    };
    // SAFETY: request and sink are valid for the call.
    let rc = unsafe { vigil_plugin::run_scan::<crate::Files>(&req, &sink) };
    assert_eq!(rc, SCAN_OK);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, RECORD_ITEM);
    let item: Item = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(item.key, "/etc/hosts");
}
