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

mod scans;

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
fn bad_unseen_record_is_a_protocol_violation() {
    assert_fails_with(
        "bad-unseen",
        &["protocol violation", "not valid unseen JSON", "reason"],
    );
}

#[test]
fn plugin_run_prints_unseen_records_on_stderr() {
    let (code, stdout, stderr) = fixture_run("unseen");
    assert_eq!(code, 0, "{stderr}");
    let keys: Vec<String> = items(&stdout).into_iter().map(|i| i.key).collect();
    assert_eq!(keys, ["/a", "/z"]);
    assert!(
        stderr.contains(r#"unseen: {"key":"/locked","reason":"permission denied"}"#),
        "{stderr}"
    );
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
         constants {} {} {} {} {} {} {} {} {} {}\n",
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
        vigil_plugin::RECORD_UNSEEN,
        vigil_plugin::SCAN_OK,
        vigil_plugin::SCAN_FAILED,
        vigil_plugin::SCAN_PANICKED,
        vigil::plugin::frame::MAX_PAYLOAD,
        std::str::from_utf8(&vigil_plugin::SYMBOL[..vigil_plugin::SYMBOL.len() - 1]).unwrap(),
    );
    assert_eq!(printed, want);
}
