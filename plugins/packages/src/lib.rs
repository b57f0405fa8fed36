//! The `packages` scanner plugin (`libvigil_packages.so`): installed packages from the dpkg
//! status file, so drift shows upgrades, removals and new installs between scans.
//!
//! Source: `var/lib/dpkg/status` below the node root (or `status_file`, also root-relative).
//! The file is a list of RFC 822-like stanzas separated by blank lines; a field's value may
//! continue on lines that start with a space or tab. Stanzas without a `Package` field and
//! lines that are neither a field nor a continuation are skipped with a `file:line` note.
//!
//! Items, **emitted sorted by key (byte-wise)** because downstream diffing is a streaming
//! merge over sorted keys:
//! - key: the package name, or `name:arch` for every architecture of a package that is
//!   installed for more than one (multi-arch, e.g. `libc6:amd64` and `libc6:i386`);
//! - `version`, `architecture`, `status` (third word of `Status`, e.g. `installed` or
//!   `config-files`), and `source` (the source package name, without its version) if given.
//!
//! By default only packages whose status is `installed` are reported; `include_all` also
//! reports removed-but-configured, half-installed and similar states.
//!
//! The status file is the plugin's primary source: when it is missing, not a regular file or
//! unreadable, the scan **fails** with the reason rather than report 0 packages (which would
//! read as every package removed, e.g. on a node whose root is not mounted). An empty status
//! file that exists is a legitimate 0. rpm databases are not read: the rpmdb is SQLite or
//! Berkeley DB with a binary header format, and no pure-Rust reader fits a small,
//! dependency-light plugin.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use vigil_plugin::{Emitter, Item, Plugin, ScanContext};
use vigil_rootfs::{self as rootfs, Notes, Scan, Unreadable};

/// Default location of the dpkg database, relative to the node root.
pub const DEFAULT_STATUS_FILE: &str = "var/lib/dpkg/status";

/// The plugin's `[plugin.config]`; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Also report packages that are not fully installed (e.g. `config-files`).
    pub include_all: bool,
    /// The dpkg status file, relative to the node root.
    pub status_file: Option<String>,
}

/// One stanza of the status file, reduced to the fields we report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub status: String,
    pub source: Option<String>,
}

/// Parses dpkg status text. `file` names the file in notes.
pub fn parse_status(text: &str, file: &str, notes: &mut Notes) -> Vec<Package> {
    let mut packages = Vec::new();
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut start = 0;
    // A trailing empty line flushes the last stanza even without a final newline.
    for (i, line) in text.lines().chain(std::iter::once("")).enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() {
            if !fields.is_empty() {
                finish_stanza(&fields, file, start, notes, &mut packages);
            }
            fields.clear();
            current = None;
            continue;
        }
        if fields.is_empty() && current.is_none() {
            start = lineno;
        }
        if line.starts_with([' ', '\t']) {
            match &current {
                Some(name) => {
                    if let Some(v) = fields.get_mut(name) {
                        v.push('\n');
                        v.push_str(line.trim());
                    }
                }
                None => notes.at_line(file, lineno, "continuation line outside a field, skipped"),
            }
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) if !name.is_empty() && !name.contains(char::is_whitespace) => {
                fields.insert(name.to_owned(), value.trim().to_owned());
                current = Some(name.to_owned());
            }
            _ => {
                notes.at_line(file, lineno, "not a 'Field: value' line, skipped");
                current = None;
            }
        }
    }
    packages
}

fn finish_stanza(
    fields: &BTreeMap<String, String>,
    file: &str,
    start: usize,
    notes: &mut Notes,
    out: &mut Vec<Package>,
) {
    let Some(name) = fields.get("Package").filter(|n| !n.is_empty()) else {
        notes.at_line(file, start, "stanza without a Package field, skipped");
        return;
    };
    let Some(status) = fields
        .get("Status")
        .and_then(|s| s.split_whitespace().nth(2))
    else {
        notes.at_line(
            file,
            start,
            &format!("package {name}: no valid Status field, skipped"),
        );
        return;
    };
    out.push(Package {
        name: name.clone(),
        version: fields.get("Version").cloned().unwrap_or_default(),
        architecture: fields.get("Architecture").cloned().unwrap_or_default(),
        status: status.to_owned(),
        source: fields
            .get("Source")
            .and_then(|s| s.split_whitespace().next())
            .map(str::to_owned),
    });
}

/// Turns parsed packages into items: filtered by status, keyed `name` or `name:arch`.
pub fn to_items(packages: Vec<Package>, include_all: bool) -> Vec<Item> {
    let kept: Vec<Package> = packages
        .into_iter()
        .filter(|p| include_all || p.status == "installed")
        .collect();
    let mut arches: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &kept {
        *arches.entry(p.name.as_str()).or_insert(0) += 1;
    }
    kept.iter()
        .map(|p| {
            let key = if arches.get(p.name.as_str()).copied().unwrap_or(0) > 1 {
                format!("{}:{}", p.name, p.architecture)
            } else {
                p.name.clone()
            };
            let mut item = Item::new(key)
                .attr("version", p.version.as_str())
                .attr("architecture", p.architecture.as_str())
                .attr("status", p.status.as_str());
            if let Some(src) = &p.source {
                item = item.attr("source", src.as_str());
            }
            item
        })
        .collect()
}

/// Scans the node at `root`: the whole plugin minus the FFI, for tests and tools.
pub fn scan_root(root: &Path, config: &Config) -> Result<Scan, String> {
    let rel = match &config.status_file {
        Some(p) => rootfs::clean_rel(Path::new(p)).map_err(|e| {
            format!(
                "invalid packages config: status_file: {e}; give a path like var/lib/dpkg/status"
            )
        })?,
        None => PathBuf::from(DEFAULT_STATUS_FILE),
    };
    let shown = rootfs::shown(&rel);
    let mut notes = Notes::default();
    let mut scan = Scan::default();
    let text = rootfs::read_text(root, &rel).map_err(|e| unreadable_status(&e, &shown))?;
    let packages = parse_status(&text, &shown, &mut notes);
    scan.items = to_items(packages, config.include_all);
    scan.notes = notes.into_vec();
    Ok(scan.sorted())
}

/// Why the scan fails when the status file cannot be read (`shown` is e.g.
/// `/var/lib/dpkg/status`).
fn unreadable_status(e: &Unreadable, shown: &str) -> String {
    match e {
        Unreadable::Missing => format!(
            "no dpkg status file at {shown} under the node root (is the root mounted? is this \
             a Debian system? rpm databases are not supported)"
        ),
        Unreadable::WrongType => {
            format!("the dpkg status file {shown} under the node root is not a regular file")
        }
        other => format!(
            "cannot read the dpkg status file: {}",
            other.describe(shown)
        ),
    }
}

/// The plugin type exported through the vigil ABI.
pub struct Packages;

impl Plugin for Packages {
    const NAME: &'static CStr = c"packages";
    const VERSION: &'static CStr = c"0.1.0";

    fn scan(ctx: &ScanContext, out: &mut Emitter<'_>) -> Result<(), String> {
        let config: Config = ctx.config()?;
        scan_root(&ctx.root, &config)?.emit(out)
    }
}

vigil_plugin::export_plugin!(Packages);

#[cfg(test)]
mod tests;
