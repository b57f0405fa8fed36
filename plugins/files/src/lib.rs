//! `files`: the vigil scanner for files under a node root — type, mode, owner, size, mtime,
//! link target, BLAKE3 hash and, for selected files, captured text for line diffs.
//!
//! Users trust this scanner to look at hostile trees (a compromised container image, a
//! mounted disk) without being steered by them, and to scan huge trees with a bounded
//! footprint. That is why it is written the way it is:
//!
//! * **Never follows a symlink.** Every open is `openat(dir_fd, name, O_NOFOLLOW | ...)`
//!   relative to an already-open directory descriptor, so no path string is ever re-resolved
//!   by the kernel. Configured `paths` are resolved one component at a time from the root's
//!   descriptor; a symlink as the last component is reported as a symlink item, a symlink
//!   before it makes the path "not scanned" (a note), and `..` is refused in the config.
//!   Link targets are read with `readlinkat` and reported raw (escaped like names).
//! * **Never opens a device, socket or FIFO.** Their metadata comes from
//!   `fstatat(AT_SYMLINK_NOFOLLOW)`. Files are opened `O_NONBLOCK` and hashed only when
//!   `fstat` on the opened descriptor says regular, so a FIFO swapped in after `getdents64`
//!   cannot hang the scan and a symlink swapped in fails the open with `ELOOP`. The one
//!   residual race: an entry `getdents64` reported as a regular file and that is replaced
//!   by a device node before the `openat` is opened (non-blocking) but never read; only
//!   someone who can create device nodes in the tree (root) can arrange that.
//! * **Honest coverage.** Whatever could not be seen is said, and does not fail the scan: a
//!   directory that cannot be opened, examined or listed (and a configured path whose parent
//!   cannot be searched) is an *unseen* record (`vigil_plugin::RECORD_UNSEEN`, key and
//!   reason), so what lies below it reads as "not seen", never as "removed"; the directory's
//!   own item is still emitted from its `fstatat` metadata. Everything else is a note:
//!   `permission denied: KEY` for a file (the item is still emitted, just without a hash),
//!   `not hashed: over max_hash_size: KEY`, `path does not exist: KEY`,
//!   `not descended: other filesystem: KEY`, `vanished during scan: KEY`. Every regular file
//!   emitted without a `blake3` has a note saying why. Only a node root that cannot be opened
//!   as a directory, or a bad config, fails the scan.
//! * **No secrets by default.** `content` is captured only from files that others may read
//!   (mode `o+r`) unless they also match `content_private`, and never from the built-in
//!   secret list ([`config::SECRET_FILES`]: shadow files, `*.key`, `*_key`) unless
//!   `allow_secret_content = true`. A file matching `content` whose text is not captured for
//!   either reason gets a note; no attribute is added, so the daemon decides who may see
//!   stored content from the item's `mode`.
//! * **Bounded memory.** The walk is iterative with an explicit stack holding only the
//!   directories on the current path; hashing reads through a fixed 128 KiB buffer per
//!   thread; at most [`pipeline::WINDOW`] entries are in flight. The one thing that grows
//!   with the tree: each directory's names are listed and sorted before any is emitted (that
//!   is what makes the output key-ordered), so memory grows with the entry count of the
//!   largest single directory (about 100 bytes per entry plus its key) times the depth at
//!   which such directories nest, never with the total number of files.
//! * **Both cores.** Entries are hashed by `available_parallelism` threads (config
//!   `threads` overrides) and put back in order before they are emitted.
//!
//! # Keys and order
//!
//! A key is the path relative to the node root written as an absolute path: `/etc/hosts`.
//! Names are escaped losslessly (see [`escape`]): `\` → `\\`, control characters and bytes
//! of invalid UTF-8 → `\xNN`. Configured `paths` use the same syntax.
//!
//! **Items are emitted in strictly increasing byte-wise order of their key strings** (the
//! escaped UTF-8 bytes, as `str::cmp` orders them), so a consumer can diff two scans with a
//! streaming merge. Note this is *not* plain pre-order: `/a-b` and `/a.b` come between `/a`
//! and `/a/x`, because `-` and `.` sort before `/`. Notes are interleaved at the position of
//! the entry they concern.
//!
//! # Items
//!
//! Attributes: `type` (`file`, `dir`, `symlink`, `fifo`, `socket`, `char`, `block`), `mode`
//! (4 octal digits, with setuid/setgid/sticky), `uid`, `gid`, `user` and `group` (from the
//! node root's `etc/passwd` and `etc/group`, absent when unknown), `size` (files and
//! symlinks only: a directory's size is filesystem bookkeeping that only adds drift noise),
//! `mtime` (seconds), `target` (symlinks), `blake3` (regular files, hex), and
//! `content_skipped` (`over max_content_size` or `not UTF-8`) when a `content` file's text
//! could not be captured.
//!
//! # Config
//!
//! `paths` (default `["/etc"]`), `include`, `exclude`, `content` (globs over keys: `*` stops
//! at `/`, `**` crosses directories; an excluded directory is not descended),
//! `content_private` (globs: `content` files captured even when not world-readable),
//! `allow_secret_content` (false), `max_content_size` (64 KiB), `max_hash_size` (64 MiB),
//! `one_file_system` (true), `threads` (0 = one per core).

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use vigil_plugin::{Emitter, Item, Plugin, ScanContext, Stopped};

pub mod config;
mod describe;
pub mod escape;
mod ids;
pub mod pipeline;
mod sys;
mod walk;

pub use config::Config;

/// Where a scan's records go: the host's [`Emitter`] in the plugin, anything in tests and
/// benchmarks. Called only from the thread that called [`scan`].
pub trait Output {
    fn item(&mut self, item: &Item) -> Result<(), Stopped>;
    fn note(&mut self, message: &str) -> Result<(), Stopped>;
    /// `key` and everything below it could not be seen (`vigil_plugin::RECORD_UNSEEN`).
    fn unseen(&mut self, key: &str, reason: &str) -> Result<(), Stopped>;
}

impl Output for Emitter<'_> {
    fn item(&mut self, item: &Item) -> Result<(), Stopped> {
        Emitter::item(self, item)
    }
    fn note(&mut self, message: &str) -> Result<(), Stopped> {
        Emitter::note(self, message)
    }
    fn unseen(&mut self, key: &str, reason: &str) -> Result<(), Stopped> {
        Emitter::unseen(self, key, reason)
    }
}

/// Scans `root` as `config` says, streaming items and notes to `out` in key order.
pub fn scan(root: &Path, config: &Config, out: &mut dyn Output) -> Result<(), String> {
    let cfg = config::Compiled::new(config)?;
    let croot = CString::new(root.as_os_str().as_bytes())
        .map_err(|_| "node root contains a NUL byte".to_owned())?;
    let root_fd =
        sys::open_root(&croot).map_err(|e| format!("node root {}: {e}", root.display()))?;
    let ids = ids::Ids::load(&root_fd);
    pipeline::run(&cfg, &ids, root_fd, out)
}

/// The plugin type exported to vigil.
pub struct Files;

impl Plugin for Files {
    const NAME: &'static CStr = c"files";
    const VERSION: &'static CStr = c"0.1.0";
    // `mtime` is deliberately not volatile: whether it matters is the config's call.
    const VOLATILE_ATTRIBUTES: Option<&'static CStr> = None;

    fn scan(ctx: &ScanContext, out: &mut Emitter<'_>) -> Result<(), String> {
        let config: Config = ctx.config()?;
        scan(&ctx.root, &config, out)
    }
}

vigil_plugin::export_plugin!(Files);

#[cfg(test)]
mod tests;
