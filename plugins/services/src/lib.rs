//! The `services` scanner plugin (`libvigil_services.so`): systemd units and whether they are
//! enabled, disabled, masked or static, read from the unit directories (no D-Bus, no running
//! systemd needed), so it works on an offline image as well as on the host.
//!
//! Directories, highest precedence first: `etc/systemd/system`,
//! `usr/local/lib/systemd/system`, `usr/lib/systemd/system`, `lib/systemd/system`. On
//! merged-/usr systems `lib` is a symlink to `usr/lib`; like every symlink on the way it is not
//! followed (the directory would only repeat `usr/lib`). A unit name defined in a higher
//! directory hides the same name below it, as in systemd.
//!
//! Items, **emitted sorted by key (byte-wise)** because downstream diffing is a streaming
//! merge over sorted keys. Key = unit name (`ssh.service`, `getty@tty1.service`). Attributes:
//! - `state`: `masked` (the unit's highest definition is a symlink to `/dev/null`), `enabled`
//!   (a link with its name sits in a `*.wants/` or `*.requires/` directory under
//!   `etc/systemd/system`), `alias` (a symlink to another unit's name), `linked` (a symlink to
//!   a unit file of the same name elsewhere, which is not followed), `disabled` (has an
//!   `[Install]` section but is not enabled), `static` (no `[Install]` section), or `unknown`
//!   (the unit file could not be read; a note says why);
//! - `path`: where the definition lives, root-relative (`/usr/lib/systemd/system/ssh.service`);
//! - `blake3`: hash of the unit file's bytes, for regular unit files;
//! - `wanted_by`: comma-joined sorted targets whose `.wants`/`.requires` link to the unit;
//! - `alias_of` for aliases, `link_target` for masked and linked units, `template`
//!   (`getty@.service`) for instances, whose file is their template's.
//!
//! Symlinks are data: only their text is read (`readlink`), never their target's content.
//! Drop-in directories (`NAME.d/`) are not interpreted.
//!
//! The unit directories are the plugin's primary source. Some of them missing is normal; the
//! scan **fails** with the reason when none of them can be read (the root is not mounted, or
//! the node does not use systemd) and when one exists but cannot be listed (permission
//! denied, an I/O error): reporting the others alone would make every unit defined in it
//! look removed, and unit names do not tell which directory they came from. A unit
//! directory that is a symlink (other than the merged-/usr `lib`) is refused with a note.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CStr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use vigil_plugin::{Emitter, Item, Plugin, ScanContext};
use vigil_rootfs::{self as rootfs, Kind, Notes, Scan, Unreadable};

mod unit;
pub use unit::{has_install, is_unit_name, template_of};

/// Unit directories below the node root, highest precedence first.
pub const UNIT_DIRS: [&str; 4] = [
    "etc/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

/// Where the administrator's enablement links live.
const ETC_UNITS: &str = "etc/systemd/system";

/// The plugin's `[plugin.config]`: none yet, but unknown fields are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

/// The highest-precedence definition of a unit name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Def {
    /// A regular unit file.
    File(PathBuf),
    /// A symlink to `/dev/null`.
    Masked(PathBuf, String),
    /// A symlink to another unit name.
    Alias(PathBuf, String),
    /// A symlink to a same-named file elsewhere.
    Linked(PathBuf, String),
}

#[derive(Debug, Default)]
struct Units {
    defs: BTreeMap<String, Def>,
    /// Unit name → targets it is linked into under `etc/systemd/system`.
    enabled: BTreeMap<String, BTreeSet<String>>,
    /// Unit name in a wants/requires dir → basename of its link text, when they differ.
    wants_targets: BTreeMap<String, String>,
}

/// Scans the node at `root`: the whole plugin minus the FFI, for tests and tools.
pub fn scan_root(root: &Path) -> Result<Scan, String> {
    let mut notes = Notes::default();
    let mut units = Units::default();
    let mut listed = 0;
    let mut refused = Vec::new();
    for dir in UNIT_DIRS {
        let rel = Path::new(dir);
        let shown = rootfs::shown(rel);
        match rootfs::list_dir(root, rel) {
            Ok(entries) => {
                listed += 1;
                collect_dir(root, rel, entries, &mut units, &mut notes);
            }
            Err(Unreadable::Missing) => {}
            Err(Unreadable::Symlink(at)) if is_usr_merge_link(root, &at) => {}
            // Deliberately not read, the same way on every scan: a note.
            Err(e @ (Unreadable::Symlink(_) | Unreadable::WrongType)) => {
                let note = e.describe(&shown);
                notes.push(note.clone());
                refused.push(note);
            }
            Err(e) => {
                return Err(format!(
                    "cannot list the systemd unit directory {shown}: {} (the units defined \
                     there would look removed)",
                    e.describe(&shown)
                ))
            }
        }
    }
    if listed == 0 {
        let looked = UNIT_DIRS.map(|d| format!("/{d}")).join(", ");
        return Err(if refused.is_empty() {
            format!(
                "no systemd unit directory under the node root (looked for {looked}; is the \
                 root mounted? does the node use systemd?)"
            )
        } else {
            format!(
                "no systemd unit directory could be read under the node root: {}",
                refused.join("; ")
            )
        });
    }
    let names: BTreeSet<&String> = units.defs.keys().chain(units.enabled.keys()).collect();
    let items = names
        .into_iter()
        .map(|name| build_item(root, name, &units, &mut notes))
        .collect();
    Ok(Scan {
        items,
        notes: notes.into_vec(),
    }
    .sorted())
}

/// True when the refused symlink `at` (e.g. `/lib`) is the merged-/usr link to `usr/lib`.
fn is_usr_merge_link(root: &Path, at: &str) -> bool {
    let rel = at.trim_start_matches('/');
    if rel != "lib" {
        return false;
    }
    match rootfs::link_text(root, Path::new(rel)) {
        Ok(target) => {
            let t = target.to_string_lossy();
            matches!(
                t.trim_end_matches('/'),
                "usr/lib" | "/usr/lib" | "./usr/lib"
            )
        }
        Err(_) => false,
    }
}

fn collect_dir(
    root: &Path,
    dir: &Path,
    entries: Vec<(String, Kind)>,
    units: &mut Units,
    notes: &mut Notes,
) {
    for (name, kind) in entries {
        let rel = dir.join(&name);
        match kind {
            Kind::Dir if dir == Path::new(ETC_UNITS) => {
                let target = name
                    .strip_suffix(".wants")
                    .or_else(|| name.strip_suffix(".requires"));
                if let Some(target) = target {
                    collect_wants(root, &rel, target, units, notes);
                }
            }
            Kind::File if is_unit_name(&name) => {
                units.defs.entry(name).or_insert(Def::File(rel));
            }
            Kind::Symlink if is_unit_name(&name) => {
                if units.defs.contains_key(&name) {
                    continue;
                }
                let text = match rootfs::link_text(root, &rel) {
                    Ok(t) => t.to_string_lossy().into_owned(),
                    Err(e) => {
                        notes.push(e.describe(&rootfs::shown(&rel)));
                        continue;
                    }
                };
                let base = text.rsplit('/').next().unwrap_or_default().to_owned();
                let def = if text == "/dev/null" {
                    Def::Masked(rel, text)
                } else if base == name {
                    Def::Linked(rel, text)
                } else {
                    Def::Alias(rel, base)
                };
                units.defs.insert(name, def);
            }
            _ => {}
        }
    }
}

/// Records the units linked into `TARGET.wants/` or `TARGET.requires/`.
fn collect_wants(root: &Path, dir: &Path, target: &str, units: &mut Units, notes: &mut Notes) {
    let entries = match rootfs::list_dir(root, dir) {
        Ok(e) => e,
        Err(e) => {
            notes.push(e.describe(&rootfs::shown(dir)));
            return;
        }
    };
    for (name, kind) in entries {
        if !is_unit_name(&name) || !matches!(kind, Kind::Symlink | Kind::File) {
            continue;
        }
        if kind == Kind::Symlink {
            if let Ok(text) = rootfs::link_text(root, &dir.join(&name)) {
                let text = text.to_string_lossy();
                let base = text.rsplit('/').next().unwrap_or_default();
                if base != name && is_unit_name(base) {
                    units.wants_targets.insert(name.clone(), base.to_owned());
                }
            }
        }
        {
            units
                .enabled
                .entry(name)
                .or_default()
                .insert(target.to_owned());
        }
    }
}

fn build_item(root: &Path, name: &str, units: &Units, notes: &mut Notes) -> Item {
    let mut item = Item::new(name);
    let wanted_by = units.enabled.get(name);
    let enabled = wanted_by.is_some();
    let wanted: Vec<&str> = wanted_by
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    item = item.attr("wanted_by", wanted.join(","));

    // An instance without its own file is defined by its template.
    let mut def = units.defs.get(name);
    if def.is_none() {
        if let Some(template) = template_of(name) {
            def = units.defs.get(&template);
            if def.is_some() {
                item = item.attr("template", template);
            }
        }
    }
    let state = match def {
        Some(Def::Masked(path, text)) => {
            item = item
                .attr("path", rootfs::shown(path))
                .attr("link_target", text.as_str());
            "masked"
        }
        Some(Def::Alias(path, of)) => {
            item = item
                .attr("path", rootfs::shown(path))
                .attr("alias_of", of.as_str());
            if enabled {
                "enabled"
            } else {
                "alias"
            }
        }
        Some(Def::Linked(path, text)) => {
            item = item
                .attr("path", rootfs::shown(path))
                .attr("link_target", text.as_str());
            if enabled {
                "enabled"
            } else {
                "linked"
            }
        }
        Some(Def::File(path)) => {
            item = item.attr("path", rootfs::shown(path));
            match rootfs::read_bytes(root, path) {
                Ok(bytes) => {
                    item = item.attr("blake3", blake3::hash(&bytes).to_hex().to_string());
                    let installable = has_install(&String::from_utf8_lossy(&bytes));
                    match (enabled, installable) {
                        (true, _) => "enabled",
                        (false, true) => "disabled",
                        (false, false) => "static",
                    }
                }
                Err(e) => {
                    notes.push(format!(
                        "{} (state of {name} not fully checked)",
                        e.describe(&rootfs::shown(path))
                    ));
                    if enabled {
                        "enabled"
                    } else {
                        "unknown"
                    }
                }
            }
        }
        None if units
            .wants_targets
            .get(name)
            .is_some_and(|t| units.defs.contains_key(t)) =>
        {
            if let Some(target) = units.wants_targets.get(name) {
                item = item.attr("alias_of", target.as_str());
            }
            "enabled"
        }
        None => {
            notes.push(format!(
                "{name} is linked into a .wants/.requires directory but no unit file defines it"
            ));
            "enabled"
        }
    };
    item.attr("state", state)
}

/// The plugin type exported through the vigil ABI.
pub struct Services;

impl Plugin for Services {
    const NAME: &'static CStr = c"services";
    const VERSION: &'static CStr = c"0.1.0";

    fn scan(ctx: &ScanContext, out: &mut Emitter<'_>) -> Result<(), String> {
        let _config: Config = ctx.config()?;
        scan_root(&ctx.root)?.emit(out)
    }
}

vigil_plugin::export_plugin!(Services);

#[cfg(test)]
mod tests;
