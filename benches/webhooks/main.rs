//! Webhooks (issue 19): what writing a delivery row beside each event adds to the ingest,
//! and how many events a second one endpoint's sender delivers to a receiver on loopback.
//!
//! 1. In process, on two fresh stores: the same single-node ingests (one scan-failure
//!    finding each, 100 ingests per durable commit, every ingest an event), one store
//!    with no webhook in force and one with one endpoint taking every task kind; rounds
//!    alternate between the two so that machine noise falls on both.
//! 2. The real `vigild` on a store holding N open tasks, one `[[webhook]]` to a hyper
//!    receiver in this process answering 200: Close All makes N `task.closed` events in one
//!    commit; the time until the receiver has all N (each signed request checked for its
//!    headers) gives events per second.
//!
//! Run `benches/webhooks/run.sh`, or `cargo bench --bench webhooks -- --vigild PATH
//! [--events N] [--rounds N]`. It prints numbers and asserts nothing about them.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use vigil::config::{Config, QueueTaskKind};
use vigil::proto::{EventKind, QueueTaskId};
use vigil::store::{Commit, Store, StoreError};
use vigil::tasks::{NodeFindings, PluginFailed, UserTasks};

const NODES: u64 = 1_000;
const GROUPS: u64 = 10;
/// Ingests per durable commit.
const PER_COMMIT: u64 = 100;
const SECRET: &str = "whsec_dmlnaWwtd2ViaG9vay10ZXN0LWtleS0zMi1ieXRlcyE=";

struct Args {
    vigild: PathBuf,
    events: u64,
    rounds: u64,
}

fn args() -> Args {
    let mut a = Args {
        vigild: PathBuf::from("target/release/vigild"),
        events: 5_000,
        rounds: 6,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--vigild" => a.vigild = value().into(),
            "--events" => a.events = value().parse().expect("--events N"),
            "--rounds" => a.rounds = value().parse().expect("--rounds N"),
            "--bench" => {}
            other => panic!("unknown argument {other:?}"),
        }
    }
    a
}

fn config_text(work: &Path, webhook: Option<&str>) -> String {
    let mut c = format!(
        "policy_dir = \"no-policies\"\n[daemon]\nstate_dir = \"{}/state\"\nsocket = \"{}/vigil.sock\"\nretention_days = 3650\n\n",
        work.display(),
        work.display()
    );
    if let Some(url) = webhook {
        c += &format!(
            "[[webhook]]\nname = \"bench\"\nurl = \"{url}\"\nsecret_file = \"{}/secret\"\n\n",
            work.display()
        );
    }
    c += "[[user]]\nemail = \"root@localhost\"\nuid = 0\nrole = \"admin\"\n\n";
    for g in 0..GROUPS {
        c += &format!("[[group]]\nname = \"g{g}\"\nowners = [\"o{g}@example.com\"]\n\n");
    }
    for n in 0..NODES {
        c += &format!(
            "[[node]]\nname = \"n{n:04}\"\ngroups = [\"g{}\"]\nroot = \"/\"\n\n",
            n % GROUPS
        );
    }
    c
}

fn config(work: &Path, webhook: Option<&str>) -> Config {
    std::fs::write(work.join("secret"), SECRET).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(work.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = config_text(work, webhook);
    std::fs::write(work.join("config.toml"), &text).unwrap();
    vigil::config::parse(&work.join("config.toml"), &text, work).expect("bench config")
}

/// Node `n`'s finding of round `round`: plugin `p{task}` failed, one of `tasks` tasks.
fn finding(n: u64, round: u64, tasks: u64) -> NodeFindings {
    let node = format!("n{n:04}");
    let day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new(round);
    let source = QueueTaskId {
        kind: QueueTaskKind::Scan,
        number: round * 1_000_000 + n + 1,
    };
    let mut f = NodeFindings::new(&node, source, day);
    f.failures.push(PluginFailed {
        plugin: format!("p{}", n % tasks),
        message: format!("{node}: cannot stat /var/lib/state: input/output error"),
    });
    f
}

/// One round: every node's finding ingested alone, `PER_COMMIT` per durable commit.
/// Returns the time and the events written.
fn round(store: &Store, config: &Config, round: u64, tasks: u64) -> (Duration, u64) {
    let t0 = Instant::now();
    let mut events = 0;
    for first in (0..NODES).step_by(PER_COMMIT as usize) {
        let findings: Vec<_> = (first..first + PER_COMMIT)
            .map(|n| finding(n, round, tasks))
            .collect();
        events += store
            .write_blocking(Commit::Durable, |tx| {
                let mut n = 0;
                for f in &findings {
                    let out = UserTasks::ingest_single(tx, config, f)?;
                    n += (out.created.len() + out.updated.len()) as u64;
                }
                Ok::<_, StoreError>(n)
            })
            .expect("ingest");
    }
    (t0.elapsed(), events)
}

fn ingest_cost(base: &Path, rounds: u64) {
    let cfg_dir = base.join("ingest-config");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let config = config(&cfg_dir, None);
    let open = |name: &str| {
        let dir = base.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Store::open(&dir).expect("store")
    };
    let none = open("none");
    let one = open("one");
    let kinds: Vec<EventKind> = EventKind::ALL
        .into_iter()
        .filter(|k| k.as_str().starts_with("task."))
        .collect();
    one.write_blocking(Commit::Durable, |tx| {
        vigil::events::deliveries::set_routes(tx, &[("bench".to_owned(), kinds)])
    })
    .unwrap();
    // Round 0 opens the 100 tasks on each store; it is not timed.
    round(&none, &config, 0, 100);
    round(&one, &config, 0, 100);
    let (mut t_none, mut t_one, mut ev) = (Duration::ZERO, Duration::ZERO, 0);
    for r in 1..=rounds {
        let order: [(&Store, bool); 2] = if r % 2 == 0 {
            [(&none, false), (&one, true)]
        } else {
            [(&one, true), (&none, false)]
        };
        for (store, with) in order {
            let (took, events) = round(store, &config, r, 100);
            if with {
                t_one += took;
                ev += events;
            } else {
                t_none += took;
            }
        }
    }
    let findings = rounds * NODES;
    let per = |t: Duration| t.as_secs_f64() * 1e6 / findings as f64;
    let pending = one
        .read_blocking(|tx| vigil::events::deliveries::counts(tx, "bench", false))
        .unwrap()
        .pending;
    println!(
        "ingest of {findings} single-node findings ({PER_COMMIT} per durable commit, one event \
         each: {ev} events): no webhook {:.2} s ({:.1} µs/finding), one webhook {:.2} s \
         ({:.1} µs/finding, {pending} delivery rows): {:+.1}%",
        t_none.as_secs_f64(),
        per(t_none),
        t_one.as_secs_f64(),
        per(t_one),
        (t_one.as_secs_f64() / t_none.as_secs_f64() - 1.0) * 100.0
    );
}

/// A receiver answering 200 to every request; counts those with the three headers.
fn receiver() -> (String, Arc<AtomicU64>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
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
                let seen = seen.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let seen = seen.clone();
                            async move {
                                let ok = ["webhook-id", "webhook-timestamp", "webhook-signature"]
                                    .iter()
                                    .all(|h| req.headers().contains_key(*h));
                                let _ = req.into_body().collect().await;
                                if ok {
                                    seen.fetch_add(1, Ordering::SeqCst);
                                }
                                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    (format!("http://127.0.0.1:{port}/hook"), count)
}

async fn call(socket: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("socket");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

struct Vigild(Child);

impl Drop for Vigild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn sender_rate(base: &Path, vigild: &Path, events: u64) {
    let work = base.join("daemon");
    std::fs::create_dir_all(work.join("state")).unwrap();
    let (url, count) = receiver();
    let config = config(&work, Some(&url));
    // N open tasks, made before the daemon starts (no webhook in force yet: no rows).
    {
        let store = Store::open(&work.join("state")).expect("store");
        for first in (0..events).step_by(1000) {
            let findings: Vec<_> = (first..(first + 1000).min(events))
                .map(|i| finding(i % NODES, 0, events).tap_plugin(i))
                .collect();
            store
                .write_blocking(Commit::Durable, |tx| {
                    for f in &findings {
                        UserTasks::ingest_single(tx, &config, f)?;
                    }
                    Ok::<_, StoreError>(())
                })
                .expect("tasks");
        }
    }
    let socket = work.join("vigil.sock");
    let log = std::fs::File::create(work.join("vigild.log")).unwrap();
    let _daemon = Vigild(
        Command::new(vigild)
            .arg("--config")
            .arg(work.join("config.toml"))
            .env("RUST_LOG", "warn")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", vigild.display())),
    );
    let started = Instant::now();
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "vigild did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    let (code, body) = call(&socket, "POST", "/v1/tasks/close", "{}").await;
    assert_eq!(code, 200, "{body}");
    let committed = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while count.load(Ordering::SeqCst) < events {
        assert!(
            Instant::now() < deadline,
            "the receiver has {} of {events}",
            count.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = t0.elapsed();
    println!(
        "sender to a loopback receiver: {events} task.closed events (Close All committed in \
         {:.2} s) delivered in {:.2} s: {:.0} events/s (one request and one durable commit \
         each)",
        committed.as_secs_f64(),
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64()
    );
    let (_, hooks) = call(&socket, "GET", "/v1/webhooks", "").await;
    println!("GET /v1/webhooks after: {hooks}");
}

trait TapPlugin {
    fn tap_plugin(self, i: u64) -> Self;
}

impl TapPlugin for NodeFindings {
    /// A plugin name of its own per finding: one task each.
    fn tap_plugin(mut self, i: u64) -> Self {
        self.failures[0].plugin = format!("t{i}");
        self
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    let base = std::env::temp_dir().join(format!("vigil-wh-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let b = base.clone();
    let rounds = a.rounds;
    tokio::task::spawn_blocking(move || ingest_cost(&b, rounds))
        .await
        .unwrap();
    sender_rate(&base, &a.vigild, a.events).await;
    let _ = std::fs::remove_dir_all(&base);
}
