//! Maps places in the config (a path like `node[2].groups[0]`) back to line and column in
//! the file, so every validation error can point at the text that caused it.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::located::line_col;

/// One step of a path into the document.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Byte range of the value at `path`, or of its nearest existing ancestor.
pub fn span_of(doc: &Spanned<DeTable<'_>>, path: &[Seg<'_>]) -> Range<usize> {
    let mut best = doc.span();
    let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
    let mut array: Option<&[Spanned<DeValue<'_>>]> = None;
    for seg in path {
        let next: Option<&Spanned<DeValue<'_>>> = match (*seg, table, array) {
            (Seg::Key(k), Some(t), _) => {
                t.iter().find(|(key, _)| key.get_ref() == k).map(|(_, v)| v)
            }
            (Seg::Index(i), _, Some(a)) => a.get(i),
            _ => None,
        };
        let Some(value) = next else { break };
        best = value.span();
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(&a[..]),
            _ => {}
        }
    }
    best
}

/// Where the value at `path` is written in the config file at `file` (re-read), as
/// (line, column); (0, 0) if the file cannot be read or parsed. For errors found after the
/// config was accepted, by checks that span more than the config (its policies).
pub fn in_file(file: &std::path::Path, path: &[Seg<'_>]) -> (usize, usize) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return (0, 0);
    };
    match DeTable::parse(&text) {
        Ok(doc) => line_col(&text, span_of(&doc, path).start),
        Err(_) => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_array_values() {
        let text = "[daemon]\nslots = 1\n\n[[node]]\nname = \"a\"\n\n[[node]]\nname = \"b\"\ngroups = [\"x\", \"y\"]\n";
        let doc = DeTable::parse(text).unwrap();
        let span = span_of(
            &doc,
            &[
                Seg::Key("node"),
                Seg::Index(1),
                Seg::Key("groups"),
                Seg::Index(1),
            ],
        );
        assert_eq!(&text[span.clone()], "\"y\"");
        assert_eq!(line_col(text, span.start), (9, 16));
        let slots = span_of(&doc, &[Seg::Key("daemon"), Seg::Key("slots")]);
        assert_eq!(line_col(text, slots.start), (2, 9));
    }

    #[test]
    fn missing_path_falls_back_to_ancestor() {
        let text = "[[node]]\nname = \"a\"\n";
        let doc = DeTable::parse(text).unwrap();
        let span = span_of(&doc, &[Seg::Key("node"), Seg::Index(0), Seg::Key("groups")]);
        assert_eq!(line_col(text, span.start).0, 1);
    }
}
