use super::*;
use vigil_plugin::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/nodes/debian"
);

fn attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.attributes.get(name) {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

fn find<'a>(items: &'a [Item], key: &str) -> &'a Item {
    items
        .iter()
        .find(|i| i.key == key)
        .unwrap_or_else(|| panic!("no item {key}"))
}

#[test]
fn fixture_lists_installed_packages_sorted() {
    let scan = scan_root(Path::new(FIXTURE), &Config::default()).unwrap();
    let keys: Vec<&str> = scan.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
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
    assert!(scan.notes.is_empty(), "{:?}", scan.notes);
    let openssl = find(&scan.items, "openssl");
    assert_eq!(attr(openssl, "version"), Some("3.0.11-1~deb12u2"));
    assert_eq!(attr(openssl, "architecture"), Some("amd64"));
    assert_eq!(attr(openssl, "status"), Some("installed"));
    assert_eq!(attr(openssl, "source"), None);
    assert_eq!(
        attr(find(&scan.items, "libssl3"), "source"),
        Some("openssl")
    );
    assert_eq!(
        attr(find(&scan.items, "openssh-server"), "version"),
        Some("1:9.2p1-2+deb12u2")
    );
}

#[test]
fn include_all_reports_config_files_state() {
    let config = Config {
        include_all: true,
        ..Config::default()
    };
    let scan = scan_root(Path::new(FIXTURE), &config).unwrap();
    assert_eq!(
        attr(find(&scan.items, "rsyslog"), "status"),
        Some("config-files")
    );
    assert_eq!(scan.items.len(), 10);
}

#[test]
fn last_stanza_without_trailing_newline_and_continuations() {
    let text =
        "Package: a\nStatus: install ok installed\nDescription: x\n more\n .\n end\nVersion: 1\n\n\
                Package: b\nStatus: hold ok installed\nSource: bsrc (2.0-1)\nVersion: 2";
    let mut notes = Notes::default();
    let pkgs = parse_status(text, "/status", &mut notes);
    assert!(notes.into_vec().is_empty());
    assert_eq!(pkgs.len(), 2);
    assert_eq!(pkgs[0].version, "1");
    assert_eq!(pkgs[1].version, "2");
    assert_eq!(pkgs[1].source.as_deref(), Some("bsrc"));
}

#[test]
fn malformed_lines_and_stanzas_are_noted_with_line_numbers() {
    let text = "Package: a\nStatus: install ok installed\ngarbage line\nVersion: 1\n\nVersion: 9\nStatus: install ok installed\n";
    let mut notes = Notes::default();
    let pkgs = parse_status(text, "/var/lib/dpkg/status", &mut notes);
    assert_eq!(pkgs.len(), 1);
    assert_eq!(pkgs[0].version, "1");
    let notes = notes.into_vec();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].starts_with("/var/lib/dpkg/status:3:"), "{notes:?}");
    assert!(notes[1].starts_with("/var/lib/dpkg/status:6:"), "{notes:?}");
}

#[test]
fn notes_per_file_are_bounded() {
    let text: String = (0..50).map(|i| format!("junk {i}\n")).collect();
    let mut notes = Notes::default();
    parse_status(&text, "/s", &mut notes);
    let notes = notes.into_vec();
    assert_eq!(notes.len(), rootfs::MAX_NOTES_PER_FILE + 1);
    assert_eq!(notes.last().map(String::as_str), Some("/s: … and 30 more"));
}

#[test]
fn missing_status_file_fails_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let err = scan_root(dir.path(), &Config::default()).unwrap_err();
    assert_eq!(
        err,
        "no dpkg status file at /var/lib/dpkg/status under the node root (is the root \
         mounted? is this a Debian system? rpm databases are not supported)"
    );
    // A file where a parent directory should be is just as missing.
    std::fs::create_dir_all(dir.path().join("var/lib")).unwrap();
    std::fs::write(dir.path().join("var/lib/dpkg"), "").unwrap();
    let err = scan_root(dir.path(), &Config::default()).unwrap_err();
    assert!(err.starts_with("no dpkg status file at"), "{err}");
}

#[test]
fn status_path_that_is_not_a_regular_file_fails_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("var/lib/dpkg/status")).unwrap();
    let err = scan_root(dir.path(), &Config::default()).unwrap_err();
    assert_eq!(
        err,
        "the dpkg status file /var/lib/dpkg/status under the node root is not a regular file"
    );
}

#[test]
fn empty_status_file_is_zero_packages() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("var/lib/dpkg")).unwrap();
    std::fs::write(dir.path().join("var/lib/dpkg/status"), "").unwrap();
    let scan = scan_root(dir.path(), &Config::default()).unwrap();
    assert!(scan.items.is_empty());
    assert!(scan.notes.is_empty(), "{:?}", scan.notes);
}

#[test]
fn unreadable_status_file_fails_the_scan() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    rootfs::testing::open_up(dir.path());
    let status = dir.path().join("var/lib/dpkg/status");
    std::fs::create_dir_all(status.parent().unwrap()).unwrap();
    std::fs::write(&status, "Package: a\nStatus: install ok installed\n").unwrap();
    std::fs::set_permissions(&status, std::fs::Permissions::from_mode(0o000)).unwrap();
    let err = rootfs::testing::as_nobody(|| scan_root(dir.path(), &Config::default())).unwrap_err();
    assert_eq!(
        err,
        "cannot read the dpkg status file: permission denied: /var/lib/dpkg/status"
    );
}

#[test]
fn status_file_symlinks_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("var/lib/dpkg")).unwrap();
    let outside = dir.path().join("outside");
    std::fs::write(&outside, "Package: evil\nStatus: install ok installed\n").unwrap();
    std::os::unix::fs::symlink(&outside, dir.path().join("var/lib/dpkg/status")).unwrap();
    let err = scan_root(dir.path(), &Config::default()).unwrap_err();
    assert_eq!(
        err,
        "cannot read the dpkg status file: not read: /var/lib/dpkg/status is a symlink \
         (symlinks are not followed)"
    );

    // A symlinked parent directory is refused too.
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir2.path().join("var/lib")).unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("var/lib/dpkg"),
        dir2.path().join("var/lib/dpkg"),
    )
    .unwrap();
    let err = scan_root(dir2.path(), &Config::default()).unwrap_err();
    assert!(err.contains("/var/lib/dpkg is a symlink"), "{err}");
}

#[test]
fn status_file_override_is_root_relative_and_contained() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("st"),
        "Package: z\nStatus: install ok installed\nVersion: 3\n",
    )
    .unwrap();
    let config: Config = serde_json::from_str(r#"{"status_file": "/st"}"#).unwrap();
    let scan = scan_root(dir.path(), &config).unwrap();
    assert_eq!(scan.items[0].key, "z");

    let bad: Config = serde_json::from_str(r#"{"status_file": "../etc/st"}"#).unwrap();
    let err = scan_root(dir.path(), &bad).unwrap_err();
    assert!(err.contains("status_file"), "{err}");
    assert!(serde_json::from_str::<Config>(r#"{"status": 1}"#).is_err());
}

unsafe extern "C" fn collect(
    ctx: *mut std::ffi::c_void,
    kind: u32,
    data: *const u8,
    len: usize,
) -> i32 {
    let records = &mut *(ctx as *mut Vec<(u32, String)>);
    let bytes = std::slice::from_raw_parts(data, len);
    records.push((kind, String::from_utf8_lossy(bytes).into_owned()));
    0
}

#[test]
fn exported_entry_point_streams_sorted_items() {
    let mut records: Vec<(u32, String)> = Vec::new();
    let sink = vigil_plugin::Sink {
        ctx: &mut records as *mut _ as *mut std::ffi::c_void,
        emit: collect,
    };
    let config = r#"{"include_all": true}"#;
    let request = vigil_plugin::ScanRequest {
        root: FIXTURE.as_ptr(),
        root_len: FIXTURE.len(),
        config: config.as_ptr(),
        config_len: config.len(),
    };
    // SAFETY: request and sink outlive the call, as the ABI requires.
    let rc = unsafe { vigil_plugin::run_scan::<Packages>(&request, &sink) };
    assert_eq!(rc, vigil_plugin::SCAN_OK);
    let items: Vec<Item> = records
        .iter()
        .map(|(kind, json)| {
            assert_eq!(*kind, vigil_plugin::RECORD_ITEM);
            serde_json::from_str(json).unwrap()
        })
        .collect();
    assert_eq!(items.len(), 10);
    assert!(items
        .windows(2)
        .all(|w| w[0].key.as_bytes() < w[1].key.as_bytes()));
}

#[test]
fn exported_entry_point_fails_without_a_status_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().as_os_str().as_encoded_bytes();
    let mut records: Vec<(u32, String)> = Vec::new();
    let sink = vigil_plugin::Sink {
        ctx: &mut records as *mut _ as *mut std::ffi::c_void,
        emit: collect,
    };
    let request = vigil_plugin::ScanRequest {
        root: root.as_ptr(),
        root_len: root.len(),
        config: std::ptr::null(),
        config_len: 0,
    };
    // SAFETY: request and sink outlive the call, as the ABI requires.
    let rc = unsafe { vigil_plugin::run_scan::<Packages>(&request, &sink) };
    assert_eq!(rc, vigil_plugin::SCAN_FAILED);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].0, vigil_plugin::RECORD_ERROR);
    assert!(records[0]
        .1
        .starts_with("no dpkg status file at /var/lib/dpkg/status"));
}
