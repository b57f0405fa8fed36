//! Misbehaving plugins for the tests, one library whose behaviour is picked by the config's
//! `mode`: `ok` (`count` items), `segfault`, `panic`, `abort`, `hang`, `flood`, `oversized`,
//! `bad-json`, `error`, `fork-hang`, `slow` (`count` items, `ms` apart), `stdout`,
//! `gate` (waits until the file `gate` exists, then emits `count` items: tests open the gate
//! instead of waiting for time to pass).
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
                // A write to the zero page: a real SIGSEGV, not a checked null dereference.
                let p = std::ptr::without_provenance_mut::<u64>(8);
                // SAFETY: not safe at all: crashing is this mode's purpose.
                unsafe { p.write_volatile(1) };
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
            "error" => return Err("fixture error: the thing is broken".to_owned()),
            "fork-hang" => {
                // SAFETY: the worker is single-threaded; the child only calls async-signal-safe
                // functions, ignoring SIGTERM so that only SIGKILL ends it.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    unsafe {
                        libc::signal(libc::SIGTERM, libc::SIG_IGN);
                        loop {
                            libc::pause();
                        }
                    }
                }
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
