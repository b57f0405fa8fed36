//! Foundation (issue 2): status, roles by peer uid, socket handling, config checks and
//! reloads, signals, sd_notify readiness, and hostile HTTP.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::sys::signal::Signal;

use crate::common::{http_raw, is_root, send_raw, vigil_cmd, Daemon, TestDir, PATIENCE, VIGILD};

#[test]
fn status_via_cli_and_raw_http() {
    let dir = TestDir::new();
    let d = Daemon::start(&dir, "");

    let out = d.vigil(&["status"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("version"), "{text}");
    assert!(
        text.lines().next().unwrap().starts_with("open tasks"),
        "open count comes first: {text}"
    );

    let out = d.vigil(&["status", "--json"]);
    assert!(out.status.success());
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("--json output parses");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["pid"], d.child.id());
    assert!(json["last_reload_error"].is_null());
    assert_eq!(json["open_tasks"], 0);
    assert!(
        json.get("not_yet_implemented").is_none(),
        "every figure is real: {json}"
    );
    for figure in ["queue", "outbox", "open_tasks"] {
        assert!(!json[figure].is_null(), "{figure} is filled in: {json}");
    }
    assert_eq!(json["queue"]["slots"], 4);
    assert_eq!(
        json["caller"]["role"], "admin",
        "the daemon's own uid is an admin"
    );

    let raw = d.status_json();
    assert_eq!(raw["config_path"], dir.config_path().display().to_string());
    assert_eq!(raw["slots"], 4);
}

#[test]
fn cli_reports_unreachable_daemon_with_exit_code_2() {
    let dir = TestDir::new();
    let out = vigil_cmd(&dir.socket(), &["status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("vigil: cannot reach vigild at "), "{err}");
    assert!(err.trim_end().ends_with("is it running?"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
}

/// A user the socket's mode keeps out is told that the socket is there and which group to
/// join, not that vigild may not be running.
#[test]
fn a_user_outside_the_socket_group_is_told_which_group_to_join() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !is_root() {
        eprintln!(
            "SKIPPED a_user_outside_the_socket_group_is_told_which_group_to_join: needs root"
        );
        return;
    }
    let dir = TestDir::new();
    let d = Daemon::start(&dir, "");
    // The directory is open; the socket itself keeps its 0660, group root.
    std::fs::set_permissions(
        dir.socket().parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let out = vigil_cmd(&d.socket, &["status"])
        .uid(4242)
        .gid(4242)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("socket") && err.contains("exists, but uid 4242 may not connect"),
        "{err}"
    );
    assert!(
        err.contains("group root") && err.contains("usermod -aG root"),
        "{err}"
    );
    assert!(!err.contains("is it running"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
}

#[test]
fn roles_follow_the_peer_uid() {
    if !is_root() {
        eprintln!("SKIPPED roles_follow_the_peer_uid: needs root to run the CLI as other uids");
        return;
    }
    let dir = TestDir::new();
    let d = Daemon::start(
        &dir,
        "[[user]]\nemail = \"site-user@example.com\"\nuid = 65534\nrole = \"user\"\n\n\
         [[user]]\nemail = \"boss@example.com\"\nuid = 4243\nrole = \"admin\"\n",
    );
    // Let other uids connect: the socket's group would normally do this.
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(
        dir.socket().parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    let as_uid = |uid: u32, args: &[&str]| {
        let mut cmd = vigil_cmd(&d.socket, args);
        cmd.uid(uid).gid(65534);
        cmd.output().unwrap()
    };

    // A Site User: identified, may read status, may not reload.
    let out = as_uid(65534, &["status", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["caller"]["uid"], 65534);
    assert_eq!(json["caller"]["email"], "site-user@example.com");
    assert_eq!(json["caller"]["role"], "user");
    let out = as_uid(65534, &["reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs the admin role"),
        "{out:?}"
    );

    // A configured admin may reload.
    let out = as_uid(4243, &["reload"]);
    assert!(out.status.success(), "{out:?}");

    // The configured users (whom a task can be assigned to): admins only.
    let (code, body) = crate::common::http_as(4243, &d.socket, "GET", "/v1/users", None);
    assert_eq!(code, 200, "{body}");
    let users: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        users,
        serde_json::json!([
            {"email": "site-user@example.com", "role": "user"},
            {"email": "boss@example.com", "role": "admin"}
        ])
    );
    let (code, body) = crate::common::http_as(65534, &d.socket, "GET", "/v1/users", None);
    assert_eq!(code, 403, "{body}");

    // An unknown uid: status only, 403 elsewhere (even on unknown routes).
    let out = as_uid(4242, &["status", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["caller"]["role"].is_null());
    assert!(json["caller"]["email"].is_null());
    let out = as_uid(4242, &["reload"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("uid 4242 is not a vigil user"), "{err}");
    for (method, path) in [
        ("GET", "/v1/no-such-route"),
        ("GET", "/v1/tasks"),
        ("GET", "/v1/queue"),
    ] {
        let (code, body) = crate::common::http_as(4242, &d.socket, method, path, None);
        assert_eq!(code, 403, "{method} {path}: {body}");
        assert!(body.contains("\"code\":\"forbidden\""), "{body}");
    }

    // uid 0 is an admin even when it is not configured.
    let json = d.status_json();
    assert_eq!(json["caller"]["role"], "admin");
}

#[test]
fn socket_has_mode_0660_and_the_configured_group() {
    let dir = TestDir::new();
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(65534)).unwrap();
    let Some(group) = group else {
        eprintln!("SKIPPED socket group check: no group with gid 65534 on this machine");
        return;
    };
    dir.write_config(&format!(
        "policy_dir = \"no-policies\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nsocket_group = \"{}\"\n",
        group.name
    ));
    let d = Daemon::start_on(&dir).unwrap();
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    if is_root() {
        assert_eq!(meta.gid(), 65534);
    }
}

#[test]
fn stale_socket_is_replaced_and_second_daemon_refused() {
    let dir = TestDir::new();
    std::fs::create_dir_all(dir.socket().parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(dir.socket()).unwrap());
    assert!(dir.socket().exists(), "stale socket file in place");
    let d = Daemon::start(&dir, "");
    assert_eq!(d.http("GET", "/v1/status", None).0, 200);

    // Same state dir: refused fast, and the live socket is untouched.
    let out = Command::new(VIGILD)
        .arg("--config")
        .arg(dir.config_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another vigild is already running on state directory"),
        "{err}"
    );
    assert_eq!(d.http("GET", "/v1/status", None).0, 200);

    // Different state dir, same socket: the live socket is not stolen.
    let other = dir.path().join("other.toml");
    std::fs::write(
        &other,
        "policy_dir = \"no-policies\"\n[daemon]\nstate_dir = \"state2\"\nsocket = \"run/vigil.sock\"\n",
    )
    .unwrap();
    let out = Command::new(VIGILD)
        .arg("--config")
        .arg(&other)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another vigild is already listening on"),
        "{err}"
    );
    assert_eq!(d.http("GET", "/v1/status", None).0, 200);
}

#[test]
fn check_config_lists_every_error_with_its_line() {
    let dir = TestDir::new();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[daemon]\nslots = 0\ntimezone = \"Nowhere/Special\"\n\n[[node]]\nname = \"n\"\nroot = \"/\"\ngroups = [\"missing\"]\n\n\
         [[schedule]]\nname = \"s\"\nkind = \"scan\"\ncron = \"not cron\"\n",
    )
    .unwrap();
    let out = Command::new(VIGILD)
        .arg("--check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let p = bad.display().to_string();
    for want in [
        format!("{p}:2:9: slots must be at least 1"),
        format!("{p}:3:12: unknown timezone"),
        format!("{p}:8:11: node \"n\" names unknown group \"missing\""),
        format!("{p}:13:8: invalid cron expression"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }

    let good = dir.path().join("good.toml");
    std::fs::write(&good, dir.base_config("")).unwrap();
    let out = Command::new(VIGILD)
        .arg("--check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains(": OK ("), "{text}");
}

#[test]
fn the_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml.example");
    let out = Command::new(VIGILD)
        .arg("--check-config")
        .arg(example)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The README's first set-up command: vigild runs on config.toml.example as it is (here from
/// a copy laid out like a source checkout), scans this machine and audits it.
#[test]
fn the_example_config_runs_a_scan_and_an_audit_of_this_machine() {
    let dir = TestDir::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(repo.join("config.toml.example"), dir.config_path()).unwrap();
    dir.copy_tree(&repo.join("policies"), "policies");
    let release = dir.path().join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    for entry in std::fs::read_dir(dir.plugin_dir()).unwrap().flatten() {
        std::fs::copy(entry.path(), release.join(entry.file_name())).unwrap();
    }
    let mut d = Daemon::start_on(&dir).expect("vigild starts on the example config");
    d.socket = dir.path().join("state/vigil.sock");
    let status = d.status_json();
    assert_eq!(status["nodes"], 1, "{status}");
    for what in [&["scan", "--wait"][..], &["audit", "--wait"][..]] {
        let out = d.vigil(what);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "vigil {what:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("localhost Finished"), "{text}");
    }
    let out = d.vigil(&["nodes"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("localhost"));
}

#[test]
fn hot_reload_keeps_the_old_config_on_error_and_sighup_reloads() {
    let dir = TestDir::new();
    let d = Daemon::start(&dir, "[[node]]\nname = \"a\"\nroot = \"/\"\n");
    assert_eq!(d.status_json()["nodes"], 1);

    // A broken file is seen by the watcher and rejected; the old config stays.
    dir.write_config(
        &dir.base_config("[[node]]\nname = \"a\"\nroot = \"/\"\ngroups = [\"ghost\"]\n"),
    );
    d.wait_for("the reload error to show", |d| {
        !d.status_json()["last_reload_error"].is_null()
    });
    let status = d.status_json();
    let error = status["last_reload_error"].as_str().unwrap();
    assert!(error.contains("unknown group \"ghost\""), "{error}");
    assert!(
        error.contains("config.toml:"),
        "error has file:line: {error}"
    );
    assert_eq!(status["nodes"], 1, "old config still in force");

    // Fixing the file clears the error and applies the new config.
    dir.write_config(&dir.base_config(
        "[[node]]\nname = \"a\"\nroot = \"/\"\n\n[[node]]\nname = \"b\"\nroot = \"/\"\n",
    ));
    d.wait_for("the fixed config to load", |d| {
        d.status_json()["nodes"] == 2
    });
    assert!(d.status_json()["last_reload_error"].is_null());

    // SIGHUP re-reads the file too (nothing changed on disk, so only SIGHUP can have done it).
    let before = d.status_json()["config_loaded_at"].clone();
    d.signal(Signal::SIGHUP);
    d.wait_for("the SIGHUP reload", |d| {
        d.status_json()["config_loaded_at"] != before
    });
    assert!(d.log_text().contains("trigger=\"SIGHUP\""));

    // POST /v1/reload with a bad file answers 422 and keeps the config.
    dir.write_config(&dir.base_config("[daemon.bogus]\n"));
    let (code, body) = d.http("POST", "/v1/reload", None);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("\"code\":\"invalid_config\""), "{body}");
    assert_eq!(d.status_json()["nodes"], 2);
}

#[test]
fn sigterm_stops_cleanly_and_the_store_reopens() {
    let dir = TestDir::new();
    let mut d = Daemon::start(&dir, "");
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
    assert!(!dir.socket().exists(), "socket file removed");
    assert!(d.log_text().contains("vigild stopped"));
    assert!(d.notify_messages().iter().any(|m| m.contains("STOPPING=1")));

    let d2 = Daemon::start_on(&dir).expect("restarts on the same state dir");
    assert_eq!(d2.http("GET", "/v1/status", None).0, 200);
}

#[test]
fn ready_is_sent_only_once_the_socket_accepts() {
    let dir = TestDir::new();
    // start_on returns right after READY=1 arrived: the very first request must be served.
    let d = Daemon::start(&dir, "");
    let (code, body) = d.http("GET", "/v1/status", None);
    assert_eq!(code, 200, "served immediately after READY=1: {body}");
}

#[test]
fn hostile_http_gets_clean_errors_and_the_daemon_keeps_serving() {
    let dir = TestDir::new();
    let d = Daemon::start(&dir, "");

    let (code, body) = d.http("POST", "/v1/reload", Some("{not json"));
    assert_eq!(code, 400, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["code"], "bad_request");

    let (code, body) = d.http("POST", "/v1/reload", Some("{\"surprise\": 1}"));
    assert_eq!(code, 400);
    assert!(body.contains("unknown field"), "{body}");

    let (code, body) = d.http("GET", "/v1/no-such-thing", None);
    assert_eq!(code, 404);
    assert!(body.contains("\"code\":\"not_found\""), "{body}");

    let (code, body) = d.http("DELETE", "/v1/status", None);
    assert_eq!(code, 405);
    assert!(body.contains("method_not_allowed"), "{body}");

    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(1024 * 1024));
    let (code, body) = d.http("POST", "/v1/reload", Some(&big));
    assert_eq!(code, 413, "{body}");

    let (code, _) = send_raw(&d.socket, b"THIS IS NOT HTTP\r\n\r\n");
    assert_eq!(code, 400, "garbage is refused with 400");

    let (code, _) = http_raw(&d.socket, "GET", "/v1/status", None);
    assert_eq!(code, 200, "daemon still serves");
}

/// Clients that hold connections without finishing a request cannot lock others out: a
/// client over its limit is refused at once with a 503 envelope (root has
/// `max_connections` plus the admins' reserve), a silent connection is closed after
/// `client_timeout`, and a body that stops half-way gets 408 after `request_timeout`.
#[test]
fn surplus_and_stalled_clients_are_bounded() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    let dir = TestDir::new();
    dir.write_config(
        "policy_dir = \"no-policies\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nshutdown_grace = \"5s\"\n\
         max_connections = 2\nclient_timeout = \"5s\"\nrequest_timeout = \"1s\"\n",
    );
    let d = Daemon::start_on(&dir).expect("vigild starts");
    let connect = || UnixStream::connect(&d.socket).unwrap();
    let status = b"GET /v1/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

    // Silent clients take every place an admin has (this test's uid is one)...
    let reserve = 16;
    let mut silent: Vec<UnixStream> = (0..2 + reserve).map(|_| connect()).collect();
    // ...the next one is refused at once, with a reason...
    let (code, body) = send_raw(&d.socket, status);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("connections"), "{body}");
    // ...and a place freed is served again (the daemon sees the close asynchronously).
    drop(silent.remove(0));
    d.wait_for("a freed place", |d| {
        http_raw(&d.socket, "GET", "/v1/status", None).0 == 200
    });
    let mut second = silent.pop().unwrap();

    // The silent client is disconnected after client_timeout, freeing its slot.
    second.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut rest = Vec::new();
    second
        .read_to_end(&mut rest)
        .expect("the server closes a silent connection");

    // A body that stops half-way gets 408 with the error envelope.
    let (code, body) = send_raw(
        &d.socket,
        b"POST /v1/reload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"a\":",
    );
    assert_eq!(code, 408, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(e["error"]["message"].is_string(), "{body}");

    let (code, _) = http_raw(&d.socket, "GET", "/v1/status", None);
    assert_eq!(code, 200, "daemon still serves");
}
