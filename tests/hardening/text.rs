//! Issue 16: text from scanned nodes cannot attack an administrator's terminal. A node's
//! accounts, file owners and file names, a plugin's error message and policy evidence carry
//! escape sequences (OSC retitle, CSI clear screen, a one-byte C1 CSI, a bidi override); every
//! command prints them as visible escapes, `--json` prints them exactly, and on a real
//! terminal (tmux) the title stays and the screen is not cleared.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::json;

use crate::common::{is_root, stderr, stdout, vigil_cmd, Daemon, TestDir, PATIENCE, VIGIL};

const DEBIAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nodes/debian");
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

/// The uid-0 account of the issue: retitles the terminal, then clears the screen.
const EVIL_ACCOUNT: &str = "evil\x1b]0;PWNED\x07\x1b[2J";
/// A file owner: colours, a C1 CSI (U+009B) and a right-to-left override.
const EVIL_OWNER: &str = "own\x1b[31mer\u{9b}2J\u{202e}x";
/// A file name with a clear screen and zero-width characters.
const EVIL_FILE: &str = "evil\x1b[2J\u{200b}\u{2066}.conf";
/// A plugin's error message (TOML escapes, written into the config).
const EVIL_MESSAGE_TOML: &str = "broken \\u001b]0;PWNED\\u0007\\u001b[2J \\u202e done";

/// What must never reach a terminal from the daemon's text: C0 controls but line feed and
/// tab (ESC among them), DEL, C1 controls, and the format characters a name could use
/// (bidi embeddings, overrides, isolates, marks; zero-width characters; BOM). The list is
/// the test's own, independent of the sanitiser's.
fn hostile(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c,
            '\u{61c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

fn assert_clean(what: &str, text: &str) {
    if let Some((i, c)) = text.char_indices().find(|&(_, c)| hostile(c)) {
        let from = text[..i].char_indices().rev().nth(40).map_or(0, |(j, _)| j);
        panic!(
            "{what}: {c:?} reaches the terminal at byte {i}: {:?}",
            &text[from..(i + 40).min(text.len())]
        );
    }
}

struct Hostile {
    dir: TestDir,
    root: PathBuf,
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A Debian node `web1` whose passwd gains the evil accounts, with a file owned by the evil
/// owner and a file with the evil name; the shipped baseline policy; the fixture plugin
/// `broken` failing with the evil message.
fn hostile_node() -> Hostile {
    let dir = TestDir::new();
    dir.copy_tree(Path::new(POLICIES), "policies");
    let root = dir.copy_tree(Path::new(DEBIAN), "web1");
    chmod(&root.join("etc/passwd"), 0o644);
    chmod(&root.join("etc/shadow"), 0o640);
    Hostile { dir, root }
}

impl Hostile {
    fn config(&self, broken: bool) -> String {
        let plugins = self.dir.plugin_dir();
        let mut c = format!(
            "policy_dir = \"policies\"\n\n\
             [daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nplugin_dir = \"{}\"\n\n\
             [[group]]\nname = \"web\"\nowners = [\"root@example.com\"]\n\n\
             [[user]]\nemail = \"root@example.com\"\nuid = 0\nrole = \"admin\"\n\n\
             [[plugin]]\nname = \"files\"\n[plugin.config]\npaths = [\"/etc\"]\n\
             content = [\"/etc/ssh/sshd_config\", \"/etc/*.conf\"]\n\n\
             [[plugin]]\nname = \"packages\"\n\n[[plugin]]\nname = \"accounts\"\n\n\
             [[plugin]]\nname = \"sysctl\"\n\n\
             [[node]]\nname = \"web1\"\ngroups = [\"web\"]\nroot = \"{}\"\n\n",
            plugins.display(),
            self.root.display()
        );
        if broken {
            c += &format!(
                "[[plugin]]\nname = \"broken\"\nlibrary = \"{}\"\n[plugin.config]\nmode = \"error\"\nmessage = \"{EVIL_MESSAGE_TOML}\"\n\n",
                plugins.join("libvigil_test_plugins.so").display()
            );
        }
        c
    }

    /// The second night: the evil account, owner and file appear (drift, tasks, evidence).
    fn poison(&self) {
        let passwd = self.root.join("etc/passwd");
        let mut text = std::fs::read_to_string(&passwd).unwrap();
        text += &format!(
            "{EVIL_ACCOUNT}:x:0:0:pwn:/root:/bin/sh\n{EVIL_OWNER}:x:4242:4242::/:/bin/sh\n"
        );
        std::fs::write(&passwd, text).unwrap();
        let owned = self.root.join("etc/owned.conf");
        std::fs::write(&owned, "x = 1\n").unwrap();
        chmod(&owned, 0o644);
        std::os::unix::fs::chown(&owned, Some(4242), Some(4242)).unwrap();
        let named = self.root.join("etc").join(EVIL_FILE);
        std::fs::write(&named, "y\x1b]0;PWNED\x07\n").unwrap();
        chmod(&named, 0o644);
    }
}

/// The hostile node after a clean first scan on 2026-03-01, then poisoned, on 2026-03-02.
fn scanned_then_poisoned() -> (Hostile, Daemon) {
    let h = hostile_node();
    h.dir.set_today("2026-03-01");
    h.dir.write_config(&h.config(false));
    let d = Daemon::start_on(&h.dir).unwrap();
    d.queue_and_wait(json!({"kind": "scan"}));
    h.poison();
    h.dir.set_today("2026-03-02");
    (h, d)
}

fn run_ok(d: &Daemon, args: &[&str]) -> String {
    let out = vigil_cmd(&d.socket, args).output().unwrap();
    let (so, se) = (stdout(&out), stderr(&out));
    assert_clean(&format!("vigil {} (stdout)", args.join(" ")), &so);
    assert_clean(&format!("vigil {} (stderr)", args.join(" ")), &se);
    so + &se
}

/// Every command that shows the daemon's text, on a node full of hostile names.
#[test]
fn no_command_prints_escape_sequences_from_a_node() {
    if !is_root() {
        eprintln!("skipped: needs root (chown of a node's file)");
        return;
    }
    let (h, d) = scanned_then_poisoned();
    h.dir.write_config(&h.config(true));
    let reload = run_ok(&d, &["reload"]);
    assert!(!reload.contains("error"), "{reload}");

    // Progress lines and summaries of --wait, with the plugin's error and the evidence.
    let scan = run_ok(&d, &["scan", "--wait"]);
    assert!(
        scan.contains("\\u{1b}]0;PWNED"),
        "the error is shown, escaped: {scan}"
    );
    let audit = run_ok(&d, &["audit", "--wait"]);
    assert!(audit.contains("only-root-has-uid-0"), "{audit}");

    let tasks = run_ok(&d, &["tasks", "--status", "all"]);
    let listed: serde_json::Value = serde_json::from_str(&stdout(
        &vigil_cmd(&d.socket, &["--json", "tasks", "--status", "all"])
            .output()
            .unwrap(),
    ))
    .unwrap();
    let ids: Vec<String> = listed["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks: {listed} / {tasks}"))
        .iter()
        .map(|t| t["id"].to_string())
        .collect();
    assert!(
        ids.len() >= 3,
        "drift, policy and scan-failure tasks: {tasks}"
    );
    let mut shown = String::new();
    for id in &ids {
        shown += &run_ok(&d, &["tasks", "show", id]);
        shown += &run_ok(&d, &["tasks", "changes", id]);
    }
    assert!(shown.contains("evil\\u{1b}]0;PWNED"), "{shown}");
    assert!(
        shown.contains("own\\u{1b}[31mer\\u{9b}2J\\u{202e}x"),
        "{shown}"
    );
    let drift = run_ok(&d, &["drift", "web1"]);
    assert!(
        drift.contains("evil\\x1b[2J\\u{200b}\\u{2066}.conf"),
        "{drift}"
    );
    let policy = run_ok(&d, &["policies", "show", "debian-baseline"]);
    assert!(
        policy.contains("PWNED"),
        "the evidence names the account: {policy}"
    );
    for args in [
        &["status"][..],
        &["nodes"],
        &["queue"],
        &["log", "scans"],
        &["log", "audits"],
        &["policies"],
        &["outbox"],
        &["tasks", "close-all", "--yes", "--node", "nowhere"],
    ] {
        run_ok(&d, args);
    }

    // --json stays exact: the hostile bytes are there, as the daemon stored them.
    let exact = stdout(
        &vigil_cmd(&d.socket, &["--json", "drift", "web1"])
            .output()
            .unwrap(),
    );
    let exact: serde_json::Value = serde_json::from_str(&exact).unwrap();
    assert!(
        exact
            .to_string()
            .contains(&serde_json::to_string(EVIL_FILE).unwrap()[1..10]),
        "{exact}"
    );
    let text = exact.to_string();
    let needle = serde_json::to_string(EVIL_OWNER).unwrap();
    assert!(
        text.contains(needle.trim_matches('"')),
        "--json keeps {EVIL_OWNER:?} exact: {text}"
    );
}

/// On a real terminal (tmux): `vigil audit --wait` and `vigil tasks show` leave the pane's
/// title alone and do not clear the screen; the bytes written to the terminal carry no OSC,
/// no clear-screen and no C1 or bidi character, and the pane shows the names escaped.
#[test]
fn a_real_terminal_keeps_its_title_and_screen() {
    if !is_root() {
        eprintln!("skipped: needs root (chown of a node's file)");
        return;
    }
    if Command::new("tmux").arg("-V").output().is_err() {
        panic!("tmux is needed for this test (.ci/run installs it)");
    }
    let (h, d) = scanned_then_poisoned();
    d.queue_and_wait(json!({"kind": "scan"}));

    let dir = h.dir.path();
    let server = dir.join("tmux.sock");
    let (go, done, raw) = (dir.join("go"), dir.join("done"), dir.join("raw"));
    let script = format!(
        "printf 'MARKER-BEFORE\\n'; while [ ! -e {go} ]; do sleep 0.02; done; \
         {vigil} --socket {sock} audit --wait; {vigil} --socket {sock} tasks show 1; \
         {vigil} --socket {sock} drift web1; touch {done}; exec sleep 120",
        go = go.display(),
        done = done.display(),
        vigil = VIGIL,
        sock = d.socket.display(),
    );
    let tmux = |args: &[&str]| {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&server)
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux {args:?}: {}", stderr(&out));
        stdout(&out)
    };
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "220",
        "-y",
        "200",
        "sh",
        "-c",
        &script,
    ]);
    struct Kill(PathBuf);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .arg("-S")
                .arg(&self.0)
                .arg("kill-server")
                .status();
        }
    }
    let _kill = Kill(server.clone());
    tmux(&["set-option", "-t", "t", "allow-rename", "on"]);
    tmux(&["set-option", "-t", "t", "set-titles", "on"]);
    let title_before = tmux(&["display-message", "-p", "-t", "t", "#{pane_title}"]);
    tmux(&[
        "pipe-pane",
        "-t",
        "t",
        "-o",
        &format!("cat > {}", raw.display()),
    ]);
    std::fs::write(&go, "").unwrap();
    let start = Instant::now();
    while !done.exists() {
        assert!(
            start.elapsed() < PATIENCE,
            "the commands did not finish in tmux"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let screen = tmux(&["capture-pane", "-p", "-t", "t", "-S", "-", "-E", "-"]);
    let title = tmux(&["display-message", "-p", "-t", "t", "#{pane_title}"]);
    assert_eq!(title, title_before, "the pane was retitled");
    assert!(!title.contains("PWNED"), "{title}");
    assert!(
        screen.contains("MARKER-BEFORE"),
        "the screen was cleared: {screen}"
    );
    assert!(screen.contains("evil\\u{1b}]0;PWNED"), "{screen}");

    // What the programs wrote to the terminal (pipe-pane flushes on exit of the pane's
    // output; the file may lag a little behind the last command).
    let start = Instant::now();
    let bytes = loop {
        let b = std::fs::read(&raw).unwrap_or_default();
        if String::from_utf8_lossy(&b).contains("web1") || start.elapsed() > PATIENCE {
            break b;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let written = String::from_utf8_lossy(&bytes);
    assert!(!written.contains("\x1b]"), "an OSC reached the terminal");
    assert!(
        !written.contains("\x1b[2J"),
        "a clear-screen reached the terminal"
    );
    // ESC and CR remain only as the CLI's own colours and progress bar.
    for c in written.chars() {
        assert!(
            !hostile(c) || c == '\x1b' || c == '\r',
            "{c:?} reached the terminal"
        );
    }
    assert!(
        screen.contains("evil\\x1b[2J\\u{200b}\\u{2066}.conf"),
        "{screen}"
    );
}
