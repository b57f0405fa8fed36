//! Daemon text on the screen. The client has already passed every string of every reply
//! through `cli::term::for_terminal` (the one sanitiser); a cell also goes through
//! `term::one_line`, so a line break cannot forge a row, and tabs become spaces, since a
//! terminal moves the cursor for a tab that ratatui counts as one cell.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, Utc};

use crate::cli::term;

/// Text for one cell or one line of the screen.
pub fn cell(s: &str) -> Cow<'_, str> {
    match term::one_line(s) {
        Cow::Borrowed(b) if !b.contains('\t') => Cow::Borrowed(b),
        other => Cow::Owned(other.replace('\t', "    ")),
    }
}

/// Text of several lines (a message, a diff): each line as a [`cell`].
pub fn lines(s: &str) -> Vec<String> {
    s.lines().map(|l| cell(l).into_owned()).collect()
}

/// `s` cut to `max` characters, with `…` when it was longer.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A time in the screen's zone: `HH:MM` today, `MM-DD HH:MM` this year, else the date.
pub fn time(t: DateTime<Utc>, now: DateTime<Utc>, tz: FixedOffset) -> String {
    let (t, now) = (t.with_timezone(&tz), now.with_timezone(&tz));
    if t.date_naive() == now.date_naive() {
        t.format("%H:%M").to_string()
    } else if t.format("%Y").to_string() == now.format("%Y").to_string() {
        t.format("%m-%d %H:%M").to_string()
    } else {
        t.format("%Y-%m-%d").to_string()
    }
}

/// A full time stamp in the screen's zone.
pub fn stamp(t: DateTime<Utc>, tz: FixedOffset) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// How long ago `t` was: `45s`, `12m`, `3h`, `2d`.
pub fn age(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_cannot_move_the_cursor() {
        let evil = "a\x1b]0;PWNED\x07b\nforged row\tx";
        let c = cell(evil);
        assert!(!c.chars().any(char::is_control), "{c:?}");
        assert_eq!(c, "a\\u{1b}]0;PWNED\\u{7}b\\nforged row    x");
        assert!(matches!(cell("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
