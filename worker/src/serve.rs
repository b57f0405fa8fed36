//! `vigil-worker --serve ROOT`: the remote end of one queue task's SSH channel. It greets
//! once, then runs each plugin the daemon asks for ([`Tag::Run`]) one after the other, so a
//! task's plugins cost one SSH session on the node instead of one each (a session is the
//! expensive part of SSH: sshd's session setup, PAM, the login shell and its start-up files).
//!
//! Each plugin runs in a forked child, in a process group of its own, exactly as a
//! one-plugin worker would: a crash, a leak or a hang costs that plugin, and the next one
//! starts in a clean process. The child's frames come back through a pipe and are relayed
//! whole, so the channel never carries the torn frame of a child that died mid-write; after
//! the child's last frame comes one [`Tag::Exit`] with how it ended, which the daemon turns
//! into the same failure a local worker's exit status gives.
//!
//! stdin carries the run frames. When it ends (the daemon ended the task or died, or the
//! channel dropped) or carries anything else, the reader thread SIGKILLs the running
//! plugin's group and this process's own group: nothing of the task survives on the node.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use vigil_wire::{self as frame, ExitKind, Frame, Tag, WorkerHello};

use crate::{Output, EXIT_DAEMON_GONE, EXIT_USAGE};

/// The plugin child running now (its pid is its process group), or 0.
static CURRENT: AtomicI32 = AtomicI32::new(0);

/// How long the rest of a dead plugin's output may take to arrive once its group is killed.
const DRAIN_MS: i32 = 2000;
/// How often the relay checks whether the plugin exited while something else holds its pipe.
const EXIT_CHECK_MS: i32 = 200;

pub fn serve(root: OsString) -> ExitCode {
    crate::own_process_group();
    crate::die_with_parent();
    let frames = match crate::take_stdout() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("vigil-worker: cannot set up the frame channel: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut out = Output {
        w: BufWriter::with_capacity(64 << 10, frames),
        items: 0,
        last_flush: Instant::now(),
    };
    let hello = WorkerHello::this_build(env!("CARGO_PKG_VERSION"));
    if out
        .frame(Tag::Worker, &frame::worker_payload(&hello))
        .is_err()
        || out.flush().is_err()
    {
        return ExitCode::from(EXIT_DAEMON_GONE);
    }
    // One run at a time: the daemon sends the next only after the exit frame of this one.
    let (tx, rx) = mpsc::sync_channel::<Run>(1);
    let spawned = std::thread::Builder::new()
        .name("runs".into())
        .spawn(move || read_runs(tx));
    if let Err(e) = spawned {
        eprintln!("vigil-worker: cannot read stdin ({e})");
        return ExitCode::from(EXIT_USAGE);
    }
    for run in rx {
        let exit = run_one(&mut out, &run, root.as_bytes());
        if out
            .frame(Tag::Exit, &frame::exit_payload(exit))
            .and_then(|()| out.flush())
            .is_err()
        {
            kill_all();
        }
    }
    ExitCode::SUCCESS
}

/// Reads run frames from stdin until it ends or breaks the protocol, then kills everything.
fn read_runs(tx: mpsc::SyncSender<Run>) {
    let mut stdin = io::stdin().lock();
    loop {
        let mut head = [0u8; frame::HEADER_LEN];
        if stdin.read_exact(&mut head).is_err() {
            break;
        }
        let Ok((tag, len)) = frame::parse_header(&head) else {
            eprintln!("vigil-worker: a broken frame from vigild on stdin; stopping");
            break;
        };
        let mut payload = vec![0u8; len];
        if stdin.read_exact(&mut payload).is_err() {
            break;
        }
        match frame::decode(tag, payload) {
            Ok(Frame::Run {
                plugin,
                library,
                config,
            }) => {
                let run = Run {
                    plugin,
                    library,
                    config,
                };
                if tx.send(run).is_err() {
                    break;
                }
            }
            other => {
                eprintln!(
                    "vigil-worker: expected a run frame from vigild, got {other:?}; stopping"
                );
                break;
            }
        }
    }
    kill_all();
}

/// SIGKILLs the running plugin's group and our own, which ends this process too.
fn kill_all() -> ! {
    let child = CURRENT.load(Ordering::SeqCst);
    // SAFETY: signalling the plugin's group (not reaped yet, so its id is not reused) and
    // our own group; nothing here touches memory.
    unsafe {
        if child > 0 {
            libc::killpg(child, libc::SIGKILL);
        }
        libc::kill(0, libc::SIGKILL);
        libc::_exit(i32::from(EXIT_DAEMON_GONE));
    }
}

/// One plugin the daemon asked for, from its run frame.
struct Run {
    plugin: Vec<u8>,
    library: Vec<u8>,
    config: Vec<u8>,
}

/// Runs one plugin in a forked child and relays its frames; returns how the child ended.
fn run_one(out: &mut Output, run: &Run, root: &[u8]) -> ExitKind {
    if out.flush().is_err() {
        kill_all();
    }
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the two descriptors, which this function then owns.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return refuse(out, "cannot make a pipe");
    }
    let parent = std::process::id() as i32;
    // SAFETY: the child only runs the plugin (as a one-plugin worker would) and exits; the
    // other thread of this process is blocked reading stdin, which the child never touches.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        // SAFETY: closing the descriptors made above.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        return refuse(out, "cannot fork");
    }
    if pid == 0 {
        // SAFETY: descriptors of this child; `File` owns the write end from here on.
        let w = unsafe {
            libc::close(fds[0]);
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() != parent {
                libc::_exit(i32::from(EXIT_DAEMON_GONE));
            }
            // The plugin must not read the daemon's run frames.
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            if null >= 0 {
                libc::dup2(null, libc::STDIN_FILENO);
                libc::close(null);
            }
            File::from_raw_fd(fds[1])
        };
        let mut child = Output {
            w: BufWriter::with_capacity(64 << 10, w),
            items: 0,
            last_flush: Instant::now(),
        };
        let code = run_in_child(&mut child, run, root);
        let _ = child.flush();
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(i32::from(code)) }
    }
    CURRENT.store(pid, Ordering::SeqCst);
    // SAFETY: the write end belongs to the child now; the read end is ours.
    let pipe = unsafe {
        libc::close(fds[1]);
        File::from_raw_fd(fds[0])
    };
    relay(pipe, pid, out);
    let exit = reap(pid);
    CURRENT.store(0, Ordering::SeqCst);
    exit
}

/// The forked child's part, the same steps as a one-plugin worker's: open the library and
/// check it through the descriptor, keep only the plugin's capabilities (the child has one
/// thread, so the reduced sets hold for every thread the plugin starts), then load and run.
fn run_in_child(child: &mut Output, run: &Run, root: &[u8]) -> u8 {
    let library = OsString::from_vec(run.library.clone());
    let file = match crate::load::open(&library) {
        Ok(f) => f,
        Err(reason) => child.violation(&reason),
    };
    let plugin = std::str::from_utf8(&run.plugin).ok();
    if let Err(reason) = crate::caps::confine(crate::caps::profile(plugin)) {
        child.violation(&reason);
    }
    crate::run(child, &library, file, root, &run.config)
}

/// A plugin that could not even be started: a violation frame, and exit code 64.
fn refuse(out: &mut Output, what: &str) -> ExitKind {
    let reason = format!(
        "vigil-worker {what} on the node: {}",
        io::Error::last_os_error()
    );
    if out.frame(Tag::Violation, reason.as_bytes()).is_err() {
        kill_all();
    }
    ExitKind::Code(i32::from(EXIT_USAGE))
}

/// Copies the child's whole frames to the daemon until its pipe ends (a torn last frame is
/// dropped). A child that exited while a fork of its plugin still holds the pipe gets its
/// group killed, which closes the pipe.
fn relay(mut pipe: File, pid: i32, out: &mut Output) {
    let mut buf: Vec<u8> = Vec::with_capacity(256 << 10);
    let mut chunk = vec![0u8; 256 << 10];
    let mut killed = false;
    loop {
        let mut pfd = libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let wait = if killed { DRAIN_MS } else { EXIT_CHECK_MS };
        // SAFETY: one pollfd on the stack.
        let ready = unsafe { libc::poll(&mut pfd, 1, wait) };
        if ready < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if ready == 0 {
            if killed {
                break;
            }
            if exited(pid) {
                kill_group(pid);
                killed = true;
            }
            continue;
        }
        let n = match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        buf.extend_from_slice(&chunk[..n]);
        let whole = whole_frames(&buf);
        if whole > 0 {
            if out.w.write_all(&buf[..whole]).is_err() || out.flush().is_err() {
                kill_all();
            }
            buf.drain(..whole);
        }
    }
}

/// Waits for the child's exit, kills what is left of its group (the child is not reaped yet,
/// so the group id is still its own), reaps it and says how it ended.
fn reap(pid: i32) -> ExitKind {
    // SAFETY: waitid on our own child, without reaping it.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        while libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        ) != 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
    }
    kill_group(pid);
    let mut status = 0;
    // SAFETY: reaping our own child.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return ExitKind::Code(-1);
        }
    }
    if libc::WIFSIGNALED(status) {
        ExitKind::Signal(libc::WTERMSIG(status))
    } else {
        ExitKind::Code(libc::WEXITSTATUS(status))
    }
}

/// Whether the child has exited (it stays unreaped).
fn exited(pid: i32) -> bool {
    // SAFETY: waitid on our own child, without reaping it.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
        ) == 0
            && info.si_pid() == pid
    }
}

fn kill_group(pid: i32) {
    // SAFETY: the group of our unreaped child; ESRCH when it is empty.
    unsafe {
        libc::killpg(pid, libc::SIGKILL);
    }
}

/// Bytes at the start of `buf` that are whole frames. A header the wire refuses is passed
/// on as it is: the daemon reports the violation.
fn whole_frames(buf: &[u8]) -> usize {
    let mut pos = 0;
    while buf.len() - pos >= frame::HEADER_LEN {
        let head: [u8; frame::HEADER_LEN] = buf[pos..pos + frame::HEADER_LEN]
            .try_into()
            .expect("HEADER_LEN bytes");
        match frame::parse_header(&head) {
            Ok((_, len)) if pos + frame::HEADER_LEN + len <= buf.len() => {
                pos += frame::HEADER_LEN + len;
            }
            Ok(_) => break,
            Err(_) => return buf.len(),
        }
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_frames_are_relayed() {
        let mut buf = Vec::new();
        frame::write_frame(&mut buf, Tag::Note, b"one").unwrap();
        let first = buf.len();
        frame::write_frame(&mut buf, Tag::Item, b"{\"key\":\"k\"}").unwrap();
        for cut in 0..buf.len() {
            let want = if cut < first { 0 } else { first };
            assert_eq!(whole_frames(&buf[..cut]), want, "cut at {cut}");
        }
        assert_eq!(whole_frames(&buf), buf.len());
        assert_eq!(whole_frames(&[0, 0, 0, 0, 99, 1]), 6, "garbage goes on");
    }
}
