//! Remote nodes over SSH (issue 14), through a real `sshd` this test starts as root on
//! 127.0.0.1 (random port, its own host key, `AuthorizedKeysFile` in the temp dir, `UsePAM
//! no`), with fixture directories as the remote nodes' roots. Skipped, with the reason
//! printed, when not root or when sshd is not installed (`.ci/run` installs it).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{is_root, Daemon, TestDir, PATIENCE};

const SSHD: &str = "/usr/sbin/sshd";
const DEBIAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nodes/debian");

/// Why these tests cannot run here, if they cannot.
fn skip() -> Option<&'static str> {
    if !is_root() {
        return Some("not root: sshd must run as root");
    }
    if !Path::new(SSHD).exists() {
        return Some("sshd is not installed (apt install openssh-server)");
    }
    None
}

macro_rules! need_sshd {
    () => {
        if let Some(why) = skip() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running sshd on 127.0.0.1. Killed on drop.
struct Sshd {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Sshd {
    fn start(dir: &Path) -> Sshd {
        let dir = dir.join("sshd");
        std::fs::create_dir_all(&dir).unwrap();
        let host_key = dir.join("host_key");
        if !host_key.exists() {
            keygen(&host_key);
        }
        let client = dir.join("id");
        if !client.exists() {
            keygen(&client);
            std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).unwrap();
        }
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
                 AuthorizedKeysFile {}\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 StrictModes no\nMaxSessions 50\nMaxStartups 100\nLogLevel ERROR\n",
                host_key.display(),
                dir.join("sshd.pid").display(),
                dir.join("authorized_keys").display()
            ),
        )
        .unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd { child, port, dir }
    }

    /// The known_hosts line of this sshd's host key.
    fn known_hosts_line(&self) -> String {
        let key = std::fs::read_to_string(self.dir.join("host_key.pub")).unwrap();
        format!("[127.0.0.1]:{} {}", self.port, key.trim())
    }

    fn identity(&self) -> PathBuf {
        self.dir.join("id")
    }

    fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.dir.join("host_key.pub"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fleet of remote nodes: each a copy of the Debian fixture reached as root@127.0.0.1.
struct Remote {
    dir: TestDir,
    sshd: Sshd,
    nodes: Vec<(String, PathBuf)>,
}

impl Remote {
    fn new(names: &[&str]) -> Remote {
        let dir = TestDir::new();
        let sshd = Sshd::start(dir.path());
        let nodes = names
            .iter()
            .map(|n| (n.to_string(), dir.copy_tree(Path::new(DEBIAN), n)))
            .collect();
        Remote { dir, sshd, nodes }
    }

    fn worker_dir(&self) -> PathBuf {
        self.dir.path().join("remote-workers")
    }

    fn trust(&self) {
        let state = self.dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(
            state.join("known_hosts"),
            format!("{}\n", self.sshd.known_hosts_line()),
        )
        .unwrap();
    }

    fn config(&self, extra: &str, ssh_extra: &str) -> String {
        let mut c = format!(
            "policy_dir = \"policies\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nplugin_dir = \"{}\"\n\
             slots = 4\nshutdown_grace = \"5s\"\n{extra}\n\
             [ssh]\nidentity_file = \"{}\"\nworker_dir = \"{}\"\nconnect_timeout = \"5s\"\n{ssh_extra}\n\
             [[user]]\nemail = \"alice@example.com\"\nuid = 65534\nrole = \"user\"\n\n\
             [[group]]\nname = \"web\"\nowners = [\"alice@example.com\"]\n\n\
             [[plugin]]\nname = \"packages\"\n\n",
            self.dir.plugin_dir().display(),
            self.sshd.identity().display(),
            self.worker_dir().display(),
        );
        for (name, root) in &self.nodes {
            c += &format!(
                "[[node]]\nname = \"{name}\"\ngroups = [\"web\"]\nssh = \"root@127.0.0.1:{}\"\nroot = \"{}\"\n\n",
                self.sshd.port,
                root.display()
            );
        }
        c
    }

    fn start(&self, extra: &str, ssh_extra: &str) -> Daemon {
        std::fs::create_dir_all(self.dir.path().join("policies")).unwrap();
        self.dir.write_config(&self.config(extra, ssh_extra));
        Daemon::start_on(&self.dir).expect("vigild starts")
    }
}

fn tasks(d: &Daemon, query: &str) -> Vec<Value> {
    let (code, body) = d.http("GET", &format!("/v1/tasks?{query}&limit=1000"), None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["tasks"]
        .as_array()
        .unwrap()
        .clone()
}

fn set_version(root: &Path, package: &str, version: &str) {
    let path = root.join("var/lib/dpkg/status");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    let mut in_stanza = false;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("Package: ") {
            in_stanza = p == package;
        }
        if in_stanza && line.starts_with("Version: ") {
            out.push_str(&format!("Version: {version}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(&path, out).unwrap();
}

/// Processes running a pushed worker from `dir` (the remote side of a scan).
fn remote_workers(dir: &Path) -> Vec<u32> {
    let needle = format!("{}/vigil-worker-", dir.display());
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.starts_with(&needle) {
            out.push(pid);
        }
    }
    out
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_remote_nodes_with_the_same_change_are_one_task_with_three_events() {
    need_sshd!();
    let r = Remote::new(&["web1", "web2", "web3"]);
    r.trust();
    r.dir.set_today("2026-05-01");
    let d = r.start("", "");
    let rows = d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
    for row in &rows {
        assert_eq!(row["status"], "Finished", "{row}");
        assert!(row["items_scanned"].as_u64().unwrap() > 5, "{row}");
    }
    for (_, root) in &r.nodes {
        set_version(root, "openssl", "3.0.13-1~deb12u1");
    }
    r.dir.set_today("2026-05-02");
    let rows = d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
    assert!(rows.iter().all(|r| r["status"] == "Finished"), "{rows:?}");
    let drift = tasks(&d, "kind=drift");
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0]["events"], 3, "{:?}", drift[0]);
    assert!(
        drift[0]["title"].as_str().unwrap().contains("openssl"),
        "{:?}",
        drift[0]
    );
    // The pushed files carry their hash in their name and nothing else is left running.
    let pushed: Vec<String> = std::fs::read_dir(r.worker_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        pushed.iter().any(|n| n.starts_with("vigil-worker-"))
            && pushed.iter().any(|n| n.starts_with("libvigil_packages-")),
        "{pushed:?}"
    );
    assert!(!pushed.iter().any(|n| n.starts_with(".push")), "{pushed:?}");
    wait_until("no remote worker", || {
        remote_workers(&r.worker_dir()).is_empty()
    });

    // An audit over SSH reads what its check needs through the remote worker.
    std::fs::write(
        r.dir.path().join("policies/p.toml"),
        "name = \"p\"\ndescription = \"d\"\n[[check]]\nid = \"no-telnetd\"\nplugin = \"packages\"\nkey = \"telnetd\"\nabsent = true\n\
         [[check]]\nid = \"openssl-old\"\nplugin = \"packages\"\nkey = \"openssl\"\n[check.attributes]\nversion = { version_below = \"3.0.12\" }\n",
    )
    .unwrap();
    let out = d.vigil(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    let rows = d.queue_and_wait(json!({"kind": "audit", "scope": "node:web1"}));
    assert_eq!(rows[0]["status"], "Finished", "{:?}", rows[0]);
    let summary = rows[0]["summary"].as_str().unwrap();
    assert!(summary.contains("1 passed, 1 failed"), "{summary}");
}

#[test]
fn unknown_and_changed_host_keys_are_refused_and_nothing_is_learned() {
    need_sshd!();
    let r = Remote::new(&["web1"]);
    let d = r.start("", "");
    let rows = d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
    let msg = rows[0]["messages"].to_string();
    assert_eq!(rows[0]["status"], "Failed");
    assert!(msg.contains("host key unknown"), "{msg}");
    assert!(msg.contains("vigil nodes trust"), "{msg}");
    let known = std::fs::read_to_string(r.dir.path().join("state/known_hosts")).unwrap();
    assert!(known.trim().is_empty(), "learned: {known}");

    // Another key for the same host and port: a changed key.
    let other = r.dir.path().join("other_key");
    keygen(&other);
    let key = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    std::fs::write(
        r.dir.path().join("state/known_hosts"),
        format!("[127.0.0.1]:{} {}\n", r.sshd.port, key.trim()),
    )
    .unwrap();
    let rows = d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
    let msg = rows[0]["messages"].to_string();
    assert!(msg.contains("host key changed"), "{msg}");
    let failures = tasks(&d, "kind=scan-failure");
    assert_eq!(failures.len(), 2, "one task per reason: {failures:?}");

    // `vigil nodes trust --fingerprint` with the wrong fingerprint refuses; the right one pins.
    let out = d.vigil(&[
        "nodes",
        "trust",
        "web1",
        "--fingerprint",
        "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ]);
    assert!(!out.status.success(), "{out:?}");
    let fp = r.sshd.fingerprint();
    std::fs::write(r.dir.path().join("state/known_hosts"), "").unwrap();
    let out = d.vigil(&["nodes", "trust", "web1", "--fingerprint", &fp]);
    assert!(out.status.success(), "{out:?}");
    let rows = d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
    assert_eq!(rows[0]["status"], "Finished", "{:?}", rows[0]);
}

#[test]
fn two_unreachable_nodes_are_one_task_with_two_events_and_auth_refusal_is_typed() {
    need_sshd!();
    let r = Remote::new(&[]);
    r.trust();
    // Two ports nobody listens on.
    let closed = || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (p1, p2) = (closed(), closed());
    let wrong_key = r.dir.path().join("wrong_key");
    keygen(&wrong_key);
    let extra = format!(
        "[[node]]\nname = \"down1\"\nssh = \"root@127.0.0.1:{p1}\"\ngroups = [\"web\"]\n\n\
         [[node]]\nname = \"down2\"\nssh = \"root@127.0.0.1:{p2}\"\ngroups = [\"web\"]\n\n\
         [[group]]\nname = \"other-key\"\nidentity_file = \"{}\"\n\n\
         [[node]]\nname = \"badkey\"\nssh = \"root@127.0.0.1:{}\"\ngroups = [\"other-key\", \"web\"]\nroot = \"{}\"\n",
        wrong_key.display(),
        r.sshd.port,
        r.dir.node_root("refused-root").display()
    );
    std::fs::create_dir_all(r.dir.path().join("policies")).unwrap();
    r.dir.write_config(&(r.config("", "") + &extra));
    let d = Daemon::start_on(&r.dir).expect("vigild starts");
    let rows = d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(row["status"], "Failed", "{row}");
    }
    let failures = tasks(&d, "kind=scan-failure");
    let unreachable: Vec<&Value> = failures
        .iter()
        .filter(|t| t["title"].as_str().unwrap().contains("connection refused"))
        .collect();
    assert_eq!(unreachable.len(), 1, "{failures:?}");
    assert_eq!(unreachable[0]["events"], 2, "{:?}", unreachable[0]);
    let auth: Vec<&Value> = failures
        .iter()
        .filter(|t| {
            t["title"]
                .as_str()
                .unwrap()
                .contains("authentication refused")
        })
        .collect();
    assert_eq!(auth.len(), 1, "{failures:?}");
}

/// Installs the fixture plugin in its "hang" mode (a plugin that never ends) and gives the
/// config lines that name it.
fn hang_plugin(r: &Remote) -> String {
    let built = Path::new(crate::common::VIGILD).with_file_name("libvigil_test_plugins.so");
    let lib = r.dir.plugin_dir().join("libvigil_test_plugins.so");
    std::fs::copy(built, &lib).unwrap();
    std::fs::create_dir_all(r.dir.path().join("policies")).unwrap();
    format!(
        "[[plugin]]\nname = \"hang\"\nlibrary = \"{}\"\n[plugin.config]\nmode = \"hang\"\n",
        lib.display()
    )
}

#[test]
fn a_hung_remote_plugin_times_out_and_leaves_no_remote_process_and_cancel_too() {
    need_sshd!();
    let r = Remote::new(&["web1"]);
    r.trust();
    let extra = hang_plugin(&r);
    let config = r
        .config("", "")
        .replace("slots = 4\n", "slots = 4\ntask_timeout = \"4s\"\n")
        + &extra;
    r.dir.write_config(&config);
    let d = Daemon::start_on(&r.dir).expect("vigild starts");
    let rows = d.queue_and_wait(json!({"kind": "scan", "scope": "all", "plugins": ["hang"]}));
    assert_eq!(rows[0]["status"], "Failed", "{:?}", rows[0]);
    assert!(
        rows[0]["messages"].to_string().contains("timed out"),
        "{:?}",
        rows[0]
    );
    wait_until("the hung remote worker to be gone", || {
        remote_workers(&r.worker_dir()).is_empty()
    });

    // Cancel of a running remote scan.
    let (code, body) = d.http(
        "POST",
        "/v1/queue",
        Some(&json!({"kind": "scan", "scope": "all", "plugins": ["hang"]}).to_string()),
    );
    assert_eq!(code, 200, "{body}");
    let id = crate::common::json(&body)["ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    wait_until("the remote worker to run", || {
        !remote_workers(&r.worker_dir()).is_empty()
    });
    let (code, body) = d.http(
        "POST",
        "/v1/queue/cancel",
        Some(&json!({"ids": [id]}).to_string()),
    );
    assert_eq!(code, 200, "{body}");
    wait_until("the cancelled remote worker to be gone", || {
        remote_workers(&r.worker_dir()).is_empty()
    });
    d.wait_for("the cancel in the log", |d| {
        let (_, text) = d.http("GET", "/v1/logs/scans?limit=10", None);
        text.contains("Cancelled")
    });
}

#[test]
fn kill_9_of_vigild_mid_remote_scan_leaves_no_remote_process() {
    need_sshd!();
    let r = Remote::new(&["web1"]);
    r.trust();
    let extra = hang_plugin(&r);
    r.dir.write_config(&(r.config("", "") + &extra));
    let mut d = Daemon::start_on(&r.dir).expect("vigild starts");
    let (code, body) = d.http(
        "POST",
        "/v1/queue",
        Some(&json!({"kind": "scan", "scope": "all", "plugins": ["hang"]}).to_string()),
    );
    assert_eq!(code, 200, "{body}");
    wait_until("the remote worker to run", || {
        !remote_workers(&r.worker_dir()).is_empty()
    });
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait_exit();
    wait_until("the remote worker to notice and die", || {
        remote_workers(&r.worker_dir()).is_empty()
    });
    // No ssh of the dead daemon is left either.
    wait_until("no ssh client for this test's sshd", || {
        let port = format!("ControlPath={}", r.dir.path().display());
        std::fs::read_dir("/proc").unwrap().flatten().all(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            !String::from_utf8_lossy(&cmd).contains(&port)
        })
    });
    // Restarted (the plugin no longer hangs): the task is requeued and finishes once.
    drop(d);
    r.dir
        .write_config(&(r.config("", "") + &extra.replace("mode = \"hang\"", "mode = \"ok\"")));
    let d = Daemon::start_on(&r.dir).expect("vigild restarts");
    d.wait_for("the requeued task to finish", |d| {
        let (_, text) = d.http("GET", "/v1/logs/scans?limit=10", None);
        text.contains("Finished")
    });
    let (_, text) = d.http("GET", "/v1/logs/scans?limit=10", None);
    let rows = crate::common::json(&text)["rows"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(rows.len(), 1, "finished once: {rows:?}");
    assert_eq!(rows[0]["status"], "Finished", "{:?}", rows[0]);
    assert_eq!(rows[0]["attempt"], 2, "{:?}", rows[0]);
    assert!(remote_workers(&r.worker_dir()).is_empty());
}

#[test]
fn a_corrupted_pushed_worker_is_pushed_again() {
    need_sshd!();
    let r = Remote::new(&["web1"]);
    r.trust();
    let d = r.start("", "");
    let rows = d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
    assert_eq!(rows[0]["status"], "Finished", "{:?}", rows[0]);
    let worker = std::fs::read_dir(r.worker_dir())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("vigil-worker-"))
        .unwrap()
        .path();
    let good = std::fs::read(&worker).unwrap();
    std::fs::write(&worker, b"#!/bin/sh\necho corrupted\n").unwrap();
    let rows = d.queue_and_wait(json!({"kind": "scan", "scope": "all"}));
    assert_eq!(rows[0]["status"], "Finished", "{:?}", rows[0]);
    assert_eq!(std::fs::read(&worker).unwrap(), good, "pushed again whole");
}

#[test]
fn become_sudo_and_become_none_as_a_normal_user() {
    need_sshd!();
    if !Path::new("/usr/bin/sudo").exists() {
        eprintln!("skipped: sudo is not installed (apt install sudo)");
        return;
    }
    let user = "vigiltest";
    if Command::new("id").arg(user).output().unwrap().status.code() != Some(0) {
        let out = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", user])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    // Without PAM, sshd refuses a locked account ("!" in shadow): no password, not locked.
    let out = Command::new("usermod")
        .args(["-p", "*", user])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r = Remote::new(&["web1"]);
    r.trust();
    // An unreadable file in the node: root reads it, the test user cannot.
    let secret = r.nodes[0].1.join("etc/secret-dir");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("key"), "x").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let files = "[[plugin]]\nname = \"files\"\n[plugin.config]\npaths = [\"/etc\"]\n";
    let sudoers = "/etc/sudoers.d/vigil-test";
    let worker_dir = r.worker_dir();
    let as_user = |become_: &str| {
        r.config("", &format!("become = \"{become_}\"\n"))
            .replace("root@127.0.0.1", &format!("{user}@127.0.0.1"))
            .replace(
                &format!("worker_dir = \"{}\"", worker_dir.display()),
                &format!("worker_dir = \"/tmp/vigil-{user}-{}\"", std::process::id()),
            )
            + files
    };
    std::fs::create_dir_all(r.dir.path().join("policies")).unwrap();
    // Without a sudoers rule: sudo needs a password.
    let _ = std::fs::remove_file(sudoers);
    r.dir.write_config(&as_user("sudo"));
    let d = Daemon::start_on(&r.dir).expect("vigild starts");
    let rows = d.queue_and_wait(json!({"kind": "scan", "scope": "all", "plugins": ["files"]}));
    assert!(
        rows[0]["messages"]
            .to_string()
            .contains("sudo needs a password"),
        "{:?}",
        rows[0]
    );
    // With a NOPASSWD rule the worker runs as root and sees everything.
    std::fs::write(sudoers, format!("{user} ALL=(root) NOPASSWD: ALL\n")).unwrap();
    std::fs::set_permissions(sudoers, std::os::unix::fs::PermissionsExt::from_mode(0o440)).unwrap();
    let rows = d.queue_and_wait(json!({"kind": "scan", "scope": "all", "plugins": ["files"]}));
    let _ = std::fs::remove_file(sudoers);
    assert_eq!(rows[0]["status"], "Finished", "{:?}", rows[0]);
    let (_, text) = d.http(
        "GET",
        "/v1/nodes/web1/items?plugin=files&key=/etc/secret-dir/key",
        None,
    );
    assert!(text.contains("secret-dir/key"), "{text}");
    drop(d);
    // become = "none" as the normal user: what it cannot read is a coverage note.
    r.dir.write_config(&as_user("none"));
    let d = Daemon::start_on(&r.dir).expect("vigild starts");
    let rows = d.queue_and_wait(json!({"kind": "scan", "scope": "all", "plugins": ["files"]}));
    assert_eq!(rows[0]["status"], "Finished", "{:?}", rows[0]);
    let text = rows[0].to_string();
    assert!(text.contains("secret-dir"), "a coverage note: {text}");
}

#[test]
fn a_crashed_remote_plugin_costs_that_plugin_and_the_next_runs_over_the_same_channel() {
    need_sshd!();
    let r = Remote::new(&["web1"]);
    r.trust();
    let built = Path::new(crate::common::VIGILD).with_file_name("libvigil_test_plugins.so");
    let lib = r.dir.plugin_dir().join("libvigil_test_plugins.so");
    std::fs::copy(built, &lib).unwrap();
    let extra = format!(
        "[[plugin]]\nname = \"crash\"\nlibrary = \"{}\"\n[plugin.config]\nmode = \"segfault-mid-stream\"\n",
        lib.display()
    );
    std::fs::create_dir_all(r.dir.path().join("policies")).unwrap();
    r.dir.write_config(&(r.config("", "") + &extra));
    let d = Daemon::start_on(&r.dir).expect("vigild starts");
    let rows =
        d.queue_and_wait(json!({"kind": "scan", "scope": "all", "plugins": ["crash", "packages"]}));
    assert_eq!(rows[0]["status"], "Failed", "{:?}", rows[0]);
    let runs = rows[0]["plugins"].as_array().expect("plugin runs");
    assert_eq!(runs.len(), 2, "{runs:?}");
    let crash = runs[0]["error"].as_str().unwrap_or_default();
    assert!(crash.contains("crashed with SIGSEGV"), "{:?}", runs[0]);
    assert!(runs[1]["error"].is_null(), "{:?}", runs[1]);
    assert!(runs[1]["items"].as_u64().unwrap() > 5, "{:?}", runs[1]);
    wait_until("the serving worker to be gone", || {
        remote_workers(&r.worker_dir()).is_empty()
    });
}
