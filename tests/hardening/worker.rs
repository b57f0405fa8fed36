//! Issue 16: the worker loads the file it checked and runs a plugin with only the
//! capabilities it needs. The real `vigil-worker`, the real fixture plugin.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use vigil::plugin::frame::{self, Frame, Tag};
use vigil::plugin::supervisor::{self, ScanSpec, WorkerCommand};

use crate::common::{is_root, TestDir, VIGILD};

fn worker_exe() -> PathBuf {
    Path::new(VIGILD).with_file_name("vigil-worker")
}

/// Runs `vigil-worker LIBRARY ROOT` by hand with an empty config; its exit code and frames.
fn run_worker(library: &Path, root: &Path) -> (Option<i32>, Vec<Frame>) {
    let mut child = Command::new(worker_exe())
        .arg(library)
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut config = Vec::new();
    frame::write_frame(&mut config, Tag::Config, b"{}").unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The worker may exit before reading it (it refuses before the scan): ignore EPIPE.
    let _ = stdin.write_all(&config);
    // Stdin stays open until the worker has exited (its end would stop the scan).
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    let frames = vigil_wire::decode_all(&stdout).unwrap();
    (status.code(), frames)
}

#[test]
fn a_library_path_that_is_a_symlink_is_refused_by_the_worker() {
    let dir = TestDir::new();
    let real = dir.plugin_dir().join("libvigil_test_plugins.so");
    let link = dir.plugin_dir().join("libswapped.so");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let root = dir.node_root("n1");
    // vigild hands the worker resolved paths: a symlink there was swapped in after the check.
    let (code, frames) = run_worker(&link, &root);
    assert_eq!(code, Some(65), "exit status of a violation: {frames:?}");
    assert!(
        matches!(frames.first(), Some(Frame::Worker(_))),
        "{frames:?}"
    );
    let Some(Frame::Violation(reason)) = frames.last() else {
        panic!("no violation frame: {frames:?}");
    };
    assert!(reason.contains("refused to load"), "{reason}");
    assert!(reason.contains("symbolic link"), "{reason}");
    assert!(reason.contains(&link.display().to_string()), "{reason}");
    assert!(
        !frames.iter().any(|f| matches!(f, Frame::Hello(_))),
        "the plugin was not loaded: {frames:?}"
    );
    // The file itself, by its own name, loads.
    let (code, frames) = run_worker(&real, &root);
    assert_eq!(code, Some(0), "{frames:?}");
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, Frame::Hello(i) if i.name == "fixture")),
        "{frames:?}"
    );
}

#[test]
fn the_worker_refuses_a_library_others_may_write_or_own() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new();
    let lib = dir.plugin_dir().join("libvigil_test_plugins.so");
    let root = dir.node_root("n1");
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o775)).unwrap();
    let (code, frames) = run_worker(&lib, &root);
    assert_eq!(code, Some(65));
    assert!(
        matches!(frames.last(), Some(Frame::Violation(r)) if r.contains("chmod go-w")),
        "{frames:?}"
    );
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&lib, Some(4242), None).unwrap();
        let (code, frames) = run_worker(&lib, &root);
        assert_eq!(code, Some(65));
        assert!(
            matches!(frames.last(), Some(Frame::Violation(r)) if r.contains("owned by uid 4242")),
            "{frames:?}"
        );
    }
}

/// A capability set of `/proc/PID/status` (`CapEff`, `CapBnd`, …) as a bit mask.
fn cap_mask(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

const CAP_CHOWN: u64 = 1 << 0;
const CAP_DAC_OVERRIDE: u64 = 1 << 1;
const CAP_DAC_READ_SEARCH: u64 = 1 << 2;
const CAP_SETUID: u64 = 1 << 7;
const CAP_NET_ADMIN: u64 = 1 << 12;
const CAP_SYS_PTRACE: u64 = 1 << 19;
const CAP_SYS_ADMIN: u64 = 1 << 21;

/// The worker's capabilities while `plugin` (the fixture library under that configured
/// name) hangs in its scan.
async fn worker_status_as(plugin: &str) -> String {
    let dir = TestDir::new();
    let lib = dir.plugin_dir().join("libvigil_test_plugins.so");
    let root = dir.node_root("n1");
    let mut spec = ScanSpec::new(plugin, &lib, &root);
    spec.config = serde_json::json!({"mode": "hang"});
    let mut worker = WorkerCommand::new(worker_exe());
    worker.grace = std::time::Duration::from_millis(200);
    // `start` returns once the plugin is loaded: the capabilities are already dropped.
    let scan = supervisor::start(&worker, spec)
        .await
        .expect("the plugin loads");
    let status = std::fs::read_to_string(format!("/proc/{}/status", scan.worker_pid())).unwrap();
    scan.cancel_handle().cancel();
    let _ = scan.finish().await;
    status
}

#[tokio::test]
async fn the_worker_keeps_only_what_its_plugin_needs() {
    if !is_root() {
        eprintln!("skipped: needs root (a worker without capabilities has nothing to drop)");
        return;
    }
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_ne!(
        cap_mask(&ours, "CapEff:") & CAP_SYS_PTRACE,
        0,
        "the test runs with CAP_SYS_PTRACE to give the worker: {ours}"
    );
    // A plugin other than ports: reading every file, nothing else.
    let status = worker_status_as("files").await;
    for set in ["CapEff:", "CapPrm:"] {
        assert_eq!(
            cap_mask(&status, set),
            CAP_DAC_READ_SEARCH,
            "{set} {status}"
        );
    }
    assert_eq!(cap_mask(&status, "CapInh:"), 0, "{status}");
    assert_eq!(cap_mask(&status, "CapAmb:"), 0, "{status}");
    let bounding = cap_mask(&status, "CapBnd:");
    for cap in [
        CAP_CHOWN,
        CAP_DAC_OVERRIDE,
        CAP_SETUID,
        CAP_NET_ADMIN,
        CAP_SYS_PTRACE,
        CAP_SYS_ADMIN,
    ] {
        assert_eq!(bounding & cap, 0, "bounding set {bounding:x} keeps {cap:x}");
    }
    assert_eq!(bounding, CAP_DAC_READ_SEARCH, "{status}");
    assert!(
        status.lines().any(|l| l == "NoNewPrivs:\t1"),
        "no-new-privs is set: {status}"
    );
    // A third-party plugin gets the same.
    let status = worker_status_as("my-plugin").await;
    assert_eq!(
        cap_mask(&status, "CapEff:"),
        CAP_DAC_READ_SEARCH,
        "{status}"
    );
    // ports keeps CAP_SYS_PTRACE, for other users' /proc/PID/fd.
    let status = worker_status_as("ports").await;
    for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert_eq!(
            cap_mask(&status, set),
            CAP_DAC_READ_SEARCH | CAP_SYS_PTRACE,
            "{set} {status}"
        );
    }
}

/// `vigil-worker --serve ROOT` (a remote task's worker), driven by hand over its pipes.
struct Serving {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::process::ChildStdout,
}

impl Serving {
    fn start(root: &Path) -> Serving {
        let mut child = Command::new(worker_exe())
            .arg("--serve")
            .arg(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let mut serving = Serving {
            child,
            stdin,
            stdout,
        };
        assert!(matches!(serving.next(), Frame::Worker(_)));
        serving
    }

    fn run(&mut self, plugin: &str, library: &Path, config: &str) {
        let mut run = Vec::new();
        let payload = frame::run_payload(
            plugin.as_bytes(),
            library.as_os_str().as_encoded_bytes(),
            config.as_bytes(),
        );
        frame::write_frame(&mut run, Tag::Run, &payload).unwrap();
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(&run).unwrap();
        stdin.flush().unwrap();
    }

    /// The next frame; the worker's stdout ending first fails the test.
    fn next(&mut self) -> Frame {
        let mut head = [0u8; frame::HEADER_LEN];
        self.stdout.read_exact(&mut head).unwrap();
        let (tag, len) = frame::parse_header(&head).unwrap();
        let mut payload = vec![0u8; len];
        self.stdout.read_exact(&mut payload).unwrap();
        frame::decode(tag, payload).unwrap()
    }

    /// Frames up to and including the exit frame of the plugin running now.
    fn until_exit(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        // Bounded: a plugin run is a handful of frames here.
        for _ in 0..64 {
            let f = self.next();
            let exit = matches!(f, Frame::Exit(_));
            frames.push(f);
            if exit {
                return frames;
            }
        }
        panic!("no exit frame in {frames:?}");
    }

    /// The pid of the plugin child it forked (its only child while a plugin runs).
    fn plugin_pid(&self) -> u32 {
        let pid = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .expect("the kernel lists a process's children");
        let mut pids = children.split_whitespace();
        let first = pids.next().expect("a forked plugin child");
        assert_eq!(pids.next(), None, "one child at a time: {children}");
        first.parse().unwrap()
    }
}

#[test]
fn a_serving_worker_checks_and_confines_each_plugin_it_forks() {
    let dir = TestDir::new();
    let real = dir.plugin_dir().join("libvigil_test_plugins.so");
    let link = dir.plugin_dir().join("libswapped.so");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let root = dir.node_root("n1");
    let mut serving = Serving::start(&root);

    // A swapped-in symlink is refused by the child, as by a one-plugin worker.
    serving.run("files", &link, "{}");
    let frames = serving.until_exit();
    assert!(
        matches!(&frames[..], [Frame::Violation(r), Frame::Exit(frame::ExitKind::Code(65))]
            if r.contains("symbolic link")),
        "{frames:?}"
    );

    // The next run, over the same worker, loads with the plugin's capabilities only.
    serving.run("files", &real, r#"{"mode": "hang"}"#);
    assert!(
        matches!(serving.next(), Frame::Hello(i) if i.name == "fixture"),
        "the plugin loaded"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", serving.plugin_pid())).unwrap();
    assert!(
        status.lines().any(|l| l == "NoNewPrivs:\t1"),
        "no-new-privs is set: {status}"
    );
    if is_root() {
        for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
            assert_eq!(
                cap_mask(&status, set),
                CAP_DAC_READ_SEARCH,
                "{set} {status}"
            );
        }
    } else {
        assert_eq!(cap_mask(&status, "CapEff:"), 0, "{status}");
    }

    // The end of stdin ends the serving worker and the plugin hanging under it.
    let plugin = serving.plugin_pid();
    drop(serving.stdin.take());
    let status = serving.child.wait().unwrap();
    assert!(!status.success(), "{status:?}");
    // SIGKILLed with it; it may take a moment to die and be reaped by init.
    let gone = || {
        std::fs::read_to_string(format!("/proc/{plugin}/stat"))
            .map_or(true, |s| s.contains(") Z ") || s.contains(") X "))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gone() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        gone(),
        "the plugin child {plugin} outlived its serving worker"
    );
}
