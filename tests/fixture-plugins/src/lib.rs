//! Misbehaving plugins for the tests, one library whose behaviour is picked by the config's
//! `mode`: `ok` (`count` items), `segfault`, `panic`, `abort`, `hang`, `flood`, `oversized`,
//! `bad-json`, `error` (with `message`, or a default one), `fork-hang`, `slow` (`count` items, `ms` apart), `stdout`,
//! `gate` (waits until the file `gate` exists, then emits `count` items: tests open the gate
//! instead of waiting for time to pass), `segfault-mid-stream` (`count` items, 100,000 by
//! default, then SIGSEGV), `torn-frame` (`count` items, then half a frame written straight
//! onto the worker's frame pipe, then SIGSEGV: a crash while another thread was mid-record),
//! `note-flood` (`huge` notes of almost 4 MiB, then `count` notes of `size` bytes, then
//! `items` items), `unseen` (an item, `count` unseen records for `/locked`, `/locked-1`, ...,
//! an item), `bad-unseen` (an unseen record without its `reason`), `bulk` (`count` items in
//! key order, each with `pad` bytes of per-item text: volume for a full disk), `stall`
//! (`count` items and a note, then hangs: a scan that times out part way).
//!
//! The descriptor is written out by hand (not with `export_plugin!`) because `bad-json` needs
//! the raw sink; every other mode goes through `vigil_plugin::run_scan` like a normal plugin.

use std::ffi::CStr;
use std::time::Duration;

use vigil_plugin::{
    Descriptor, Emitter, Item, Plugin, ScanContext, ScanRequest, Sink, StaticDescriptor,
};

/// Larger than the worker's maximum frame (4 MiB).
const OVERSIZED: usize = 5 << 20;

struct Fixture;

impl Plugin for Fixture {
    const NAME: &'static CStr = c"fixture";
    const VERSION: &'static CStr = c"0.1.0";
    const VOLATILE_ATTRIBUTES: Option<&'static CStr> = Some(c"atime, seq");

    fn scan(ctx: &ScanContext, out: &mut Emitter<'_>) -> Result<(), String> {
        let mode = ctx
            .config
            .get("mode")
            .and_then(|m| m.as_str())
            .unwrap_or("ok");
        let count = ctx
            .config
            .get("count")
            .and_then(|c| c.as_u64())
            .unwrap_or(3);
        let ms = ctx.config.get("ms").and_then(|c| c.as_u64()).unwrap_or(10);
        let stop = |e: vigil_plugin::Stopped| e.to_string();
        match mode {
            "ok" => {
                for i in 0..count {
                    out.item(&item(i)).map_err(stop)?;
                }
                out.note("fixture: done").map_err(stop)?;
            }
            // One item per open file descriptor of the worker: what a plugin can reach.
            "fds" => {
                let dir = std::fs::read_dir("/proc/self/fd").map_err(|e| e.to_string())?;
                let mut fds: Vec<u64> = dir
                    .flatten()
                    .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                    .collect();
                fds.sort_unstable();
                for fd in fds {
                    let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))
                        .map(|t| t.display().to_string())
                        .unwrap_or_default();
                    let it = Item::new(format!("fd:{fd:04}")).attr("target", target);
                    out.item(&it).map_err(stop)?;
                }
            }
            "stall" => {
                for i in 0..count.min(9) {
                    out.item(&item(i)).map_err(stop)?;
                }
                out.note("fixture: seen so far").map_err(stop)?;
                hang();
            }
            "bulk" => {
                let pad = ctx
                    .config
                    .get("pad")
                    .and_then(|c| c.as_u64())
                    .unwrap_or(1024);
                for i in 0..count {
                    let text = format!("{i:016x}").repeat(pad as usize / 16 + 1);
                    let it = Item::new(format!("item-{i:08}")).attr("pad", text);
                    out.item(&it).map_err(stop)?;
                }
            }
            "slow" => {
                for i in 0..count {
                    std::thread::sleep(Duration::from_millis(ms));
                    out.item(&item(i)).map_err(stop)?;
                }
            }
            "gate" => {
                let gate = ctx
                    .config
                    .get("gate")
                    .and_then(|g| g.as_str())
                    .ok_or("gate mode needs a `gate` file path")?;
                while !std::path::Path::new(gate).exists() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                for i in 0..count {
                    out.item(&item(i)).map_err(stop)?;
                }
            }
            "flood" => {
                let mut i = 0;
                loop {
                    out.item(&item(i)).map_err(stop)?;
                    i += 1;
                }
            }
            "segfault" => {
                out.item(&item(0)).map_err(stop)?;
                segfault();
            }
            "segfault-mid-stream" => {
                let count = ctx.config.get("count").and_then(|c| c.as_u64());
                for i in 0..count.unwrap_or(100_000) {
                    // Zero-padded keys: in the byte order the daemon's snapshots require.
                    let it = Item::new(format!("item-{i:08}")).attr("index", i as i64);
                    out.item(&it).map_err(stop)?;
                }
                segfault();
            }
            "torn-frame" => {
                for i in 0..count {
                    out.item(&item(i)).map_err(stop)?;
                }
                // A note is flushed at once: everything so far is on the pipe, whole.
                out.note("fixture: tearing a frame").map_err(stop)?;
                let fd = frame_pipe()?;
                // A header announcing a 100-byte item, then 3 bytes of it.
                let torn = [100u8, 0, 0, 0, 2, b'{', b'"', b'k'];
                // SAFETY: writing a local buffer to an open descriptor.
                unsafe { libc::write(fd, torn.as_ptr().cast(), torn.len()) };
                segfault();
            }
            "note-flood" => {
                let num = |k: &str, d: u64| ctx.config.get(k).and_then(|c| c.as_u64()).unwrap_or(d);
                // One ASCII byte, then two-byte chars: a cut at an even offset is mid-char.
                let huge = format!("x{}", "é".repeat(((4 << 20) - 1024) / 2));
                for _ in 0..num("huge", 3) {
                    out.note(&huge).map_err(stop)?;
                }
                let small = "n".repeat(num("size", 3000) as usize);
                for _ in 0..count {
                    out.note(&small).map_err(stop)?;
                }
                for i in 0..num("items", 1) {
                    out.item(&item(i)).map_err(stop)?;
                }
            }
            "unseen" => {
                out.item(&Item::new("/a")).map_err(stop)?;
                for i in 0..count.max(1) {
                    let key = if i == 0 {
                        "/locked".to_owned()
                    } else {
                        format!("/locked-{i}")
                    };
                    out.unseen(&key, "permission denied").map_err(stop)?;
                }
                out.item(&Item::new("/z")).map_err(stop)?;
            }
            "panic" => panic!("fixture panic"),
            "abort" => {
                eprintln!("fixture: about to abort");
                std::process::abort();
            }
            "hang" => hang(),
            "oversized" => {
                let big = Item::new("big").attr("filler", "x".repeat(OVERSIZED));
                out.item(&big).map_err(stop)?;
            }
            "error" => {
                let message = ctx.config.get("message").and_then(|m| m.as_str());
                return Err(message
                    .unwrap_or("fixture error: the thing is broken")
                    .to_owned());
            }
            "fork-hang" => {
                // SAFETY: the worker is single-threaded; the child only calls async-signal-safe
                // functions. It inherits SIGTERM ignored (set before the fork, so a SIGTERM
                // right after it cannot win the race), so only SIGKILL ends it.
                let pid = unsafe {
                    let previous = libc::signal(libc::SIGTERM, libc::SIG_IGN);
                    let pid = libc::fork();
                    if pid == 0 {
                        loop {
                            libc::pause();
                        }
                    }
                    libc::signal(libc::SIGTERM, previous);
                    pid
                };
                out.note(&format!("grandchild {pid}")).map_err(stop)?;
                hang();
            }
            "stdout" => {
                println!("garbage on stdout \u{0}\u{1}\u{2}");
                let raw = b"\x05\x00\x00\x00\x02not a frame\n";
                // SAFETY: writing a static buffer to fd 1.
                unsafe { libc::write(1, raw.as_ptr().cast(), raw.len()) };
                for i in 0..count {
                    println!("more garbage {i}");
                    out.item(&item(i)).map_err(stop)?;
                }
            }
            other => return Err(format!("unknown fixture mode {other:?}")),
        }
        Ok(())
    }
}

fn item(i: u64) -> Item {
    Item::new(format!("item-{i}"))
        .attr("index", i as i64)
        .attr("even", i & 1 == 0)
}

fn segfault() -> ! {
    // A write to the zero page: a real SIGSEGV, not a checked null dereference.
    let p = std::ptr::without_provenance_mut::<u64>(8);
    // SAFETY: not safe at all: crashing is this function's purpose.
    unsafe { p.write_volatile(1) };
    unreachable!("the write to address 8 did not fault")
}

/// The worker's frame pipe: the one close-on-exec, write-only pipe above stderr (fds the
/// worker inherited, such as a build tool's jobserver pipe, are not close-on-exec). Found the
/// way a misbehaving plugin would.
fn frame_pipe() -> Result<libc::c_int, String> {
    let stat = |fd: libc::c_int| {
        // SAFETY: an all-zero stat is valid to overwrite; fstat on any fd number is safe.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st)
    };
    let stderr_ino = stat(2).map(|s| s.st_ino);
    let mut found = Vec::new();
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|e| e.to_string())?;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if fd < 3 {
            continue;
        }
        // SAFETY: F_GETFL on an fd number has no effect besides the answer.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above.
        let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        let Some(st) = stat(fd) else { continue };
        if flags >= 0
            && fd_flags >= 0
            && fd_flags & libc::FD_CLOEXEC != 0
            && flags & libc::O_ACCMODE == libc::O_WRONLY
            && st.st_mode & libc::S_IFMT == libc::S_IFIFO
            && Some(st.st_ino) != stderr_ino
        {
            found.push(fd);
        }
    }
    match found[..] {
        [fd] => Ok(fd),
        _ => Err(format!("cannot tell the frame pipe among fds {found:?}")),
    }
}

fn hang() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

unsafe extern "C" fn scan(request: *const ScanRequest, sink: *const Sink) -> i32 {
    if !request.is_null() && !sink.is_null() {
        let req = &*request;
        let config = if req.config.is_null() {
            &[][..]
        } else {
            std::slice::from_raw_parts(req.config, req.config_len)
        };
        let mode = serde_json::from_slice::<serde_json::Value>(config)
            .ok()
            .and_then(|c| c.get("mode").and_then(|m| m.as_str()).map(str::to_owned));
        if mode.as_deref() == Some("bad-json") {
            let sink = &*sink;
            let bad = b"{\"key\": not json";
            (sink.emit)(sink.ctx, vigil_plugin::RECORD_ITEM, bad.as_ptr(), bad.len());
            return vigil_plugin::SCAN_OK;
        }
        if mode.as_deref() == Some("bad-unseen") {
            let sink = &*sink;
            let bad = br#"{"key": "/locked"}"#;
            (sink.emit)(
                sink.ctx,
                vigil_plugin::RECORD_UNSEEN,
                bad.as_ptr(),
                bad.len(),
            );
            return vigil_plugin::SCAN_OK;
        }
    }
    vigil_plugin::run_scan::<Fixture>(request, sink)
}

static DESCRIPTOR: StaticDescriptor = StaticDescriptor(Descriptor {
    abi_version: vigil_plugin::ABI_VERSION,
    struct_size: std::mem::size_of::<Descriptor>() as u32,
    name: Fixture::NAME.as_ptr(),
    version: Fixture::VERSION.as_ptr(),
    volatile_attributes: c"atime, seq".as_ptr(),
    scan,
});

/// The plugin's entry symbol (vigil ABI v1).
#[no_mangle]
pub extern "C" fn vigil_plugin_v1() -> *const Descriptor {
    &DESCRIPTOR.0
}
