//! The `sysctl` scanner plugin (`libvigil_sysctl.so`): kernel parameters as configured for
//! boot, and on the host also as currently live, so drift shows a changed setting and policy
//! can flag a configured-but-not-applied one (`value` ≠ `live`).
//!
//! Configuration is resolved the way `systemd-sysctl` and `sysctl --system` do it:
//! - `*.conf` files are collected by file name from `etc/sysctl.d`, `run/sysctl.d`,
//!   `usr/local/lib/sysctl.d`, `usr/lib/sysctl.d` and `lib/sysctl.d`; for one file name the
//!   first of these directories wins (`etc` overrides `run` overrides the vendor dirs), and a
//!   symlink to `/dev/null` masks the name;
//! - all chosen files are applied in file-name order, whatever their directory, and
//!   `etc/sysctl.conf` is applied last; a later assignment overrides an earlier one.
//!
//! Lines are `key = value`; `#` and `;` start comments; a leading `-` (ignore errors when
//! applying) is stripped. Keys accept `/` or `.` as separators: when the first separator is a
//! `/`, slashes and dots are swapped, so `net/ipv4/ip_forward` is `net.ipv4.ip_forward` and
//! `net/ipv4/conf/eth0.1/rp_filter` is `net.ipv4.conf.eth0/1.rp_filter`.
//!
//! Symlinked `*.conf` files (Debian ships `etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf`) are
//! resolved by their text *inside the node root*; a target that would leave the root, or that
//! is itself behind a symlink, is not read (a note says so). `lib` as the merged-/usr symlink
//! to `usr/lib` is skipped silently.
//!
//! Items, **emitted sorted by key (byte-wise)** because downstream diffing is a streaming
//! merge over sorted keys: key = sysctl name; `value` (whitespace-normalised), `source` (the
//! root-relative file that set it) and, when the root is the host's `/` and `live` is on,
//! `live`: the value in `/proc/sys` (whitespace-normalised; omitted with a note when it
//! cannot be read, and for glob keys such as `net.ipv4.conf.*.rp_filter`).

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use vigil_plugin::{Emitter, Item, Plugin, ScanContext};
use vigil_rootfs::{self as rootfs, Kind, Notes, Scan, Unreadable};

/// Drop-in directories below the node root, highest precedence first.
pub const DROPIN_DIRS: [&str; 5] = [
    "etc/sysctl.d",
    "run/sysctl.d",
    "usr/local/lib/sysctl.d",
    "usr/lib/sysctl.d",
    "lib/sysctl.d",
];

/// The classic file, applied after every drop-in.
pub const MAIN_FILE: &str = "etc/sysctl.conf";

/// The plugin's `[plugin.config]`; every field is optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Read live values from `/proc/sys` when the root is the host's `/` (default true).
    pub live: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { live: true }
    }
}

/// Canonical (dotted) form of a sysctl key.
pub fn normalise_key(key: &str) -> String {
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'/' => swap_separators(key),
        _ => key.to_owned(),
    }
}

fn swap_separators(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            c => c,
        })
        .collect()
}

/// Parses one configuration file into `(key, value)` assignments, in file order.
pub fn parse_conf(text: &str, file: &str, notes: &mut Notes) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        let (ignore_errors, line) = match line.strip_prefix('-') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, line),
        };
        let Some((key, value)) = line.split_once('=') else {
            // `-pattern` without a value excludes keys from a glob: nothing to report.
            if !ignore_errors {
                notes.at_line(file, i + 1, "expected 'key = value', skipped");
            }
            continue;
        };
        let key = key.trim();
        if key.is_empty() {
            notes.at_line(file, i + 1, "empty key, skipped");
            continue;
        }
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push((normalise_key(key), value));
    }
    out
}

/// Resolves a symlink's text lexically inside the root: relative to `dir`, or to the root
/// when absolute. None when it would climb above the root.
fn resolve_in_root(dir: &Path, target: &Path) -> Option<PathBuf> {
    let mut out = if target.is_absolute() {
        PathBuf::new()
    } else {
        dir.to_path_buf()
    };
    for c in target.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// The files to apply, in order, root-relative.
pub fn config_files(root: &Path, notes: &mut Notes) -> Vec<PathBuf> {
    // File name → chosen file (None: masked or unusable, which still hides lower dirs).
    let mut chosen: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
    for dir in DROPIN_DIRS {
        let dir = Path::new(dir);
        let entries = match rootfs::list_dir(root, dir) {
            Ok(e) => e,
            Err(Unreadable::Missing) => continue,
            Err(Unreadable::Symlink(at)) if at == "/lib" && is_usr_merge_link(root) => continue,
            Err(e) => {
                notes.push(e.describe(&rootfs::shown(dir)));
                continue;
            }
        };
        for (name, kind) in entries {
            if !name.ends_with(".conf") || chosen.contains_key(&name) {
                continue;
            }
            let rel = dir.join(&name);
            let file = match kind {
                Kind::File => Some(rel),
                Kind::Symlink => match rootfs::link_text(root, &rel) {
                    Ok(t) if t == Path::new("/dev/null") => None,
                    Ok(t) => {
                        let resolved = resolve_in_root(dir, &t);
                        if resolved.is_none() {
                            notes.push(format!(
                                "not read: {} points outside the node root",
                                rootfs::shown(&rel)
                            ));
                        }
                        resolved
                    }
                    Err(e) => {
                        notes.push(e.describe(&rootfs::shown(&rel)));
                        None
                    }
                },
                _ => continue,
            };
            chosen.insert(name, file);
        }
    }
    let mut files: Vec<PathBuf> = chosen.into_values().flatten().collect();
    files.push(PathBuf::from(MAIN_FILE));
    files
}

fn is_usr_merge_link(root: &Path) -> bool {
    rootfs::link_text(root, Path::new("lib")).is_ok_and(|t| {
        matches!(
            t.to_string_lossy().trim_end_matches('/'),
            "usr/lib" | "/usr/lib" | "./usr/lib"
        )
    })
}

/// Reads the live value of `key` below `root` (`proc/sys/...`); None with a note when it
/// cannot be read.
fn live_value(root: &Path, key: &str, notes: &mut Notes) -> Option<String> {
    if key.contains(['*', '?', '[']) {
        return None;
    }
    let rel = Path::new("proc/sys").join(swap_separators(key));
    match rootfs::read_text(root, &rel) {
        Ok(text) => Some(text.split_whitespace().collect::<Vec<_>>().join(" ")),
        Err(e) => {
            let why = e.describe(&rootfs::shown(&rel));
            notes.limited("/proc/sys", format!("live value of {key} not read: {why}"));
            None
        }
    }
}

/// Scans the node at `root`; `live` adds `/proc/sys` values read below the same root.
pub fn scan_root(root: &Path, live: bool) -> Scan {
    let mut notes = Notes::default();
    let mut settings: BTreeMap<String, (String, String)> = BTreeMap::new();
    for rel in config_files(root, &mut notes) {
        let shown = rootfs::shown(&rel);
        match rootfs::read_text(root, &rel) {
            Ok(text) => {
                for (key, value) in parse_conf(&text, &shown, &mut notes) {
                    settings.insert(key, (value, shown.clone()));
                }
            }
            Err(Unreadable::Missing) if rel == Path::new(MAIN_FILE) => {}
            Err(e) => notes.push(e.describe(&shown)),
        }
    }
    let items = settings
        .into_iter()
        .map(|(key, (value, source))| {
            let live = if live {
                live_value(root, &key, &mut notes)
            } else {
                None
            };
            let mut item = Item::new(key).attr("value", value).attr("source", source);
            if let Some(v) = live {
                item = item.attr("live", v);
            }
            item
        })
        .collect();
    Scan {
        items,
        notes: notes.into_vec(),
    }
    .sorted()
}

/// The plugin type exported through the vigil ABI.
pub struct Sysctl;

impl Plugin for Sysctl {
    const NAME: &'static CStr = c"sysctl";
    const VERSION: &'static CStr = c"0.1.0";

    fn scan(ctx: &ScanContext, out: &mut Emitter<'_>) -> Result<(), String> {
        let config: Config = ctx.config()?;
        scan_root(&ctx.root, config.live && ctx.root_is_host()).emit(out)
    }
}

vigil_plugin::export_plugin!(Sysctl);

#[cfg(test)]
mod tests;
