//! Issue 16: the installed service works. vigild runs under exactly the credentials of
//! `systemd/vigild.service` (bounding set, ambient set, SecureBits, NoNewPrivileges, User),
//! applied with setpriv, with a `socket_group`, scanning a root whose files are 0600 and
//! owned by another uid: it starts, its socket has the group, and the files are hashed.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use serde_json::json;

use crate::common::{is_root, json, Daemon, TestDir};

const UNIT: &str = include_str!("../../systemd/vigild.service");

/// The value of `key=` in the unit's [Service] section (the last one wins, as in systemd).
fn setting(key: &str) -> Option<String> {
    UNIT.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}=")))
        .map(|v| v.trim().to_owned())
}

/// setpriv's arguments for the unit's credentials.
fn setpriv_args() -> Vec<String> {
    let caps = |v: &str| -> String {
        v.split_whitespace()
            .map(|c| format!(",+{}", c.trim_start_matches("CAP_").to_ascii_lowercase()))
            .collect()
    };
    let bounding = setting("CapabilityBoundingSet").expect("the unit sets a bounding set");
    let ambient = setting("AmbientCapabilities").unwrap_or_default();
    let mut args = vec![
        "setpriv".to_owned(),
        format!("--bounding-set=-all{}", caps(&bounding)),
        "--inh-caps=-all".to_owned(),
        format!("--ambient-caps=-all{}", caps(&ambient)),
    ];
    if let Some(bits) = setting("SecureBits").filter(|b| !b.is_empty()) {
        let bits: String = bits
            .split_whitespace()
            .map(|b| format!("+{}", b.replace('-', "_")))
            .collect::<Vec<_>>()
            .join(",");
        args.push(format!("--securebits={bits}"));
    }
    if setting("NoNewPrivileges").as_deref() == Some("yes") {
        args.push("--no-new-privs".to_owned());
    }
    match setting("User").as_deref() {
        None | Some("root") | Some("") => {}
        Some(user) => args.extend([format!("--reuid={user}"), "--init-groups".to_owned()]),
    }
    args.push("--".to_owned());
    args
}

#[test]
fn vigild_works_under_the_units_credentials() {
    if !is_root() {
        eprintln!("skipped: needs root (the unit runs vigild as root)");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        panic!("setpriv (util-linux) is needed for this test");
    }
    let args = setpriv_args();
    assert!(
        args.iter().any(|a| a.contains("dac_read_search")),
        "{args:?}"
    );
    let dir = TestDir::new();
    let root = dir.path().join("web1");
    let private = root.join("home/other");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::write(root.join("hostname"), "web1\n").unwrap();
    std::fs::write(private.join("secret.txt"), "mine\n").unwrap();
    std::fs::set_permissions(private.join("secret.txt"), PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&private, PermissionsExt::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(private.join("secret.txt"), Some(4242), Some(4242)).unwrap();
    std::os::unix::fs::chown(&private, Some(4242), Some(4242)).unwrap();
    dir.write_config(&format!(
        "policy_dir = \"no-policies\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\n\
         socket_group = \"nogroup\"\nplugin_dir = \"{}\"\n\n\
         [[plugin]]\nname = \"files\"\n[plugin.config]\npaths = [\"/home\"]\n\n\
         [[node]]\nname = \"web1\"\nroot = \"{}\"\n",
        dir.plugin_dir().display(),
        root.display()
    ));
    let d = Daemon::start_under(&dir, &args).expect("vigild starts under the unit's credentials");
    let group = nix::unistd::Group::from_name("nogroup").unwrap().unwrap();
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.gid(), group.gid.as_raw(), "the socket has its group");
    assert_eq!(meta.mode() & 0o777, 0o660);
    let caps = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    let bounding = caps
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap();
    assert_eq!(
        bounding & (1 << 21),
        0,
        "CAP_SYS_ADMIN is not in the bounding set: {caps}"
    );
    let rows = d.queue_and_wait(json!({"kind": "scan"}));
    assert_eq!(rows[0]["status"], "Finished", "{}", rows[0]);
    let (code, body) = d.http(
        "GET",
        "/v1/nodes/web1/items?plugin=files&key=/home/other/secret.txt",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let item = json(&body);
    assert!(
        item["attributes"]["blake3"].is_string(),
        "the 0600 file is hashed: {item}"
    );
}
