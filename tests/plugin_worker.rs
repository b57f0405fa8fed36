//! The plugin runtime end to end: the real `vigild` as worker, the fixture plugins
//! (`tests/fixture-plugins`) and C plugins compiled here with `cc`, through both
//! `vigild plugin run` and the supervisor API.

use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use vigil::plugin::supervisor::{
    self, PluginFailure, RunningScan, ScanEvent, ScanOutcome, ScanSpec, WorkerCommand,
    EVENT_CAPACITY, MAX_NOTES, MAX_NOTES_BYTES, MAX_NOTE_BYTES,
};

const VIGILD: &str = env!("CARGO_BIN_EXE_vigild");
const SRC: &str = env!("CARGO_MANIFEST_DIR");

/// A private, well-kept plugin directory (0755, ours) holding copies of the libraries.
struct Plugins {
    dir: tempfile::TempDir,
}

impl Plugins {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).unwrap();
        Plugins { dir }
    }

    /// The fixture cdylib, built by `cargo build --workspace` next to vigild.
    fn fixture(&self) -> PathBuf {
        let built = Path::new(VIGILD).with_file_name("libvigil_test_plugins.so");
        assert!(
            built.exists(),
            "{} missing: run `cargo build --workspace` before the tests",
            built.display()
        );
        let lib = self.dir.path().join("libvigil_test_plugins.so");
        fs::copy(&built, &lib).unwrap();
        fs::set_permissions(&lib, Permissions::from_mode(0o755)).unwrap();
        lib
    }

    /// Compiles a C source (relative to the repository) into a shared library.
    fn c_plugin(&self, source: &str) -> PathBuf {
        let stem = Path::new(source).file_stem().unwrap().to_str().unwrap();
        let lib = self.dir.path().join(format!("lib{stem}.so"));
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-Wall", "-Werror", "-I"])
            .arg(Path::new(SRC).join("plugins/api"))
            .arg("-o")
            .arg(&lib)
            .arg(Path::new(SRC).join(source))
            .output()
            .expect("a C compiler (`cc`) is needed for the C plugin tests");
        assert!(
            out.status.success(),
            "cc {source}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::set_permissions(&lib, Permissions::from_mode(0o755)).unwrap();
        lib
    }
}

fn plugin_run(lib: &Path, config: Option<&str>) -> Output {
    let root = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(VIGILD);
    cmd.args(["plugin", "run"])
        .arg(lib)
        .arg("--root")
        .arg(root.path());
    if let Some(c) = config {
        cmd.args(["--config", c]);
    }
    cmd.output().unwrap()
}

fn fixture_run(mode: &str) -> (i32, String, String) {
    let plugins = Plugins::new();
    let out = plugin_run(
        &plugins.fixture(),
        Some(&format!(r#"{{"mode": "{mode}"}}"#)),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts the run failed with exit 1 and one `error:` line containing every needle.
fn assert_fails_with(mode: &str, needles: &[&str]) {
    let (code, _stdout, stderr) = fixture_run(mode);
    assert_eq!(code, 1, "{mode}: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{mode}: want one error line: {stderr}");
    for n in needles {
        assert!(
            errors[0].contains(n),
            "{mode}: {n:?} not in {:?}",
            errors[0]
        );
    }
}

fn items(stdout: &str) -> Vec<vigil_plugin::Item> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line {l:?}: {e}")))
        .collect()
}

#[test]
fn plugin_run_prints_items_as_ndjson() {
    let plugins = Plugins::new();
    let out = plugin_run(&plugins.fixture(), Some(r#"{"mode": "ok", "count": 5}"#));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let items = items(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(items.len(), 5);
    assert_eq!(items[4].key, "item-4");
    assert_eq!(items[4].attributes["index"], vigil_plugin::Value::Int(4));
    assert!(stderr.contains("note: fixture: done"), "{stderr}");
}

#[test]
fn plugin_run_accepts_toml_and_file_config() {
    let plugins = Plugins::new();
    let lib = plugins.fixture();
    let out = plugin_run(&lib, Some("mode = \"ok\"\ncount = 2"));
    assert!(out.status.success());
    assert_eq!(items(&String::from_utf8_lossy(&out.stdout)).len(), 2);
    let cfg = plugins.dir.path().join("fixture.toml");
    fs::write(&cfg, "mode = \"ok\"\ncount = 7\n").unwrap();
    let out = plugin_run(&lib, Some(&format!("@{}", cfg.display())));
    assert!(out.status.success());
    assert_eq!(items(&String::from_utf8_lossy(&out.stdout)).len(), 7);
}

#[test]
fn plugin_run_handles_many_items() {
    let plugins = Plugins::new();
    let out = plugin_run(
        &plugins.fixture(),
        Some(r#"{"mode": "ok", "count": 100000}"#),
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 100_000);
    assert!(stdout
        .ends_with("{\"key\":\"item-99999\",\"attributes\":{\"even\":false,\"index\":99999}}\n"));
}

#[test]
fn segfault_is_reported_as_a_crash() {
    assert_fails_with("segfault", &["crashed with SIGSEGV", "fixture"]);
}

#[test]
fn segfault_after_many_items_is_reported_as_a_crash() {
    assert_fails_with("segfault-mid-stream", &["crashed with SIGSEGV", "fixture"]);
}

#[test]
fn abort_is_reported_as_a_crash_with_stderr() {
    assert_fails_with(
        "abort",
        &["crashed with SIGABRT", "fixture: about to abort"],
    );
}

#[test]
fn panic_is_reported_with_its_message() {
    assert_fails_with("panic", &["plugin panicked: fixture panic"]);
}

#[test]
fn plugin_error_is_reported_with_its_message() {
    assert_fails_with(
        "error",
        &["reported an error: fixture error: the thing is broken"],
    );
}

#[test]
fn bad_item_json_is_a_protocol_violation() {
    assert_fails_with("bad-json", &["protocol violation", "not valid item JSON"]);
}

#[test]
fn oversized_record_is_a_protocol_violation() {
    assert_fails_with("oversized", &["protocol violation", "frame too large"]);
}

#[test]
fn plugin_stdout_does_not_corrupt_the_stream() {
    let plugins = Plugins::new();
    let out = plugin_run(
        &plugins.fixture(),
        Some(r#"{"mode": "stdout", "count": 4}"#),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let items = items(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(items.len(), 4);
}

#[test]
fn c_plugin_runs_through_the_worker() {
    let plugins = Plugins::new();
    let lib = plugins.c_plugin("plugins/examples/hello.c");
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(VIGILD)
        .args(["plugin", "run"])
        .arg(&lib)
        .arg("--root")
        .arg(root.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let items = items(&String::from_utf8_lossy(&out.stdout));
    let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["hello", "bonjour", "hallo"]);
    let root_attr = vigil_plugin::Value::Str(root.path().to_str().unwrap().to_owned());
    assert_eq!(items[0].attributes["root"], root_attr);
    assert!(stderr.contains("note: hello: greetings only"), "{stderr}");
    assert!(stderr.contains("hello-c 1.0.0"), "{stderr}");
}

fn assert_c_fails_with(source: &str, needles: &[&str]) {
    let plugins = Plugins::new();
    let out = plugin_run(&plugins.c_plugin(source), None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{n:?} not in {stderr}");
    }
}

#[test]
fn wrong_abi_version_is_refused() {
    assert_c_fails_with(
        "tests/fixtures/c/wrong_abi.c",
        &["wrong ABI version", "version 99", "rebuild the plugin"],
    );
}

#[test]
fn missing_symbol_is_refused() {
    assert_c_fails_with(
        "tests/fixtures/c/no_symbol.c",
        &["missing symbol", "vigil_plugin_v1"],
    );
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let plugins = Plugins::new();
    let lib = plugins.dir.path().join("libtext.so");
    fs::write(&lib, "just text\n").unwrap();
    fs::set_permissions(&lib, Permissions::from_mode(0o644)).unwrap();
    let out = plugin_run(&lib, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("not a loadable shared library"), "{stderr}");
}

#[test]
fn group_writable_library_is_refused_before_loading() {
    let plugins = Plugins::new();
    let lib = plugins.fixture();
    fs::set_permissions(&lib, Permissions::from_mode(0o775)).unwrap();
    let out = plugin_run(&lib, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("refused to load") && stderr.contains("chmod go-w"),
        "{stderr}"
    );
}

#[test]
fn c_header_layout_matches_the_rust_abi() {
    use std::mem::{offset_of, size_of};
    use vigil_plugin::{Descriptor, ScanRequest, Sink};
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("layout");
    let out = Command::new("cc")
        .args(["-Wall", "-Werror", "-I"])
        .arg(Path::new(SRC).join("plugins/api"))
        .arg("-o")
        .arg(&exe)
        .arg(Path::new(SRC).join("tests/fixtures/c/layout.c"))
        .output()
        .expect("a C compiler (`cc`) is needed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(Command::new(&exe).output().unwrap().stdout).unwrap();
    let want = format!(
        "descriptor {} {} {} {} {} {} {}\nrequest {} {} {} {} {}\nsink {} {} {}\n\
         constants {} {} {} {} {} {} {} {} {}\n",
        size_of::<Descriptor>(),
        offset_of!(Descriptor, abi_version),
        offset_of!(Descriptor, struct_size),
        offset_of!(Descriptor, name),
        offset_of!(Descriptor, version),
        offset_of!(Descriptor, volatile_attributes),
        offset_of!(Descriptor, scan),
        size_of::<ScanRequest>(),
        offset_of!(ScanRequest, root),
        offset_of!(ScanRequest, root_len),
        offset_of!(ScanRequest, config),
        offset_of!(ScanRequest, config_len),
        size_of::<Sink>(),
        offset_of!(Sink, ctx),
        offset_of!(Sink, emit),
        vigil_plugin::ABI_VERSION,
        vigil_plugin::RECORD_ITEM,
        vigil_plugin::RECORD_NOTE,
        vigil_plugin::RECORD_ERROR,
        vigil_plugin::SCAN_OK,
        vigil_plugin::SCAN_FAILED,
        vigil_plugin::SCAN_PANICKED,
        vigil::plugin::frame::MAX_PAYLOAD,
        std::str::from_utf8(&vigil_plugin::SYMBOL[..vigil_plugin::SYMBOL.len() - 1]).unwrap(),
    );
    assert_eq!(printed, want);
}

// ---- The supervisor API, as the daemon's queue uses it. ----

fn worker() -> WorkerCommand {
    let mut w = WorkerCommand::new(VIGILD);
    w.grace = Duration::from_millis(500);
    w
}

fn spec(lib: &Path, root: &Path, config: serde_json::Value) -> ScanSpec {
    let mut spec = ScanSpec::new("fixture", lib, root);
    spec.config = config;
    spec
}

/// Starts the fixture plugin with `cfg` on an empty root; the plugin dir and the root live
/// as long as the first two values.
async fn start_fixture(cfg: serde_json::Value) -> (Plugins, tempfile::TempDir, RunningScan) {
    let plugins = Plugins::new();
    let root = tempfile::tempdir().unwrap();
    let scan = supervisor::start(&worker(), spec(&plugins.fixture(), root.path(), cfg))
        .await
        .unwrap();
    (plugins, root, scan)
}

/// Waits until `/proc/PID` is gone: the process exited *and* was reaped. A zombie does not
/// count: the supervisor reaps every worker it started.
async fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if is_gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn supervisor_streams_items_and_plugin_info() {
    let (_plugins, _root, mut scan) =
        start_fixture(serde_json::json!({"mode": "ok", "count": 10})).await;
    assert_eq!(scan.info().name, "fixture");
    assert_eq!(scan.info().version, "0.1.0");
    assert_eq!(scan.info().volatile_attributes, ["atime", "seq"]);
    let mut keys = Vec::new();
    let mut notes = Vec::new();
    while let Some(ev) = scan.next().await {
        match ev {
            ScanEvent::Item(item) => keys.push(item.key),
            ScanEvent::Note(n) => notes.push(n),
            ScanEvent::ItemJson(_) => panic!("asked for decoded items"),
        }
    }
    assert_eq!(keys.len(), 10);
    assert_eq!(notes, ["fixture: done"]);
    match scan.finish().await {
        ScanOutcome::Succeeded {
            items,
            notes,
            more_notes,
        } => {
            assert_eq!(items, 10);
            assert_eq!(notes, ["fixture: done"]);
            assert_eq!(more_notes, 0);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn supervisor_times_out_a_hanging_plugin() {
    let plugins = Plugins::new();
    let root = tempfile::tempdir().unwrap();
    let mut spec = spec(
        &plugins.fixture(),
        root.path(),
        serde_json::json!({"mode": "hang"}),
    );
    spec.timeout = Some(Duration::from_secs(1));
    let scan = supervisor::start(&worker(), spec).await.unwrap();
    let pid = scan.worker_pid();
    match scan.finish().await {
        ScanOutcome::Failed(f @ PluginFailure::TimedOut(_)) => {
            assert!(f.to_string().contains("timed out after 1s"), "{f}");
        }
        other => panic!("{other:?}"),
    }
    assert!(wait_gone(pid).await, "worker {pid} still runs");
}

/// Set only in the child process that `cancel_from_another_task_kills_the_whole_process_group`
/// runs [`fork_hang_cancelled_in_a_subreaper`] in.
const SUBREAPER_ENV: &str = "VIGIL_TEST_SUBREAPER";

#[test]
fn cancel_from_another_task_kills_the_whole_process_group() {
    // The check runs in a child test process that is a child subreaper: the plugin's
    // grandchild is reparented to it when the worker dies, so it can reap the grandchild and
    // see what killed it. Reparented to init instead, the dead grandchild could stay a zombie
    // for good (container inits often never reap), which cannot be told apart from a process
    // that is still dying. Marking this whole test process a subreaper would make it inherit
    // the orphans of every daemon the other tests kill.
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "plugin_worker::fork_hang_cancelled_in_a_subreaper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SUBREAPER_ENV, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("subreaper check: done"),
        "the check did not run: {text}"
    );
}

/// The body of `cancel_from_another_task_kills_the_whole_process_group`; does nothing
/// unless run by it.
#[tokio::test]
async fn fork_hang_cancelled_in_a_subreaper() {
    if std::env::var_os(SUBREAPER_ENV).is_none() {
        return;
    }
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let (_plugins, _root, mut scan) = start_fixture(serde_json::json!({"mode": "fork-hang"})).await;
    let worker_pid = scan.worker_pid();
    // The plugin tells us its grandchild's pid (which ignores SIGTERM), then hangs.
    let grandchild: u32 = match scan.next().await {
        Some(ScanEvent::Note(n)) => n.strip_prefix("grandchild ").unwrap().parse().unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(
        !is_gone(grandchild),
        "grandchild should be alive before cancel"
    );
    let handle = scan.cancel_handle();
    tokio::spawn(async move { handle.cancel() }).await.unwrap();
    assert!(matches!(
        scan.finish().await,
        ScanOutcome::Failed(PluginFailure::Cancelled)
    ));
    // Reaped by the supervisor by the time the outcome is known.
    assert!(is_gone(worker_pid), "worker {worker_pid} is not reaped");
    // The grandchild is ours now: reap it and check the group's SIGKILL got it.
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let pid = nix::unistd::Pid::from_raw(grandchild as i32);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)).unwrap() {
            WaitStatus::StillAlive => {
                assert!(
                    Instant::now() < deadline,
                    "grandchild {grandchild} survived the cancel"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            st => break st,
        }
    };
    assert_eq!(
        status,
        WaitStatus::Signaled(pid, nix::sys::signal::Signal::SIGKILL, false)
    );
    assert!(
        is_gone(grandchild),
        "grandchild {grandchild} still in /proc"
    );
    println!("subreaper check: done");
}

fn is_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn flooding_plugin_is_held_back_by_the_bounded_channel() {
    let plugins = Plugins::new();
    let root = tempfile::tempdir().unwrap();
    let mut spec = spec(
        &plugins.fixture(),
        root.path(),
        serde_json::json!({"mode": "flood"}),
    );
    spec.timeout = Some(Duration::from_secs(1));
    let mut scan = supervisor::start(&worker(), spec).await.unwrap();
    // Read nothing until the timeout has killed the worker: the flood must have stalled on
    // the full channel and pipe instead of piling up in memory.
    assert!(wait_gone(scan.worker_pid()).await);
    assert!(scan.buffered() <= EVENT_CAPACITY);
    let mut drained = 0;
    while scan.next().await.is_some() {
        drained += 1;
    }
    assert!(drained <= EVENT_CAPACITY, "{drained} events were buffered");
    assert!(matches!(
        scan.finish().await,
        ScanOutcome::Failed(PluginFailure::TimedOut(_))
    ));
}

#[tokio::test]
async fn dropping_a_running_scan_kills_its_worker() {
    let (_plugins, _root, mut scan) =
        start_fixture(serde_json::json!({"mode": "slow", "count": 1000000, "ms": 5})).await;
    assert!(matches!(scan.next().await, Some(ScanEvent::Item(_))));
    let pid = scan.worker_pid();
    drop(scan);
    assert!(
        wait_gone(pid).await,
        "worker {pid} outlived its RunningScan"
    );
}

#[tokio::test]
async fn load_failures_fail_start_with_a_typed_reason() {
    let plugins = Plugins::new();
    let root = tempfile::tempdir().unwrap();
    let lib = plugins.c_plugin("tests/fixtures/c/wrong_abi.c");
    let err = supervisor::start(&worker(), spec(&lib, root.path(), serde_json::json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PluginFailure::Protocol(m) if m.contains("wrong ABI version")),
        "{err}"
    );

    let lib = plugins.fixture();
    let err = supervisor::start(
        &WorkerCommand::new("/nonexistent/vigild"),
        spec(&lib, root.path(), serde_json::json!({})),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PluginFailure::Spawn(_)), "{err}");

    fs::set_permissions(&lib, Permissions::from_mode(0o666)).unwrap();
    let err = supervisor::start(&worker(), spec(&lib, root.path(), serde_json::json!({})))
        .await
        .unwrap_err();
    assert!(matches!(err, PluginFailure::Refused(_)), "{err}");
}

fn expect_crash(outcome: ScanOutcome, signal: &str) {
    match outcome {
        ScanOutcome::Failed(f @ PluginFailure::Crashed { .. }) => {
            let PluginFailure::Crashed { signal: got, .. } = &f else {
                unreachable!()
            };
            assert_eq!(got, signal, "{f}");
            assert!(
                f.to_string().contains(&format!("crashed with {signal}")),
                "{f}"
            );
        }
        other => panic!("want a crash with {signal}, got {other:?}"),
    }
}

/// Regression (plugin crash reported as "truncated frame"): a plugin that crashes after
/// streaming 100k items is a crash, whatever the pipe held when it died.
#[tokio::test]
async fn crash_mid_stream_is_a_crash_not_a_protocol_violation() {
    let (_plugins, _root, mut scan) =
        start_fixture(serde_json::json!({"mode": "segfault-mid-stream"})).await;
    let pid = scan.worker_pid();
    let mut items = 0;
    while let Some(ev) = scan.next().await {
        assert!(matches!(ev, ScanEvent::Item(_)), "{ev:?}");
        items += 1;
    }
    // The worker's unflushed buffer (at most 64 KiB of frames) dies with it.
    assert!(
        (99_000..=100_000).contains(&items),
        "{items} of the 100,000 items before the crash arrived"
    );
    expect_crash(scan.finish().await, "SIGSEGV");
    assert!(is_gone(pid), "worker {pid} is not reaped");
}

/// A crash that leaves half a frame on the pipe (another thread was mid-record): the pump
/// sees a truncated frame, and the supervisor still reports the crash.
#[tokio::test]
async fn crash_with_a_torn_frame_on_the_pipe_is_a_crash() {
    let (_plugins, _root, mut scan) =
        start_fixture(serde_json::json!({"mode": "torn-frame", "count": 1000})).await;
    let mut items = 0;
    let mut notes = Vec::new();
    while let Some(ev) = scan.next().await {
        match ev {
            ScanEvent::Item(_) => items += 1,
            ScanEvent::Note(n) => notes.push(n),
            ScanEvent::ItemJson(_) => unreachable!(),
        }
    }
    assert_eq!(items, 1000);
    assert_eq!(notes, ["fixture: tearing a frame"]);
    expect_crash(scan.finish().await, "SIGSEGV");
}

/// Collects a note-flood scan: the notes as events, and the outcome's kept notes.
async fn note_flood(cfg: serde_json::Value) -> (Vec<String>, Vec<String>, u64) {
    let (_plugins, _root, mut scan) = start_fixture(cfg).await;
    let mut events = Vec::new();
    while let Some(ev) = scan.next().await {
        if let ScanEvent::Note(n) = ev {
            events.push(n);
        }
    }
    match scan.finish().await {
        ScanOutcome::Succeeded {
            items,
            notes,
            more_notes,
        } => {
            assert_eq!(items, 1);
            (events, notes, more_notes)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn huge_notes_are_cut_and_kept_notes_are_capped_in_bytes() {
    let (events, kept, more) =
        note_flood(serde_json::json!({"mode": "note-flood", "huge": 3, "count": 2000})).await;
    assert_eq!(events.len(), 2003, "every note is passed on");
    for n in &events {
        assert!(n.len() <= MAX_NOTE_BYTES, "a {}-byte note", n.len());
    }
    for n in &events[..3] {
        assert!(n.starts_with("xéé"), "{}", &n[..16]);
        assert!(n.ends_with(" bytes in all]"), "{}", &n[n.len() - 40..]);
    }
    assert_eq!(events[3], "n".repeat(3000), "short notes are whole");
    let bytes: usize = kept.iter().map(String::len).sum();
    assert!(bytes <= MAX_NOTES_BYTES, "{bytes} bytes of notes kept");
    assert!(
        kept.len() < MAX_NOTES,
        "the byte cap, not the count, stopped it"
    );
    assert_eq!(kept[..], events[..kept.len()], "the first notes are kept");
    assert_eq!(kept.len() as u64 + more, 2003, "the rest are counted");
}

#[tokio::test]
async fn kept_notes_are_capped_in_count() {
    let (events, kept, more) =
        note_flood(serde_json::json!({"mode": "note-flood", "huge": 0, "count": 3000, "size": 10}))
            .await;
    assert_eq!(events.len(), 3000);
    assert_eq!(kept.len(), MAX_NOTES);
    assert_eq!(more, 3000 - MAX_NOTES as u64);
}

/// The worker gets its three pipes and its own frame fd, nothing else: not an fd its parent
/// inherited without close-on-exec (here one leaked into `vigild plugin run` on purpose).
#[test]
fn the_worker_inherits_no_stray_file_descriptors() {
    use std::os::unix::process::CommandExt;
    let plugins = Plugins::new();
    let root = tempfile::tempdir().unwrap();
    let leaked = tempfile::NamedTempFile::new().unwrap();
    let path = leaked.path().to_owned();
    let mut cmd = Command::new(VIGILD);
    cmd.args(["plugin", "run"])
        .arg(plugins.fixture())
        .arg("--root")
        .arg(root.path())
        .args(["--config", r#"{"mode": "fds"}"#]);
    // SAFETY: open and dup2 are async-signal-safe; the path was built before the fork.
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(c_path.as_ptr(), libc::O_RDONLY);
            if fd >= 0 && fd != 77 {
                libc::dup2(fd, 77);
                libc::close(fd);
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let items = items(&String::from_utf8_lossy(&out.stdout));
    let targets: Vec<String> = items
        .iter()
        .map(|i| format!("{} {}", i.key, i.attributes["target"]))
        .collect();
    assert!(
        !targets.iter().any(|t| t.contains(&*path.to_string_lossy())),
        "the leaked fd reached the plugin: {targets:#?}"
    );
    // 0-2, the private frame fd and the one read_dir holds while listing; nothing else.
    assert!(items.len() <= 5, "{targets:#?}");
}
