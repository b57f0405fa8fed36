//! Issue 16: captured content of a file others may not read (here a 0600 file captured
//! through `content_private`) is visible to admins only. A Site User's item and drift
//! replies, task reports, exports, policy evidence and the mails never carry it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::common::{http_as, is_root, json, Daemon, TestDir};

const POLICY: &str = r#"
name = "app"
description = "The app's secrets"
scope = "all"

[[check]]
id = "no-password"
description = "No password in the app config"
plugin = "files"
key = "/etc/app.conf"
content_not_matches = 'password'
"#;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn private_content_is_for_admins_only() {
    if !is_root() {
        eprintln!("skipped: needs root (a Site User's uid)");
        return;
    }
    let dir = TestDir::new();
    let root = dir.path().join("web1");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let secret = root.join("etc/app.conf");
    std::fs::write(&secret, "db_password = XYZZY2\n").unwrap();
    chmod(&secret, 0o600);
    std::fs::write(root.join("etc/motd.conf"), "hello\n").unwrap();
    chmod(&root.join("etc/motd.conf"), 0o644);
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/app.toml"), POLICY).unwrap();
    dir.set_today("2026-03-01");
    dir.write_config(&format!(
        "policy_dir = \"policies\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nplugin_dir = \"{}\"\n\n\
         [[user]]\nemail = \"alice@example.com\"\nuid = 65534\nrole = \"user\"\n\n\
         [[group]]\nname = \"web\"\nowners = [\"alice@example.com\"]\n\n\
         [[plugin]]\nname = \"files\"\n[plugin.config]\npaths = [\"/etc\"]\n\
         content = [\"/etc/*.conf\"]\ncontent_private = [\"/etc/app.conf\"]\n\n\
         [[node]]\nname = \"web1\"\ngroups = [\"web\"]\nroot = \"{}\"\n",
        dir.plugin_dir().display(),
        root.display()
    ));
    let d = Daemon::start_on(&dir).unwrap();
    chmod(&d.socket, 0o666);
    d.queue_and_wait(json!({"kind": "scan"}));
    dir.set_today("2026-03-02");
    std::fs::write(&secret, "db_password = XYZZY3\n").unwrap();
    std::fs::write(root.join("etc/motd.conf"), "hello again\n").unwrap();
    d.queue_and_wait(json!({"kind": "scan"}));
    d.queue_and_wait(json!({"kind": "audit"}));

    let item = "/v1/nodes/web1/items?plugin=files&key=/etc/app.conf";
    let (_, admin_item) = d.http("GET", item, None);
    assert!(
        admin_item.contains("XYZZY3"),
        "admins read it: {admin_item}"
    );
    let (_, admin_drift) = d.http("GET", "/v1/nodes/web1/drift", None);
    assert!(
        admin_drift.contains("+db_password = XYZZY3"),
        "{admin_drift}"
    );

    let (_, tasks) = d.http("GET", "/v1/tasks?status=all", None);
    let ids: Vec<u64> = json(&tasks)["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert!(!ids.is_empty(), "{tasks}");
    let mut paths = vec![
        item.to_owned(),
        "/v1/nodes/web1/drift".to_owned(),
        "/v1/tasks/export?status=all".to_owned(),
        "/v1/tasks/export?status=all&format=csv".to_owned(),
        "/v1/policies/app".to_owned(),
        "/v1/logs/audits".to_owned(),
    ];
    for id in &ids {
        paths.push(format!("/v1/tasks/{id}"));
        paths.push(format!("/v1/tasks/{id}/report"));
    }
    let mut seen_hidden = false;
    for path in &paths {
        let (code, body) = http_as(65534, &d.socket, "GET", path, None);
        assert_eq!(code, 200, "{path}: {body}");
        assert!(
            !body.contains("XYZZY"),
            "a Site User reads the secret at {path}: {body}"
        );
        seen_hidden |= body.contains("only admins see its content");
    }
    assert!(
        seen_hidden,
        "the Site User is told the content changed, hidden"
    );
    let (_, user_item) = http_as(65534, &d.socket, "GET", item, None);
    let user_item = json(&user_item);
    assert_eq!(user_item["content"], serde_json::Value::Null);
    assert_eq!(user_item["content_private"], true);
    // The world-readable file's diff stays for everyone.
    let (_, user_drift) = http_as(65534, &d.socket, "GET", "/v1/nodes/web1/drift", None);
    assert!(user_drift.contains("+hello again"), "{user_drift}");

    // Mails (to alice, the owner) never carry it either.
    let maildir = dir.path().join("state/maildir/new");
    d.wait_for("the assignment mails", |_| {
        std::fs::read_dir(&maildir).is_ok_and(|r| r.count() > 0)
    });
    for mail in std::fs::read_dir(&maildir).unwrap().flatten() {
        let text = std::fs::read_to_string(mail.path()).unwrap();
        assert!(!text.contains("XYZZY"), "a mail carries the secret: {text}");
    }
}
