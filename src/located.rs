//! Errors that point at the text that caused them (`file:line:column: message`), shared by
//! the config loader and the policy loader so that an administrator sees one format for both.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a file, pointing at the text that caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LocatedError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is not tied to a place (e.g. the file is unreadable).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl LocatedError {
    /// A problem with the file as a whole (unreadable, missing).
    pub fn in_file(file: &Path, message: impl Into<String>) -> LocatedError {
        LocatedError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }

    /// A problem at a byte offset of the file's text.
    pub fn at_offset(file: &Path, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_col(text, offset);
        LocatedError {
            file: file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }
}

impl fmt::Display for LocatedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match self.line {
            0 => write!(f, "{file}: {}", self.message),
            line => write!(f, "{file}:{line}:{}: {}", self.column, self.message),
        }
    }
}

/// Every problem found, one per line, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LocatedErrors(pub Vec<LocatedError>);

impl LocatedErrors {
    pub fn one(e: LocatedError) -> LocatedErrors {
        LocatedErrors(vec![e])
    }
}

impl fmt::Display for LocatedErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_file_line_and_column_or_just_the_file() {
        let e = LocatedError::at_offset(Path::new("c.toml"), "a = 1\nb = x\n", 10, "bad");
        assert_eq!(e.to_string(), "c.toml:2:5: bad");
        let e = LocatedError::in_file(Path::new("c.toml"), "unreadable");
        assert_eq!(e.to_string(), "c.toml: unreadable");
        let all = LocatedErrors(vec![e.clone(), e]);
        assert_eq!(all.to_string(), "c.toml: unreadable\nc.toml: unreadable");
    }

    #[test]
    fn columns_count_characters_and_offsets_inside_a_character_are_safe() {
        assert_eq!(line_col("é = 1", 3), (1, 3));
        assert_eq!(line_col("é", 1), (1, 1));
    }
}
