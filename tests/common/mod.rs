//! Test harness: starts the real `vigild` binary on a temp state dir and socket, waits for
//! READY=1 on a notify socket the test owns, and talks to it through the CLI or raw HTTP.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const VIGILD: &str = env!("CARGO_BIN_EXE_vigild");
pub const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// How long a daemon may take to become ready, or a condition to become true. Generous:
/// CI machines are slow and shared; tests finish as soon as the condition holds.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A directory for one test: config, state and socket live in it.
pub struct TestDir {
    pub dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix("vigil-test-")
            .tempdir()
            .expect("tempdir");
        // Let other uids reach the socket directory (role tests switch uid).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        TestDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("run/vigil.sock")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("config.toml")
    }

    /// The minimal config every test starts from, plus `extra` TOML appended.
    pub fn base_config(&self, extra: &str) -> String {
        format!(
            "policy_dir = \"no-policies\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nshutdown_grace = \"5s\"\n\n{extra}\n"
        )
    }

    /// Sets the calendar day the daemon files snapshots under (before it starts, and at any
    /// time after: it is read at every scan).
    pub fn set_today(&self, day: &str) {
        std::fs::write(self.path().join("today"), day).unwrap();
    }

    /// A private copy of the built plugin libraries (the worker refuses libraries in a
    /// directory others may write to, and a developer's umask may make target/ such a place).
    pub fn plugin_dir(&self) -> PathBuf {
        let dir = self.path().join("plugins");
        if !dir.exists() {
            std::fs::create_dir(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            let built = Path::new(VIGILD).parent().unwrap();
            for entry in std::fs::read_dir(built).unwrap().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("libvigil_") && name.ends_with(".so") {
                    let to = dir.join(&name);
                    std::fs::copy(entry.path(), &to).unwrap();
                    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
                }
            }
        }
        dir
    }

    /// A node root that fixture plugins scan (they do not read it): a directory with a file
    /// in it, since an empty root fails a scan (an unmounted mountpoint).
    pub fn node_root(&self, name: &str) -> PathBuf {
        let root = self.path().join(name);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("hostname"), format!("{name}\n")).unwrap();
        root
    }

    /// Copies a fixture tree (symlinks kept as symlinks) to `dir/name` and returns its path.
    pub fn copy_tree(&self, from: &Path, name: &str) -> PathBuf {
        let to = self.path().join(name);
        let status = Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(&to)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cp -a {} {}",
            from.display(),
            to.display()
        );
        to
    }

    /// Writes the config atomically (write + rename, as editors and config management do).
    pub fn write_config(&self, text: &str) {
        let tmp = self.path().join(".config.toml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.config_path()).unwrap();
    }
}

/// A running `vigild`. Killed on drop.
pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
    notify: UnixDatagram,
}

impl Daemon {
    /// Writes `base_config(extra)` and starts the daemon on it.
    pub fn start(dir: &TestDir, extra: &str) -> Daemon {
        dir.write_config(&dir.base_config(extra));
        Daemon::start_on(dir).expect("vigild did not become ready")
    }

    /// Starts on whatever config is in `dir`; `Err` carries the log if it exited instead.
    pub fn start_on(dir: &TestDir) -> Result<Daemon, String> {
        Daemon::start_under(dir, &[])
    }

    /// Starts vigild on `dir`'s config through `wrapper` (a command and its arguments, e.g.
    /// `setpriv …`, that then runs vigild); plain when `wrapper` is empty.
    pub fn start_under(dir: &TestDir, wrapper: &[String]) -> Result<Daemon, String> {
        let notify_path = dir.path().join(format!("notify-{}.sock", rand_suffix()));
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let log = dir.path().join(format!("vigild-{}.log", rand_suffix()));
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(VIGILD);
                c
            }
            None => Command::new(VIGILD),
        };
        // A test sets the snapshot day by writing `dir/today` (see `TestDir::set_today`).
        let today = dir.path().join("today");
        if today.exists() {
            cmd.env("VIGIL_TODAY_FILE", &today);
        }
        let child = cmd
            .arg("--config")
            .arg(dir.config_path())
            .env("NOTIFY_SOCKET", &notify_path)
            .env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn vigild");
        let mut d = Daemon {
            child,
            socket: dir.socket(),
            log,
            notify,
        };
        d.wait_ready()?;
        Ok(d)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]);
                if msg.lines().any(|l| l == "READY=1") {
                    return Ok(());
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("vigild exited with {status}:\n{}", self.log_text()));
            }
        }
        Err(format!(
            "vigild not ready after {PATIENCE:?}:\n{}",
            self.log_text()
        ))
    }

    /// Notify messages received since the last call (non-blocking beyond 100 ms).
    pub fn notify_messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.notify.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), sig).unwrap();
    }

    /// Waits for the daemon to exit (after a signal), failing the test after PATIENCE.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "vigild did not exit:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs the CLI against this daemon.
    pub fn vigil(&self, args: &[&str]) -> Output {
        vigil_cmd(&self.socket, args).output().unwrap()
    }

    /// Raw HTTP request; returns status code and body text.
    pub fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        http_raw(&self.socket, method, path, body)
    }

    pub fn status_json(&self) -> serde_json::Value {
        let (code, body) = self.http("GET", "/v1/status", None);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Runs `vigil ARGS` and fails the test with its output unless it exited with `code`;
    /// returns its stdout.
    pub fn vigil_exits(&self, args: &[&str], code: i32) -> String {
        let o = self.vigil(args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "vigil {args:?}\nstdout:\n{}\nstderr:\n{}\ndaemon log:\n{}",
            stdout(&o),
            stderr(&o),
            self.log_text()
        );
        stdout(&o)
    }

    /// `POST /v1/queue` with `request` (which must be accepted), then waits until every
    /// task it queued has its row in the Scan or Audit log (by the request's `kind`);
    /// returns those rows, newest first.
    pub fn queue_and_wait(&self, request: serde_json::Value) -> Vec<serde_json::Value> {
        let log = match request["kind"].as_str() {
            Some("audit") => "/v1/logs/audits?limit=1000",
            _ => "/v1/logs/scans?limit=1000",
        };
        let (code, body) = self.http("POST", "/v1/queue", Some(&request.to_string()));
        assert_eq!(code, 200, "POST /v1/queue {request}: {body}");
        let answer = json(&body);
        let ids: std::collections::BTreeSet<String> = answer["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        // A request over several nodes is a run: its user tasks exist once it is complete.
        if let Some(run) = answer["run"].as_u64() {
            self.wait_for(&format!("run {run} to be complete"), |d| {
                let (_, text) = d.http("GET", &format!("/v1/runs/{run}"), None);
                json(&text)["state"] == "complete"
            });
        }
        let mut rows = Vec::new();
        self.wait_for(&format!("{ids:?} in the log"), |d| {
            let (_, text) = d.http("GET", log, None);
            rows = json(&text)["rows"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| ids.contains(r["id"].as_str().unwrap()))
                .cloned()
                .collect();
            rows.len() == ids.len()
        });
        rows
    }

    /// Polls `cond` until it holds (the daemon reacts to an event we caused).
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut(&Daemon) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses JSON text, failing the test with the text when it is not JSON.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// (check, outcome, evidence) of each check result of an Audit log row.
pub fn check_results(row: &serde_json::Value) -> Vec<(String, String, String)> {
    row["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                c["outcome"].as_str().unwrap().to_owned(),
                c["evidence"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub fn vigil_cmd(socket: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(VIGIL);
    cmd.arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("VIGIL_SOCKET");
    cmd
}

/// One HTTP/1.1 request with `Connection: close`, over the Unix socket.
pub fn http_raw(socket: &Path, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    send_raw(socket, req.as_bytes())
}

/// Sends arbitrary bytes and parses whatever HTTP response comes back.
pub fn send_raw(socket: &Path, bytes: &[u8]) -> (u16, String) {
    let mut s = UnixStream::connect(socket).expect("connect to control socket");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    // The server may answer and close before reading everything (e.g. 413): ignore EPIPE.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (code, body)
}

/// The body of a `Transfer-Encoding: chunked` response (a streamed reply, e.g. an export).
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size:?}"));
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].strip_prefix("\r\n").unwrap_or(&after[size..]);
    }
    out
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One HTTP request over the socket from a process running as `uid` (for role tests; needs
/// root). Uses Debian's Python, which the test machine has for the SMTP sink anyway.
pub fn http_as(
    uid: u32,
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    use std::os::unix::process::CommandExt;
    const SCRIPT: &str = r#"
import http.client, socket, sys
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(sys.argv[1])
c = C("localhost")
body = sys.argv[4] if len(sys.argv) > 4 else None
c.request(sys.argv[2], sys.argv[3], body=body, headers={"Content-Type": "application/json"})
r = c.getresponse()
sys.stdout.write(str(r.status) + "\n" + r.read().decode())
"#;
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg("-c").arg(SCRIPT).arg(socket).arg(method).arg(path);
    if let Some(b) = body {
        cmd.arg(b);
    }
    let out = cmd
        .uid(uid)
        .gid(65534)
        .output()
        .expect("run /usr/bin/python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, body) = text.split_once('\n').unwrap_or(("0", ""));
    assert!(
        code != "0",
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code.parse().unwrap_or(0), body.to_owned())
}
