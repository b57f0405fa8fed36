use super::*;
use vigil_plugin::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/nodes/debian"
);

fn find<'a>(items: &'a [Item], key: &str) -> &'a Item {
    items
        .iter()
        .find(|i| i.key == key)
        .unwrap_or_else(|| panic!("no item {key}"))
}

fn get<'a>(item: &'a Item, name: &str) -> Option<&'a Value> {
    item.attributes.get(name)
}

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

#[test]
fn fixture_users_and_groups() {
    let scan = scan_root(Path::new(FIXTURE)).unwrap();
    assert!(scan.notes.is_empty(), "{:?}", scan.notes);
    let keys: Vec<&str> = scan.items.iter().map(|i| i.key.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(keys, sorted, "items must be sorted by key");
    assert_eq!(keys.iter().filter(|k| k.starts_with("user:")).count(), 10);
    assert_eq!(keys.iter().filter(|k| k.starts_with("group:")).count(), 12);

    let root = find(&scan.items, "user:root");
    assert_eq!(get(root, "uid"), Some(&Value::Int(0)));
    assert_eq!(get(root, "shell"), Some(&s("/bin/bash")));
    assert_eq!(get(root, "home"), Some(&s("/root")));
    assert_eq!(get(root, "password"), Some(&s("set")));
    assert_eq!(get(root, "last_change"), Some(&Value::Int(19700)));
    assert_eq!(get(root, "max_days"), Some(&Value::Int(99999)));
    assert_eq!(get(root, "expire"), None);

    let alice = find(&scan.items, "user:alice");
    assert_eq!(get(alice, "gecos"), Some(&s("Alice Example,,,")));
    assert_eq!(get(alice, "max_days"), Some(&Value::Int(90)));
    assert_eq!(get(alice, "expire"), Some(&Value::Int(20500)));
    assert_eq!(
        get(find(&scan.items, "user:daemon"), "password"),
        Some(&s("locked"))
    );
    assert_eq!(
        get(find(&scan.items, "user:sshd"), "password"),
        Some(&s("locked"))
    );
    assert_eq!(
        get(find(&scan.items, "user:deploy"), "password"),
        Some(&s("empty"))
    );

    let sudo = find(&scan.items, "group:sudo");
    assert_eq!(get(sudo, "gid"), Some(&Value::Int(27)));
    assert_eq!(get(sudo, "members"), Some(&s("alice,deploy")));
    assert_eq!(
        get(find(&scan.items, "group:root"), "members"),
        Some(&s(""))
    );
}

#[test]
fn no_password_hash_ever_appears_in_items_or_notes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(
        dir.path().join("etc/passwd"),
        "u:x:5:5::/h:/bin/sh\nold:$1$legacy$hashhash:6:6::/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("etc/group"), "g:x:5:\n").unwrap();
    // Includes a malformed line with a hash, which must not be quoted in the note.
    std::fs::write(
        dir.path().join("etc/shadow"),
        "u:$y$j9T$fakesalt$fakehash:19000:0:99999:7:::\nbroken:$6$salt$brokenhash\n",
    )
    .unwrap();
    for root in [Path::new(FIXTURE), dir.path()] {
        let scan = scan_root(root).unwrap();
        let json = serde_json::to_string(&scan.items).unwrap() + &scan.notes.join("\n");
        for needle in [
            "fakehash",
            "fakesalt",
            "$y$",
            "$6$",
            "$1$",
            "hashhash",
            "brokenhash",
            "j9T",
        ] {
            assert!(!json.contains(needle), "{needle} leaked: {json}");
        }
    }
    let scan = scan_root(dir.path()).unwrap();
    assert_eq!(
        get(find(&scan.items, "user:old"), "password"),
        Some(&s("set"))
    );
    assert_eq!(
        scan.notes,
        ["/etc/shadow:2: expected 9 colon-separated fields, skipped"]
    );
}

#[test]
fn unreadable_shadow_is_a_note() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    rootfs::testing::open_up(dir.path());
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/passwd"), "u:x:5:5::/h:/bin/sh\n").unwrap();
    std::fs::write(dir.path().join("etc/group"), "").unwrap();
    let scan = scan_root(dir.path()).unwrap();
    assert_eq!(
        scan.notes,
        ["not found: /etc/shadow (password state not checked)"]
    );

    let shadow = dir.path().join("etc/shadow");
    std::fs::write(&shadow, "u:!:1:::::::\n").unwrap();
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o000)).unwrap();
    let scan = rootfs::testing::as_nobody(|| scan_root(dir.path())).unwrap();
    assert_eq!(
        scan.notes,
        ["permission denied: /etc/shadow (password state not checked)"]
    );
    assert_eq!(scan.items.len(), 1, "the users are still reported");
}

#[test]
fn missing_passwd_fails_the_scan_and_missing_group_is_a_note() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        scan_root(dir.path()).unwrap_err(),
        "no passwd file at /etc/passwd under the node root (is the root mounted?)"
    );
    std::fs::create_dir_all(dir.path().join("etc/passwd")).unwrap();
    assert_eq!(
        scan_root(dir.path()).unwrap_err(),
        "/etc/passwd under the node root is not a regular file"
    );
    std::fs::remove_dir(dir.path().join("etc/passwd")).unwrap();
    std::fs::write(dir.path().join("etc/passwd"), "u:x:5:5::/h:/bin/sh\n").unwrap();
    std::fs::write(dir.path().join("etc/shadow"), "").unwrap();
    let scan = scan_root(dir.path()).unwrap();
    assert_eq!(scan.notes, ["not found: /etc/group"]);
    assert_eq!(scan.items.len(), 1);
}

#[test]
fn unreadable_passwd_fails_the_scan() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    rootfs::testing::open_up(dir.path());
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    let passwd = dir.path().join("etc/passwd");
    std::fs::write(&passwd, "u:x:5:5::/h:/bin/sh\n").unwrap();
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o000)).unwrap();
    let err = rootfs::testing::as_nobody(|| scan_root(dir.path())).unwrap_err();
    assert_eq!(
        err,
        "cannot read the passwd file: permission denied: /etc/passwd"
    );
}

#[test]
fn malformed_and_duplicate_lines_are_noted_and_skipped() {
    let mut notes = Notes::default();
    let users = parse_passwd(
        "# comment\n\na:x:1:1::/:/bin/sh\nb:x:notanumber:1::/:/bin/sh\nshort:x:1\na:x:9:9::/:/bin/zsh\n+@netgroup::::::\n",
        "/etc/passwd",
        &mut notes,
    );
    assert_eq!(users.len(), 1);
    assert_eq!(get(&users["a"], "uid"), Some(&Value::Int(1)));
    let notes = notes.into_vec();
    assert_eq!(notes.len(), 4, "{notes:?}");
    for prefix in [
        "/etc/passwd:4: user b",
        "/etc/passwd:5: expected 7",
        "/etc/passwd:6: user a is listed again",
        "/etc/passwd:7: NIS",
    ] {
        assert!(
            notes.iter().any(|n| n.starts_with(prefix)),
            "{prefix}: {notes:?}"
        );
    }
}

#[test]
fn group_members_are_sorted_and_deduplicated() {
    let mut notes = Notes::default();
    let groups = parse_group("wheel:x:10:zed, amy,zed,\n", "/etc/group", &mut notes);
    assert_eq!(get(&groups[0], "members"), Some(&s("amy,zed")));
}

#[test]
fn symlinked_passwd_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("etc/passwd")).unwrap();
    let err = scan_root(dir.path()).unwrap_err();
    assert!(err.contains("/etc/passwd is a symlink"), "{err}");
}

#[test]
fn config_refuses_unknown_fields() {
    assert!(serde_json::from_str::<Config>("{}").is_ok());
    assert!(serde_json::from_str::<Config>(r#"{"shadow": true}"#).is_err());
}
