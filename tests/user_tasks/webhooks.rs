//! Webhooks (issue 19) end to end: a real HTTP receiver on 127.0.0.1 (a small hyper server
//! in this binary) that records every request and answers as each test scripts it (200,
//! 500, 429 with Retry-After, 410, or a stall). Signatures are checked with HMAC-SHA256 here,
//! not with vigil's own code.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use super::*;
use crate::common::VIGILD;

/// The test secret: `whsec_` + base64 of 32 bytes.
const KEY: [u8; 32] = *b"vigil-webhook-test-key-32-bytes!";

#[derive(Debug, Clone, Copy)]
enum Reply {
    Ok,
    Status(u16),
    /// 429 with `Retry-After: N`.
    TooMany(u64),
    /// Never answers (the client's timeout ends it).
    Stall,
}

#[derive(Debug, Clone)]
struct Got {
    headers: HashMap<String, String>,
    raw: Vec<u8>,
    body: Value,
    /// 0 for a stall.
    answered: u16,
    at: Instant,
}

impl Got {
    fn id(&self) -> &str {
        &self.headers["webhook-id"]
    }
}

struct Script {
    next: VecDeque<Reply>,
    then: Reply,
    got: Vec<Got>,
}

struct Receiver {
    url: String,
    state: Arc<Mutex<Script>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(Script {
            next: VecDeque::new(),
            then: Reply::Ok,
            got: Vec::new(),
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let s = shared.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| handle(s.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            state,
        }
    }

    /// Answers `first` in turn, then `then` to every request.
    fn script(&self, first: &[Reply], then: Reply) {
        let mut s = self.state.lock().unwrap();
        s.next = first.iter().copied().collect();
        s.then = then;
    }

    fn got(&self) -> Vec<Got> {
        self.state.lock().unwrap().got.clone()
    }

    /// The requests answered 2xx.
    fn delivered(&self) -> Vec<Got> {
        self.got()
            .into_iter()
            .filter(|g| (200..300).contains(&g.answered))
            .collect()
    }

    fn wait_delivered(&self, d: &Daemon, n: usize) -> Vec<Got> {
        d.wait_for(&format!("{n} deliveries at {}", self.url), |_| {
            self.delivered().len() >= n
        });
        self.delivered()
    }
}

async fn handle(
    s: Arc<Mutex<Script>>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let raw = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let reply = {
        let mut st = s.lock().unwrap();
        let then = st.then;
        st.next.pop_front().unwrap_or(then)
    };
    let answered = match reply {
        Reply::Ok => 200,
        Reply::Status(c) => c,
        Reply::TooMany(_) => 429,
        Reply::Stall => 0,
    };
    s.lock().unwrap().got.push(Got {
        headers,
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw,
        answered,
        at: Instant::now(),
    });
    let mut response = hyper::Response::builder();
    match reply {
        Reply::Stall => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            response = response.status(200);
        }
        Reply::TooMany(secs) => {
            response = response.status(429).header("retry-after", secs.to_string());
        }
        _ => response = response.status(answered),
    }
    Ok(response
        .body(Full::new(Bytes::from("gone or not")))
        .unwrap())
}

/// The signature checked as a receiver would: HMAC-SHA256 over `id.timestamp.body`.
fn assert_signed(g: &Got) {
    let ts = &g.headers["webhook-timestamp"];
    let ts_n: i64 = ts.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts_n).abs() < 600, "{ts}");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&KEY).unwrap();
    mac.update(format!("{}.{ts}.", g.id()).as_bytes());
    mac.update(&g.raw);
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(g.headers["webhook-signature"], want, "{g:?}");
}

fn write_secret(f: &Fleet, name: &str) -> PathBuf {
    let path = f.dir.path().join(format!("{name}.secret"));
    std::fs::write(
        &path,
        format!(
            "whsec_{}\n",
            base64::engine::general_purpose::STANDARD.encode(KEY)
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A `[[webhook]]` entry with short retries.
fn hook(f: &Fleet, name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[webhook]]\nname = \"{name}\"\nurl = \"{url}\"\nsecret_file = \"{}\"\nmax_backoff = \"300ms\"\n{extra}\n",
        write_secret(f, name).display()
    )
}

fn events_after(d: &Daemon, after: u64) -> Vec<Value> {
    let (code, body) = d.http("GET", &format!("/v1/events?after={after}"), None);
    assert_eq!(code, 200, "{body}");
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

fn webhooks(d: &Daemon) -> Value {
    json(&d.vigil_exits(&["--json", "webhooks"], 0))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// 100 nodes drift the same way: one task, its events reach the endpoint signed, in order,
/// each delivered once although the first attempts got 500 and 429 + Retry-After.
#[test]
fn events_reach_an_endpoint_signed_in_order_once_each_after_a_500_and_a_429() {
    let r = Receiver::start();
    r.script(&[Reply::Status(500), Reply::TooMany(1)], Reply::Ok);
    let f = fleet(100, 0);
    f.dir.set_today("2026-04-01");
    let d = f.start(&hook(&f, "ops", &r.url, ""));
    scan_all(&d);
    f.patch_openssl("web");
    f.dir.set_today("2026-04-02");
    scan_all(&d);
    let log = events_after(&d, 0);
    let kinds: Vec<&str> = log.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["task.opened", "task.assigned"],
        "one task for 100 nodes"
    );
    assert_eq!(log[0]["nodes_in_event"], 100);
    let task = log[0]["task"].as_u64().unwrap();
    let (code, body) = d.http("POST", &format!("/v1/tasks/{task}/close"), None);
    assert_eq!(code, 200, "{body}");
    let log = events_after(&d, 0);
    assert_eq!(log.len(), 3);

    let delivered = r.wait_delivered(&d, 3);
    let got = r.got();
    let answered: Vec<u16> = got.iter().map(|g| g.answered).collect();
    assert_eq!(answered, [500, 429, 200, 200, 200], "{got:?}");
    let want = ids(&log);
    let sent: Vec<&str> = got.iter().map(Got::id).collect();
    assert_eq!(
        sent,
        [&want[0], &want[0], &want[0], &want[1], &want[2]],
        "retries carry the same webhook-id, and the task's events come in order"
    );
    assert!(
        got[2].at.duration_since(got[1].at) >= Duration::from_millis(950),
        "Retry-After: 1 was honoured"
    );
    for (g, e) in delivered.iter().zip(&log) {
        assert_signed(g);
        assert_eq!(g.headers["content-type"], "application/cloudevents+json");
        assert_eq!(g.body["specversion"], "1.0");
        assert_eq!(g.body["id"], e["id"]);
        assert_eq!(
            g.body["type"],
            format!("vigil.{}", e["kind"].as_str().unwrap())
        );
        assert_eq!(g.body["subject"], format!("task/{task}"));
        assert!(g.body["source"].as_str().unwrap().starts_with("/vigil/"));
        assert_eq!(&g.body["data"], e, "data is the event as the log has it");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(r.got().len(), 5, "nothing is sent twice after its 2xx");
    let hooks = webhooks(&d);
    assert_eq!(
        (
            &hooks[0]["pending"],
            &hooks[0]["dead"],
            &hooks[0]["delivered"]
        ),
        (&json!(0), &json!(0), &json!(3)),
        "{hooks}"
    );
    assert!(hooks[0]["last_error"].is_null(), "{hooks}");
    assert!(
        d.log_text().contains("webhook delivery failed, retrying"),
        "the failure is in the log"
    );
}

/// A 410 is a dead letter at once (status and `vigil webhooks` say so, `retry` sends it
/// again with the same id); a stalled request hits its timeout and is retried; neither holds
/// up the other endpoint; a reload removes an endpoint; `vigil webhooks test` reaches one.
#[test]
fn a_gone_endpoint_dead_letters_a_stalled_one_retries_and_neither_holds_up_the_other() {
    let gone = Receiver::start();
    gone.script(&[], Reply::Status(410));
    let slow = Receiver::start();
    slow.script(&[Reply::Stall], Reply::Ok);
    let f = fleet(2, 0);
    f.dir.set_today("2026-04-01");
    let hooks_text = hook(&f, "gone", &gone.url, "events = [\"task.opened\"]")
        + &hook(&f, "slow", &slow.url, "timeout = \"1s\"");
    let d = f.start(&hooks_text);
    scan_all(&d);
    f.patch_openssl("web-0");
    f.dir.set_today("2026-04-02");
    scan_all(&d);
    let log = events_after(&d, 0);
    assert_eq!(log.len(), 2, "{log:?}");

    let started = Instant::now();
    let got = slow.wait_delivered(&d, 2);
    assert_eq!(got[0].id(), log[0]["id"]);
    assert_eq!(got[1].id(), log[1]["id"]);
    let all = slow.got();
    assert_eq!(all[0].answered, 0, "the first request stalled");
    assert_eq!(all[0].id(), all[1].id(), "and was sent again with its id");
    assert!(started.elapsed() < Duration::from_secs(20));

    d.wait_for("the 410", |_| !gone.got().is_empty());
    d.wait_for("the dead letter", |d| webhooks(d)[0]["dead"] == 1);
    let hooks = webhooks(&d);
    assert_eq!(hooks[0]["name"], "gone");
    assert_eq!(hooks[0]["events"], json!(["task.opened"]));
    assert_eq!(hooks[0]["pending"], 0);
    assert!(
        hooks[0]["last_error"].as_str().unwrap().contains("410"),
        "{hooks}"
    );
    let status = d.status_json();
    assert_eq!(status["webhooks"]["dead"], 1, "{status}");
    assert_eq!(status["webhooks"]["failing"][0]["name"], "gone", "{status}");
    let table = d.vigil_exits(&["status"], 0);
    assert!(table.contains("gone failing"), "{table}");
    assert!(d.log_text().contains("dead letter"), "the log says it");
    assert_eq!(gone.got().len(), 1, "a 410 is not retried");

    gone.script(&[], Reply::Ok);
    let out = d.vigil_exits(&["webhooks", "retry", "gone"], 0);
    assert!(out.contains("1 dead deliveries queued again"), "{out}");
    let again = gone.wait_delivered(&d, 1);
    assert_eq!(again[0].id(), log[0]["id"], "the same webhook-id");
    assert_signed(&again[0]);

    // `vigil webhooks test` sends one request now and says what it answered.
    let before = slow.got().len();
    let out = d.vigil_exits(&["webhooks", "test", "slow"], 0);
    assert!(out.contains("answered 200"), "{out}");
    let test = &slow.got()[before];
    assert_signed(test);
    assert_eq!(test.body["type"], "vigil.task.opened");
    assert!(test.id().contains("-test-"), "{}", test.id());
    let secret = d.vigil_exits(&["webhooks", "secret"], 0);
    assert!(
        secret.trim().starts_with("whsec_") && secret.trim().len() > 40,
        "{secret}"
    );
    let out = d.vigil(&["webhooks", "test", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // A reload without `gone` and with `late`: gone's sender stops, new events go to
    // `slow` and `late` (which gets only what was committed after it came into force).
    let late = Receiver::start();
    let hooks_text =
        hook(&f, "slow", &slow.url, "timeout = \"1s\"") + &hook(&f, "late", &late.url, "");
    f.dir.write_config(&f.config(&hooks_text));
    d.vigil_exits(&["reload"], 0);
    let hooks = webhooks(&d);
    assert_eq!(hooks.as_array().unwrap().len(), 2, "{hooks}");
    let task = log[0]["task"].as_u64().unwrap();
    let (code, body) = d.http("POST", &format!("/v1/tasks/{task}/close"), None);
    assert_eq!(code, 200, "{body}");
    let got = slow.wait_delivered(&d, 4);
    assert_eq!(got[3].body["type"], "vigil.task.closed");
    assert_eq!(gone.got().len(), 2, "nothing more for the removed endpoint");
    let got = late.wait_delivered(&d, 1);
    assert_eq!(got[0].body["type"], "vigil.task.closed");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        late.got().len(),
        1,
        "an added endpoint gets the events after it"
    );

    // Only an admin reads or drives the webhooks.
    if is_root() {
        let (code, body) = http_as(65534, &d.socket, "GET", "/v1/webhooks", None);
        assert_eq!(code, 403, "a Site User: {body}");
    }
}

/// vigild killed (-9) with undelivered events: after the restart each is delivered once, and
/// any request sent again carries the id it had.
#[test]
fn undelivered_events_survive_kill_9_and_are_delivered_once_each() {
    let r = Receiver::start();
    r.script(&[], Reply::Status(503));
    let f = fleet(3, 0);
    f.dir.set_today("2026-04-01");
    let text = hook(&f, "ops", &r.url, "");
    let mut d = f.start(&text);
    scan_all(&d);
    f.patch_openssl("web-0");
    f.dir.set_today("2026-04-02");
    scan_all(&d);
    f.patch_openssl("web-1");
    scan(&d, "node:web-1");
    let log = events_after(&d, 0);
    assert!(log.len() >= 3, "{log:?}");
    d.wait_for("a failed attempt", |_| !r.got().is_empty());
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait_exit();
    drop(d);

    r.script(&[], Reply::Ok);
    let d = f.start(&text);
    let delivered = r.wait_delivered(&d, log.len());
    let sent: Vec<&str> = delivered.iter().map(Got::id).collect();
    assert_eq!(sent, ids(&log), "each event once, in order");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(r.delivered().len(), log.len(), "and no more");
    for g in r.got() {
        assert!(ids(&log).iter().any(|i| i == g.id()), "{g:?}");
        assert_signed(&g);
    }
}

/// PagerDuty: a drift task opened on night 2 and closed by Close All is one trigger and one
/// resolve with its dedup key; a policy task that closes itself (the node complies again)
/// is a resolve too. Assignments are not sent.
#[test]
fn pagerduty_gets_one_trigger_and_one_resolve_per_task_keyed_by_its_dedup_key() {
    let r = Receiver::start();
    let f = fleet(2, 0);
    let policies = f.dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("p.toml"),
        "name = \"p\"\ndescription = \"d\"\n[[check]]\nid = \"openssl-pinned\"\nplugin = \"packages\"\nkey = \"openssl\"\n[check.attributes]\nversion = { version_below = \"3.0.12\" }\n",
    )
    .unwrap();
    f.dir.set_today("2026-04-01");
    let text = f
        .config(&hook(
            &f,
            "pd",
            &r.url,
            "format = \"pagerduty\"\nrouting_key = \"R0UTING\"\ntimeout = \"3s\"",
        ))
        .replacen(
            "policy_dir = \"no-policies\"",
            &format!("policy_dir = \"{}\"", policies.display()),
            1,
        );
    f.dir.write_config(&text);
    let d = Daemon::start_on(&f.dir).unwrap();
    scan_all(&d);
    f.patch_openssl("web-0");
    f.dir.set_today("2026-04-02");
    scan_all(&d);
    let (code, body) = d.http("POST", "/v1/tasks/close", Some("{}"));
    assert_eq!(code, 200, "{body}");
    let drift = events_after(&d, 0);
    let key = drift[0]["dedup_key"].as_str().unwrap().to_owned();
    let got = r.wait_delivered(&d, 2);
    let actions = |got: &[Got]| -> Vec<(String, String)> {
        got.iter()
            .map(|g| {
                assert_signed(g);
                assert_eq!(g.headers["content-type"], "application/json");
                assert_eq!(g.body["routing_key"], "R0UTING");
                (
                    g.body["event_action"].as_str().unwrap().to_owned(),
                    g.body["dedup_key"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        actions(&got),
        [
            ("trigger".into(), key.clone()),
            ("resolve".into(), key.clone())
        ]
    );
    assert!(got[0].body["payload"]["summary"]
        .as_str()
        .unwrap()
        .contains("openssl"));
    assert_eq!(got[0].body["payload"]["source"], "web-0");
    assert_eq!(got[0].body["payload"]["severity"], "warning");

    // The audit finds web-0's openssl too new: a policy task, triggered; put back, the next
    // audit resolves the node and the task closes itself: resolved.
    let rows = d.queue_and_wait(json!({"kind": "audit"}));
    assert!(rows.iter().all(|r| r["status"] == "Finished"), "{rows:?}");
    let got = r.wait_delivered(&d, 3);
    let policy_key = got[2].body["dedup_key"].as_str().unwrap().to_owned();
    assert_ne!(policy_key, key);
    f.edit_all("web-0", NEW_SSL, OLD_SSL);
    d.queue_and_wait(json!({"kind": "audit"}));
    let got = r.wait_delivered(&d, 4);
    assert_eq!(
        actions(&got[2..]),
        [
            ("trigger".into(), policy_key.clone()),
            ("resolve".into(), policy_key)
        ]
    );
    let log = events_after(&d, 0);
    let closed = log.last().unwrap();
    assert_eq!(closed["kind"], "task.closed");
    assert_eq!(closed["how"], "audit");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        r.got().len(),
        4,
        "one request per trigger and resolve, no more"
    );
}

/// Bad `[[webhook]]` entries are `--check-config` errors with file:line.
#[test]
fn bad_webhook_entries_are_check_config_errors_with_their_line() {
    let f = fleet(0, 0);
    let open = f.dir.path().join("open.secret");
    std::fs::write(
        &open,
        "whsec_dmlnaWwtd2ViaG9vay10ZXN0LWtleS0zMi1ieXRlcyE=\n",
    )
    .unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let plain = f.dir.path().join("plain.secret");
    std::fs::write(&plain, "hunter2\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o600)).unwrap();
    let good = write_secret(&f, "good");
    let bad = f.dir.path().join("bad.toml");
    let text = format!(
        "[[webhook]]\nname = \"a\"\nurl = \"http://hooks.example.com/x\"\nsecret_file = \"{g}\"\n\n\
         [[webhook]]\nname = \"b\"\nurl = \"https://hooks.example.com/x\"\nsecret_file = \"{dir}/missing.secret\"\n\n\
         [[webhook]]\nname = \"c\"\nurl = \"https://hooks.example.com/x\"\nsecret_file = \"{g}\"\nevents = [\"task.opened\", \"task.exploded\"]\n\n\
         [[webhook]]\nname = \"d\"\nurl = \"https://events.pagerduty.com/v2/enqueue\"\nsecret_file = \"{g}\"\nformat = \"pagerduty\"\n\n\
         [[webhook]]\nname = \"e\"\nurl = \"https://hooks.example.com/x\"\nsecret_file = \"{o}\"\n\n\
         [[webhook]]\nname = \"f\"\nurl = \"https://hooks.example.com/x\"\nsecret_file = \"{p}\"\n\n\
         [[webhook]]\nname = \"g\"\nurl = \"http://10.0.0.7/x\"\nallow_insecure = true\nsecret_file = \"{g}\"\n",
        g = good.display(),
        dir = f.dir.path().display(),
        o = open.display(),
        p = plain.display(),
    );
    let text = f.dir.base_config(&text);
    std::fs::write(&bad, &text).unwrap();
    // The line of the first line holding `needle` after the line holding `entry`.
    let line_of = |entry: &str, needle: &str| {
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.iter().position(|l| *l == entry).unwrap();
        from + lines[from..]
            .iter()
            .position(|l| l.contains(needle))
            .unwrap()
            + 1
    };
    let out = Command::new(VIGILD)
        .arg("--check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    let p = bad.display().to_string();
    for (entry, key, want) in [
        (
            "name = \"a\"",
            "url",
            "is http:// to hooks.example.com, another machine".to_owned(),
        ),
        (
            "name = \"b\"",
            "secret_file",
            "cannot read secret_file".to_owned(),
        ),
        (
            "name = \"c\"",
            "events",
            "unknown event kind \"task.exploded\"".to_owned(),
        ),
        (
            "name = \"d\"",
            "format",
            "format = \"pagerduty\" needs routing_key".to_owned(),
        ),
        (
            "name = \"e\"",
            "secret_file",
            format!("secret_file {} is readable by every user", open.display()),
        ),
        (
            "name = \"f\"",
            "secret_file",
            format!("secret_file {}: no `whsec_` prefix", plain.display()),
        ),
    ] {
        let at = format!("{p}:{}:", line_of(entry, key));
        assert!(
            err.lines().any(|l| l.starts_with(&at) && l.contains(&want)),
            "missing {at} {want:?} in:\n{err}"
        );
    }
    let located = err
        .lines()
        .filter(|l| {
            l.strip_prefix(&format!("{p}:"))
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    assert_eq!(located, 6, "allow_insecure lets g through:\n{err}");
}

/// TLS is verified: an https endpoint with a self-signed certificate (a real TLS server,
/// `openssl s_server`) is refused, and the test request says why.
#[test]
fn an_https_endpoint_whose_certificate_is_not_trusted_is_refused() {
    let f = fleet(1, 0);
    let dir = f.dir.path();
    let gen = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(dir.join("k.pem"))
        .arg("-out")
        .arg(dir.join("c.pem"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (package openssl)");
    assert!(gen.success());
    let port = crate::email::free_port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(dir.join("c.pem"))
        .arg("-key")
        .arg(dir.join("k.pem"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            up.elapsed() < Duration::from_secs(10),
            "s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("https://localhost:{port}/hook");
    let d = f.start(&hook(&f, "tls", &url, "timeout = \"5s\""));
    let out = d.vigil(&["webhooks", "test", "tls"]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "{err}");
}
