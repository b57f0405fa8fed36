//! Email (issue 5): the durable outbox and its sender against a real SMTP server (aiosmtpd,
//! `tests/smtp/sink.py`), scripted SMTP fault responders for timeouts, 4xx and 5xx, the
//! maildir default, restarts after SIGKILL, and header injection.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::common::{Daemon, TestDir};
use faults::{scripted_server, silent_server};

mod faults;
mod recovery;

const SINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp/sink.py");
/// Debian's interpreter, where python3-aiosmtpd lives (the first `python3` on PATH may be
/// another one).
const PYTHON: &str = "/usr/bin/python3";

/// A loopback port nobody listens on (yet).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The aiosmtpd sink, killed on drop.
pub struct Sink {
    child: Child,
    dir: PathBuf,
}

impl Sink {
    pub fn start(port: u16, dir: &Path) -> Sink {
        Sink::start_slow(port, dir, 0.0)
    }

    /// A sink that answers 250 only `delay` seconds after it stored a message.
    pub fn start_slow(port: u16, dir: &Path, delay: f64) -> Sink {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new(PYTHON)
            .arg(SINK)
            .arg("serve")
            .arg(port.to_string())
            .arg(dir)
            .arg(delay.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run /usr/bin/python3 tests/smtp/sink.py (apt-get install python3-aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        Sink {
            child,
            dir: dir.to_owned(),
        }
    }

    /// Messages received so far, in arrival order.
    pub fn messages(&self) -> Vec<PathBuf> {
        eml_files(&self.dir)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Parses a received message with Python's email package (see sink.py).
pub fn parse(path: &Path) -> Value {
    let out = Command::new(PYTHON)
        .arg(SINK)
        .arg("parse")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn smtp_config(port: u16) -> String {
    format!(
        "[email]\nfrom = \"vigil@example.com\"\nmax_backoff = \"1s\"\n\
         [email.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"1s\"\n"
    )
}

/// Queues a test mail through the API; returns (id, Message-ID).
fn send_test(d: &Daemon, to: &str) -> (u64, String) {
    let (code, body) = d.http(
        "POST",
        "/v1/outbox/test",
        Some(&json!({ "to": to }).to_string()),
    );
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    (
        v["id"].as_u64().unwrap(),
        v["message_id"].as_str().unwrap().to_owned(),
    )
}

fn outbox(d: &Daemon) -> Vec<Value> {
    let (code, body) = d.http("GET", "/v1/outbox", None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn outbox_status(d: &Daemon) -> Value {
    d.status_json()["outbox"].clone()
}

#[test]
fn smtp_delivers_text_and_html_with_our_message_id() {
    let dir = TestDir::new();
    let port = free_port();
    let sink = Sink::start(port, &dir.path().join("sink"));
    let d = Daemon::start(&dir, &smtp_config(port));
    assert_eq!(
        outbox_status(&d),
        json!({"pending": 0, "dead": 0, "last_error": null})
    );
    let (_, message_id) = send_test(&d, "alice@example.com");
    d.wait_for("the mail to arrive", |_| sink.messages().len() == 1);
    d.wait_for("the outbox to empty", |d| outbox_status(d)["pending"] == 0);
    let m = parse(&sink.messages()[0]);
    assert_eq!(m["subject"], "[vigil] vigil test message");
    assert_eq!(m["message_id"], message_id.as_str());
    assert!(message_id.starts_with("<outbox-1."), "{message_id}");
    assert_eq!(m["to"], "alice@example.com");
    assert_eq!(m["from"], "vigil@example.com");
    assert_eq!(m["rcpt_tos"], json!(["alice@example.com"]));
    assert!(m["text"]
        .as_str()
        .unwrap()
        .contains("test message from vigil"));
    assert!(m["html"]
        .as_str()
        .unwrap()
        .contains("<p>This is a test message"));
    assert_eq!(m["defects"], json!([]));
    assert!(d.log_text().contains("mail sent via SMTP 127.0.0.1"));

    let out = d.vigil(&["outbox"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("the outbox is empty"));
    let out = d.vigil(&["status"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 pending, 0 dead"));
}

#[test]
fn smtp_down_then_up_delivers_every_mail_once() {
    let dir = TestDir::new();
    let port = free_port();
    let d = Daemon::start(&dir, &smtp_config(port));
    let ids: Vec<String> = (0..5)
        .map(|i| send_test(&d, &format!("user{i}@example.com")).1)
        .collect();
    d.wait_for("the refused connection to show", |d| {
        let s = outbox_status(d);
        s["pending"] == 5 && s["last_error"].as_str().is_some_and(|e| e.contains("SMTP"))
    });
    let sink = Sink::start(port, &dir.path().join("sink"));
    d.wait_for("all five mails to arrive", |_| sink.messages().len() >= 5);
    d.wait_for("the outbox to empty", |d| outbox_status(d)["pending"] == 0);
    // Every row is committed as sent now: nothing can go out again.
    let mut got: Vec<String> = sink
        .messages()
        .iter()
        .map(|p| parse(p)["message_id"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want, "each mail exactly once");
    assert_eq!(outbox_status(&d)["last_error"], Value::Null);
}

#[test]
fn silent_server_times_out_within_smtp_timeout_and_backs_off() {
    let dir = TestDir::new();
    let (port, connections) = silent_server();
    let d = Daemon::start(&dir, &smtp_config(port));
    let started = Instant::now();
    send_test(&d, "alice@example.com");
    for to in [
        "b@example.com",
        "c@example.com",
        "d@example.com",
        "e@example.com",
    ] {
        send_test(&d, to);
    }
    // While a delivery hangs, the daemon answers as always.
    let asked = Instant::now();
    d.status_json();
    assert!(
        asked.elapsed() < Duration::from_millis(900),
        "{:?}",
        asked.elapsed()
    );
    d.wait_for("the timeout to show in status", |d| {
        outbox_status(d)["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no complete answer within 1s"))
    });
    let took = started.elapsed();
    eprintln!("silent server: timeout reported {took:?} after the mail was queued");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(
        took < Duration::from_secs(10),
        "took {took:?} for a 1s timeout"
    );
    let mail = &outbox(&d)[0];
    assert_eq!(mail["state"], "pending");
    assert!(mail["attempts"].as_u64().unwrap() >= 1);
    assert!(mail["next_attempt_at"].is_string());
    // One timeout per round, not one per mail: the other four waited without a try.
    assert!(
        outbox(&d)[1..].iter().all(|m| m["attempts"] == 0),
        "{:?}",
        outbox(&d)
    );
    // Backoff applies, and delivery is tried again afterwards.
    d.wait_for("a retry", |_| connections.load(Ordering::SeqCst) >= 2);
    d.wait_for("the retry to be counted", |d| {
        outbox(d)[0]["attempts"].as_u64().unwrap() >= 2
    });
    // Pointed at a working server, every mail goes out at once, without waiting for the
    // silent server's backoff.
    let good = free_port();
    let sink = Sink::start(good, &dir.path().join("sink"));
    dir.write_config(&dir.base_config(&smtp_config(good)));
    d.wait_for("all five mails at the working server", |_| {
        sink.messages().len() == 5
    });
    d.wait_for("the outbox to empty", |d| outbox(d).is_empty());
}

#[test]
fn permanent_5xx_is_a_dead_letter_and_4xx_is_retried() {
    let dir = TestDir::new();
    let (port, rcpts) = scripted_server();
    let d = Daemon::start(&dir, &smtp_config(port));
    let (perm, _) = send_test(&d, "perm@example.com");
    let (temp, _) = send_test(&d, "temp@example.com");
    let (ok, _) = send_test(&d, "ok@example.com");
    let find = |d: &Daemon, id: u64| outbox(d).into_iter().find(|m| m["id"] == id);
    d.wait_for("the 550 to make a dead letter", |d| {
        find(d, perm).is_some_and(|m| m["state"] == "dead")
    });
    d.wait_for("the 451 to be retried", |d| {
        find(d, temp).is_some_and(|m| m["state"] == "pending" && m["attempts"].as_u64() >= Some(2))
    });
    d.wait_for("the good mail to leave the outbox", |d| {
        find(d, ok).is_none()
    });
    let dead = find(&d, perm).unwrap();
    assert_eq!(dead["attempts"], 1, "a permanent failure is not retried");
    assert!(
        dead["last_error"].as_str().unwrap().contains("550"),
        "{dead}"
    );
    assert!(find(&d, temp).unwrap()["last_error"]
        .as_str()
        .unwrap()
        .contains("451"));
    let s = outbox_status(&d);
    assert_eq!(
        (s["pending"].as_u64(), s["dead"].as_u64()),
        (Some(1), Some(1))
    );
    let perm_tries = |r: &Mutex<Vec<String>>| {
        r.lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("perm@"))
            .count()
    };
    assert_eq!(perm_tries(&rcpts), 1);

    let table = d.vigil(&["outbox"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{text}");
    assert!(text.starts_with("ID"), "{text}");
    assert!(
        text.contains("dead") && text.contains("perm@example.com"),
        "{text}"
    );

    // An administrator requeues the dead letter: it is tried once more (and dies again).
    let out = d.vigil(&["outbox", "retry", &perm.to_string()]);
    assert!(out.status.success(), "{:?}", out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("queued for delivery again"));
    d.wait_for("the requeued mail to be tried", |_| perm_tries(&rcpts) == 2);
    d.wait_for("it to be dead again", |d| {
        find(d, perm).is_some_and(|m| m["state"] == "dead")
    });
    let (code, body) = d.http("POST", "/v1/outbox/retry", Some(r#"{"ids": [999]}"#));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("no such mail"), "{body}");
    let (code, body) = d.http(
        "POST",
        "/v1/outbox/retry",
        Some(r#"{"ids": [1], "all": true}"#),
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = d.http(
        "POST",
        "/v1/outbox/test",
        Some(r#"{"to": "not an address"}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not an email address"), "{body}");
}

#[test]
fn sigkill_with_pending_mails_loses_none() {
    let dir = TestDir::new();
    let port = free_port();
    let mut d = Daemon::start(&dir, &smtp_config(port));
    let ids: Vec<String> = (0..3)
        .map(|i| send_test(&d, &format!("user{i}@example.com")).1)
        .collect();
    d.wait_for("the mails to wait for the server", |d| {
        let s = outbox_status(d);
        s["pending"] == 3 && !s["last_error"].is_null()
    });
    d.signal(Signal::SIGKILL);
    d.wait_exit();
    let sink = Sink::start(port, &dir.path().join("sink"));
    let d = Daemon::start_on(&dir).expect("vigild restarts");
    d.wait_for("all three mails to arrive", |_| sink.messages().len() >= 3);
    d.wait_for("the outbox to empty", |d| outbox_status(d)["pending"] == 0);
    let mut got: Vec<String> = sink
        .messages()
        .iter()
        .map(|p| parse(p)["message_id"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    let mut want = ids;
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn maildir_is_the_default_and_holds_rfc5322_messages() {
    let dir = TestDir::new();
    let d = Daemon::start(&dir, "");
    let (_, message_id) = send_test(&d, "alice@example.com");
    let maildir = dir.path().join("state/maildir");
    let files = |_: &Daemon| -> Vec<PathBuf> {
        std::fs::read_dir(maildir.join("new"))
            .map(|rd| rd.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    };
    d.wait_for("a file in maildir/new", |d| files(d).len() == 1);
    d.wait_for("the outbox to empty", |d| outbox_status(d)["pending"] == 0);
    assert!(maildir.join("cur").is_dir() && maildir.join("tmp").is_dir());
    assert_eq!(std::fs::read_dir(maildir.join("tmp")).unwrap().count(), 0);
    let path = files(&d).remove(0);
    let raw = std::fs::read_to_string(&path).unwrap();
    let (head, body) = raw
        .split_once("\n\n")
        .expect("headers, a blank line, a body");
    assert!(!raw.contains('\r'), "maildir files use LF line endings");
    for line in head.lines() {
        assert!(
            line.starts_with([' ', '\t']) || line.contains(": "),
            "not a header line: {line:?}"
        );
    }
    assert!(!body.is_empty());
    let m = parse(&path);
    assert_eq!(m["message_id"], message_id.as_str());
    assert_eq!(m["subject"], "[vigil] vigil test message");
    assert!(m["text"]
        .as_str()
        .unwrap()
        .contains("test message from vigil"));
    assert_eq!(m["defects"], json!([]));
}

#[test]
fn scanned_text_cannot_inject_headers() {
    let dir = TestDir::new();
    let port = free_port();
    let sink = Sink::start(port, &dir.path().join("sink"));
    let title = "Drift\r\nBcc: evil@example.com\0\nX-Evil: 1 =?utf-8?b?SGk=?= \u{85}end";
    let description = "first line\nBcc: evil@example.com\n.\n..\n=?utf-8?b?SGk=?=\nnul:\0:\nlast .";
    // Through the library API, the way the user-task module will call it: enqueue inside a
    // write transaction on the daemon's store, then let the daemon deliver.
    dir.write_config(&dir.base_config(&smtp_config(port)));
    {
        let store = vigil::store::Store::open(&dir.path().join("state")).unwrap();
        let mail = vigil::outbox::assignment(&vigil::outbox::AssignmentMail {
            task_id: 42,
            kind: "drift".into(),
            title: title.into(),
            description: description.into(),
            events: 3,
            nodes: 2,
            first_nodes: vec!["web-1".into(), "web-<2>".into()],
            assignee: "alice@example.com".into(),
            assigned_by: "bob@example.com".into(),
            dedup_key: "vigil/00000000000000ab/task/42".into(),
        });
        store
            .write_blocking(vigil::store::Commit::Durable, |tx| {
                vigil::outbox::enqueue(tx, mail)
            })
            .unwrap();
    }
    let d = Daemon::start_on(&dir).expect("vigild starts");
    d.wait_for("the mail to arrive", |_| sink.messages().len() == 1);
    let m = parse(&sink.messages()[0]);
    let names: Vec<String> = serde_json::from_value(m["header_names"].clone()).unwrap();
    let count = |n: &str| names.iter().filter(|h| h.eq_ignore_ascii_case(n)).count();
    assert_eq!(count("Subject"), 1, "{names:?}");
    assert_eq!(count("Bcc"), 0, "{names:?}");
    assert_eq!(count("X-Evil"), 0, "{names:?}");
    assert_eq!(m["rcpt_tos"], json!(["alice@example.com"]));
    assert_eq!(
        m["subject"],
        "[vigil] Task #42 assigned to you: Drift Bcc: evil@example.com X-Evil: 1 = ?utf-8?b?SGk= ?= end"
    );
    let text = m["text"].as_str().unwrap().replace("\r\n", "\n");
    assert!(text.contains(description), "body changed:\n{text:?}");
    assert!(text.contains("vigil tasks show 42"));
    let html = m["html"].as_str().unwrap();
    assert!(
        html.contains("web-&lt;2&gt;") && !html.contains("web-<2>"),
        "{html}"
    );
    let mut raw = Vec::new();
    std::fs::File::open(&sink.messages()[0])
        .unwrap()
        .read_to_end(&mut raw)
        .unwrap();
    assert!(
        !raw.contains(&0),
        "a NUL must never reach the wire unencoded"
    );
}

#[test]
fn unreachable_server_gives_up_after_give_up_after() {
    let dir = TestDir::new();
    let port = free_port();
    let config = smtp_config(port).replace(
        "max_backoff = \"1s\"",
        "max_backoff = \"1s\"\ngive_up_after = \"2s\"",
    );
    let d = Daemon::start(&dir, &config);
    let (id, _) = send_test(&d, "alice@example.com");
    // Two more behind it: while the server is down only the first is tried (the outbox
    // pauses), yet their deadline passes too and they must not stay pending forever.
    send_test(&d, "bob@example.com");
    send_test(&d, "carol@example.com");
    d.wait_for("every mail to become a dead letter", |d| {
        let rows = outbox(d);
        rows.len() == 3 && rows.iter().all(|m| m["state"] == "dead")
    });
    let rows = outbox(&d);
    let mail = &rows[0];
    assert_eq!(mail["id"], id);
    assert!(mail["attempts"].as_u64().unwrap() >= 1, "{mail}");
    assert!(mail["next_attempt_at"].is_null());
    for m in &rows {
        let error = m["last_error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "a dead letter says why: {m}");
    }
    let s = outbox_status(&d);
    assert_eq!(
        (s["pending"].as_u64(), s["dead"].as_u64()),
        (Some(0), Some(3))
    );
    assert!(d.log_text().contains("now a dead letter"));
    // Once the server is back, `retry --all` delivers them.
    let sink = Sink::start(port, &dir.path().join("sink"));
    let out = d.vigil(&["outbox", "retry", "--all"]);
    assert!(out.status.success(), "{out:?}");
    d.wait_for("the requeued mails to arrive", |_| {
        sink.messages().len() == 3
    });
    d.wait_for("the outbox to empty", |d| outbox(d).is_empty());
}

/// SIGTERM while the server is still taking a mail: the daemon waits for its answer (within
/// shutdown_grace), records the mail as sent, and does not send it again after a restart.
#[test]
fn a_clean_stop_finishes_the_delivery_in_progress() {
    let dir = TestDir::new();
    let (port, seen) = scripted_server();
    let config = smtp_config(port).replace("timeout = \"1s\"", "timeout = \"10s\"");
    let mut d = Daemon::start(&dir, &config);
    send_test(&d, "slow@example.com");
    d.wait_for("the server to have read the mail", |_| {
        seen.lock().unwrap().iter().any(|l| l.starts_with("DATA "))
    });
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_exit().success(), "{}", d.log_text());
    drop(d);
    let d = Daemon::start_on(&dir).unwrap();
    assert!(
        outbox(&d).is_empty(),
        "recorded as sent before the daemon stopped: {:?}",
        outbox(&d)
    );
    let deliveries = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("DATA "))
        .count();
    assert_eq!(deliveries, 1);
}

/// SMTP settings with room for a slow server's 250.
fn slow_smtp_config(port: u16) -> String {
    smtp_config(port).replace("timeout = \"1s\"", "timeout = \"10s\"")
}

/// The pid of the delivery process (`vigild deliver-mail`) that vigild `parent` started.
fn delivery_process(parent: nix::unistd::Pid) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // ppid is the second field after the parenthesised command name.
        let ppid: i32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let is_delivery = cmdline.split(|b| *b == 0).any(|a| a == b"deliver-mail");
        (is_delivery && ppid == parent.as_raw()).then_some(pid)
    })
}

/// Issue 17: vigild killed between the end of a mail and the server's late 250 (RFC 1047's
/// gap). The mail's delivery process lives on and gets the 250; the next vigild records that
/// answer instead of sending the mail again.
#[test]
fn sigkill_before_a_slow_servers_250_sends_the_mail_once() {
    let dir = TestDir::new();
    let port = free_port();
    let sink = Sink::start_slow(port, &dir.path().join("sink"), 2.0);
    let mut d = Daemon::start(&dir, &slow_smtp_config(port));
    let (id, message_id) = send_test(&d, "alice@example.com");
    d.wait_for("the server to hold the mail", |_| {
        sink.messages().len() == 1
    });
    let listed = outbox(&d);
    assert_eq!(listed[0]["state"], "sending", "{listed:?}");
    d.signal(Signal::SIGKILL);
    d.wait_exit();
    let d = Daemon::start_on(&dir).expect("vigild restarts");
    d.wait_for("the outbox to empty", |d| outbox(d).is_empty());
    assert_eq!(sink.messages().len(), 1, "the mail was sent again");
    assert_eq!(
        parse(&sink.messages()[0])["message_id"],
        message_id.as_str()
    );
    let log = d.log_text();
    assert!(log.contains("resuming a delivery"), "{log}");
    assert!(log.contains(&format!("id={id}")), "{log}");
    assert!(
        std::fs::read_dir(dir.path().join("state/outbox-attempts"))
            .unwrap()
            .next()
            .is_none(),
        "the attempt file is removed once its outcome is committed"
    );
}

/// The floor: when the delivery process dies with vigild, nobody knows whether the server
/// took the mail, and it goes again with the same Message-ID (never lost).
#[test]
fn a_lost_answer_sends_the_mail_again_with_the_same_message_id() {
    let dir = TestDir::new();
    let port = free_port();
    let sink = Sink::start_slow(port, &dir.path().join("sink"), 2.0);
    let mut d = Daemon::start(&dir, &slow_smtp_config(port));
    let (_, message_id) = send_test(&d, "alice@example.com");
    d.wait_for("the server to hold the mail", |_| {
        sink.messages().len() == 1
    });
    let helper = delivery_process(d.pid()).expect("a delivery process runs");
    d.signal(Signal::SIGKILL);
    d.wait_exit();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(helper), Signal::SIGKILL).unwrap();
    let d = Daemon::start_on(&dir).expect("vigild restarts");
    d.wait_for("the outbox to empty", |d| outbox(d).is_empty());
    let copies: Vec<Value> = sink.messages().iter().map(|p| parse(p)).collect();
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert!(copies
        .iter()
        .all(|m| m["message_id"] == message_id.as_str()));
    assert!(
        d.log_text().contains("may arrive twice"),
        "{}",
        d.log_text()
    );
}
