use super::*;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;

/// A root with `etc/passwd` (a regular file) and an empty `var/` directory.
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("etc")).unwrap();
    fs::create_dir_all(dir.path().join("var")).unwrap();
    fs::write(dir.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    dir
}

#[test]
fn reads_a_regular_file_below_the_root() {
    let root = tree();
    let text = read_text(root.path(), Path::new("etc/passwd")).unwrap();
    assert_eq!(text, "root:x:0:0::/root:/bin/sh\n");
}

#[test]
fn invalid_utf8_is_replaced_not_fatal() {
    let root = tree();
    fs::write(root.path().join("etc/bad"), b"a\xffb").unwrap();
    assert_eq!(
        read_text(root.path(), Path::new("etc/bad")).unwrap(),
        "a\u{fffd}b"
    );
}

#[test]
fn symlinked_parent_is_refused() {
    let root = tree();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), "host data").unwrap();
    symlink(outside.path(), root.path().join("link")).unwrap();
    let err = read_text(root.path(), Path::new("link/secret")).unwrap_err();
    assert!(
        matches!(&err, Unreadable::Symlink(c) if c == "/link"),
        "{err:?}"
    );
    assert_eq!(
        err.describe("/link/secret"),
        "not read: /link/secret: /link is a symlink (symlinks are not followed)"
    );
    let err = list_dir(root.path(), Path::new("link")).unwrap_err();
    assert!(
        matches!(&err, Unreadable::Symlink(c) if c == "/link"),
        "{err:?}"
    );
}

#[test]
fn symlinked_file_is_refused() {
    let root = tree();
    symlink("/etc/hostname", root.path().join("etc/hostname")).unwrap();
    let err = read_bytes(root.path(), Path::new("etc/hostname")).unwrap_err();
    assert!(
        matches!(&err, Unreadable::Symlink(c) if c == "/etc/hostname"),
        "{err:?}"
    );
    assert_eq!(
        err.describe("/etc/hostname"),
        "not read: /etc/hostname is a symlink (symlinks are not followed)"
    );
    assert_eq!(
        kind_of(root.path(), Path::new("etc/hostname")).unwrap(),
        Kind::Symlink
    );
}

#[test]
fn link_text_reads_the_link_without_following_it() {
    let root = tree();
    symlink("../../outside", root.path().join("etc/escape")).unwrap();
    let text = link_text(root.path(), Path::new("etc/escape")).unwrap();
    assert_eq!(text, PathBuf::from("../../outside"));
}

#[test]
fn fifo_is_refused_without_hanging() {
    let root = tree();
    let fifo = root.path().join("etc/fifo");
    let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let err = read_bytes(root.path(), Path::new("etc/fifo")).unwrap_err();
    assert!(matches!(err, Unreadable::WrongType), "{err:?}");
    assert_eq!(
        kind_of(root.path(), Path::new("etc/fifo")).unwrap(),
        Kind::Other
    );
}

#[test]
fn missing_file_and_file_as_parent_are_missing() {
    let root = tree();
    let err = read_bytes(root.path(), Path::new("etc/shadow")).unwrap_err();
    assert!(matches!(err, Unreadable::Missing), "{err:?}");
    let err = read_bytes(root.path(), Path::new("etc/passwd/x")).unwrap_err();
    assert!(matches!(err, Unreadable::Missing), "{err:?}");
    assert_eq!(err.describe("/etc/passwd/x"), "not found: /etc/passwd/x");
}

#[test]
fn directory_is_the_wrong_type_for_a_read() {
    let root = tree();
    let err = read_bytes(root.path(), Path::new("etc")).unwrap_err();
    assert!(matches!(err, Unreadable::WrongType), "{err:?}");
    let err = list_dir(root.path(), Path::new("etc/passwd")).unwrap_err();
    assert!(matches!(err, Unreadable::WrongType), "{err:?}");
}

#[test]
fn file_over_the_limit_is_too_large() {
    let root = tree();
    let big = fs::File::create(root.path().join("var/big")).unwrap();
    big.set_len(MAX_FILE_BYTES + 1).unwrap(); // sparse: cheap to create
    let err = read_bytes(root.path(), Path::new("var/big")).unwrap_err();
    assert!(matches!(err, Unreadable::TooLarge), "{err:?}");
    assert_eq!(
        err.describe("/var/big"),
        "not read: /var/big: larger than 64 MiB"
    );
}

#[test]
fn paths_that_are_not_plain_relative_names_are_refused() {
    let root = tree();
    for rel in [
        "",
        "/",
        "/etc/passwd",
        "..",
        "etc/..",
        "../etc",
        "./etc/passwd",
    ] {
        let rel = Path::new(rel);
        assert!(read_bytes(root.path(), rel).is_err(), "read {rel:?}");
        assert!(list_dir(root.path(), rel).is_err(), "list {rel:?}");
        assert!(kind_of(root.path(), rel).is_err(), "kind {rel:?}");
        assert!(link_text(root.path(), rel).is_err(), "link {rel:?}");
    }
}

#[test]
fn clean_rel_keeps_plain_names_only() {
    assert_eq!(
        clean_rel(Path::new("/var/lib/dpkg/status")).unwrap(),
        Path::new("var/lib/dpkg/status")
    );
    assert_eq!(
        clean_rel(Path::new("./etc//passwd")).unwrap(),
        Path::new("etc/passwd")
    );
    assert!(clean_rel(Path::new("etc/../../host"))
        .unwrap_err()
        .contains("no '..'"));
    assert!(clean_rel(Path::new("/"))
        .unwrap_err()
        .contains("names no file"));
    assert!(clean_rel(Path::new("")).is_err());
}

#[test]
fn list_dir_is_sorted_and_does_not_follow_entries() {
    let root = tree();
    fs::write(root.path().join("var/b"), "").unwrap();
    fs::create_dir(root.path().join("var/a")).unwrap();
    symlink("/", root.path().join("var/C")).unwrap();
    let got = list_dir(root.path(), Path::new("var")).unwrap();
    assert_eq!(
        got,
        vec![
            ("C".to_owned(), Kind::Symlink),
            ("a".to_owned(), Kind::Dir),
            ("b".to_owned(), Kind::File),
        ]
    );
}

#[test]
fn notes_are_capped_per_file_and_summarised() {
    let mut notes = Notes::default();
    notes.push("first");
    for line in 1..=MAX_NOTES_PER_FILE + 5 {
        notes.at_line("/etc/group", line, "malformed");
    }
    notes.at_line("/etc/passwd", 3, "malformed");
    let list = notes.into_vec();
    assert_eq!(list.len(), 1 + MAX_NOTES_PER_FILE + 1 + 1);
    assert_eq!(list[0], "first");
    assert_eq!(list[1], "/etc/group:1: malformed");
    assert_eq!(list.last().unwrap(), "/etc/group: … and 5 more");
    assert!(list.contains(&"/etc/passwd:3: malformed".to_owned()));
}

#[test]
fn scan_sorts_byte_wise_and_keeps_the_first_duplicate() {
    let scan = Scan {
        items: vec![
            Item::new("b").attr("n", 1i64),
            Item::new("B"),
            Item::new("é"),
            Item::new("b").attr("n", 2i64),
            Item::new("a"),
        ],
        notes: vec![],
    }
    .sorted();
    let keys: Vec<&str> = scan.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["B", "a", "b", "é"]);
    assert_eq!(scan.items[2].attributes["n"], vigil_plugin::Value::Int(1));
}
