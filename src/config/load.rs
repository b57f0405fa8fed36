//! Reads a config file into a [`Config`], collecting every error with its location.
//!
//! Each top-level section (and each `[[user]]`, `[[node]]`, ... entry) is deserialized on its
//! own, so one typo does not hide the next: an administrator sees all problems in one run.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::locate::{line_col, span_of, Seg};
use super::{validate, Config, DaemonConfig, EmailConfig};

/// One problem in a config file, pointing at the text that caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is not tied to a place (e.g. the file is unreadable).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// Every problem found in a config file, in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
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

/// Collects errors against one document.
pub(super) struct Reporter<'a> {
    file: &'a Path,
    text: &'a str,
    doc: Option<&'a Spanned<DeTable<'a>>>,
    errors: Vec<(usize, ConfigError)>,
    /// For each `[[section]]`: the document index of every entry that deserialized, so that
    /// validation (which sees only those) points at the right `[[...]]` when an earlier
    /// entry was rejected.
    entries: HashMap<String, Vec<usize>>,
    /// Sections with an entry that did not deserialize: references to them may be dangling
    /// only because of that entry, which is reported already.
    incomplete: HashSet<String>,
}

impl<'a> Reporter<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
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

    fn at_span(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let (offset, (line, column)) = match span {
            Some(s) => (s.start, line_col(self.text, s.start)),
            None => (0, (0, 0)),
        };
        self.errors.push((
            offset,
            ConfigError {
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

    fn finish(mut self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            return Ok(());
        }
        self.errors.sort_by_key(|(offset, _)| *offset);
        Err(ConfigErrors(
            self.errors.into_iter().map(|(_, e)| e).collect(),
        ))
    }
}

/// Loads, resolves and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: 0,
            column: 0,
            message: format!("cannot read the config file: {e}"),
        }])
    })?;
    let base = absolute_dir_of(path);
    parse(path, &text, &base)
}

/// Parses config text; `base` is the directory relative paths are resolved against.
pub fn parse(path: &Path, text: &str, base: &Path) -> Result<Config, ConfigErrors> {
    let mut report = Reporter::new(path, text);
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for e in syntax_errors {
            report.at_span(e.span(), format!("TOML syntax: {}", e.message().trim()));
        }
        return Err(report.finish().unwrap_err());
    }
    report.doc = Some(&doc);
    let mut config = sections(&doc, &mut report);
    resolve_paths(&mut config, base);
    validate::validate(&mut config, &mut report);
    report.finish().map(|()| config)
}

/// Deserializes each section separately so that every error is seen.
fn sections(doc: &Spanned<DeTable<'_>>, report: &mut Reporter<'_>) -> Config {
    let mut config = Config {
        policy_dir: super::defaults::policy_dir(),
        daemon: DaemonConfig::default(),
        email: EmailConfig::default(),
        users: Vec::new(),
        groups: Vec::new(),
        nodes: Vec::new(),
        plugins: Vec::new(),
        schedules: Vec::new(),
    };
    for (key, value) in doc.get_ref().iter() {
        match key.get_ref().as_ref() {
            "policy_dir" => one(value, report, &mut config.policy_dir),
            "daemon" => one(value, report, &mut config.daemon),
            "email" => one(value, report, &mut config.email),
            "user" => many(value, "user", report, &mut config.users),
            "group" => many(value, "group", report, &mut config.groups),
            "node" => many(value, "node", report, &mut config.nodes),
            "plugin" => many(value, "plugin", report, &mut config.plugins),
            "schedule" => many(value, "schedule", report, &mut config.schedules),
            other => report.at_span(
                Some(key.span()),
                format!(
                    "unknown key `{other}`; expected one of policy_dir, [daemon], [email], \
                     [[user]], [[group]], [[node]], [[plugin]], [[schedule]]"
                ),
            ),
        }
    }
    config
}

fn de<T: DeserializeOwned>(value: &Spanned<DeValue<'_>>) -> Result<T, toml::de::Error> {
    T::deserialize(ValueDeserializer::from(value.clone()))
}

fn one<T: DeserializeOwned>(value: &Spanned<DeValue<'_>>, report: &mut Reporter<'_>, slot: &mut T) {
    match de(value) {
        Ok(v) => *slot = v,
        Err(e) => report.at_span(
            e.span().or(Some(value.span())),
            e.message().trim().to_owned(),
        ),
    }
}

fn many<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    section: &str,
    report: &mut Reporter<'_>,
    out: &mut Vec<T>,
) {
    let DeValue::Array(items) = value.get_ref() else {
        report.at_span(
            Some(value.span()),
            format!("`{section}` must be an array of tables: write [[{section}]]"),
        );
        return;
    };
    let mut positions = Vec::with_capacity(items.len());
    for (at, item) in items.iter().enumerate() {
        match de(item) {
            Ok(v) => {
                out.push(v);
                positions.push(at);
            }
            Err(e) => {
                report.incomplete.insert(section.to_owned());
                report.at_span(
                    e.span().or(Some(item.span())),
                    format!("in [[{section}]]: {}", e.message().trim()),
                );
            }
        }
    }
    report.entries.insert(section.to_owned(), positions);
}

fn absolute_dir_of(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned())
}

/// Relative paths in the config are relative to the config file's directory, so a config
/// works the same whatever directory the daemon was started from.
fn resolve_paths(config: &mut Config, base: &Path) {
    let fix = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    fix(&mut config.policy_dir);
    fix(&mut config.daemon.state_dir);
    fix(&mut config.daemon.socket);
    fix(&mut config.daemon.plugin_dir);
    for node in &mut config.nodes {
        fix(&mut node.root);
    }
    if let Some(pw) = config
        .email
        .smtp
        .as_mut()
        .and_then(|s| s.password_file.as_mut())
    {
        fix(pw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigErrors> {
        parse(Path::new("test.toml"), text, Path::new("/base"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse_str("").unwrap();
        assert_eq!(c.daemon.slots, 4);
        assert_eq!(c.daemon.queue_capacity, 10_000);
        assert_eq!(c.daemon.task_timeout.as_secs(), 7200);
        assert_eq!(c.daemon.socket, PathBuf::from("/run/vigil/vigil.sock"));
    }

    #[test]
    fn relative_paths_resolve_against_the_config_dir() {
        let c = parse_str("[daemon]\nstate_dir = \"state\"\n").unwrap();
        assert_eq!(c.daemon.state_dir, PathBuf::from("/base/state"));
    }

    #[test]
    fn every_section_error_is_reported_with_location() {
        let text = "[daemon]\nslots = \"four\"\n\n[[node]]\nname = \"a\"\nroot = \"/\"\ncolour = \"red\"\n\n[bogus]\n";
        let errs = parse_str(text).unwrap_err().0;
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].column), (2, 9));
        assert!(
            errs[0].message.contains("invalid type"),
            "{}",
            errs[0].message
        );
        assert_eq!(errs[1].line, 7);
        assert!(
            errs[1].message.contains("unknown field `colour`"),
            "{}",
            errs[1].message
        );
        assert_eq!(errs[2].line, 9);
        assert!(errs[2].message.contains("unknown key `bogus`"));
    }

    #[test]
    fn syntax_errors_have_locations() {
        let errs = parse_str("[daemon\nslots = 1\n").unwrap_err().0;
        assert_eq!(errs[0].line, 1);
        assert!(
            errs[0].to_string().starts_with("test.toml:1:"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn durations_are_human() {
        let c = parse_str("[daemon]\ntask_timeout = \"90m\"\nshutdown_grace = \"5s\"\n").unwrap();
        assert_eq!(c.daemon.task_timeout.as_secs(), 5400);
        assert_eq!(c.daemon.shutdown_grace.as_secs(), 5);
    }
}
