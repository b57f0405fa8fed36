//! Mail recovers promptly (issue 17): `vigil outbox retry`/`flush` act on pending mails too,
//! a delivery after failures releases every mail waiting for its retry, and a pause shows
//! when it ends.

use std::sync::Mutex;

use super::faults::{scripted_server, silent_server};
use super::{outbox, outbox_status, send_test};
use crate::common::{Daemon, TestDir};

/// Backoffs as in production (first retry after 20–40 s, up to an hour): nothing in these
/// tests may wait for one.
fn config(port: u16) -> String {
    format!(
        "[email]\nfrom = \"vigil@example.com\"\nmax_backoff = \"1h\"\n\
         [email.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"1s\"\n"
    )
}

/// How often the server was offered `to` (its `RCPT TO:<to>` lines).
fn offered(rcpts: &Mutex<Vec<String>>, to: &str) -> usize {
    let line = format!("RCPT TO:<{to}>").to_ascii_uppercase();
    rcpts
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.to_ascii_uppercase().starts_with(&line))
        .count()
}

#[test]
fn retry_acts_on_pending_mail_and_a_success_releases_the_rest() {
    let (port, rcpts) = scripted_server();
    let dir = TestDir::new();
    let d = Daemon::start(&dir, &config(port));
    // Two mails the server defers (451): each waits for its own retry, 20 s or more away.
    let (t1, _) = send_test(&d, "temp1@example.org");
    d.wait_for("temp1 deferred", |_| {
        offered(&rcpts, "temp1@example.org") == 1
    });
    send_test(&d, "temp2@example.org");
    // Deferred once its delivery process's answer is recorded (until then it is `sending`).
    d.wait_for("temp2 deferred", |d| {
        offered(&rcpts, "temp2@example.org") == 1
            && outbox(d).iter().all(|m| m["state"] == "pending")
    });

    // `retry ID` on a pending mail tries it now (it used to say "not a dead letter").
    let out = d.vigil_exits(&["outbox", "retry", &t1.to_string()], 0);
    assert!(out.contains("queued for delivery again, now"), "{out}");
    d.wait_for("temp1 tried again at once", |_| {
        offered(&rcpts, "temp1@example.org") == 2
    });

    // One delivery succeeds after those failures: the server takes mail, so both deferred
    // mails are tried at once instead of at their backoff.
    send_test(&d, "ok@example.org");
    d.wait_for("the waiting mails released", |_| {
        offered(&rcpts, "temp1@example.org") == 3 && offered(&rcpts, "temp2@example.org") == 2
    });
    assert!(
        d.log_text().contains("waiting mail(s) go now"),
        "{}",
        d.log_text()
    );
}

#[test]
fn a_pause_shows_when_it_ends_and_flush_ends_it() {
    let (port, connections) = silent_server();
    let dir = TestDir::new();
    let d = Daemon::start(&dir, &config(port));
    send_test(&d, "a@example.org");
    d.wait_for("the pause", |d| {
        outbox_status(d)["paused_until"].is_string()
    });
    let tried = connections.load(std::sync::atomic::Ordering::SeqCst);
    let shown = d.vigil_exits(&["outbox"], 0);
    assert!(shown.contains("delivery paused until"), "{shown}");
    let status = d.vigil_exits(&["status"], 0);
    assert!(status.contains("paused until"), "{status}");

    let out = d.vigil_exits(&["outbox", "flush"], 0);
    assert!(out.contains("queued for delivery again, now"), "{out}");
    d.wait_for("a new attempt at once", |_| {
        connections.load(std::sync::atomic::Ordering::SeqCst) > tried
    });
}
