//! User tasks at scale (issue 7). Builds a store with 100,000 tasks and 1,000,000 events
//! through the real ingest code (large transactions, straight into the redb file of a temp
//! state dir), then starts the real `vigild` on it and measures over its Unix socket:
//! filtered lists, status, Close All of 10,000 matching tasks, the ingest of 10,000
//! findings from one scan on each of 10,000 nodes, and p50/p99 under many concurrent
//! clients. It prints numbers and asserts nothing about them.
//!
//! Run `benches/tasks/run.sh` (it builds vigild and the fixture plugin in release first), or
//! `cargo bench --bench tasks -- --vigild PATH --plugin PATH [--clients N] [--requests N]
//! [--work DIR]`. With `--work`, the built store is kept in DIR and reused by later runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value as Json;
use vigil::config::{Config, TaskKind};
use vigil::proto::{AttributeChange, Change, ChangeKind, PluginDrift, TaskId, Value};
use vigil::store::{Store, StoreError};
use vigil::tasks::finding::{self, FailedCheck, Finding};
use vigil::tasks::{persist, UserTasks};

/// Tasks and events in the store before the daemon starts.
const TASKS: u64 = 100_000;
const EVENTS: u64 = 1_000_000;
/// Simulated nodes (in 20 groups); the daemon scans each once in the ingest run.
const NODES: u64 = 10_000;
const GROUPS: u64 = 20;
/// Groups from this one on do not auto-assign: their tasks stay unassigned.
const FIRST_MANUAL_GROUP: u64 = 15;
/// Tasks the timed in-process ingest creates at the end of the build (100 findings each).
const TIMED_TASKS: u64 = 100;
/// Built in bulk: the rest.
const BULK_TASKS: u64 = TASKS - TIMED_TASKS;
/// Open tasks whose text holds the Close All marker.
const CLOSE_ALL: u64 = 10_000;
const MARKER: &str = "bench-closeall";
/// Findings per bulk transaction.
const BATCH: usize = 20_000;

const PACKAGES: [&str; 20] = [
    "openssl",
    "libssl3",
    "bash",
    "systemd",
    "openssh-server",
    "curl",
    "nginx",
    "postgresql-15",
    "libc6",
    "tzdata",
    "sudo",
    "rsyslog",
    "cron",
    "python3.11",
    "perl-base",
    "libxml2",
    "git",
    "zlib1g",
    "apt",
    "dpkg",
];
const POLICIES: [&str; 8] = [
    "ssh-hardening",
    "password-policy",
    "kernel-params",
    "auditd",
    "firewall",
    "time-sync",
    "packages-baseline",
    "file-permissions",
];

struct Args {
    vigild: PathBuf,
    plugin: PathBuf,
    clients: usize,
    requests: usize,
    work: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        vigild: PathBuf::from("target/release/vigild"),
        plugin: PathBuf::from("target/release/libvigil_test_plugins.so"),
        clients: 64,
        requests: 100,
        work: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--vigild" => a.vigild = value().into(),
            "--plugin" => a.plugin = value().into(),
            "--clients" => a.clients = value().parse().expect("--clients N"),
            "--requests" => a.requests = value().parse().expect("--requests N"),
            "--work" => a.work = Some(value().into()),
            // `cargo bench` passes --bench to harness-less benches.
            "--bench" => {}
            other => panic!("unknown argument {other:?}"),
        }
    }
    a
}

fn node(n: u64) -> String {
    format!("node-{n:05}")
}

fn config_text() -> String {
    let mut c = String::from(
        "[daemon]\nstate_dir = \"state\"\nsocket = \"vigil.sock\"\nplugin_dir = \"plugins\"\n\
         slots = 4\nqueue_capacity = 10000\nretention_days = 3650\n\n\
         [[plugin]]\nname = \"fixture\"\nlibrary = \"libvigil_test_plugins.so\"\n\
         [plugin.config]\nmode = \"error\"\n\n",
    );
    for g in 0..GROUPS {
        c += &format!(
            "[[group]]\nname = \"g{g:02}\"\nowners = [\"owner-{g:02}@example.com\"]\nauto_assign = {}\n\n",
            g < FIRST_MANUAL_GROUP
        );
    }
    for n in 0..NODES {
        c += &format!(
            "[[node]]\nname = \"{}\"\ngroups = [\"g{:02}\"]\nroot = \"root\"\n\n",
            node(n),
            n % GROUPS
        );
    }
    c
}

fn scan(n: u64) -> TaskId {
    TaskId {
        kind: TaskKind::Scan,
        number: n,
    }
}

fn day(d: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + Days::new(d)
}

fn is_marker(i: u64) -> bool {
    i % 9 == 3 && i / 9 < CLOSE_ALL
}

/// Closed in the built store: about 30% of the tasks, never a marker task.
fn is_closed(i: u64) -> bool {
    !is_marker(i) && matches!(i % 10, 2 | 5 | 8)
}

/// Events of bulk task `i`: 9 or 10, 990,000 in all.
fn events_of(i: u64) -> u64 {
    if i % 111 < 10 {
        9
    } else {
        10
    }
}

/// The `j`-th finding of task `i`, made by the constructors scans and audits use.
fn finding(i: u64, j: u64) -> Finding {
    let n = node((i * 7 + j * 1013) % NODES);
    let source = scan(i * 10 + j + 1);
    let d = day(i % 300 + j);
    match if is_marker(i) { 0 } else { i % 10 } {
        0..=5 => {
            let pkg = if is_marker(i) {
                MARKER.to_owned()
            } else {
                PACKAGES[(i / 10 % 20) as usize].to_owned()
            };
            let mut changes = vec![Change {
                key: pkg,
                kind: ChangeKind::Modified,
                attributes: vec![AttributeChange {
                    name: "version".into(),
                    previous: Some(Value::from(format!("1.{}.{}-1", i % 50, i % 7))),
                    current: Some(Value::from(format!("1.{}.{}-1", i % 50, i % 7 + 1))),
                }],
                content_diff: None,
                current_digest: Some(format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15))),
            }];
            if i % 3 == 0 {
                changes.push(Change {
                    key: format!("/etc/app-{}/app.conf", i % 200),
                    kind: ChangeKind::Modified,
                    attributes: vec![AttributeChange {
                        name: "blake3".into(),
                        previous: Some(Value::from(format!("{:064x}", i))),
                        current: Some(Value::from(format!("{:064x}", i + 1))),
                    }],
                    content_diff: None,
                    current_digest: Some(format!("{:016x}", i + 1)),
                });
            }
            let drift = PluginDrift {
                node: n.clone(),
                plugin: "packages".into(),
                day: d,
                scan: source,
                baseline_day: d.pred_opt(),
                items: 400,
                changes,
                coverage_notes: Vec::new(),
            };
            finding::from_drift(&n, source, d, &[drift]).expect("a change is a finding")
        }
        6 | 7 => {
            let policy = POLICIES[(i % 8) as usize];
            let check = format!("check-{}", i / 10);
            finding::from_policy(
                &n,
                source,
                d,
                &FailedCheck {
                    policy,
                    policy_description: "Baseline hardening of every Debian node",
                    check: &check,
                    check_description: "",
                    plugin: "files",
                    evidence: &format!("/etc/ssh/sshd_config: PermitRootLogin is yes on {n}"),
                },
            )
        }
        _ => finding::from_scan_failure(
            &n,
            source,
            d,
            &format!("plugin-{i}"),
            &format!("cannot read /srv/{n}/data: permission denied after {j} tries"),
        ),
    }
}

/// Ingests a batch in one transaction; closes the tasks that should be closed.
fn commit_batch(
    store: &Store,
    config: &Config,
    batch: &mut Vec<(u64, Finding)>,
) -> Result<(), StoreError> {
    let findings: Vec<Finding> = batch.iter().map(|(_, f)| f.clone()).collect();
    let owners: Vec<u64> = batch.iter().map(|(i, _)| *i).collect();
    store.write_blocking(|tx| -> Result<(), StoreError> {
        let out = persist::ingest(tx, config, &findings)?;
        let mut created = out.created.iter();
        let mut last = None;
        for i in owners {
            if last == Some(i) {
                continue;
            }
            last = Some(i);
            let id = *created.next().expect("each bulk task is new");
            assert_eq!(id, i + 1, "task ids follow the build order");
            if is_closed(i) {
                let mut task = persist::get(tx, id)?.expect("just created");
                persist::set_open(tx, &mut task, false, "ops@example.com")?;
            }
        }
        Ok(())
    })?;
    batch.clear();
    Ok(())
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Builds the store in `state`: 99,900 tasks with 990,000 events in bulk, then 10,000
/// findings (100 fingerprints on 100 nodes each) one durable transaction each, as scans
/// commit them, timed.
fn build(state: &Path, config: &Config) {
    let store = Store::open(state).expect("open the store");
    let start = Instant::now();
    let mut batch = Vec::with_capacity(BATCH + 10);
    let mut events = 0;
    for i in 0..BULK_TASKS {
        for j in 0..events_of(i) {
            batch.push((i, finding(i, j)));
            events += 1;
        }
        if batch.len() >= BATCH {
            commit_batch(&store, config, &mut batch).expect("bulk ingest");
        }
        if i % 20_000 == 19_999 {
            println!(
                "  built {} tasks, {events} events, {:.0} s",
                i + 1,
                start.elapsed().as_secs_f64()
            );
        }
    }
    commit_batch(&store, config, &mut batch).expect("bulk ingest");
    println!(
        "bulk build: {BULK_TASKS} tasks, {events} events in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // One finding per node, as 10,000 scans would commit them: each node's scan is one
    // durable transaction through the daemon's own ingest (grouping, auto-assignment mail).
    let (took, times, created, updated) = ingest_timed(&store, config, 400, 1);
    events += TIMED_TASKS * 100;
    println!(
        "in-process ingest of 10,000 findings, one durable commit per finding (as the daemon \
         commits each scan): {:.2} s; {created} tasks created, {updated} updated; per commit p50 {} p99 {}",
        took.as_secs_f64(),
        ms(percentile(&times, 50)),
        ms(percentile(&times, 99))
    );
    assert_eq!(events, EVENTS, "the store holds {EVENTS} events");
    let size = std::fs::metadata(store.path())
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "store: {TASKS} tasks, {EVENTS} events, {:.0} MB",
        size as f64 / 1e6
    );
}

/// The finding of the scan of node `n` in the timed ingest: 100 fingerprints, each on 100
/// nodes.
fn timed_finding(n: u64, on: u64) -> Finding {
    let t = BULK_TASKS + n % TIMED_TASKS;
    let nd = node(n);
    finding::from_scan_failure(
        &nd,
        scan(10_000_000 + on * 100_000 + n),
        day(on),
        &format!("timed-{t}"),
        &format!("{nd}: cannot stat /var/lib/{nd}/state: input/output error"),
    )
}

/// Ingests the 10,000 timed findings of day `on` through `UserTasks::ingest`, `group` of
/// them per durable commit. Returns the time, the sorted commit times, created, updated.
fn ingest_timed(
    store: &Store,
    config: &Config,
    on: u64,
    group: u64,
) -> (Duration, Vec<Duration>, usize, usize) {
    let mut times = Vec::new();
    let (mut created, mut updated) = (0, 0);
    let start = Instant::now();
    for first in (0..TIMED_TASKS * 100).step_by(group as usize) {
        let findings: Vec<Finding> = (first..(first + group).min(TIMED_TASKS * 100))
            .map(|n| timed_finding(n, on))
            .collect();
        let t0 = Instant::now();
        let out = store
            .write_blocking(|tx| UserTasks::ingest(tx, config, &findings))
            .expect("ingest");
        times.push(t0.elapsed());
        created += out.created.len();
        updated += out.updated.len();
    }
    let took = start.elapsed();
    times.sort();
    (took, times, created, updated)
}

/// On a scratch copy of the built store: what a durable commit costs by itself, and the
/// same 10,000 findings ingested with their commits grouped.
fn ingest_probe(work: &Path, pristine: &Path, config: &Config) {
    let dir = work.join("probe");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(pristine, dir.join(vigil::store::DB_FILE)).unwrap();
    let store = Store::open(&dir).expect("open the copy");
    let mut floor = Vec::new();
    for i in 0..200u64 {
        let t0 = Instant::now();
        store
            .write_blocking(|tx| -> Result<(), StoreError> {
                tx.open_table(vigil::store::tables::META)?
                    .insert("bench.probe", i)?;
                Ok(())
            })
            .expect("probe commit");
        floor.push(t0.elapsed());
    }
    floor.sort();
    println!(
        "a durable commit of one small row on this store: p50 {} p99 {} (the floor of any \
         per-scan commit)",
        ms(percentile(&floor, 50)),
        ms(percentile(&floor, 99))
    );
    for (on, group) in [(401, 100), (402, 10_000)] {
        let (took, times, _, updated) = ingest_timed(&store, config, on, group);
        println!(
            "in-process ingest of the 10,000 findings of another day, {group} per commit: {:.2} s \
             ({} commits, p50 {} each); {updated} tasks updated",
            took.as_secs_f64(),
            times.len(),
            ms(percentile(&times, 50))
        );
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A keep-alive HTTP/1.1 connection to the daemon's socket, opened again when the daemon
/// closed it (it closes connections idle for longer than its header timeout).
struct Conn {
    socket: PathBuf,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Conn {
    async fn open(socket: &Path) -> Conn {
        let mut c = Conn {
            socket: socket.to_owned(),
            sender: None,
        };
        c.connect().await;
        c
    }

    async fn connect(&mut self) {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.socket.display()));
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP handshake");
        tokio::spawn(conn);
        self.sender = Some(sender);
    }

    async fn call(&mut self, method: &str, path: &str, body: Option<&str>) -> (u16, Bytes) {
        let ready = match self.sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            self.connect().await;
        }
        let sender = self.sender.as_mut().expect("connected");
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .expect("request");
        let resp = sender.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, body)
    }

    async fn json(&mut self, method: &str, path: &str, body: Option<&str>) -> Json {
        let (status, bytes) = self.call(method, path, body).await;
        assert_eq!(
            status,
            200,
            "{method} {path}: {}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).expect("JSON")
    }
}

/// The read requests of the load runs.
fn read_requests() -> Vec<(&'static str, String)> {
    vec![
        ("GET /v1/status", "/v1/status".into()),
        ("GET /v1/tasks?q=libssl3", "/v1/tasks?q=libssl3".into()),
        (
            "GET /v1/tasks?q=(no match)",
            "/v1/tasks?q=no-such-text-anywhere&status=all".into(),
        ),
        (
            "GET /v1/tasks?assignee=..&status=all",
            "/v1/tasks?assignee=owner-03@example.com&status=all".into(),
        ),
        ("GET /v1/tasks?node=..", "/v1/tasks?node=node-04242".into()),
        (
            "GET /v1/tasks?kind=policy&offset=500",
            "/v1/tasks?kind=policy&offset=500".into(),
        ),
        (
            "GET /v1/tasks/{id}",
            "/v1/tasks/{id}?events_limit=20".into(),
        ),
    ]
}

/// `clients` connections, each sending `requests` requests round-robin over the read
/// requests; per request kind: count, p50, p99, max; and the overall rate.
async fn load(socket: &Path, clients: usize, requests: usize, label: &str) {
    let kinds = Arc::new(read_requests());
    let seed = Arc::new(AtomicU64::new(1));
    let start = Instant::now();
    let mut handles = Vec::new();
    for c in 0..clients {
        let (socket, kinds, seed) = (socket.to_owned(), kinds.clone(), seed.clone());
        handles.push(tokio::spawn(async move {
            let mut conn = Conn::open(&socket).await;
            let mut out = Vec::with_capacity(requests);
            for r in 0..requests {
                let k = (c + r) % kinds.len();
                let id = seed.fetch_add(7919, Ordering::Relaxed) % TASKS + 1;
                let path = kinds[k].1.replace("{id}", &id.to_string());
                let t0 = Instant::now();
                let (status, body) = conn.call("GET", &path, None).await;
                assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
                out.push((k, t0.elapsed()));
            }
            out
        }));
    }
    let mut per_kind: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    for h in handles {
        for (k, d) in h.await.expect("client") {
            per_kind[k].push(d);
        }
    }
    let wall = start.elapsed();
    let total: usize = per_kind.iter().map(Vec::len).sum();
    println!(
        "{label}: {clients} concurrent clients (keep-alive), {total} requests in {:.2} s = {:.0} req/s",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64()
    );
    let mut all = Vec::new();
    for (k, mut v) in per_kind.into_iter().enumerate() {
        v.sort();
        println!(
            "  {:<40} n={:<5} p50 {:>10}  p99 {:>10}  max {:>10}",
            kinds[k].0,
            v.len(),
            ms(percentile(&v, 50)),
            ms(percentile(&v, 99)),
            ms(*v.last().unwrap_or(&Duration::ZERO))
        );
        all.extend(v);
    }
    all.sort();
    println!(
        "  {:<40} n={:<5} p50 {:>10}  p99 {:>10}",
        "all",
        all.len(),
        ms(percentile(&all, 50)),
        ms(percentile(&all, 99))
    );
}

/// One client, one request at a time: the latency of each read request alone.
async fn sequential(conn: &mut Conn, runs: usize) {
    println!("single client, {runs} runs each:");
    for (name, path) in read_requests() {
        let mut v = Vec::with_capacity(runs);
        let mut total = 0;
        for r in 0..runs {
            let path = path.replace("{id}", &((r as u64 * 7919) % TASKS + 1).to_string());
            let t0 = Instant::now();
            let (status, body) = conn.call("GET", &path, None).await;
            v.push(t0.elapsed());
            assert_eq!(status, 200, "{path}");
            if r == 0 {
                let j: Json = serde_json::from_slice(&body).expect("JSON");
                total = j["total"].as_u64().unwrap_or(0);
            }
        }
        v.sort();
        println!(
            "  {:<40} p50 {:>10}  p99 {:>10}  (matches: {total})",
            name,
            ms(percentile(&v, 50)),
            ms(percentile(&v, 99))
        );
    }
}

fn rss_mb(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (get("VmRSS:"), get("VmHWM:"))
}

struct Vigild(Child);

impl Drop for Vigild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn queue_busy(conn: &mut Conn) -> u64 {
    let s = conn.json("GET", "/v1/status", None).await;
    s["queue"]["queued"].as_u64().unwrap_or(0) + s["queue"]["running"].as_u64().unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let a = args();
    let tmp;
    let work = match &a.work {
        Some(w) => w.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("vigil-tasks-bench-")
                .tempdir()
                .expect("temp dir");
            tmp.path().to_owned()
        }
    };
    std::fs::create_dir_all(work.join("root")).unwrap();
    std::fs::create_dir_all(work.join("plugins")).unwrap();
    let lib = work.join("plugins/libvigil_test_plugins.so");
    std::fs::copy(&a.plugin, &lib)
        .unwrap_or_else(|e| panic!("copy {}: {e} (build it first)", a.plugin.display()));
    let config_path = work.join("config.toml");
    std::fs::write(&config_path, config_text()).unwrap();
    let config = vigil::config::load(&config_path).unwrap_or_else(|e| panic!("{e}"));

    // The built store is kept as `pristine.redb`; every run starts from a copy of it.
    let pristine = work.join("pristine.redb");
    let state = work.join("state");
    if !pristine.exists() {
        let building = work.join("building");
        let _ = std::fs::remove_dir_all(&building);
        build(&building, &config);
        std::fs::rename(building.join(vigil::store::DB_FILE), &pristine).unwrap();
        let _ = std::fs::remove_dir_all(&building);
    } else {
        println!("reusing the store built in {}", pristine.display());
    }
    ingest_probe(&work, &pristine, &config);
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    std::fs::copy(&pristine, state.join(vigil::store::DB_FILE)).unwrap();

    let socket = work.join("vigil.sock");
    let _ = std::fs::remove_file(&socket);
    let log = std::fs::File::create(work.join("vigild.log")).unwrap();
    let started = Instant::now();
    let daemon = Vigild(
        Command::new(&a.vigild)
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", a.vigild.display())),
    );
    let pid = daemon.0.id();
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "vigild did not open its socket; see {}",
            work.join("vigild.log").display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut conn = Conn::open(&socket).await;
    let status = conn.json("GET", "/v1/status", None).await;
    let (rss, _) = rss_mb(pid);
    println!(
        "vigild ready in {:.2} s (index of {} tasks loaded), {rss:.0} MB RSS; open tasks {}",
        started.elapsed().as_secs_f64(),
        TASKS,
        status["open_tasks"]
    );
    // The auto-assignment mails of the timed ingest go out first (to the maildir).
    while conn.json("GET", "/v1/status", None).await["outbox"]["pending"] != 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    sequential(&mut conn, 50).await;
    // vigild serves 64 connections at once (`api::Limits`); with this one held, a 64th load
    // client would wait for a slot and time the wait, not the request.
    drop(conn);
    load(&socket, a.clients, a.requests, "load").await;
    let mut conn = Conn::open(&socket).await;

    // Close All of the 10,000 marker tasks.
    let before = conn.json("GET", "/v1/status", None).await["open_tasks"]
        .as_u64()
        .unwrap_or(0);
    let preview = conn
        .json("GET", &format!("/v1/tasks?q={MARKER}&limit=10"), None)
        .await;
    let t0 = Instant::now();
    let closed = conn
        .json(
            "POST",
            "/v1/tasks/close",
            Some(&format!(r#"{{"q": "{MARKER}"}}"#)),
        )
        .await;
    let took = t0.elapsed();
    let after = conn.json("GET", "/v1/status", None).await["open_tasks"]
        .as_u64()
        .unwrap_or(0);
    println!(
        "POST /v1/tasks/close {{q: {MARKER}}}: closed {} of {} matching in {} (open tasks {before} -> {after})",
        closed["count"],
        preview["total"],
        ms(took)
    );
    assert_eq!(
        closed["count"].as_u64(),
        Some(CLOSE_ALL),
        "Close All closed the marker tasks"
    );

    // Ingest through the daemon: one scan on each of the 10,000 nodes; the fixture plugin
    // fails the same way everywhere, so the 10,000 findings group into one task. Readers
    // keep reading meanwhile.
    let t0 = Instant::now();
    let queued = conn
        .json("POST", "/v1/queue", Some(r#"{"kind": "scan"}"#))
        .await;
    let n = queued["ids"].as_array().map_or(0, Vec::len);
    let readers = {
        let socket = socket.clone();
        tokio::spawn(async move {
            load(&socket, 16, 50, "reads during the ingest").await;
        })
    };
    while queue_busy(&mut conn).await > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = t0.elapsed();
    readers.await.expect("readers");
    let list = conn
        .json("GET", "/v1/tasks?kind=scan-failure&q=fixture%20error", None)
        .await;
    let task = &list["tasks"][0];
    println!(
        "ingest through vigild: {n} scans (one per node, worker process each) with 10,000 findings \
         grouped into {} task(s) ({} events, {} nodes) in {:.2} s = {:.0} scans/s",
        list["total"],
        task["events"],
        task["nodes"],
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    let s = conn.json("GET", "/v1/status", None).await;
    let (rss, peak) = rss_mb(pid);
    println!(
        "end: open tasks {}, vigild RSS {rss:.0} MB (peak {peak:.0} MB)",
        s["open_tasks"]
    );
    drop(daemon);
}
