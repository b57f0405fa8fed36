//! Reads policy files into compiled [`Policy`]s, collecting every error with its location.
//!
//! Like the config loader, the document is parsed with toml's recoverable parser and each
//! top-level key and each `[[check]]` is deserialized on its own, so one mistake does not
//! hide the next; values are kept `Spanned` so that semantic errors (a bad regex, an unknown
//! plugin) point at the text that caused them.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use regex::Regex;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;
use vigil_plugin::Value;

use super::expect::{AttrExpect, Cond, ContentExpect, Expectation};
use super::version::DebVersion;
use super::{Check, Expect, KeyGlob, Policy, Quantifier, Selector};
use crate::config::Scope;
use crate::located::{line_col, LocatedError, LocatedErrors};

/// Loads every `*.toml` file in `dir` (not hidden ones, not subdirectories), one policy per
/// file, sorted by policy name. A missing directory means no policies. Errors from all
/// files are reported together, including a policy name used by two files.
pub fn load_dir(dir: &Path, plugins: &BTreeSet<String>) -> Result<Vec<Policy>, LocatedErrors> {
    let unreadable = |file: &Path, what: String| LocatedError {
        file: file.to_owned(),
        line: 0,
        column: 0,
        message: what,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            let msg = format!("cannot read the policy directory: {e}");
            return Err(LocatedErrors(vec![unreadable(dir, msg)]));
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or(".");
            !name.starts_with('.') && name.ends_with(".toml") && p.is_file()
        })
        .collect();
    files.sort();
    let mut errors = Vec::new();
    let mut policies: Vec<(Policy, (usize, usize))> = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(unreadable(
                    &file,
                    format!("cannot read the policy file: {e}"),
                ));
                continue;
            }
        };
        match parse_located(&file, &text, plugins) {
            Ok(p) => policies.push(p),
            Err(e) => errors.extend(e.0),
        }
    }
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (p, (line, column)) in &policies {
        if let Some(first) = seen.get(&p.name) {
            errors.push(LocatedError {
                file: p.file.clone(),
                line: *line,
                column: *column,
                message: format!(
                    "policy name `{}` is already used by {}",
                    p.name,
                    first.display()
                ),
            });
        } else {
            seen.insert(p.name.clone(), p.file.clone());
        }
    }
    if !errors.is_empty() {
        return Err(LocatedErrors(errors));
    }
    let mut policies: Vec<Policy> = policies.into_iter().map(|(p, _)| p).collect();
    policies.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(policies)
}

/// Parses one policy file's text. `plugins` are the configured plugin names: a check naming
/// any other plugin is an error.
pub fn parse(file: &Path, text: &str, plugins: &BTreeSet<String>) -> Result<Policy, LocatedErrors> {
    parse_located(file, text, plugins).map(|(p, _)| p)
}

/// [`parse`], also returning where the policy's name is written.
fn parse_located(
    file: &Path,
    text: &str,
    plugins: &BTreeSet<String>,
) -> Result<(Policy, (usize, usize)), LocatedErrors> {
    let mut r = Reporter {
        file,
        text,
        errors: Vec::new(),
    };
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for e in syntax_errors {
            r.at(e.span(), format!("TOML syntax: {}", e.message().trim()));
        }
        return Err(r.finish());
    }
    let mut name: Option<Spanned<String>> = None;
    let mut description: Option<String> = None;
    let mut scope: Option<Scope> = None;
    let mut raw_checks = Vec::new();
    let mut written = BTreeSet::new();
    for (key, value) in doc.get_ref().iter() {
        written.insert(key.get_ref().to_string());
        match key.get_ref().as_ref() {
            "name" => name = r.de(value, ""),
            "description" => description = r.de(value, ""),
            "scope" => scope = r.de(value, ""),
            "check" => match value.get_ref() {
                DeValue::Array(items) => {
                    for item in items.iter() {
                        if let Some(c) = r.de::<RawCheck>(item, "in [[check]]: ") {
                            raw_checks.push((item.span(), c));
                        }
                    }
                }
                _ => r.at(
                    Some(value.span()),
                    "`check` must be written [[check]]".to_owned(),
                ),
            },
            other => r.at(
                Some(key.span()),
                format!("unknown key `{other}`; expected name, description, scope or [[check]]"),
            ),
        }
    }
    for field in ["name", "description"] {
        if !written.contains(field) {
            r.at(Some(0..0), format!("missing field `{field}`"));
        }
    }
    if let Some(n) = &name {
        if let Err(why) = check_name(n.get_ref()) {
            r.at(Some(n.span()), format!("policy name {why}"));
        }
    }
    let policy_name = name
        .as_ref()
        .map(|n| n.get_ref().clone())
        .unwrap_or_default();
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut checks = Vec::new();
    for (span, raw) in raw_checks {
        let id = raw.id.get_ref().clone();
        if let Some(line) = ids.get(&id) {
            let msg = format!("duplicate check id `{id}` (first used on line {line})");
            r.at(Some(raw.id.span()), msg);
        } else {
            ids.insert(id, line_col(text, raw.id.span().start).0);
        }
        if let Some(c) = compile(raw, span, &policy_name, plugins, &mut r) {
            checks.push(c);
        }
    }
    if r.has_errors() {
        return Err(r.finish());
    }
    let name = name.expect("reported when missing");
    let at = line_col(text, name.span().start);
    let policy = Policy {
        name: name.into_inner(),
        description: description.unwrap_or_default(),
        scope,
        checks,
        file: file.to_owned(),
    };
    Ok((policy, at))
}

/// A `[[check]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    id: Spanned<String>,
    description: Option<String>,
    plugin: Spanned<String>,
    key: Option<Spanned<String>>,
    keys: Option<Spanned<String>>,
    exclude_keys: Option<Vec<Spanned<String>>>,
    quantifier: Option<Spanned<Quantifier>>,
    present: Option<Spanned<bool>>,
    absent: Option<Spanned<bool>>,
    attributes: Option<Spanned<BTreeMap<String, Spanned<RawCond>>>>,
    content_matches: Option<Spanned<String>>,
    content_not_matches: Option<Spanned<String>>,
}

/// The conditions on one attribute, as written: `mode = { one_of = ["0640", "0600"] }`.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of conditions, e.g. { equals = 0 } or { matches = '^0[0-7]{3}$' }"
)]
struct RawCond {
    equals: Option<Value>,
    one_of: Option<Spanned<Vec<Value>>>,
    matches: Option<Spanned<String>>,
    not_matches: Option<Spanned<String>>,
    #[serde(rename = "<", alias = "lt")]
    lt: Option<i64>,
    #[serde(rename = "<=", alias = "le")]
    le: Option<i64>,
    #[serde(rename = ">=", alias = "ge")]
    ge: Option<i64>,
    #[serde(rename = ">", alias = "gt")]
    gt: Option<i64>,
    version_at_least: Option<Spanned<String>>,
    version_below: Option<Spanned<String>>,
}

/// Validates and compiles one check; `None` after reporting its errors.
fn compile(
    raw: RawCheck,
    span: Range<usize>,
    policy: &str,
    plugins: &BTreeSet<String>,
    r: &mut Reporter<'_>,
) -> Option<Check> {
    let before = r.errors.len();
    if let Err(why) = check_name(raw.id.get_ref()) {
        r.at(Some(raw.id.span()), format!("check id {why}"));
    }
    if !plugins.contains(raw.plugin.get_ref()) {
        let known: Vec<&str> = plugins.iter().map(String::as_str).collect();
        let msg = format!(
            "unknown plugin `{}`; configured plugins: {}",
            raw.plugin.get_ref(),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
        r.at(Some(raw.plugin.span()), msg);
    }
    let selector = selector(&raw, &span, r);
    let expect = expectation(&raw, &span, r);
    if r.errors.len() > before {
        return None;
    }
    Some(Check {
        policy: policy.to_owned(),
        id: raw.id.into_inner(),
        description: raw.description,
        plugin: raw.plugin.into_inner(),
        selector: selector?,
        expect: expect?,
    })
}

fn selector(raw: &RawCheck, span: &Range<usize>, r: &mut Reporter<'_>) -> Option<Selector> {
    match (&raw.key, &raw.keys) {
        (Some(_), Some(keys)) => {
            r.at(
                Some(keys.span()),
                "give either `key` or `keys`, not both".to_owned(),
            );
            None
        }
        (None, None) => {
            let msg = "missing item selector: give `key` (one exact key) or `keys` (a glob)";
            r.at(Some(span.clone()), msg.to_owned());
            None
        }
        (Some(key), None) => {
            if let Some(q) = &raw.quantifier {
                let msg = "`quantifier` applies to `keys` only: `key` selects a single item";
                r.at(Some(q.span()), msg.to_owned());
            }
            if let Some(x) = raw.exclude_keys.as_ref().and_then(|x| x.first()) {
                r.at(
                    Some(x.span()),
                    "`exclude_keys` applies to `keys` only".to_owned(),
                );
            }
            Some(Selector::Key(key.get_ref().clone()))
        }
        (None, Some(keys)) => {
            let compiled = glob(keys, r);
            let mut set = GlobSetBuilder::new();
            let mut exclude = Vec::new();
            for x in raw.exclude_keys.iter().flatten() {
                if let Some(g) = glob(x, r) {
                    set.add(g);
                    exclude.push(x.get_ref().clone());
                }
            }
            let exclude_set = set.build().unwrap_or_else(|e| {
                r.at(Some(keys.span()), format!("invalid exclude_keys: {e}"));
                GlobSet::empty()
            });
            let quantifier = raw.quantifier.as_ref().map(|q| *q.get_ref());
            if let (Some(q), true) = (
                &raw.quantifier,
                raw.present.is_some() || raw.absent.is_some(),
            ) {
                let msg = "`quantifier` does not apply to `present`/`absent`: with `keys`, \
                           present means at least one item matches, absent means none does";
                r.at(Some(q.span()), msg.to_owned());
            }
            Some(Selector::Keys(Box::new(KeyGlob {
                pattern: keys.get_ref().clone(),
                exclude,
                quantifier: quantifier.unwrap_or_default(),
                matcher: compiled.as_ref()?.compile_matcher(),
                glob: compiled?,
                exclude_set,
            })))
        }
    }
}

/// Compiles a key glob: `*` and `?` stay within one `/`-separated component, `**` crosses.
fn glob(pattern: &Spanned<String>, r: &mut Reporter<'_>) -> Option<Glob> {
    GlobBuilder::new(pattern.get_ref())
        .literal_separator(true)
        .build()
        .map_err(|e| r.at(Some(pattern.span()), format!("invalid glob: {}", e.kind())))
        .ok()
}

fn expectation(raw: &RawCheck, span: &Range<usize>, r: &mut Reporter<'_>) -> Option<Expect> {
    for (flag, name) in [(&raw.present, "present"), (&raw.absent, "absent")] {
        if let Some(f) = flag.as_ref().filter(|f| !*f.get_ref()) {
            let other = if name == "present" {
                "absent"
            } else {
                "present"
            };
            let msg = format!("`{name} = false` is not allowed: write `{other} = true`");
            r.at(Some(f.span()), msg);
        }
    }
    let others = raw.attributes.is_some()
        || raw.content_matches.is_some()
        || raw.content_not_matches.is_some();
    let flag = match (&raw.present, &raw.absent) {
        (Some(_), Some(a)) => {
            r.at(
                Some(a.span()),
                "give `present` or `absent`, not both".to_owned(),
            );
            return None;
        }
        (Some(p), None) => Some((p, Expect::Present)),
        (None, Some(a)) => Some((a, Expect::Absent)),
        (None, None) => None,
    };
    if let Some((f, expect)) = flag {
        if others {
            let msg = "`present`/`absent` stand alone: attribute and content expectations \
                       already require the item to exist";
            r.at(Some(f.span()), msg.to_owned());
        }
        return Some(expect);
    }
    if !others {
        let msg = "check has no expectation: give `present`, `absent`, [check.attributes], \
                   `content_matches` or `content_not_matches`";
        r.at(Some(span.clone()), msg.to_owned());
        return None;
    }
    let mut e = Expectation::default();
    if let Some(attrs) = &raw.attributes {
        if attrs.get_ref().is_empty() {
            r.at(Some(attrs.span()), "[check.attributes] is empty".to_owned());
        }
        let mut named: Vec<(&String, &Spanned<RawCond>)> = attrs.get_ref().iter().collect();
        named.sort_by_key(|(_, c)| c.span().start);
        for (name, cond) in named {
            let conds = conditions(name, cond, r);
            e.attributes.push(AttrExpect {
                name: name.clone(),
                conds,
            });
        }
    }
    if let Some(re) = &raw.content_matches {
        e.content.extend(regex(re, r).map(ContentExpect::Matches));
    }
    if let Some(re) = &raw.content_not_matches {
        e.content
            .extend(regex(re, r).map(ContentExpect::NotMatches));
    }
    Some(Expect::Holds(e))
}

fn conditions(name: &str, cond: &Spanned<RawCond>, r: &mut Reporter<'_>) -> Vec<Cond> {
    let c = cond.get_ref();
    let mut out = Vec::new();
    out.extend(c.equals.clone().map(Cond::Equals));
    if let Some(list) = &c.one_of {
        if list.get_ref().is_empty() {
            r.at(
                Some(list.span()),
                "`one_of` is empty: nothing could match".to_owned(),
            );
        }
        out.push(Cond::OneOf(list.get_ref().clone()));
    }
    out.extend(
        c.matches
            .as_ref()
            .and_then(|re| regex(re, r))
            .map(Cond::Matches),
    );
    out.extend(
        c.not_matches
            .as_ref()
            .and_then(|re| regex(re, r))
            .map(Cond::NotMatches),
    );
    out.extend(c.lt.map(Cond::Lt));
    out.extend(c.le.map(Cond::Le));
    out.extend(c.ge.map(Cond::Ge));
    out.extend(c.gt.map(Cond::Gt));
    for (v, below) in [(&c.version_at_least, false), (&c.version_below, true)] {
        let Some(v) = v else { continue };
        match DebVersion::parse(v.get_ref()) {
            Ok(parsed) if below => out.push(Cond::VersionBelow(v.get_ref().clone(), parsed)),
            Ok(parsed) => out.push(Cond::VersionAtLeast(v.get_ref().clone(), parsed)),
            Err(why) => r.at(Some(v.span()), why),
        }
    }
    let written = c.equals.is_some() as usize
        + c.one_of.is_some() as usize
        + c.matches.is_some() as usize
        + c.not_matches.is_some() as usize
        + [c.lt, c.le, c.ge, c.gt].iter().flatten().count()
        + c.version_at_least.is_some() as usize
        + c.version_below.is_some() as usize;
    if written == 0 {
        let msg = format!(
            "no condition for attribute `{name}`: give equals, one_of, matches, not_matches, \
             <, <=, >=, > (or lt, le, ge, gt), version_at_least or version_below"
        );
        r.at(Some(cond.span()), msg);
    }
    out
}

/// Compiles a regex; the error keeps only regex's one-line reason (its message is a
/// multi-line drawing of the pattern).
fn regex(re: &Spanned<String>, r: &mut Reporter<'_>) -> Option<Regex> {
    Regex::new(re.get_ref())
        .map_err(|e| {
            let reason = match &e {
                regex::Error::Syntax(s) => s
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or(s)
                    .trim()
                    .trim_start_matches("error: ")
                    .to_owned(),
                other => other.to_string(),
            };
            r.at(
                Some(re.span()),
                format!("invalid regex {:?}: {reason}", re.get_ref()),
            );
        })
        .ok()
}

/// Policy names and check ids appear in audit logs, tasks and CLI arguments.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("must not be empty".to_owned())
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!(
            "{name:?} must not contain spaces or control characters"
        ))
    } else {
        Ok(())
    }
}

/// Collects errors against one file.
struct Reporter<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<(usize, LocatedError)>,
}

impl Reporter<'_> {
    fn at(&mut self, span: Option<Range<usize>>, message: String) {
        let (offset, (line, column)) = match span {
            Some(s) => (s.start, line_col(self.text, s.start)),
            None => (0, (0, 0)),
        };
        let file = self.file.to_owned();
        self.errors.push((
            offset,
            LocatedError {
                file,
                line,
                column,
                message,
            },
        ));
    }

    fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Deserializes one value, reporting (with `prefix`) where it went wrong.
    fn de<T: DeserializeOwned>(&mut self, value: &Spanned<DeValue<'_>>, prefix: &str) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => Some(v),
            Err(e) => {
                let span = e.span().or(Some(value.span()));
                self.at(span, format!("{prefix}{}", e.message().trim()));
                None
            }
        }
    }

    fn finish(mut self) -> LocatedErrors {
        self.errors.sort_by_key(|(offset, _)| *offset);
        LocatedErrors(self.errors.into_iter().map(|(_, e)| e).collect())
    }
}
