//! Drift changes as user tasks show them: one [`TaskChange`] per change (its identity and a
//! one-line summary, hashes shortened), and the title and description of a task made of a
//! set of them — the most telling changes named first, counts for the rest, never a
//! 64-hex hash.

use std::collections::BTreeMap;

use crate::drift::ChangeId;
use crate::proto::{Change, ChangeKind, TaskChange, Value};

/// Longest title; longer ones end in an ellipsis.
pub const MAX_TITLE: usize = 120;
/// Change lines listed in a drift task's description.
const MAX_DESCRIPTION_LINES: usize = 100;
/// Attributes named in one change's summary.
const MAX_SUMMARY_ATTRIBUTES: usize = 4;
/// Hex digits kept of a hash shown in text.
const SHORT_HASH: usize = 12;

/// Appended to the summary of a change that the nodes of one task came to from different
/// previous values.
pub const MIXED_START: &str = " (on some nodes from another previous value)";

/// A change of `plugin`'s drift as a task keeps it.
pub fn task_change(plugin: &str, c: &Change) -> TaskChange {
    TaskChange {
        id: ChangeId::of(plugin, c).to_string(),
        plugin: plugin.to_owned(),
        key: c.key.clone(),
        kind: c.kind,
        summary: summary(plugin, c),
    }
}

/// `version 3.0.11-1 → 3.0.13-1, content changed`: the attributes that changed.
fn summary(plugin: &str, c: &Change) -> String {
    let mut parts = Vec::new();
    match c.kind {
        ChangeKind::Modified => {
            for a in c.attributes.iter().take(MAX_SUMMARY_ATTRIBUTES) {
                parts.push(format!(
                    "{} {} → {}",
                    a.name,
                    shown(a.previous.as_ref()),
                    shown(a.current.as_ref())
                ));
            }
            if c.attributes.len() > MAX_SUMMARY_ATTRIBUTES {
                parts.push(format!(
                    "+{} more attributes",
                    c.attributes.len() - MAX_SUMMARY_ATTRIBUTES
                ));
            }
            if c.content_diff.is_some() {
                parts.push("content changed".to_owned());
            }
        }
        ChangeKind::Added | ChangeKind::Removed => {
            let value = |name: &str| {
                c.attributes
                    .iter()
                    .find(|a| a.name == name)
                    .and_then(|a| a.current.as_ref().or(a.previous.as_ref()))
            };
            let telling: &[&str] = match plugin {
                "packages" => &["version"],
                "accounts" => &["uid", "gid", "shell"],
                "services" => &["state"],
                "files" => &["type", "mode", "uid"],
                _ => &[],
            };
            for name in telling {
                if let Some(v) = value(name) {
                    parts.push(format!("{name} {}", shown(Some(v))));
                }
            }
        }
    }
    parts.join(", ")
}

/// A value as text shows it: a hash is cut to a few digits.
fn shown(v: Option<&Value>) -> String {
    match v {
        None => "(none)".to_owned(),
        Some(Value::Str(s)) if is_hash(s) => format!("{}…", &s[..SHORT_HASH]),
        Some(v) => v.to_string(),
    }
}

fn is_hash(s: &str) -> bool {
    s.len() >= 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// How telling a change is for a title: lower first.
fn rank(c: &TaskChange) -> (u8, u8) {
    let plugin = match c.plugin.as_str() {
        "accounts" => 0,
        "packages" => 1,
        "services" => 2,
        "files" => 3,
        "sysctl" => 4,
        "ports" => 5,
        _ => 6,
    };
    let kind = match c.kind {
        ChangeKind::Added => 0,
        ChangeKind::Modified => 1,
        ChangeKind::Removed => 2,
    };
    (plugin, kind)
}

/// Which change of a group leads its part of the title: a privileged account, a package
/// rather than a library, a configuration file whose text changed, then the shortest key.
fn lead_order(c: &TaskChange) -> (bool, bool, usize, String) {
    let privileged = c.plugin == "accounts" && c.summary.contains("uid 0");
    let library = c.plugin == "packages" && c.key.starts_with("lib");
    let content = c.summary.contains("content changed");
    (
        !privileged,
        library || (c.plugin == "files" && !content),
        c.key.len(),
        c.key.clone(),
    )
}

fn noun(plugin: &str, n: usize) -> String {
    let (one, many) = match plugin {
        "files" => ("file", "files"),
        "packages" => ("package", "packages"),
        "accounts" => ("account", "accounts"),
        "services" => ("unit", "units"),
        "sysctl" => ("sysctl key", "sysctl keys"),
        "ports" => ("port", "ports"),
        other => return format!("{other} item{}", if n == 1 { "" } else { "s" }),
    };
    (if n == 1 { one } else { many }).to_owned()
}

fn kind_word(k: ChangeKind) -> &'static str {
    match k {
        ChangeKind::Added => "added",
        ChangeKind::Removed => "removed",
        ChangeKind::Modified => "modified",
    }
}

/// The lead change of a title part in a few words.
fn headline(c: &TaskChange) -> String {
    let mixed = c.summary.ends_with(MIXED_START);
    let summary = c.summary.trim_end_matches(MIXED_START);
    let version = summary
        .split(", ")
        .find_map(|p| p.strip_prefix("version "))
        .map(|v| match (mixed, v.split_once(" → ")) {
            // From several versions to one: say where it went.
            (true, Some((_, to))) => format!("→ {to}"),
            _ => v.to_owned(),
        });
    match (c.plugin.as_str(), c.kind) {
        ("packages", ChangeKind::Modified) if version.is_some() => {
            format!("{} {}", c.key, version.unwrap_or_default())
        }
        ("packages", ChangeKind::Added) => match version {
            Some(v) => format!("{} {v} installed", c.key),
            None => format!("{} installed", c.key),
        },
        ("packages", ChangeKind::Removed) => format!("{} removed", c.key),
        ("accounts", kind) => {
            let (what, name) = match c.key.split_once(':') {
                Some((w, n)) => (if w == "group" { "group" } else { "account" }, n),
                None => ("account", c.key.as_str()),
            };
            let uid0 = c.summary.split(", ").any(|p| p == "uid 0");
            let mut s = format!("{what} {name} {}", kind_word(kind));
            if uid0 && kind == ChangeKind::Added {
                s.push_str(" (uid 0)");
            }
            s
        }
        (_, kind) => format!("{} {}", c.key, kind_word(kind)),
    }
}

/// `openssl 3.0.19-1 → 3.0.20-1 (+2 packages), /etc/ssh/sshd_config modified`.
pub fn title(changes: &[TaskChange], total: u64) -> String {
    // Changes of one plugin and kind make one part of the title, the most telling first.
    type Part<'a> = ((u8, u8), &'a str, ChangeKind);
    let mut groups: BTreeMap<Part<'_>, Vec<&TaskChange>> = BTreeMap::new();
    for c in changes {
        groups
            .entry((rank(c), c.plugin.as_str(), c.kind))
            .or_default()
            .push(c);
    }
    let mut parts: Vec<String> = Vec::new();
    for ((_, plugin, kind), mut group) in groups {
        group.sort_by_key(|c| lead_order(c));
        let mut part = headline(group[0]);
        let rest = group.len() - 1;
        if rest > 0 {
            let of = if kind == ChangeKind::Modified {
                noun(plugin, rest)
            } else {
                format!("{} {}", noun(plugin, rest), kind_word(kind))
            };
            part.push_str(&format!(" (+{rest} {of})"));
        }
        parts.push(part);
    }
    let unlisted = total.saturating_sub(changes.len() as u64);
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        // Room for the last words: "(+N more kinds of change)".
        if i > 0 && out.chars().count() + 2 + part.chars().count() > MAX_TITLE - 28 {
            out.push_str(&format!(" (+{} more kinds of change)", parts.len() - i));
            return cap(&out);
        }
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(part);
    }
    if unlisted > 0 {
        out.push_str(&format!(" (+{unlisted} more changes)"));
    }
    cap(&out)
}

/// Cuts a text to [`MAX_TITLE`] characters, ending in an ellipsis.
pub fn cap(s: &str) -> String {
    if s.chars().count() <= MAX_TITLE {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(MAX_TITLE - 1).collect();
    out.push('…');
    out
}

/// One line of a description: `packages: modified openssl (version 3.0.11 → 3.0.13)`.
pub fn line(c: &TaskChange) -> String {
    let mut line = format!("{}: {} {}", c.plugin, kind_word(c.kind), c.key);
    if !c.summary.is_empty() {
        line.push_str(&format!(" ({})", c.summary));
    }
    line
}

/// The change list of a description: the first lines, and how many more there are.
pub fn lines(changes: &[TaskChange], total: u64) -> String {
    let mut out = String::new();
    for c in changes.iter().take(MAX_DESCRIPTION_LINES) {
        out.push_str(&line(c));
        out.push('\n');
    }
    let shown = changes.len().min(MAX_DESCRIPTION_LINES) as u64;
    if total > shown {
        out.push_str(&format!("… and {} more changes\n", total - shown));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::AttributeChange;

    fn modified(key: &str, attrs: &[(&str, &str, &str)], content: bool) -> Change {
        Change {
            key: key.into(),
            kind: ChangeKind::Modified,
            attributes: attrs
                .iter()
                .map(|(n, p, c)| AttributeChange {
                    name: (*n).into(),
                    previous: Some(Value::from(*p)),
                    current: Some(Value::from(*c)),
                })
                .collect(),
            content_diff: content.then(|| "-a\n+b\n".into()),
            content_private: false,
            current_digest: Some(format!("{key}-now")),
            previous_digest: Some(format!("{key}-then")),
        }
    }

    #[test]
    fn a_patch_title_names_the_package_first_and_counts_the_rest() {
        let v = ("version", "3.0.19-1~deb12u2", "3.0.20-1~deb12u1");
        let changes = vec![
            task_change("packages", &modified("libssl3", &[v], false)),
            task_change("packages", &modified("openssl", &[v], false)),
            task_change(
                "packages",
                &modified("openssl-provider-legacy", &[v], false),
            ),
            task_change(
                "files",
                &modified(
                    "/etc/ssh/sshd_config",
                    &[("blake3", &"a".repeat(64), &"b".repeat(64))],
                    true,
                ),
            ),
        ];
        assert_eq!(
            title(&changes, 4),
            "openssl 3.0.19-1~deb12u2 → 3.0.20-1~deb12u1 (+2 packages), /etc/ssh/sshd_config modified"
        );
        let text = lines(&changes, 4);
        assert!(
            text.contains("blake3 aaaaaaaaaaaa… → bbbbbbbbbbbb…"),
            "{text}"
        );
        assert!(!text.contains(&"a".repeat(64)), "{text}");
    }

    #[test]
    fn a_new_root_account_leads() {
        let added = Change {
            key: "user:toor".into(),
            kind: ChangeKind::Added,
            attributes: vec![AttributeChange {
                name: "uid".into(),
                previous: None,
                current: Some(Value::Int(0)),
            }],
            content_diff: None,
            content_private: false,
            current_digest: Some("d".into()),
            previous_digest: None,
        };
        let changes = vec![
            task_change(
                "files",
                &modified("/etc/passwd", &[("size", "1", "2")], false),
            ),
            task_change("accounts", &added),
        ];
        assert_eq!(
            title(&changes, 2),
            "account toor added (uid 0), /etc/passwd modified"
        );
    }

    #[test]
    fn long_change_sets_stay_within_the_title_width() {
        let changes: Vec<TaskChange> = (0..40)
            .map(|i| {
                task_change(
                    &format!("plugin{i}"),
                    &modified(&format!("/k/{i}"), &[], true),
                )
            })
            .collect();
        let t = title(&changes, 50);
        assert!(t.chars().count() <= MAX_TITLE, "{t}");
        assert!(t.contains("more"), "{t}");
    }
}
