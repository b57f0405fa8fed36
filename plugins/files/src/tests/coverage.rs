//! What a scan could not see or must not keep: unreadable files and directories (notes and
//! unseen records, run as an unprivileged user), files left without a hash, and content
//! withheld from private and secret files (issue 16).

use super::*;

/// Runs a scan as an unprivileged user (see `vigil_rootfs::testing`), on a root it can enter.
fn run_as_nobody(root: &Path, json: &str) -> Collect {
    vigil_rootfs::testing::open_up(root);
    vigil_rootfs::testing::as_nobody(|| run(root, json))
}

/// Every regular file emitted without a hash has a note that names it.
fn assert_unhashed_files_are_noted(c: &Collect) {
    for item in &c.items {
        let file = item.attributes.get("type") == s("file").as_ref();
        if file && !item.attributes.contains_key("blake3") {
            assert!(
                c.notes.iter().any(|n| n.contains(item.key.as_str())),
                "{} has no hash and no note: {:?}",
                item.key,
                c.notes
            );
        }
    }
}

#[test]
fn unreadable_file_and_dir_are_noted_not_fatal() {
    let t = fixture();
    let etc = t.path().join("etc");
    fs::write(etc.join("secret"), "s").unwrap();
    fs::set_permissions(etc.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::create_dir(etc.join("locked")).unwrap();
    fs::write(etc.join("locked/inner"), "s").unwrap();
    fs::set_permissions(etc.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(&etc, fs::Permissions::from_mode(0o755)).unwrap();
    let c = run_as_nobody(t.path(), "{}");
    // A configured path below a directory that cannot be searched is not seen either.
    let below = run_as_nobody(t.path(), r#"{"paths": ["/etc/locked/inner"]}"#);
    fs::set_permissions(etc.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        below.items.is_empty() && below.notes.is_empty(),
        "{:?}",
        below.notes
    );
    assert_eq!(
        below.unseen,
        [(
            "/etc/locked/inner".to_owned(),
            "permission denied".to_owned()
        )]
    );
    assert_eq!(c.attr("/etc/secret", "mode"), s("0000"));
    assert_eq!(c.attr("/etc/secret", "blake3"), None);
    assert_eq!(c.attr("/etc/locked", "type"), s("dir"));
    assert!(!c.has("/etc/locked/inner"));
    assert!(
        c.notes
            .contains(&"permission denied: /etc/secret".to_owned()),
        "{:?}",
        c.notes
    );
    assert!(
        !c.notes.iter().any(|n| n.contains("/etc/locked")),
        "{:?}",
        c.notes
    );
    assert_eq!(
        c.unseen,
        [("/etc/locked".to_owned(), "permission denied".to_owned())]
    );
    assert!(c.has("/etc/ssh/sshd_config"), "the scan went on");
    assert_unhashed_files_are_noted(&c);
}

#[test]
fn a_file_whose_type_was_unknown_is_noted_when_it_cannot_be_opened() {
    use crate::describe::{Describer, Job};
    let t = fixture();
    let etc = t.path().join("etc");
    fs::write(etc.join("secret"), "s").unwrap();
    fs::set_permissions(etc.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(&etc, fs::Permissions::from_mode(0o755)).unwrap();
    vigil_rootfs::testing::open_up(t.path());
    let cfg = crate::config::Compiled::new(&Config::default()).unwrap();
    let root =
        crate::sys::open_root(&std::ffi::CString::new(t.path().as_os_str().as_bytes()).unwrap())
            .unwrap();
    let ids = crate::ids::Ids::load(&root);
    let dir = crate::sys::open_dir(&root, c"etc").unwrap();
    let out = vigil_rootfs::testing::as_nobody(|| {
        // As on a filesystem that does not fill in d_type.
        Describer::new(&cfg, &ids).describe(Job {
            dir: std::sync::Arc::new(dir),
            name: Some(c"secret".to_owned()),
            key: "/etc/secret".into(),
            d_type: libc::DT_UNKNOWN,
            content: false,
        })
    });
    let item = out.item.expect("the file is still an item");
    assert_eq!(item.attributes.get("type"), s("file").as_ref());
    assert!(!item.attributes.contains_key("blake3"));
    assert_eq!(out.notes, ["permission denied: /etc/secret"]);
}

#[test]
fn issue_16_private_files_are_captured_only_when_listed_in_content_private() {
    let t = fixture();
    let etc = t.path().join("etc");
    fs::create_dir(etc.join("db")).unwrap();
    for (f, mode) in [
        ("db/pg_hba.conf", 0o600),
        ("db/shared.conf", 0o640),
        ("db/open.conf", 0o604),
    ] {
        fs::write(etc.join(f), "db_password = hunter2\n").unwrap();
        fs::set_permissions(etc.join(f), fs::Permissions::from_mode(mode)).unwrap();
    }
    let c = run(t.path(), r#"{"content": ["/etc/**/*.conf"]}"#);
    assert_eq!(c.get("/etc/db/pg_hba.conf").content, None);
    assert_eq!(c.get("/etc/db/shared.conf").content, None);
    assert!(c.get("/etc/db/open.conf").content.is_some());
    assert!(
        c.attr("/etc/db/pg_hba.conf", "blake3").is_some(),
        "still hashed"
    );
    assert!(
        !c.has_attr("/etc/db/pg_hba.conf", "content_skipped"),
        "no new attribute"
    );
    assert_eq!(
        c.notes,
        [
            "content not captured: /etc/db/pg_hba.conf is not world-readable (add it to \
             content_private to capture it)",
            "content not captured: /etc/db/shared.conf is not world-readable (add it to \
             content_private to capture it)",
        ]
    );
    let c = run(
        t.path(),
        r#"{"content": ["/etc/**/*.conf"], "content_private": ["/etc/db/pg_hba.conf"]}"#,
    );
    assert_eq!(
        c.get("/etc/db/pg_hba.conf").content.as_deref(),
        Some("db_password = hunter2\n")
    );
    assert_eq!(c.get("/etc/db/shared.conf").content, None);
    assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
}

#[test]
fn issue_16_secret_files_need_allow_secret_content() {
    let t = fixture();
    let etc = t.path().join("etc");
    fs::create_dir(etc.join("ssl")).unwrap();
    for f in [
        "shadow",
        "gshadow-",
        "ssl/site.key",
        "ssh/ssh_host_ed25519_key",
        "hosts.conf",
    ] {
        fs::write(etc.join(f), "secret-bytes\n").unwrap();
        fs::set_permissions(etc.join(f), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let all = r#"{"content": ["/etc/**"], "content_private": ["/etc/**"]"#;
    let c = run(t.path(), &format!("{all}}}"));
    for key in [
        "/etc/shadow",
        "/etc/gshadow-",
        "/etc/ssl/site.key",
        "/etc/ssh/ssh_host_ed25519_key",
    ] {
        assert_eq!(c.get(key).content, None, "{key}");
        assert!(c.attr(key, "blake3").is_some(), "{key} is still hashed");
        let note = format!(
            "content not captured: {key} is on the built-in list of secret files (shadow \
             files, keys; set allow_secret_content = true to capture it)"
        );
        assert!(c.notes.contains(&note), "{note} not in {:?}", c.notes);
    }
    assert!(c.get("/etc/hosts.conf").content.is_some());
    let c = run(
        t.path(),
        &format!(r#"{all}, "allow_secret_content": true}}"#),
    );
    assert_eq!(
        c.get("/etc/shadow").content.as_deref(),
        Some("secret-bytes\n")
    );
    assert!(
        c.notes
            .iter()
            .all(|n| !n.starts_with("content not captured")),
        "{:?}",
        c.notes
    );
}
