//! How drift reads in a terminal, shared by `vigil tasks changes`, `vigil tasks show` and
//! `vigil drift`: `+ key` added, `- key` removed, `~ key` modified with `name: previous →
//! current` per attribute and the content diff below it, and the coverage notes, so that
//! what a scan could not read is never mistaken for "unchanged".

use std::fmt::Write as _;
use std::io::IsTerminal;

use crate::proto::{AttributeChange, Change, ChangeKind, PluginDrift, Value};

/// Colours for a terminal, or none (not a tty, or `NO_COLOR` set): plain ANSI SGR codes.
#[derive(Debug, Clone, Copy)]
pub struct Paint(bool);

impl Paint {
    /// Colour when stdout is a terminal and `NO_COLOR` is not set.
    pub fn for_stdout() -> Paint {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Paint(std::io::stdout().is_terminal() && !no_color)
    }

    /// No colours (`vigil ui` styles the lines itself).
    pub fn plain() -> Paint {
        Paint(false)
    }

    fn sgr(self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    pub fn green(self, s: &str) -> String {
        self.sgr("32", s)
    }

    pub fn red(self, s: &str) -> String {
        self.sgr("31", s)
    }

    pub fn yellow(self, s: &str) -> String {
        self.sgr("33", s)
    }

    pub fn cyan(self, s: &str) -> String {
        self.sgr("36", s)
    }

    pub fn bold(self, s: &str) -> String {
        self.sgr("1", s)
    }
}

/// A key, name or line from a scanned node on one line: the replies are already through
/// the terminal sanitiser (`cli::term`); this also keeps a crafted name from forging lines.
pub use super::term::one_line as clean;

/// An attribute value: `(none)` where it did not exist, `""` for the empty string.
fn value(v: Option<&Value>) -> String {
    match v {
        None => "(none)".to_owned(),
        Some(Value::Str(s)) if s.is_empty() => "\"\"".to_owned(),
        Some(v) => clean(&v.to_string()).into_owned(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `1 change` / `3 changes`.
pub fn changes_word(n: usize) -> String {
    plural(n, "change", "changes")
}

/// One plugin's drift: a heading line, the changes, the coverage notes; `indent` before each
/// line. Nothing node-specific (scan id, item count), so that nodes with the same drift read
/// the same and can be shown once.
pub fn plugin(out: &mut String, p: &PluginDrift, indent: &str, paint: Paint) {
    let state = match p.baseline_day {
        None => "first scan: baseline recorded, no drift".to_owned(),
        Some(base) if p.changes.is_empty() => format!("baseline {base}, no changes"),
        Some(base) => format!("baseline {base}, {}", changes_word(p.changes.len())),
    };
    let _ = writeln!(out, "{indent}{}  {state}", paint.bold(&clean(&p.plugin)));
    for c in &p.changes {
        change(out, c, &format!("{indent}  "), paint);
    }
    for note in &p.coverage_notes {
        let _ = writeln!(
            out,
            "{indent}  {} {}",
            paint.yellow("not seen:"),
            clean(note)
        );
    }
}

/// One change: `+ key`, `- key` or `~ key`, then its attributes and content diff.
pub fn change(out: &mut String, c: &Change, indent: &str, paint: Paint) {
    let key = clean(&c.key);
    let head = match c.kind {
        ChangeKind::Added => paint.green(&format!("+ {key}")),
        ChangeKind::Removed => paint.red(&format!("- {key}")),
        ChangeKind::Modified => paint.yellow(&format!("~ {key}")),
    };
    let _ = writeln!(out, "{indent}{head}");
    for a in &c.attributes {
        let _ = writeln!(out, "{indent}    {}", attribute(a, c.kind));
    }
    if let Some(diff) = &c.content_diff {
        for line in diff.lines() {
            let line = clean(line);
            let shown = if line.starts_with("+++") || line.starts_with("---") {
                paint.bold(&line)
            } else if line.starts_with('+') {
                paint.green(&line)
            } else if line.starts_with('-') {
                paint.red(&line)
            } else if line.starts_with('@') {
                paint.cyan(&line)
            } else {
                line.into_owned()
            };
            let _ = writeln!(out, "{indent}    {shown}");
        }
    }
}

/// `name: previous → current` for a modification, `name: value` for an added or removed
/// item.
fn attribute(a: &AttributeChange, kind: ChangeKind) -> String {
    let name = clean(&a.name);
    match kind {
        ChangeKind::Added => format!("{name}: {}", value(a.current.as_ref())),
        ChangeKind::Removed => format!("{name}: {}", value(a.previous.as_ref())),
        ChangeKind::Modified => format!(
            "{name}: {} → {}",
            value(a.previous.as_ref()),
            value(a.current.as_ref())
        ),
    }
}

/// A node's drift over all plugins, each plugin under its heading.
pub fn plugins(out: &mut String, drift: &[PluginDrift], indent: &str, paint: Paint) {
    for p in drift {
        plugin(out, p, indent, paint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{QueueTaskId, QueueTaskKind};

    fn drift(changes: Vec<Change>, baseline: Option<&str>) -> PluginDrift {
        PluginDrift {
            node: "web-0".into(),
            plugin: "packages".into(),
            day: "2026-04-02".parse().unwrap(),
            scan: QueueTaskId {
                kind: QueueTaskKind::Scan,
                number: 7,
            },
            baseline_day: baseline.map(|b| b.parse().unwrap()),
            items: 3,
            changes,
            coverage_notes: vec!["/var/lib/dpkg/status.d: permission denied".into()],
        }
    }

    #[test]
    fn modified_attributes_read_previous_arrow_current() {
        let c = Change {
            key: "openssl".into(),
            kind: ChangeKind::Modified,
            attributes: vec![AttributeChange {
                name: "version".into(),
                previous: Some("3.0.11".into()),
                current: Some("3.0.13".into()),
            }],
            content_diff: Some("--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n".into()),
            content_private: false,
            current_digest: None,
            previous_digest: None,
        };
        let mut out = String::new();
        plugin(
            &mut out,
            &drift(vec![c], Some("2026-04-01")),
            "",
            Paint::plain(),
        );
        assert_eq!(
            out,
            "packages  baseline 2026-04-01, 1 change\n\
             \x20 ~ openssl\n\
             \x20     version: 3.0.11 → 3.0.13\n\
             \x20     --- a\n\
             \x20     +++ b\n\
             \x20     @@ -1 +1 @@\n\
             \x20     -x\n\
             \x20     +y\n\
             \x20 not seen: /var/lib/dpkg/status.d: permission denied\n"
        );
    }

    #[test]
    fn a_first_scan_says_so_and_keeps_its_coverage_notes() {
        let mut out = String::new();
        plugin(&mut out, &drift(Vec::new(), None), "", Paint::plain());
        assert!(
            out.contains("first scan: baseline recorded, no drift"),
            "{out}"
        );
        assert!(out.contains("not seen: "), "{out}");
    }

    #[test]
    fn colours_only_when_asked() {
        assert_eq!(Paint::plain().green("+ a"), "+ a");
        assert_eq!(Paint(true).red("- a"), "\x1b[31m- a\x1b[0m");
    }
}
