//! Reads the documentation out of `config.toml.example` (or the production config made from
//! it), which is the one place each config key is described. Its conventions:
//!
//! - The first comment block, up to the first blank line, is the file's introduction.
//! - A table header (`[daemon]`, `[[user]]`) or a key line (`slots = 4`) may be commented out
//!   (`# [email.smtp]`, `# socket_group = "vigil"`): it still documents the key.
//! - The comment block right above a header or key line (no blank line between) is its
//!   description; a comment after a key's value (`port = 587  # default 587`) is too, and may
//!   go on in lines that start with `#` and spaces up to a second `#`.
//! - In the block above a table header, lines of the form `#   KEY  text` (three spaces,
//!   the key, two or more spaces) describe that table's keys, with continuation lines indented
//!   further; `[table.sub]` as KEY names a sub-table.

use std::collections::BTreeMap;

/// The documentation of a config file.
#[derive(Debug, Default)]
pub struct Doc {
    /// The introduction's paragraphs.
    pub intro: Vec<String>,
    /// Tables in order of first appearance; the top level is the table with the empty name.
    pub tables: Vec<Table>,
}

#[derive(Debug, Default)]
pub struct Table {
    /// Dotted name: `daemon`, `email.smtp`, `user`; empty for the top level.
    pub name: String,
    /// Written `[[name]]`.
    pub array: bool,
    /// Paragraphs describing the table.
    pub text: Vec<String>,
    pub keys: Vec<KeyDoc>,
}

#[derive(Debug, Default, Clone)]
pub struct KeyDoc {
    /// The key's name in its table (`slots`), or a sub-table's dotted name (`plugin.config`).
    pub name: String,
    /// The value written in the file for it, if a key line shows one (`4`, `"2h"`).
    pub value: Option<String>,
    /// Paragraphs describing the key, in file order.
    pub text: Vec<String>,
}

impl Doc {
    /// Every key path the file documents, tables included (`daemon`, `daemon.slots`,
    /// `user.email`), with whether it was written as an array of tables.
    pub fn paths(&self) -> BTreeMap<String, Written> {
        let mut paths = BTreeMap::new();
        for table in &self.tables {
            if !table.name.is_empty() {
                let written = if table.array {
                    Written::ArrayOfTables
                } else {
                    Written::Table
                };
                paths.insert(table.name.clone(), written);
            }
            for key in &table.keys {
                paths
                    .entry(join(&table.name, &key.name))
                    .or_insert(Written::Key);
            }
        }
        paths
    }

    fn table(&mut self, name: &str, array: bool) -> &mut Table {
        let i = match self.tables.iter().position(|t| t.name == name) {
            Some(i) => i,
            None => {
                self.tables.push(Table {
                    name: name.to_owned(),
                    array,
                    ..Table::default()
                });
                self.tables.len() - 1
            }
        };
        &mut self.tables[i]
    }
}

/// How the file shows a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Key,
    Table,
    ArrayOfTables,
}

fn join(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_owned()
    } else {
        format!("{table}.{key}")
    }
}

/// A comment block being collected: prose paragraphs and `#   KEY  text` entries.
#[derive(Default)]
struct Block {
    paragraphs: Vec<String>,
    entries: Vec<(String, String)>,
    /// The last line went to the last entry (so an indented line continues it).
    in_entry: bool,
    /// The last line was prose (so the next prose line continues its paragraph).
    in_paragraph: bool,
}

impl Block {
    fn prose(&mut self, line: &str) {
        self.in_entry = false;
        if line.is_empty() {
            self.in_paragraph = false;
            return;
        }
        match self.paragraphs.last_mut() {
            Some(p) if self.in_paragraph => {
                p.push(' ');
                p.push_str(line);
            }
            _ => self.paragraphs.push(line.to_owned()),
        }
        self.in_paragraph = true;
    }

    fn entry(&mut self, key: &str, text: &str) {
        self.entries.push((key.to_owned(), text.to_owned()));
        self.in_entry = true;
        self.in_paragraph = false;
    }

    fn continue_entry(&mut self, text: &str) {
        if let Some((_, t)) = self.entries.last_mut() {
            t.push(' ');
            t.push_str(text);
        }
    }

    fn is_empty(&self) -> bool {
        self.paragraphs.is_empty() && self.entries.is_empty()
    }
}

/// One line, classified.
enum Line<'a> {
    Blank,
    Header {
        name: &'a str,
        array: bool,
    },
    Key {
        name: &'a str,
        value: &'a str,
        comment: Option<&'a str>,
    },
    /// `#    # more` after a key line's trailing comment.
    MoreComment(&'a str),
    Entry {
        key: &'a str,
        text: &'a str,
    },
    /// A line indented four or more spaces after `#`.
    Indented(&'a str),
    Prose(&'a str),
}

fn classify(raw: &str) -> Line<'_> {
    let line = raw.trim_end();
    if line.is_empty() {
        return Line::Blank;
    }
    let (commented, body) = match line.strip_prefix('#') {
        None => (false, line),
        Some(rest) => match rest.strip_prefix(' ') {
            Some(rest) if !rest.starts_with(' ') => (true, rest),
            _ => (true, ""),
        },
    };
    if let Some(header) = header(body) {
        return header;
    }
    if let Some(key) = key_line(body) {
        return key;
    }
    if !commented {
        // Not a comment, not a header, not a key: a continuation of a multi-line value.
        return Line::Prose("");
    }
    let rest = &line[1..];
    let indent = rest.len() - rest.trim_start().len();
    let text = rest.trim_start();
    if indent >= 4 {
        if let Some(more) = text.strip_prefix('#') {
            return Line::MoreComment(more.trim());
        }
        return Line::Indented(text);
    }
    if indent == 3 {
        if let Some((key, text)) = text.split_once("  ") {
            if !key.contains(' ') {
                return Line::Entry {
                    key,
                    text: text.trim(),
                };
            }
        }
    }
    Line::Prose(text)
}

fn header(body: &str) -> Option<Line<'_>> {
    let body = strip_comment(body).0.trim_end();
    let (inner, array) = if let Some(b) = body.strip_prefix("[[") {
        (b.strip_suffix("]]")?, true)
    } else {
        (body.strip_prefix('[')?.strip_suffix(']')?, false)
    };
    is_dotted_name(inner).then_some(Line::Header { name: inner, array })
}

fn key_line(body: &str) -> Option<Line<'_>> {
    let (name, rest) = body.split_once(" = ")?;
    if !is_name(name) {
        return None;
    }
    let (value, comment) = strip_comment(rest);
    Some(Line::Key {
        name,
        value: value.trim(),
        comment: comment.map(str::trim),
    })
}

/// Splits `value  # comment` at the first `#` outside a string.
fn strip_comment(s: &str) -> (&str, Option<&str>) {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') => return (&s[..i], Some(&s[i + 1..])),
            _ => {}
        }
    }
    (s, None)
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_dotted_name(s: &str) -> bool {
    s.split('.').all(is_name)
}

/// Reads a config file's documentation.
pub fn parse(text: &str) -> Doc {
    let mut doc = Doc::default();
    doc.table("", false);
    let mut current = String::new();
    let mut block = Block::default();
    let mut intro_done = false;
    // The key whose trailing comment `MoreComment` lines continue.
    let mut last_key: Option<(String, String)> = None;

    for raw in text.lines() {
        let line = classify(raw);
        if !matches!(line, Line::MoreComment(_)) {
            last_key = None;
        }
        match line {
            Line::Blank => {
                if !intro_done && !block.is_empty() {
                    doc.intro = std::mem::take(&mut block.paragraphs);
                }
                intro_done = true;
                // A block not followed by what it describes is a free-standing remark.
                block = Block::default();
            }
            Line::Header { name, array } => {
                intro_done = true;
                let block = std::mem::take(&mut block);
                current = name.to_owned();
                let table = doc.table(name, array);
                table.text.extend(block.paragraphs);
                for (key, text) in block.entries {
                    let key = match key.strip_prefix('[').and_then(|k| k.strip_suffix(']')) {
                        Some(sub) => sub.strip_prefix(&format!("{name}.")).unwrap_or(sub),
                        None => &key,
                    };
                    add_key(table, key, None, vec![text]);
                }
            }
            Line::Key {
                name,
                value,
                comment,
            } => {
                intro_done = true;
                let mut text = std::mem::take(&mut block).paragraphs;
                text.extend(comment.filter(|c| !c.is_empty()).map(str::to_owned));
                let table = doc.table(&current.clone(), false);
                add_key(table, name, Some(value), text);
                last_key = Some((current.clone(), name.to_owned()));
            }
            Line::MoreComment(more) => {
                if let Some((table, key)) = &last_key {
                    let table = doc.table(table, false);
                    if let Some(k) = table.keys.iter_mut().find(|k| &k.name == key) {
                        match k.text.last_mut() {
                            Some(t) => {
                                t.push(' ');
                                t.push_str(more);
                            }
                            None => k.text.push(more.to_owned()),
                        }
                    }
                } else {
                    block.prose(more);
                }
            }
            Line::Entry { key, text } => block.entry(key, text),
            Line::Indented(text) if block.in_entry => block.continue_entry(text),
            Line::Indented(text) => {
                // An indented example (a command line) is a paragraph of its own.
                block.in_paragraph = false;
                block.prose(text);
                block.in_paragraph = false;
            }
            Line::Prose(text) => block.prose(text),
        }
    }
    doc
}

fn add_key(table: &mut Table, name: &str, value: Option<&str>, text: Vec<String>) {
    let key = match table.keys.iter().position(|k| k.name == name) {
        Some(i) => &mut table.keys[i],
        None => {
            table.keys.push(KeyDoc {
                name: name.to_owned(),
                ..KeyDoc::default()
            });
            table.keys.last_mut().expect("just pushed")
        }
    };
    if key.value.is_none() {
        key.value = value.map(str::to_owned);
    }
    for t in text {
        if !key.text.contains(&t) {
            key.text.push(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# Intro line one
# goes on.
#
#     some --command
#
# Second paragraph.

# Top-level key.
top = "x"

[daemon]
# Slots doc
# more slots.
slots = 4
# Group doc.
# group = "vigil"

# Free remark, not attached.

# Mail over SMTP:
# [email.smtp]
# host = "h"        # required
# timeout = "30s"   # one attempt
#                   # at most

# Users.
#   email      required; where
#              mail goes
#   [user.sub]  free-form
[[user]]
email = "a@b"
"#;

    #[test]
    fn reads_intro_tables_keys_and_entries() {
        let doc = parse(SAMPLE);
        assert_eq!(
            doc.intro,
            [
                "Intro line one goes on.",
                "some --command",
                "Second paragraph."
            ]
        );
        let names: Vec<&str> = doc.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["", "daemon", "email.smtp", "user"]);
        let top = &doc.tables[0];
        assert_eq!(top.keys[0].name, "top");
        assert_eq!(top.keys[0].value.as_deref(), Some("\"x\""));
        assert_eq!(top.keys[0].text, ["Top-level key."]);
        let daemon = &doc.tables[1];
        assert_eq!(daemon.keys[0].text, ["Slots doc more slots."]);
        assert_eq!(daemon.keys[1].name, "group");
        assert_eq!(daemon.keys[1].text, ["Group doc."]);
        let smtp = &doc.tables[2];
        assert_eq!(smtp.text, ["Mail over SMTP:"]);
        assert_eq!(smtp.keys[0].text, ["required"]);
        assert_eq!(smtp.keys[1].text, ["one attempt at most"]);
        let user = &doc.tables[3];
        assert!(user.array);
        assert_eq!(user.text, ["Users."]);
        assert_eq!(user.keys[0].name, "email");
        assert_eq!(user.keys[0].text, ["required; where mail goes"]);
        assert_eq!(user.keys[0].value.as_deref(), Some("\"a@b\""));
        assert_eq!(user.keys[1].name, "sub");
        let paths = doc.paths();
        assert_eq!(paths.get("user.sub"), Some(&Written::Key));
        assert_eq!(paths.get("user"), Some(&Written::ArrayOfTables));
        assert_eq!(paths.get("email.smtp.timeout"), Some(&Written::Key));
    }
}
