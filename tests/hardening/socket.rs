//! Issue 16: the control socket. 200 keep-alive clients of another uid cannot lock an admin
//! out; an unconfigured uid sees only the version in status; bodies are JSON only; foreign
//! Host and Origin headers are refused.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{http_as, is_root, json, send_raw, stdout, Daemon, TestDir, PATIENCE};

/// Opens `n` connections as `uid`, one keep-alive request on each, and holds them open
/// until its stdin closes; prints `held OK REFUSED` once every one was answered.
const HOLDER: &str = r#"
import socket, sys
n, path = int(sys.argv[1]), sys.argv[2]
ok = refused = 0
socks = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(30)
    try:
        s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n")
    except BrokenPipeError:
        pass  # refused: the 503 was written before the request was read
    try:
        head = s.recv(64)
    except ConnectionResetError:
        head = b
    if b" 200 " in head: ok += 1
    elif b" 503 " in head: refused += 1
    socks.append(s)
print("held", ok, refused, flush=True)
sys.stdin.read()
"#;

#[test]
fn an_admin_is_answered_while_another_uid_holds_200_connections() {
    if !is_root() {
        eprintln!("skipped: needs root (clients of another uid)");
        return;
    }
    let dir = TestDir::new();
    let d = Daemon::start(
        &dir,
        "[[user]]\nemail = \"site-user@example.com\"\nuid = 65534\nrole = \"user\"\n",
    );
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    for (uid, expect_ok) in [(65534u32, 16usize), (4242, 2)] {
        let mut holder = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(HOLDER)
            .arg("200")
            .arg(&d.socket)
            .uid(uid)
            .gid(65534)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let counts: Vec<usize> = line
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(counts, [expect_ok, 200 - expect_ok], "uid {uid}: {line}");
        let start = Instant::now();
        let out = d.vigil(&["status"]);
        let took = start.elapsed();
        assert!(out.status.success(), "{out:?}");
        assert!(stdout(&out).contains("version"), "{}", stdout(&out));
        assert!(
            took < Duration::from_secs(1),
            "root waited {took:?} while uid {uid} held 200 connections"
        );
        holder.stdin.take().unwrap().write_all(b"").unwrap();
        let _ = holder.wait();
        assert!(start.elapsed() < PATIENCE);
    }
}

#[test]
fn an_unconfigured_uid_sees_the_version_only() {
    if !is_root() {
        eprintln!("skipped: needs root (a client of another uid)");
        return;
    }
    let dir = TestDir::new();
    let d = Daemon::start(&dir, "");
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, body) = http_as(4242, &d.socket, "GET", "/v1/status", None);
    assert_eq!(code, 200, "{body}");
    let s = json(&body);
    assert!(
        s["notice"].as_str().unwrap().contains("not configured"),
        "{s}"
    );
    assert_eq!(s["config_path"], "", "{s}");
    assert!(!body.contains(&dir.path().display().to_string()), "{body}");
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn bodies_are_json_only_and_foreign_hosts_and_origins_are_refused() {
    let dir = TestDir::new();
    let d = Daemon::start(&dir, "");
    let body = r#"{"kind":"scan"}"#;
    let request = |headers: &str| {
        format!(
            "POST /v1/queue HTTP/1.1\r\n{headers}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (code, reply) = send_raw(
            &d.socket,
            request(&format!("Host: localhost\r\nContent-Type: {ct}\r\n")).as_bytes(),
        );
        assert_eq!(code, 415, "{ct}: {reply}");
        assert!(reply.contains("application/json"), "{reply}");
    }
    let (code, reply) = send_raw(&d.socket, request("Host: localhost\r\n").as_bytes());
    assert_eq!(code, 415, "no content type: {reply}");
    let json_ct = "Content-Type: application/json; charset=utf-8\r\n";
    let (code, reply) = send_raw(
        &d.socket,
        request(&format!("Host: evil.example\r\n{json_ct}")).as_bytes(),
    );
    assert_eq!(code, 403, "{reply}");
    let (code, reply) = send_raw(
        &d.socket,
        request(&format!(
            "Host: localhost:8080\r\nOrigin: https://evil.example\r\n{json_ct}"
        ))
        .as_bytes(),
    );
    assert_eq!(code, 403, "{reply}");
    // What the CLI and a local tool send reaches the handler (which finds no node to scan).
    let (code, reply) = send_raw(
        &d.socket,
        request(&format!(
            "Host: localhost:8080\r\nOrigin: http://localhost:8080\r\n{json_ct}"
        ))
        .as_bytes(),
    );
    assert_eq!(code, 400, "{reply}");
    assert!(reply.contains("covers no node"), "{reply}");
}
