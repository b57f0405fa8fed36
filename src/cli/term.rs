//! The one sanitiser between the daemon's text and a terminal. Names, keys, values, evidence
//! and messages come from scanned nodes and plugins that other people control; an account
//! called `evil\e]0;PWNED\a\e[2J` must print as text, not retitle or clear the screen.
//!
//! `vigil` hands [`for_terminal`] to the client, which applies it to every string of every
//! reply it decodes for display (and to every error message), so no command can forget it;
//! `--json` replies are decoded without it and stay exact.

use std::borrow::Cow;
use std::fmt::Write as _;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Whether `c` must not reach a terminal as itself: C0 controls (ESC starts every CSI and
/// OSC sequence), DEL, C1 controls (U+0080–U+009F, which some terminals read as CSI/OSC),
/// and Unicode format characters (category Cf: bidi embeddings, overrides and isolates,
/// zero-width characters), which reorder or hide what an administrator reads.
fn is_hostile(c: char) -> bool {
    c.is_control() || c.general_category() == GeneralCategory::Format
}

fn escape(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_hostile(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if keep(c) || !is_hostile(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// Text for a terminal: every hostile character written as a visible escape (`\u{1b}`,
/// `\r`, `\u{202e}`); tabs and line breaks kept, since messages and diffs have lines.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    escape(s, |c| c == '\n' || c == '\t')
}

/// Text that must stay on one line (a key, a title, a table cell): like [`for_terminal`],
/// and line breaks escaped too, so a crafted name cannot forge a row.
pub fn one_line(s: &str) -> Cow<'_, str> {
    escape(s, |c| c == '\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_become_text() {
        let evil = "evil\x1b]0;PWNED\x07\x1b[2J";
        assert_eq!(for_terminal(evil), "evil\\u{1b}]0;PWNED\\u{7}\\u{1b}[2J");
        assert_eq!(one_line("a\x1b[2Jb\nc"), "a\\u{1b}[2Jb\\nc");
    }

    #[test]
    fn c1_controls_and_format_characters_are_escaped() {
        // U+009B is a one-character CSI; U+202E reverses the text after it; U+200B hides.
        assert_eq!(for_terminal("a\u{9b}2Jb"), "a\\u{9b}2Jb");
        assert_eq!(for_terminal("x\u{202e}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(
            for_terminal("a\u{200b}b\u{2066}c\u{feff}"),
            "a\\u{200b}b\\u{2066}c\\u{feff}"
        );
        assert_eq!(for_terminal("cr\rlf"), "cr\\rlf");
        assert_eq!(for_terminal("del\x7f"), "del\\u{7f}");
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for s in ["plain\ttext", "two\nlines", "é → ü 日本 ✓", ""] {
            assert!(matches!(for_terminal(s), Cow::Borrowed(_)), "{s:?}");
        }
        assert!(matches!(one_line("a\tb"), Cow::Borrowed(_)));
    }
}
