//! Collects every problem found in one config document, each pointing at the text that
//! caused it. `load` reports what serde rejects; `validate` what serde cannot judge.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use toml::de::DeTable;
use toml::Spanned;

use super::locate::{span_of, Seg};
use crate::located::{line_col, LocatedError, LocatedErrors};

/// Collects errors against one document.
pub struct Reporter<'a> {
    file: &'a Path,
    text: &'a str,
    pub(super) doc: Option<&'a Spanned<DeTable<'a>>>,
    errors: Vec<(usize, LocatedError)>,
    /// For each `[[section]]`: the document index of every entry that deserialized, so that
    /// validation (which sees only those) points at the right `[[...]]` when an earlier
    /// entry was rejected.
    pub(super) entries: HashMap<String, Vec<usize>>,
    /// Sections with an entry that did not deserialize: references to them may be dangling
    /// only because of that entry, which is reported already.
    pub(super) incomplete: HashSet<String>,
}

impl<'a> Reporter<'a> {
    pub(super) fn new(file: &'a Path, text: &'a str) -> Self {
        Reporter {
            file,
            text,
            doc: None,
            errors: Vec::new(),
            entries: HashMap::new(),
            incomplete: HashSet::new(),
        }
    }

    /// Whether every `[[section]]` entry deserialized, so a name missing from it is really
    /// missing (and not just in an entry that was rejected).
    pub(super) fn complete(&self, section: &str) -> bool {
        !self.incomplete.contains(section)
    }

    pub(super) fn at_span(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let (offset, (line, column)) = match span {
            Some(s) => (s.start, line_col(self.text, s.start)),
            None => (0, (0, 0)),
        };
        self.errors.push((
            offset,
            LocatedError {
                file: self.file.to_owned(),
                line,
                column,
                message: message.into(),
            },
        ));
    }

    /// Reports a problem at the value found under `path`.
    pub(super) fn at(&mut self, path: &[Seg<'_>], message: impl Into<String>) {
        let mut path = path.to_vec();
        if let [Seg::Key(section), Seg::Index(i), ..] = path[..] {
            if let Some(&at) = self.entries.get(section).and_then(|e| e.get(i)) {
                path[1] = Seg::Index(at);
            }
        }
        let span = self.doc.map(|d| span_of(d, &path));
        self.at_span(span, message);
    }

    pub(super) fn finish(mut self) -> Result<(), LocatedErrors> {
        if self.errors.is_empty() {
            return Ok(());
        }
        self.errors.sort_by_key(|(offset, _)| *offset);
        Err(LocatedErrors(
            self.errors.into_iter().map(|(_, e)| e).collect(),
        ))
    }
}
