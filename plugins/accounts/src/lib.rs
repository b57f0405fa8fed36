//! The `accounts` scanner plugin (`libvigil_accounts.so`): local users and groups, so drift
//! shows a new account, a changed shell or home, a new member of `sudo`, or a password that
//! was set or unlocked.
//!
//! Sources, all below the node root: `etc/passwd`, `etc/group`, and `etc/shadow` for password
//! *metadata* only. `etc/gshadow` is not read at all.
//!
//! Items, **emitted sorted by key (byte-wise)** because downstream diffing is a streaming
//! merge over sorted keys:
//! - `user:NAME`: `uid`, `gid` (integers), `gecos`, `home`, `shell`; from shadow, when it is
//!   readable: `password` = `locked` (starts with `!` or `*`), `empty`, or `set`, and the
//!   integers `last_change` (days since 1970), `max_days` and `expire` when present.
//! - `group:NAME`: `gid`, `members` (comma-joined, sorted; empty string when none).
//!
//! **No password hash is ever stored, emitted or echoed in a note**: shadow fields are reduced
//! to the three-valued `password` state as soon as they are read, and malformed shadow lines
//! are reported by line number only. A legacy hash in passwd's second field is treated the
//! same way.
//!
//! `etc/passwd` is the primary source: when it is missing, not a regular file or unreadable,
//! the scan **fails** with the reason rather than report no users (which would read as every
//! account removed, e.g. on a node whose root is not mounted). A missing or unreadable
//! `etc/group` or `etc/shadow` (the daemon is not root) is a coverage note, not a failure;
//! malformed lines are skipped with a `file:line` note; a duplicated name keeps its first
//! entry, as the C library's lookups do.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::path::Path;

use serde::Deserialize;
use vigil_plugin::{Emitter, Item, Plugin, ScanContext};
use vigil_rootfs::{self as rootfs, Notes, Scan, Unreadable};

/// The plugin's `[plugin.config]`: none yet, but unknown fields are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

/// Password state derived from a shadow (or legacy passwd) password field.
pub fn password_state(field: &str) -> &'static str {
    if field.is_empty() {
        "empty"
    } else if field.starts_with('!') || field.starts_with('*') {
        "locked"
    } else {
        "set"
    }
}

/// Splits the significant lines of a colon-separated database into fields, with line numbers.
/// Blank lines and `#` comments are skipped; NIS compat entries (`+`/`-`) are skipped with a
/// note, since what they pull in lives in NIS, not in this file.
fn records<'t>(text: &'t str, file: &str, notes: &mut Notes) -> Vec<(usize, Vec<&'t str>)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                None
            } else if trimmed.starts_with(['+', '-']) {
                notes.at_line(file, i + 1, "NIS compat entry (+/-) not expanded, skipped");
                None
            } else {
                Some((i + 1, line.split(':').collect()))
            }
        })
        .collect()
}

fn parse_id(s: &str) -> Option<i64> {
    s.parse::<u32>().ok().map(i64::from)
}

/// Parses passwd text into `user:NAME` items keyed by name.
pub fn parse_passwd(text: &str, file: &str, notes: &mut Notes) -> BTreeMap<String, Item> {
    let mut users = BTreeMap::new();
    for (line, f) in records(text, file, notes) {
        if f.len() != 7 || f[0].is_empty() {
            notes.at_line(file, line, "expected 7 colon-separated fields, skipped");
            continue;
        }
        let (Some(uid), Some(gid)) = (parse_id(f[2]), parse_id(f[3])) else {
            notes.at_line(
                file,
                line,
                &format!("user {}: uid or gid is not a number, skipped", f[0]),
            );
            continue;
        };
        if users.contains_key(f[0]) {
            notes.at_line(
                file,
                line,
                &format!("user {} is listed again, later entry ignored", f[0]),
            );
            continue;
        }
        let mut item = Item::new(format!("user:{}", f[0]))
            .attr("uid", uid)
            .attr("gid", gid)
            .attr("gecos", f[4])
            .attr("home", f[5])
            .attr("shell", f[6]);
        // A hash kept in passwd itself (no shadow): record its state, never the hash.
        if !matches!(f[1], "x" | "*") {
            item = item.attr("password", password_state(f[1]));
        }
        users.insert(f[0].to_owned(), item);
    }
    users
}

/// Parses group text into `group:NAME` items.
pub fn parse_group(text: &str, file: &str, notes: &mut Notes) -> Vec<Item> {
    let mut groups: BTreeMap<String, Item> = BTreeMap::new();
    for (line, f) in records(text, file, notes) {
        if f.len() != 4 || f[0].is_empty() {
            notes.at_line(file, line, "expected 4 colon-separated fields, skipped");
            continue;
        }
        let Some(gid) = parse_id(f[2]) else {
            notes.at_line(
                file,
                line,
                &format!("group {}: gid is not a number, skipped", f[0]),
            );
            continue;
        };
        if groups.contains_key(f[0]) {
            notes.at_line(
                file,
                line,
                &format!("group {} is listed again, later entry ignored", f[0]),
            );
            continue;
        }
        let mut members: Vec<&str> = f[3]
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        members.sort_unstable();
        members.dedup();
        let item = Item::new(format!("group:{}", f[0]))
            .attr("gid", gid)
            .attr("members", members.join(","));
        groups.insert(f[0].to_owned(), item);
    }
    groups.into_values().collect()
}

/// Merges shadow metadata into the user items. Never copies the password field itself, and
/// never quotes a shadow line in a note.
pub fn merge_shadow(text: &str, file: &str, users: &mut BTreeMap<String, Item>, notes: &mut Notes) {
    let mut seen = std::collections::BTreeSet::new();
    for (line, f) in records(text, file, notes) {
        if f.len() != 9 || f[0].is_empty() {
            notes.at_line(file, line, "expected 9 colon-separated fields, skipped");
            continue;
        }
        let Some(user) = users.get_mut(f[0]) else {
            notes.at_line(
                file,
                line,
                &format!("entry for {}, who is not in passwd, ignored", f[0]),
            );
            continue;
        };
        if !seen.insert(f[0]) {
            notes.at_line(
                file,
                line,
                &format!("user {} is listed again, later entry ignored", f[0]),
            );
            continue;
        }
        user.attributes
            .insert("password".to_owned(), password_state(f[1]).into());
        for (idx, name) in [(2, "last_change"), (4, "max_days"), (7, "expire")] {
            if f[idx].is_empty() {
                continue;
            }
            match f[idx].parse::<i64>() {
                Ok(v) => {
                    user.attributes.insert(name.to_owned(), v.into());
                }
                Err(_) => notes.at_line(
                    file,
                    line,
                    &format!("user {}: {name} is not a number", f[0]),
                ),
            }
        }
    }
}

/// Reads a root-relative file, turning any failure into a note.
fn read(root: &Path, rel: &str, notes: &mut Notes) -> Option<String> {
    rootfs::read_text(root, Path::new(rel))
        .map_err(|e| notes.push(e.describe(&format!("/{rel}"))))
        .ok()
}

/// Why the scan fails when `etc/passwd` cannot be read.
fn unreadable_passwd(e: &Unreadable) -> String {
    match e {
        Unreadable::Missing => "no passwd file at /etc/passwd under the node root (is the root \
                                mounted?)"
            .to_owned(),
        Unreadable::WrongType => "/etc/passwd under the node root is not a regular file".to_owned(),
        other => format!(
            "cannot read the passwd file: {}",
            other.describe("/etc/passwd")
        ),
    }
}

/// Scans the node at `root`: the whole plugin minus the FFI, for tests and tools.
pub fn scan_root(root: &Path) -> Result<Scan, String> {
    let mut notes = Notes::default();
    let passwd =
        rootfs::read_text(root, Path::new("etc/passwd")).map_err(|e| unreadable_passwd(&e))?;
    let mut users = parse_passwd(&passwd, "/etc/passwd", &mut notes);
    let groups = read(root, "etc/group", &mut notes)
        .map(|text| parse_group(&text, "/etc/group", &mut notes))
        .unwrap_or_default();
    match rootfs::read_text(root, Path::new("etc/shadow")) {
        Ok(text) => merge_shadow(&text, "/etc/shadow", &mut users, &mut notes),
        Err(e) => notes.push(format!(
            "{} (password state not checked)",
            e.describe("/etc/shadow")
        )),
    }
    let mut items: Vec<Item> = users.into_values().collect();
    items.extend(groups);
    Ok(Scan {
        items,
        notes: notes.into_vec(),
    }
    .sorted())
}

/// The plugin type exported through the vigil ABI.
pub struct Accounts;

impl Plugin for Accounts {
    const NAME: &'static CStr = c"accounts";
    const VERSION: &'static CStr = c"0.1.0";

    fn scan(ctx: &ScanContext, out: &mut Emitter<'_>) -> Result<(), String> {
        let _config: Config = ctx.config()?;
        scan_root(&ctx.root)?.emit(out)
    }
}

vigil_plugin::export_plugin!(Accounts);

#[cfg(test)]
mod tests;
