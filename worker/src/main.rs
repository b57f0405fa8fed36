//! `vigil-worker LIBRARY ROOT [PLUGIN]`: runs one scanner plugin and streams its records to
//! vigild as frames. The only code that calls libloading; started by vigild, on the daemon's machine
//! or, over SSH, on a remote node (which is why it is a small binary of its own).
//!
//! A plugin runs in this separate process so that a segfault, abort or hang costs one scan,
//! not the daemon. The worker greets with a [`Tag::Worker`] hello (protocol version and wire
//! hash), reads the plugin config as one [`Tag::Config`] frame from stdin, opens and checks
//! the library file ([`load`]), drops the capabilities the plugin (PLUGIN, its configured
//! name) does not need ([`caps`]), loads the library it checked, checks the descriptor, calls
//! `scan` and turns each record into a frame on a private copy
//! of its original stdout. Its fd 1 is then pointed at stderr, so a plugin that prints cannot
//! corrupt the frame stream. Records are forwarded as they are; the daemon decodes them.
//!
//! The daemon keeps stdin open for the whole scan. When it closes — vigild stopped the scan,
//! died, or the SSH channel dropped — a watcher thread SIGKILLs the worker's process group:
//! the plugin runs in this process, so even a plugin that ignores signals and stdin dies.
//!
//! `vigil-worker --serve ROOT` runs several plugins over one channel, for a remote queue
//! task (see [`serve`]).

use std::ffi::{c_void, CStr, OsString};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use vigil_plugin::{
    Descriptor, ScanRequest, Sink, ABI_VERSION, RECORD_ERROR, RECORD_ITEM, RECORD_NOTE,
    RECORD_UNSEEN,
};
use vigil_wire::{self as frame, PluginInfo, Tag, WorkerHello, MAX_PAYLOAD};

mod caps;
mod load;
mod serve;

/// Environment variable carrying the daemon's pid, so a local worker can tell whether its
/// parent died before `PR_SET_PDEATHSIG` took effect.
pub const PARENT_PID_ENV: &str = "VIGIL_WORKER_PARENT";

/// Worker exit status: the arguments or the setup were wrong (a vigild bug, not the plugin's).
pub const EXIT_USAGE: u8 = 64;
/// Worker exit status: a violation was reported in a [`Tag::Violation`] frame.
pub const EXIT_VIOLATION: u8 = 65;
/// Worker exit status: the daemon stopped reading (pipe closed).
pub const EXIT_DAEMON_GONE: u8 = 66;

/// Items are batched in the frame buffer, flushed at least this often while items flow.
const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.len() == 1 && args[0] == "--version" {
        println!(
            "vigil-worker {} (protocol {}, wire {})",
            env!("CARGO_PKG_VERSION"),
            frame::PROTOCOL,
            frame::WIRE_HASH
        );
        return ExitCode::SUCCESS;
    }
    if args.len() == 2 && args[0] == "--serve" {
        let [_, root] = <[OsString; 2]>::try_from(args).expect("two arguments");
        return serve::serve(root);
    }
    let mut args = args.into_iter();
    let (Some(library), Some(root), plugin, None) =
        (args.next(), args.next(), args.next(), args.next())
    else {
        eprintln!(
            "vigil-worker: expected LIBRARY ROOT [PLUGIN] or --serve ROOT (started by vigild, \
             not by hand)"
        );
        return ExitCode::from(EXIT_USAGE);
    };
    own_process_group();
    die_with_parent();
    let frames = match take_stdout() {
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
    let config = match read_config() {
        Ok(c) => c,
        Err(reason) => out.violation(&reason),
    };
    // Opened before anything else can happen to the path, checked through the descriptor,
    // and loaded from it in `run`.
    let file = match load::open(&library) {
        Ok(f) => f,
        Err(reason) => out.violation(&reason),
    };
    // Before any thread exists: capabilities are per thread, and later threads inherit these.
    let keep = caps::profile(plugin.as_deref().and_then(|p| p.to_str()));
    if let Err(reason) = caps::confine(keep) {
        out.violation(&reason);
    }
    watch_stdin();
    let code = run(&mut out, &library, file, root.as_bytes(), &config);
    ExitCode::from(code)
}

/// Leads a process group of its own (unless it leads a session already, as under sshd), so
/// that the SIGKILL of [`watch_stdin`] reaches the plugin's forks and nothing else.
fn own_process_group() {
    // SAFETY: setpgid on ourselves; failure (EPERM for a session leader) changes nothing.
    unsafe {
        libc::setpgid(0, 0);
    }
}

/// Reads the one config frame from stdin.
fn read_config() -> Result<Vec<u8>, String> {
    let mut stdin = io::stdin().lock();
    let mut head = [0u8; frame::HEADER_LEN];
    stdin
        .read_exact(&mut head)
        .map_err(|e| format!("no config frame from vigild on stdin: {e}"))?;
    let (tag, len) = frame::parse_header(&head).map_err(|e| format!("bad config frame: {e}"))?;
    if tag != Tag::Config {
        return Err(format!("expected a config frame from vigild, got {tag:?}"));
    }
    let mut config = vec![0u8; len];
    stdin
        .read_exact(&mut config)
        .map_err(|e| format!("truncated config frame: {e}"))?;
    Ok(config)
}

/// Kills this process group when stdin ends: vigild is gone or wants the scan stopped.
fn watch_stdin() {
    let spawned = std::thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(|| {
            let mut buf = [0u8; 256];
            loop {
                match io::stdin().lock().read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    // Nothing more is expected; whatever comes is ignored until the end.
                    Ok(_) => {}
                }
            }
            // SAFETY: signalling our own process group (pid 0); nothing survives this.
            unsafe {
                libc::kill(0, libc::SIGKILL);
                libc::_exit(i32::from(EXIT_DAEMON_GONE));
            }
        });
    if let Err(e) = spawned {
        eprintln!("vigil-worker: cannot watch stdin ({e}); the scan runs without it");
    }
}

/// Asks the kernel to SIGKILL this process when its parent dies; exits if it already did.
fn die_with_parent() {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        eprintln!(
            "vigil-worker: PR_SET_PDEATHSIG failed: {}",
            io::Error::last_os_error()
        );
    }
    let expected = std::env::var(PARENT_PID_ENV)
        .ok()
        .and_then(|p| p.parse::<i32>().ok());
    if let Some(pid) = expected {
        // SAFETY: getppid cannot fail.
        if unsafe { libc::getppid() } != pid {
            // The daemon died between spawning us and the prctl: nobody will read our frames.
            std::process::exit(i32::from(EXIT_DAEMON_GONE));
        }
    }
}

/// Moves the frame channel (our stdout) to a private close-on-exec fd and points fd 1 at
/// stderr, so whatever the plugin prints ends up in the captured stderr.
fn take_stdout() -> io::Result<File> {
    // SAFETY: plain fd syscalls on fds this process owns; the new fd is owned by the File.
    unsafe {
        let fd = libc::fcntl(libc::STDOUT_FILENO, libc::F_DUPFD_CLOEXEC, 3);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let file = File::from_raw_fd(fd);
        if libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(file)
    }
}

struct Output {
    w: BufWriter<File>,
    items: u64,
    last_flush: Instant,
}

impl Output {
    /// Writes one frame. The buffer is flushed only at frame boundaries: a frame that does not
    /// fit in what is left of the buffer goes out after a flush, so whenever control is back
    /// in the plugin the pipe holds whole frames only, and a plugin that crashes between two
    /// records leaves a clean stream (the daemon then reports the crash itself).
    fn frame(&mut self, tag: Tag, payload: &[u8]) -> io::Result<()> {
        let len = frame::HEADER_LEN + payload.len();
        if len > self.w.capacity() - self.w.buffer().len() {
            self.w.flush()?;
        }
        frame::write_frame(&mut self.w, tag, payload).map_err(|e| match e {
            frame::FrameError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        })?;
        if len > self.w.capacity() {
            // Bigger than the buffer: it went out in pieces, and its tail may still be
            // buffered. Finish it before returning to the plugin.
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.last_flush = Instant::now();
        self.w.flush()
    }

    /// Reports a violation as the last frame and exits: nothing the plugin does afterwards
    /// can reach the daemon.
    fn violation(&mut self, reason: &str) -> ! {
        let _ = self.frame(Tag::Violation, reason.as_bytes());
        let _ = self.flush();
        std::process::exit(i32::from(EXIT_VIOLATION));
    }
}

fn run(out: &mut Output, library: &OsString, file: File, root: &[u8], config: &[u8]) -> u8 {
    let shown = std::path::Path::new(library).display().to_string();
    // SAFETY: loading runs the library's initialisers; isolating that is why this process
    // exists.
    let lib = match unsafe { load::dlopen(&file, &shown) } {
        Ok(lib) => lib,
        Err(reason) => out.violation(&reason),
    };
    // The mapping stays; the descriptor is not the plugin's business.
    drop(file);
    type Entry = unsafe extern "C" fn() -> *const Descriptor;
    let symbol = String::from_utf8_lossy(&vigil_plugin::SYMBOL[..vigil_plugin::SYMBOL.len() - 1])
        .into_owned();
    // SAFETY: the symbol's type is fixed by the ABI; a library exporting the name with
    // another type breaks the contract and can only hurt this worker.
    let entry: Entry = match unsafe { lib.get::<Entry>(vigil_plugin::SYMBOL) } {
        Ok(sym) => *sym,
        Err(_) => out.violation(&format!(
            "missing symbol: {shown} does not export `{symbol}`; is it a vigil plugin \
             (use `vigil_plugin::export_plugin!` or see vigil_plugin.h)?"
        )),
    };
    // SAFETY: calling the plugin's entry point, per the ABI.
    let desc = unsafe { entry() };
    if desc.is_null() {
        out.violation(&format!(
            "{symbol}() in {shown} returned NULL instead of a descriptor"
        ));
    }
    // SAFETY: the first two u32 fields exist in every ABI revision; the rest is read only
    // after the version and size say it is there.
    let (abi, size) = unsafe { ((*desc).abi_version, (*desc).struct_size) };
    if abi != ABI_VERSION {
        out.violation(&format!(
            "wrong ABI version: {shown} speaks plugin ABI version {abi}, this vigil-worker \
             speaks version {ABI_VERSION}; rebuild the plugin against a matching vigil-plugin"
        ));
    }
    let min = std::mem::size_of::<Descriptor>();
    if (size as usize) < min {
        out.violation(&format!(
            "bad descriptor: {shown} declares a {size}-byte descriptor, ABI version \
             {ABI_VERSION} needs at least {min} bytes; rebuild the plugin"
        ));
    }
    // SAFETY: version and size checked above.
    let desc = unsafe { &*desc };
    let text = |p: *const std::ffi::c_char, what: &str| -> Result<String, String> {
        if p.is_null() {
            return Ok(String::new());
        }
        // SAFETY: the ABI promises NUL-terminated static strings.
        unsafe { CStr::from_ptr(p) }
            .to_str()
            .map(str::to_owned)
            .map_err(|_| format!("bad descriptor: the plugin {what} in {shown} is not UTF-8"))
    };
    let info = (|| -> Result<PluginInfo, String> {
        let name = text(desc.name, "name")?;
        if name.is_empty() {
            return Err(format!("bad descriptor: {shown} has no plugin name"));
        }
        Ok(PluginInfo {
            name,
            version: text(desc.version, "version")?,
            volatile_attributes: text(desc.volatile_attributes, "volatile attribute list")?
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    })();
    let info = match info {
        Ok(info) => info,
        Err(reason) => out.violation(&reason),
    };
    if out.frame(Tag::Hello, &frame::hello_payload(&info)).is_err() || out.flush().is_err() {
        return EXIT_DAEMON_GONE;
    }

    let request = ScanRequest {
        root: root.as_ptr(),
        root_len: root.len(),
        config: config.as_ptr(),
        config_len: config.len(),
    };
    let sink = Sink {
        ctx: out as *mut Output as *mut c_void,
        emit,
    };
    // SAFETY: request and sink outlive the call; the plugin may do anything, which is what
    // the process boundary is for.
    let rc = unsafe { (desc.scan)(&request, &sink) };
    let items = out.items;
    let done = out.frame(Tag::Done, &frame::done_payload(rc, items));
    if done.is_err() || out.flush().is_err() {
        return EXIT_DAEMON_GONE;
    }
    // Never unload: some libraries crash in their destructors at dlclose.
    std::mem::forget(lib);
    0
}

/// The sink callback: one record, one frame. Returns non-zero when the daemon is gone.
unsafe extern "C" fn emit(ctx: *mut c_void, kind: u32, data: *const u8, len: usize) -> i32 {
    // SAFETY: ctx is the &mut Output passed in `run`, alive for the whole scan.
    let out = unsafe { &mut *(ctx as *mut Output) };
    if data.is_null() && len > 0 {
        out.violation("the plugin emitted a record with a NULL data pointer");
    }
    if len > MAX_PAYLOAD {
        out.violation(&format!(
            "frame too large: the plugin emitted a {len}-byte record, the maximum is \
             {MAX_PAYLOAD} bytes; bound the captured content"
        ));
    }
    let payload: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: the ABI promises `data` points at `len` readable bytes for this call.
        unsafe { std::slice::from_raw_parts(data, len) }
    };
    let (tag, urgent) = match kind {
        RECORD_ITEM => (Tag::Item, false),
        RECORD_NOTE => (Tag::Note, true),
        RECORD_ERROR => (Tag::Error, true),
        RECORD_UNSEEN => (Tag::Unseen, true),
        other => out.violation(&format!(
            "the plugin emitted a record of unknown kind {other}"
        )),
    };
    if out.frame(tag, payload).is_err() {
        return 1;
    }
    if tag == Tag::Item {
        out.items += 1;
    }
    if (urgent || out.last_flush.elapsed() >= FLUSH_INTERVAL) && out.flush().is_err() {
        return 1;
    }
    0
}
