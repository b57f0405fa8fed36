//! Grouping a run's findings into user tasks (issue 13): N nodes (default 10,000), each a
//! tiny tree scanned by the real files plugin through the real vigild. Night 1 is the
//! baseline; night 2 brings one shared patch (four files changed alike on every node) and
//! per-node noise (one file changed differently on each). The run's end groups them all:
//! one patch task per owner group and one noise task per node. Measured: the grouping step
//! (the run's last task end → its tasks committed), and `GET /v1/status` latency while it
//! runs (one client polling without pause). Numbers are printed, not asserted.
//!
//! `benches/grouping/run.sh`, or `cargo bench --bench grouping -- --vigild PATH
//! --plugins DIR [--nodes N] [--work DIR]`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use vigil::client::Client;
use vigil::proto::endpoints::{Enqueue, GetLog, GetRun, GetStatus};
use vigil::proto::{
    EnqueueRequest, LogPage, LogQuery, QueueTaskKind, RunInfo, RunState, Scope, Status,
};

const GROUPS: usize = 20;

struct Args {
    vigild: PathBuf,
    plugins: PathBuf,
    nodes: usize,
    work: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        vigild: PathBuf::from("target/release/vigild"),
        plugins: PathBuf::from("target/release"),
        nodes: 10_000,
        work: std::env::temp_dir().join("vigil-grouping-bench"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match flag.as_str() {
            "--vigild" => a.vigild = value().into(),
            "--plugins" => a.plugins = value().into(),
            "--nodes" => a.nodes = value().parse().expect("a number of nodes"),
            "--work" => a.work = value().into(),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Node `i`'s tree: four patched files and one noise file under `etc`.
fn tree(root: &Path, i: usize, night: u32) {
    for f in ["ssl.conf", "ssh.conf", "app.conf", "limits.conf"] {
        write(&root.join("etc").join(f), &format!("{f} release {night}\n"));
    }
    let noise = if night == 1 {
        "0".to_owned()
    } else {
        format!("{i}-{night}")
    };
    write(&root.join("etc/noise.conf"), &format!("counter {noise}\n"));
}

fn config(work: &Path, plugins: &Path, nodes: usize) -> String {
    let mut c = format!(
        "policy_dir = \"none\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"vigil.sock\"\n\
         plugin_dir = \"{}\"\nslots = 2\nqueue_capacity = {}\n\n\
         [[plugin]]\nname = \"files\"\nignore_attributes = [\"mtime\", \"ctime\", \"inode\"]\n\
         [plugin.config]\npaths = [\"/etc\"]\ncontent = [\"/etc/*.conf\"]\n\n",
        plugins.display(),
        nodes + 10
    );
    for g in 0..GROUPS {
        c += &format!("[[group]]\nname = \"g{g:02}\"\nowners = [\"owner-{g:02}@example.com\"]\n\n");
    }
    for i in 0..nodes {
        c += &format!(
            "[[node]]\nname = \"n{i:05}\"\ngroups = [\"g{:02}\"]\nroot = \"{}\"\n\n",
            i % GROUPS,
            work.join("roots").join(format!("n{i:05}")).display()
        );
    }
    c
}

/// A private copy of the files plugin (the worker refuses libraries others may write).
fn plugin_dir(work: &Path, built: &Path) -> PathBuf {
    let dir = work.join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        built.join("libvigil_files.so"),
        dir.join("libvigil_files.so"),
    )
    .expect("the files plugin is built (cargo build --release -p vigil-files)");
    dir
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn scan_and_wait(client: &Client) -> RunInfo {
    let req = EnqueueRequest {
        kind: QueueTaskKind::Scan,
        scope: Scope::All,
        plugins: None,
        policies: None,
    };
    let resp = client.post::<Enqueue>(&(), &req).await.expect("queued");
    let run = resp.run.expect("a run over every node");
    loop {
        let info: RunInfo = client.get::<GetRun>(&run).await.expect("run");
        if info.state == RunState::Complete {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The daemon's "run ended" log line of `run`: its time (written once the run's user tasks
/// are durable) and how long its grouping transaction took, commit included.
fn run_ended_line(log: &std::path::Path, run: u64) -> (DateTime<Utc>, f64) {
    let text = std::fs::read_to_string(log).expect("read vigild.log");
    let line = text
        .lines()
        .find(|l| l.contains("run ended") && l.contains(&format!("run={run} ")))
        .expect("vigild logged the run's end");
    let at = line.split_whitespace().next().and_then(|t| {
        DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    });
    let took = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("took_ms="))
        .and_then(|v| v.parse::<f64>().ok());
    (
        at.expect("a timestamp first on the log line"),
        took.expect("took_ms on the log line") / 1e3,
    )
}

/// When the run's last task ended: the newest `finished_at` among its log rows.
async fn last_end(client: &Client, run: u64, nodes: usize) -> DateTime<Utc> {
    let mut last = DateTime::<Utc>::MIN_UTC;
    let mut offset = 0;
    while offset < nodes {
        let q = LogQuery {
            offset,
            limit: Some(1000),
            ..LogQuery::default()
        };
        let page: LogPage = client
            .query::<GetLog>(&"scans".to_owned(), &q)
            .await
            .unwrap();
        if page.rows.is_empty() {
            break;
        }
        offset += page.rows.len();
        for r in page.rows.iter().filter(|r| r.run == Some(run)) {
            last = last.max(r.finished_at);
        }
    }
    last
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let a = args();
    let _ = std::fs::remove_dir_all(&a.work);
    std::fs::create_dir_all(&a.work).unwrap();
    let work = std::path::absolute(&a.work).unwrap();
    println!("{} nodes in {}", a.nodes, work.display());
    for i in 0..a.nodes {
        tree(&work.join("roots").join(format!("n{i:05}")), i, 1);
    }
    let plugins = plugin_dir(&work, &a.plugins);
    write(&work.join("config.toml"), &config(&work, &plugins, a.nodes));
    write(&work.join("today"), "2026-06-01");
    let child = Command::new(&a.vigild)
        .arg("--config")
        .arg(work.join("config.toml"))
        .env("VIGIL_TODAY_FILE", work.join("today"))
        // The "run ended" line is written once the run's tasks are committed.
        .env("RUST_LOG", "warn,vigil::queue::complete=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("vigild.log")).unwrap())
        .spawn()
        .expect("start vigild");
    let _daemon = Daemon(child);
    let socket = work.join("vigil.sock");
    let client = Client::new(&socket);
    let t0 = Instant::now();
    while client.get::<GetStatus>(&()).await.is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "vigild did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let t = Instant::now();
    scan_and_wait(&client).await;
    println!("night 1 (baseline): {:.1} s", t.elapsed().as_secs_f64());

    for i in 0..a.nodes {
        tree(&work.join("roots").join(format!("n{i:05}")), i, 2);
    }
    write(&work.join("today"), "2026-06-02");
    // A client polling status without pause for the whole night; each answer timestamped.
    // Stopped by a flag, not by abort: an aborted task's answers would be lost with it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let socket = socket.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let client = Client::new(&socket);
            let mut seen: Vec<(DateTime<Utc>, Duration)> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                if client.get::<GetStatus>(&()).await.is_err() {
                    return seen;
                }
                seen.push((Utc::now(), t.elapsed()));
                if seen.len() > 5_000_000 {
                    return seen;
                }
            }
            seen
        })
    };
    let t = Instant::now();
    let info = scan_and_wait(&client).await;
    let night = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = poller.await.unwrap_or_default();
    let ended = last_end(&client, info.id, a.nodes).await;
    let (committed, took) = run_ended_line(&work.join("vigild.log"), info.id);
    let grouping = (committed - ended).to_std().unwrap_or_default();
    println!(
        "night 2: {} scans in {:.1} s; the run's grouping (last task end -> tasks committed, \
         fsync included): {:.2} s (of which the grouping transaction until it is durable: \
         {:.2} s): {} user tasks created, {} updated",
        info.tasks,
        night.as_secs_f64(),
        grouping.as_secs_f64(),
        took,
        info.user_tasks_created,
        info.user_tasks_updated
    );
    let mut during: Vec<Duration> = seen
        .iter()
        .filter(|(at, _)| *at >= ended && *at <= committed)
        .map(|(_, d)| *d)
        .collect();
    during.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    println!(
        "GET /v1/status while grouping: {} answers, p50 {} p99 {} max {}",
        during.len(),
        ms(percentile(&during, 50)),
        ms(percentile(&during, 99)),
        ms(during.last().copied().unwrap_or_default())
    );
    let status: Status = client.get::<GetStatus>(&()).await.unwrap();
    println!(
        "open tasks {}; outbox pending {:?}",
        status.open_tasks.unwrap_or(0),
        status.outbox.map(|o| o.pending)
    );
}
