//! Aligned plain-text output: columns separated by two spaces, no borders, so the output
//! reads well and still works with grep/awk. Small enough that a table crate is not needed.

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
