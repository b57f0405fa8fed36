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
        for (c, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if c < last {
                let pad = widths[c] - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
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
}
