use super::*;
use crate::resolve::Resolver;
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

/// Runs `check` with a root opened for each resolver.
fn each_resolver(root: &Path, check: impl Fn(&Root)) {
    for resolver in [Resolver::Openat2, Resolver::Walk] {
        println!("resolver {resolver:?}");
        check(&Root::open_with(root, resolver).unwrap());
    }
}

#[test]
fn both_resolvers_read_list_and_classify_alike() {
    let root = tree();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), "host data").unwrap();
    symlink(outside.path(), root.path().join("link")).unwrap();
    symlink("/etc/hostname", root.path().join("etc/hostname")).unwrap();
    fs::create_dir_all(root.path().join("var/lib/deep")).unwrap();
    fs::write(root.path().join("var/lib/deep/f"), "deep").unwrap();
    let fifo = CString::new(root.path().join("etc/fifo").as_os_str().as_bytes()).unwrap();
    // SAFETY: `fifo` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    each_resolver(root.path(), |r| {
        let p = Path::new;
        assert_eq!(
            r.read_text(p("etc/passwd")).unwrap(),
            "root:x:0:0::/root:/bin/sh\n"
        );
        assert_eq!(r.read_text(p("var/lib/deep/f")).unwrap(), "deep");
        assert_eq!(r.read_text(p("var//lib/./deep/f/")).unwrap(), "deep");
        let err = r.read_bytes(p("link/secret")).unwrap_err();
        assert!(
            matches!(&err, Unreadable::Symlink(c) if c == "/link"),
            "{err:?}"
        );
        let err = r.read_bytes(p("etc/hostname")).unwrap_err();
        assert!(
            matches!(&err, Unreadable::Symlink(c) if c == "/etc/hostname"),
            "{err:?}"
        );
        assert!(matches!(
            r.read_bytes(p("etc/fifo")),
            Err(Unreadable::WrongType)
        ));
        assert!(matches!(r.read_bytes(p("etc")), Err(Unreadable::WrongType)));
        assert!(matches!(
            r.read_bytes(p("etc/nope")),
            Err(Unreadable::Missing)
        ));
        assert!(matches!(
            r.read_bytes(p("nope/x")),
            Err(Unreadable::Missing)
        ));
        assert!(matches!(
            r.read_bytes(p("etc/passwd/x")),
            Err(Unreadable::Missing)
        ));
        for bad in ["", "/etc/passwd", "../etc", "etc/../etc/passwd", "./etc"] {
            assert!(
                matches!(r.read_bytes(p(bad)), Err(Unreadable::Io(_))),
                "{bad:?}"
            );
        }
        let err = r.list_dir(p("link")).unwrap_err();
        assert!(
            matches!(&err, Unreadable::Symlink(c) if c == "/link"),
            "{err:?}"
        );
        let err = r.list_dir(p("link/x")).unwrap_err();
        assert!(
            matches!(&err, Unreadable::Symlink(c) if c == "/link"),
            "{err:?}"
        );
        assert!(matches!(
            r.list_dir(p("etc/passwd")),
            Err(Unreadable::WrongType)
        ));
        assert!(matches!(
            r.list_dir(p("etc/fifo")),
            Err(Unreadable::WrongType)
        ));
        assert!(matches!(
            r.list_dir(p("etc/nope")),
            Err(Unreadable::Missing)
        ));
        let names: Vec<String> = r
            .list_dir(p("etc"))
            .unwrap()
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(names, ["fifo", "hostname", "passwd"]);
        assert_eq!(r.kind_of(p("etc/hostname")).unwrap(), Kind::Symlink);
        assert_eq!(r.kind_of(p("link")).unwrap(), Kind::Symlink);
        assert_eq!(r.kind_of(p("var/lib")).unwrap(), Kind::Dir);
        assert_eq!(r.kind_of(p("etc/fifo")).unwrap(), Kind::Other);
        assert!(matches!(r.kind_of(p("link/secret")), Err(Unreadable::Symlink(c)) if c == "/link"));
        assert_eq!(
            r.link_text(p("etc/hostname")).unwrap(),
            Path::new("/etc/hostname")
        );
        assert!(matches!(
            r.link_text(p("link/x")),
            Err(Unreadable::Symlink(_))
        ));
    });
}

#[test]
fn permission_denied_is_told_apart_and_parents_need_search_only() {
    use std::os::unix::fs::PermissionsExt;
    let root = tree();
    crate::testing::open_up(root.path());
    let mode = |rel: &str, m: u32| {
        fs::set_permissions(root.path().join(rel), fs::Permissions::from_mode(m)).unwrap()
    };
    fs::create_dir(root.path().join("locked")).unwrap();
    fs::write(root.path().join("locked/f"), "x").unwrap();
    fs::create_dir(root.path().join("search")).unwrap();
    fs::write(root.path().join("search/f"), "through").unwrap();
    fs::write(root.path().join("etc/secret"), "s").unwrap();
    mode("etc", 0o755);
    mode("etc/passwd", 0o644);
    mode("etc/secret", 0o600);
    mode("locked", 0o700);
    mode("search", 0o711);
    mode("search/f", 0o644);
    crate::testing::as_nobody(|| {
        each_resolver(root.path(), |r| {
            let p = Path::new;
            assert!(r.read_bytes(p("etc/passwd")).is_ok());
            assert!(matches!(
                r.read_bytes(p("etc/secret")),
                Err(Unreadable::Denied)
            ));
            assert!(matches!(
                r.read_bytes(p("locked/f")),
                Err(Unreadable::Denied)
            ));
            assert!(matches!(r.list_dir(p("locked")), Err(Unreadable::Denied)));
            assert!(matches!(r.kind_of(p("locked/f")), Err(Unreadable::Denied)));
            // A directory that may be searched but not read is no obstacle on the way.
            assert_eq!(r.read_text(p("search/f")).unwrap(), "through");
            assert!(matches!(r.list_dir(p("search")), Err(Unreadable::Denied)));
        });
    });
}

#[test]
fn a_missing_root_is_missing() {
    let root = tree();
    let gone = root.path().join("gone");
    assert!(matches!(Root::open(&gone), Err(Unreadable::Missing)));
    assert!(matches!(
        read_bytes(&gone, Path::new("etc/passwd")),
        Err(Unreadable::Missing)
    ));
}
