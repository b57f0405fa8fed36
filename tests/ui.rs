//! `vigil ui` end to end (issue 18): the real `vigil ui` in a detached tmux session against
//! the real vigild, with fixture nodes and two days of drift. Keys go in with `send-keys`,
//! the screen comes out with `capture-pane -p`, and every wait polls the pane until the
//! expected text is there (bounded), never sleeping for correctness.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{is_root, stderr, stdout, Daemon, TestDir, VIGIL};

const DEBIAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nodes/debian");
const OLD: &str = "3.0.11-1~deb12u2";
const NEW: &str = "3.0.13-1~deb12u1";
/// A passwd entry that would retitle the terminal and clear the screen.
const EVIL_ACCOUNT: &str = "evil\x1b]0;PWNED\x07\x1b[2J";
/// A file name with a clear screen and zero-width characters.
const EVIL_FILE: &str = "evil\x1b[2J\u{200b}\u{2066}.conf";
/// The Site User of the test (alice).
const ALICE: u32 = 65534;
/// How long the screen may take to show what a key or a change should show.
const SCREEN_PATIENCE: Duration = Duration::from_secs(15);

/// One tmux server of the test, killed on drop.
struct Tmux {
    server: PathBuf,
}

impl Tmux {
    fn new(dir: &Path) -> Tmux {
        if Command::new("tmux").arg("-V").output().is_err() {
            panic!("tmux is needed for this test (.ci/run installs it)");
        }
        Tmux {
            server: dir.join("tmux.sock"),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.server)
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux {args:?}: {}", stderr(&out));
        stdout(&out)
    }

    /// A 160×50 session running `command` (then reporting its exit and the terminal mode).
    fn session(&self, name: &str, command: &str) -> Pane<'_> {
        let script = format!(
            "{command}; echo UI-EXITED-$?; stty -a | tr ' ;' '\\n\\n' | grep -x -- '-\\?icanon'; exec sleep 120"
        );
        self.run(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "160",
            "-y",
            "50",
            "sh",
            "-c",
            &script,
        ]);
        Pane {
            tmux: self,
            name: name.to_owned(),
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.server)
            .arg("kill-server")
            .status();
    }
}

struct Pane<'a> {
    tmux: &'a Tmux,
    name: String,
}

impl Pane<'_> {
    fn capture(&self) -> String {
        self.tmux.run(&["capture-pane", "-p", "-t", &self.name])
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.tmux.run(&["send-keys", "-t", &self.name, "-l", text]);
    }

    /// Sends named keys (`Enter`, `Escape`, `Tab`, `C-u`, or one character).
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux.run(&["send-keys", "-t", &self.name, k]);
        }
    }

    /// Polls the pane until `cond` holds on it; the pane is in the failure message.
    fn wait(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_PATIENCE;
        loop {
            let screen = self.capture();
            if cond(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the pane:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    fn wait_text(&self, text: &str) -> String {
        self.wait(&format!("{text:?}"), |s| s.contains(text))
    }

    fn title(&self) -> String {
        self.tmux
            .run(&["display-message", "-p", "-t", &self.name, "#{pane_title}"])
    }

    /// The pid of the program the pane's shell runs (`vigil ui`).
    fn program_pid(&self) -> i32 {
        let shell: i32 = self
            .tmux
            .run(&["display-message", "-p", "-t", &self.name, "#{pane_pid}"])
            .trim()
            .parse()
            .unwrap();
        let children =
            std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
        children.split_whitespace().next().unwrap().parse().unwrap()
    }
}

/// `vigil ui` exited 0 and left the terminal in line mode (the script prints `icanon` or
/// `-icanon` after it).
fn assert_restored(pane: &Pane) {
    let after = pane.wait("vigil ui to exit and stty to report", |s| {
        s.contains("UI-EXITED-0")
            && s.lines()
                .any(|l| l.trim().trim_start_matches('-') == "icanon")
    });
    assert!(
        after.lines().any(|l| l.trim() == "icanon"),
        "raw mode left on:\n{after}"
    );
}

/// What must never reach the pane from the daemon's text (the test's own list).
fn assert_inert(screen: &str) {
    let bad = screen.chars().find(|&c| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    });
    assert!(bad.is_none(), "{bad:?} reached the pane:\n{screen}");
}

/// `web-0` (group web, owner alice: auto-assigned) and `db-0` (group db, no owner), copies of
/// the Debian fixture; packages, accounts and files plugins, and `gated` (waits for the file
/// `gate`) to keep a queue task Queued behind a running one (one slot).
fn start(dir: &TestDir) -> Daemon {
    let plugins = dir.plugin_dir();
    let mut config = format!(
        "policy_dir = \"no-policies\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nplugin_dir = \"{}\"\nslots = 1\nshutdown_grace = \"2s\"\n\n\
         [[user]]\nemail = \"root@example.com\"\nuid = 0\nrole = \"admin\"\n\n\
         [[user]]\nemail = \"alice@example.com\"\nuid = {ALICE}\nrole = \"user\"\n\n\
         [[group]]\nname = \"web\"\nowners = [\"alice@example.com\"]\n\n\
         [[group]]\nname = \"db\"\nowners = []\n\n\
         [[plugin]]\nname = \"packages\"\n\n[[plugin]]\nname = \"accounts\"\n\n\
         [[plugin]]\nname = \"files\"\n[plugin.config]\npaths = [\"/etc\"]\ncontent = [\"/etc/*.conf\"]\n\n\
         [[plugin]]\nname = \"gated\"\nlibrary = \"{}\"\n[plugin.config]\nmode = \"gate\"\ngate = \"{}\"\ncount = 1\n\n",
        plugins.display(),
        plugins.join("libvigil_test_plugins.so").display(),
        dir.path().join("gate").display(),
    );
    for (name, group) in [("web-0", "web"), ("db-0", "db")] {
        let root = dir.copy_tree(Path::new(DEBIAN), name);
        std::fs::set_permissions(
            root.join("etc/passwd"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        config += &format!(
            "[[node]]\nname = \"{name}\"\ngroups = [\"{group}\"]\nroot = \"{}\"\n\n",
            root.display()
        );
    }
    dir.write_config(&config);
    let d = Daemon::start_on(dir).unwrap();
    // Alice reaches the socket as the test's Site User.
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(
        d.socket.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    d
}

/// vigild started again on the same state, its socket open to alice.
fn restart(dir: &TestDir) -> Daemon {
    let d = Daemon::start_on(dir).unwrap();
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    d
}

fn scan(d: &Daemon) {
    d.queue_and_wait(json!({"kind": "scan", "plugins": ["packages", "accounts", "files"]}));
}

/// Day 1 a baseline; day 2 openssl patched on web-0 (alice's task) and a hostile account
/// and file on db-0 (an unassigned task).
fn two_days_of_drift(dir: &TestDir, d: &Daemon) {
    dir.set_today("2026-04-01");
    scan(d);
    let status = dir.path().join("web-0/var/lib/dpkg/status");
    let text = std::fs::read_to_string(&status).unwrap();
    std::fs::write(
        &status,
        text.replace(&format!("Version: {OLD}"), &format!("Version: {NEW}")),
    )
    .unwrap();
    let passwd = dir.path().join("db-0/etc/passwd");
    let text = std::fs::read_to_string(&passwd).unwrap()
        + &format!("{EVIL_ACCOUNT}:x:0:0:pwn:/root:/bin/sh\n");
    std::fs::write(&passwd, text).unwrap();
    std::fs::write(dir.path().join("db-0/etc").join(EVIL_FILE), "y = 1\n").unwrap();
    dir.set_today("2026-04-02");
    scan(d);
    let (_, list) = d.http("GET", "/v1/tasks", None);
    let titles: Vec<String> = crate::common::json(&list)["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{} {} {}", t["id"], t["assignee"], t["title"]))
        .collect();
    assert_eq!(
        titles.len(),
        2,
        "{titles:#?}\n{}\n{}",
        d.http("GET", "/v1/logs/scans", None).1,
        d.log_text()
    );
}

/// The issue's walk through: the open count, filtering to one task, expanding it to see
/// previous → current, closing it and the count dropping (on the admin's screen and, live,
/// on alice's); cancelling a queued task as admin; alice's same keys refused with the
/// daemon's message; the hostile names inert; the terminal restored on `q` and on SIGTERM.
#[test]
fn vigil_ui_in_tmux_against_the_real_daemon() {
    if !is_root() {
        eprintln!("SKIPPED vigil_ui_in_tmux_against_the_real_daemon: needs root to run vigil ui as a Site User");
        return;
    }
    let dir = TestDir::new();
    dir.set_today("2026-04-01");
    let mut d = start(&dir);
    two_days_of_drift(&dir, &d);
    let tmux = Tmux::new(dir.path());
    let socket = d.socket.display().to_string();
    let admin = tmux.session("admin", &format!("{VIGIL} --socket {socket} ui"));
    let alice = tmux.session(
        "alice",
        &format!(
            "setpriv --reuid={ALICE} --regid={ALICE} --clear-groups {VIGIL} --socket {socket} ui"
        ),
    );
    tmux.run(&["set-option", "-g", "allow-rename", "on"]);
    tmux.run(&["set-option", "-g", "set-titles", "on"]);
    let title_before = admin.title();

    admin.wait_text("Open: 2 (mine: 0)");
    admin.wait_text("root@example.com, Site Administrator");
    alice.wait_text("Open: 2 (mine: 1)");
    alice.wait_text("alice@example.com, Site User");

    // Filtering to one task, expanding it: previous → current.
    admin.keys(&["/"]);
    admin.type_text("openssl");
    admin.wait_text("1–1 of 1 task");
    admin.keys(&["Enter", "Enter"]);
    admin.wait_text("Changes (v: previous");
    admin.keys(&["v"]);
    admin.wait_text(&format!("{OLD} → {NEW}"));

    // Alice's keys: closing the unassigned task is refused with the daemon's message;
    // cancelling an active task is explained without asking.
    alice.keys(&["@"]);
    alice.type_text("none");
    alice.keys(&["Enter"]);
    alice.wait_text("1–1 of 1 task");
    alice.keys(&["c"]);
    alice.wait_text("is not assigned to you; a Site User may only close tasks assigned to them");
    alice.keys(&["2", "x"]);
    alice.wait_text("cancelling active tasks is for Site Administrators");
    alice.keys(&["1"]);

    // The admin closes the openssl task: the count drops here, and on alice's screen
    // without a key (the event stream).
    admin.keys(&["Escape", "Escape", "c"]);
    admin.wait_text("Open: 1 (mine: 0)");
    alice.wait_text("Open: 1 (mine: 0)");
    assert!(
        admin.capture().contains("No task matches these filters"),
        "{}",
        admin.capture()
    );

    // The hostile task: names shown as escapes, the title kept, nothing cleared.
    admin.keys(&["/", "C-u", "Enter"]);
    admin.wait_text("1–1 of 1 task");
    admin.keys(&["Enter"]);
    let screen = admin.wait_text("+ user:evil\\u{1b}]0;PWNED\\u{7}\\u{1b}[2J");
    let screen = if screen.contains("+ /etc/evil\\x1b[2J\\u{200b}\\u{2066}.conf") {
        screen
    } else {
        admin.keys(&["PageDown"]);
        admin.wait_text("+ /etc/evil\\x1b[2J\\u{200b}\\u{2066}.conf")
    };
    assert_inert(&screen);
    assert_inert(&alice.capture());
    assert_eq!(admin.title(), title_before, "the pane was retitled");
    assert!(
        screen.contains("Open: 1 (mine: 0)"),
        "the screen was cleared:\n{screen}"
    );

    // Cancelling a queued task as admin: one slot, the first gated scan runs, the second
    // waits.
    let (code, body) = d.http(
        "POST",
        "/v1/queue",
        Some(r#"{"kind":"scan","scope":"node:web-0","plugins":["gated"]}"#),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = d.http(
        "POST",
        "/v1/queue",
        Some(r#"{"kind":"scan","scope":"node:db-0","plugins":["gated"]}"#),
    );
    assert_eq!(code, 200, "{body}");
    let queued = crate::common::json(&body)["ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    admin.keys(&["Escape", "Tab"]);
    admin.wait(&format!("{queued} Queued"), |s| {
        s.lines()
            .any(|l| l.contains(&queued) && l.contains("Queued"))
    });
    // The cursor onto the queued task's row (the order is the daemon's).
    admin.keys(&["g"]);
    for _ in 0..3 {
        let on_it = |s: &str| s.lines().any(|l| l.starts_with('▶') && l.contains(&queued));
        if on_it(&admin.capture()) {
            break;
        }
        let before = admin.capture();
        admin.keys(&["j"]);
        admin.wait("the cursor to move", |s| s != before);
    }
    admin.wait(&format!("the cursor on {queued}"), |s| {
        s.lines().any(|l| l.starts_with('▶') && l.contains(&queued))
    });
    admin.keys(&["x"]);
    admin.wait_text(&format!("cancelled {queued}"));
    admin.wait(&format!("{queued} Cancelled in the Scan log"), |s| {
        s.lines()
            .any(|l| l.contains(&queued) && l.contains("Cancelled"))
    });
    std::fs::write(dir.path().join("gate"), b"open").unwrap();

    // vigild goes away: a banner; it comes back: the banner goes and the screen is live.
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_exit().success());
    admin.wait_text("reconnecting…");
    let d = restart(&dir);
    admin.keys(&["1"]);
    admin.wait("the banner to go", |s| {
        !s.contains("reconnecting…") && s.contains("Open: 1 (mine: 0)")
    });
    d.vigil_exits(&["tasks", "close-all", "--yes"], 0);
    admin.wait_text("Open: 0 (mine: 0)");
    admin.wait_text("No open task: nothing to look at.");
    admin.keys(&["2"]);

    // Esc never quits; q does, and the terminal is back in line mode.
    admin.keys(&["Escape", "Escape"]);
    admin.wait_text("Active tasks");
    admin.keys(&["q"]);
    assert_restored(&admin);

    // SIGTERM restores the terminal too.
    let pid = nix::unistd::Pid::from_raw(alice.program_pid());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_restored(&alice);
}
