//! The supervisor API as the daemon's queue uses it: streaming with backpressure, timeouts
//! and cancels that kill the whole process group, crashes told apart from protocol
//! violations, bounded notes, and a worker that inherits nothing of the daemon's.

use super::*;

fn worker() -> WorkerCommand {
    let mut w = WorkerCommand::new(Path::new(VIGILD).with_file_name("vigil-worker"));
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
    start_fixture_within(cfg, None).await
}

/// [`start_fixture`], with the scan's `timeout`.
async fn start_fixture_within(
    cfg: serde_json::Value,
    timeout: Option<Duration>,
) -> (Plugins, tempfile::TempDir, RunningScan) {
    let plugins = Plugins::new();
    let root = tempfile::tempdir().unwrap();
    let mut spec = spec(&plugins.fixture(), root.path(), cfg);
    spec.timeout = timeout;
    let scan = supervisor::start(&worker(), spec).await.unwrap();
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
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(keys.len(), 10);
    assert_eq!(notes, ["fixture: done"]);
    match scan.finish().await {
        ScanOutcome::Succeeded {
            items,
            notes,
            more_notes,
            unseen,
            more_unseen,
        } => {
            assert_eq!(items, 10);
            assert!(unseen.is_empty());
            assert_eq!(more_unseen, 0);
            assert_eq!(notes, ["fixture: done"]);
            assert_eq!(more_notes, 0);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn supervisor_times_out_a_hanging_plugin() {
    let (_plugins, _root, scan) = start_fixture_within(
        serde_json::json!({"mode": "hang"}),
        Some(Duration::from_secs(1)),
    )
    .await;
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
            "plugin_worker::scans::fork_hang_cancelled_in_a_subreaper",
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
    let (_plugins, _root, mut scan) = start_fixture_within(
        serde_json::json!({"mode": "flood"}),
        Some(Duration::from_secs(1)),
    )
    .await;
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
    assert!(matches!(err, PluginFailure::Spawn(..)), "{err}");

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
    // The worker's unflushed buffer (at most 64 KiB of frames) dies with it: this fixture's
    // item frames are about 60 bytes, so about 1,100 items can be lost (98,927 arrived once).
    assert!(
        (98_000..=100_000).contains(&items),
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
            other => unreachable!("{other:?}"),
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
            ..
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

/// A plugin's unseen record reaches the consumer as `ScanEvent::Unseen`, in order with the
/// items, and is kept in the outcome, bounded like notes.
#[tokio::test]
async fn unseen_records_arrive_as_events_and_in_the_outcome() {
    let (_plugins, _root, mut scan) =
        start_fixture(serde_json::json!({"mode": "unseen", "count": 1})).await;
    let mut events = Vec::new();
    while let Some(ev) = scan.next().await {
        events.push(ev);
    }
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(matches!(&events[0], ScanEvent::Item(i) if i.key == "/a"));
    assert_eq!(
        events[1],
        ScanEvent::Unseen {
            key: "/locked".into(),
            reason: "permission denied".into()
        }
    );
    assert!(matches!(&events[2], ScanEvent::Item(i) if i.key == "/z"));
    match scan.finish().await {
        ScanOutcome::Succeeded {
            items,
            notes,
            unseen,
            more_unseen,
            ..
        } => {
            assert_eq!(items, 2);
            assert!(notes.is_empty(), "{notes:?}");
            let want = supervisor::Unseen {
                key: "/locked".into(),
                reason: "permission denied".into(),
            };
            assert_eq!(unseen, [want]);
            assert_eq!(more_unseen, 0);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unseen_records_kept_in_the_outcome_are_capped() {
    let n = MAX_NOTES as u64 + 5;
    let (_plugins, _root, mut scan) =
        start_fixture(serde_json::json!({"mode": "unseen", "count": n})).await;
    let mut events = 0;
    while let Some(ev) = scan.next().await {
        if matches!(ev, ScanEvent::Unseen { .. }) {
            events += 1;
        }
    }
    assert_eq!(events, n, "every record is passed on");
    match scan.finish().await {
        ScanOutcome::Succeeded {
            unseen,
            more_unseen,
            ..
        } => {
            assert_eq!(unseen.len(), MAX_NOTES);
            assert_eq!(more_unseen, 5);
            assert_eq!(unseen[1].key, "/locked-1");
        }
        other => panic!("{other:?}"),
    }
}
