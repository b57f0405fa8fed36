//! Aligned plain-text output: columns separated by two spaces, no borders, so the output
//! reads well and still works with grep/awk. Small enough that a table crate is not needed.
//!
//! A table with free text (a title, a message) fits it to the terminal: on a terminal the
//! text column is cut so that each row stays one line of the terminal's width; piped, or
//! with `--wide`, nothing is cut (only a multi-line text is cut to its first line, so a
//! row stays a row).

use std::io::IsTerminal;
use std::sync::OnceLock;

use super::text;

/// The narrowest a text column is cut to, however narrow the terminal (rows then wrap).
const MIN_TEXT_WIDTH: usize = 12;

/// The width tables fit to: `Some(columns)` on a terminal, `None` for no limit.
static WIDTH: OnceLock<Option<usize>> = OnceLock::new();

/// Decides the width once, from `--wide` and whether stdout is a terminal.
pub fn init_width(wide: bool) {
    let _ = WIDTH.set(detect_width(wide));
}

fn detect_width(wide: bool) -> Option<usize> {
    if wide || !std::io::stdout().is_terminal() {
        return None;
    }
    crossterm::terminal::size()
        .ok()
        .map(|(columns, _)| usize::from(columns))
        .filter(|c| *c > 0)
}

/// The width output should fit to, `None` when nothing should be cut.
pub fn width() -> Option<usize> {
    *WIDTH.get_or_init(|| detect_width(false))
}

/// A line of text for a message: cut to the terminal's width less `used` characters.
pub fn fit_text(s: &str, used: usize) -> String {
    let room = width().map_or(usize::MAX, |w| w.saturating_sub(used).max(MIN_TEXT_WIDTH));
    text::shorten(s, room)
}

/// Prints a table whose column `text_column` is free text, fitted to the terminal.
pub fn print_fit(header: Option<&[&str]>, rows: &[Vec<String>], text_column: usize) {
    print!("{}", render_fit(header, rows, text_column, width()));
}

/// Renders a table with column `text_column` cut so that every row is at most `width`
/// characters (to its first line when `width` is `None`).
pub fn render_fit(
    header: Option<&[&str]>,
    rows: &[Vec<String>],
    text_column: usize,
    width: Option<usize>,
) -> String {
    let header_cells: Option<Vec<String>> =
        header.map(|h| h.iter().map(|s| s.to_string()).collect());
    let cols = rows
        .iter()
        .map(Vec::len)
        .chain(header_cells.iter().map(Vec::len))
        .max()
        .unwrap_or(0);
    let room = match width {
        None => usize::MAX,
        Some(width) => {
            let others: usize = (0..cols)
                .filter(|c| *c != text_column)
                .map(|c| {
                    rows.iter()
                        .chain(header_cells.iter())
                        .filter_map(|r| r.get(c))
                        .map(|s| s.chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .sum();
            let gaps = 2 * cols.saturating_sub(1);
            width.saturating_sub(others + gaps).max(MIN_TEXT_WIDTH)
        }
    };
    let fitted: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(cell) = r.get_mut(text_column) {
                *cell = text::shorten(cell, room);
            }
            r
        })
        .collect();
    render(header, &fitted)
}

/// Prints rows with each column padded to its widest cell; the last column is not padded.
pub fn print(header: Option<&[&str]>, rows: &[Vec<String>]) {
    print!("{}", render(header, rows));
}

pub fn render(header: Option<&[&str]>, rows: &[Vec<String>]) -> String {
    let mut all: Vec<Vec<String>> = Vec::new();
    if let Some(h) = header {
        all.push(h.iter().map(|s| s.to_string()).collect());
    }
    all.extend(rows.iter().cloned());
    let cols = all.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            all.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &all {
        let last = row.len().saturating_sub(1);
        let mut indent = 0;
        for (c, cell) in row.iter().enumerate() {
            if c < last {
                out.push_str(cell);
                let pad = widths[c] - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
                indent += widths[c] + 2;
            } else {
                // A multi-line last cell (a list of errors) stays in its column.
                for (i, line) in cell.lines().enumerate() {
                    if i > 0 {
                        out.push('\n');
                        out.extend(std::iter::repeat_n(' ', indent));
                    }
                    out.push_str(line);
                }
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    fn rows() -> Vec<Vec<String>> {
        vec![
            vec![
                "1".into(),
                "a long title that goes on".into(),
                "open".into(),
            ],
            vec!["22".into(), "two\nlines".into(), "closed".into()],
        ]
    }

    #[test]
    fn the_text_column_is_cut_to_the_width() {
        let out = super::render_fit(Some(&["ID", "TITLE", "STATUS"]), &rows(), 1, Some(30));
        // ID (2) and STATUS (6) and two gaps of 2 leave 18 for the title.
        for line in out.lines() {
            assert!(line.chars().count() <= 30, "{line:?}");
        }
        assert!(out.contains("a long title that…"), "{out}");
        assert!(out.contains("two …"), "{out}");
    }

    #[test]
    fn without_a_width_nothing_but_extra_lines_is_cut() {
        let out = super::render_fit(None, &rows(), 1, None);
        assert!(out.contains("a long title that goes on"), "{out}");
        assert_eq!(out.lines().count(), 2, "{out}");
    }

    #[test]
    fn a_narrow_terminal_still_shows_some_text() {
        let out = super::render_fit(None, &rows(), 1, Some(10));
        assert!(out.contains("a long titl…"), "{out}");
    }

    #[test]
    fn columns_align() {
        let out = super::render(
            Some(&["NAME", "ROLE"]),
            &[
                vec!["a".into(), "admin".into()],
                vec!["long-name".into(), "user".into()],
            ],
        );
        assert_eq!(out, "NAME       ROLE\na          admin\nlong-name  user\n");
    }

    #[test]
    fn a_multi_line_last_cell_stays_in_its_column() {
        let out = super::render(
            None,
            &[
                vec!["reload error".into(), "a.toml:1:1: x\na.toml:2:1: y".into()],
                vec!["you".into(), "root".into()],
            ],
        );
        assert_eq!(
            out,
            "reload error  a.toml:1:1: x\n              a.toml:2:1: y\nyou           root\n"
        );
    }
}
