//! Reads a config file into a [`Config`], collecting every error with its location.
//!
//! Each top-level section (and each `[[user]]`, `[[node]]`, ... entry) is deserialized on its
//! own, so one typo does not hide the next: an administrator sees all problems in one run.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::report::Reporter;
use super::{validate, Config, DaemonConfig, EmailConfig};
use crate::located::{LocatedError, LocatedErrors};

/// Loads, resolves and validates a config file.
pub fn load(path: &Path) -> Result<Config, LocatedErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        LocatedErrors::one(LocatedError::in_file(
            path,
            format!("cannot read the config file: {e}"),
        ))
    })?;
    let base = absolute_dir_of(path);
    parse(path, &text, &base)
}

/// Parses config text; `base` is the directory relative paths are resolved against.
pub fn parse(path: &Path, text: &str, base: &Path) -> Result<Config, LocatedErrors> {
    let mut report = Reporter::new(path, text);
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for e in syntax_errors {
            report.at_span(e.span(), format!("TOML syntax: {}", e.message().trim()));
        }
        return Err(report.finish().unwrap_err());
    }
    if doc.get_ref().is_empty() {
        // Editors and config-management tools truncate before they write: an empty file
        // is far more often a half-written one than a deliberate "run with nothing".
        report.at_span(
            None,
            "the config file is empty or has only comments: refusing it (a file being \
             rewritten is often empty for a moment); write the whole config, then reload"
                .to_owned(),
        );
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
        tasks: Default::default(),
        ssh: Default::default(),
        users: Vec::new(),
        groups: Vec::new(),
        nodes: Vec::new(),
        plugins: Vec::new(),
        schedules: Vec::new(),
        webhooks: Vec::new(),
        node_index: Default::default(),
        group_index: Default::default(),
    };
    for (key, value) in doc.get_ref().iter() {
        match key.get_ref().as_ref() {
            "policy_dir" => one(value, report, &mut config.policy_dir),
            "daemon" => one(value, report, &mut config.daemon),
            "email" => one(value, report, &mut config.email),
            "tasks" => one(value, report, &mut config.tasks),
            "ssh" => one(value, report, &mut config.ssh),
            "user" => many(value, "user", report, &mut config.users),
            "group" => many(value, "group", report, &mut config.groups),
            "node" => many(value, "node", report, &mut config.nodes),
            "plugin" => many(value, "plugin", report, &mut config.plugins),
            "schedule" => many(value, "schedule", report, &mut config.schedules),
            "webhook" => many(value, "webhook", report, &mut config.webhooks),
            other => report.at_span(
                Some(key.span()),
                format!(
                    "unknown key `{other}`; expected one of policy_dir, [daemon], [email], \
                     [tasks], [ssh], [[user]], [[group]], [[node]], [[plugin]], [[schedule]], [[webhook]]"
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
        match &node.ssh {
            // A path on the remote host: never resolved here.
            Some(_) if node.root.as_os_str().is_empty() => node.root = "/".into(),
            Some(_) => {}
            None if node.root.as_os_str().is_empty() => {}
            None => fix(&mut node.root),
        }
    }
    for group in &mut config.groups {
        if let Some(id) = group.identity_file.as_mut() {
            fix(id);
        }
    }
    if let Some(id) = config.ssh.identity_file.as_mut() {
        fix(id);
    }
    if config.ssh.known_hosts.as_os_str().is_empty() {
        config.ssh.known_hosts = config.daemon.state_dir.join("known_hosts");
    } else {
        fix(&mut config.ssh.known_hosts);
    }
    for w in &mut config.webhooks {
        fix(&mut w.secret_file);
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

    fn parse_str(text: &str) -> Result<Config, LocatedErrors> {
        parse(Path::new("test.toml"), text, Path::new("/base"))
    }

    #[test]
    fn an_empty_or_comment_only_file_is_refused() {
        for text in ["", "\n\n", "# vigil config\n  # nothing yet\n"] {
            let errs = parse_str(text).unwrap_err().0;
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(errs[0].message.contains("empty"), "{}", errs[0].message);
        }
    }

    #[test]
    fn a_file_with_only_a_section_gives_defaults() {
        let c = parse_str("[daemon]\n").unwrap();
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
