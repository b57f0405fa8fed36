//! What a check expects of one item: attribute conditions and content regexes, compiled at
//! load time so evaluating an item allocates nothing unless it has to explain a result.
//!
//! Evaluation is two-phase on purpose: [`Expectation::test`] answers hold / fail / error
//! cheaply for every selected item, and [`Expectation::explain`] builds the evidence text only
//! for the few items a result will quote.

use std::fmt;

use regex::Regex;
use vigil_plugin::{Item, Value};

use super::version::DebVersion;

/// The answer for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Holds,
    Fails,
    /// The expectation cannot be evaluated on this item (e.g. no content was captured).
    Error,
}

/// One condition on one attribute's value.
#[derive(Debug, Clone)]
pub enum Cond {
    Equals(Value),
    OneOf(Vec<Value>),
    Matches(Regex),
    NotMatches(Regex),
    Lt(i64),
    Le(i64),
    Ge(i64),
    Gt(i64),
    VersionAtLeast(String, DebVersion),
    VersionBelow(String, DebVersion),
}

/// Every condition named for one attribute (all must hold).
#[derive(Debug, Clone)]
pub struct AttrExpect {
    pub name: String,
    pub conds: Vec<Cond>,
}

/// A regex over the item's captured content.
#[derive(Debug, Clone)]
pub enum ContentExpect {
    Matches(Regex),
    NotMatches(Regex),
}

/// Attribute and content conditions of one check; every one must hold.
#[derive(Debug, Clone, Default)]
pub struct Expectation {
    pub attributes: Vec<AttrExpect>,
    pub content: Vec<ContentExpect>,
}

/// Equality across scalar types the way an administrator reads a policy: `equals = 0`
/// matches the string `"0"` a sysctl item carries, and `equals = "true"` matches `true`.
pub fn values_equal(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Str(s), Value::Int(i)) | (Value::Int(i), Value::Str(s)) => {
            s.trim().parse::<i64>() == Ok(*i)
        }
        (Value::Str(s), Value::Bool(b)) | (Value::Bool(b), Value::Str(s)) => {
            s.trim() == if *b { "true" } else { "false" }
        }
        (a, e) => a == e,
    }
}

/// An integer view of a value: integers, and strings that parse as a decimal integer.
fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Str(s) => s.trim().parse().ok(),
        Value::Bool(_) => None,
    }
}

fn text(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::Str(s) => s.as_str().into(),
        other => other.to_string().into(),
    }
}

impl Cond {
    fn test(&self, v: &Value) -> Verdict {
        let ok = |b: bool| if b { Verdict::Holds } else { Verdict::Fails };
        let num = |f: &dyn Fn(i64) -> bool| as_int(v).map_or(Verdict::Fails, |n| ok(f(n)));
        match self {
            Cond::Equals(e) => ok(values_equal(v, e)),
            Cond::OneOf(list) => ok(list.iter().any(|e| values_equal(v, e))),
            Cond::Matches(re) => ok(re.is_match(&text(v))),
            Cond::NotMatches(re) => ok(!re.is_match(&text(v))),
            Cond::Lt(n) => num(&|x| x < *n),
            Cond::Le(n) => num(&|x| x <= *n),
            Cond::Ge(n) => num(&|x| x >= *n),
            Cond::Gt(n) => num(&|x| x > *n),
            Cond::VersionAtLeast(_, want) => match DebVersion::parse(&text(v)) {
                Ok(have) => ok(have >= *want),
                Err(_) => Verdict::Error,
            },
            Cond::VersionBelow(_, want) => match DebVersion::parse(&text(v)) {
                Ok(have) => ok(have < *want),
                Err(_) => Verdict::Error,
            },
        }
    }

    /// Why `v` (the value of attribute `name`) does not satisfy this condition.
    fn why_not(&self, name: &str, v: &Value) -> String {
        let shown = quoted_if_odd(v);
        let numeric = matches!(self, Cond::Lt(_) | Cond::Le(_) | Cond::Ge(_) | Cond::Gt(_));
        if numeric && as_int(v).is_none() {
            return format!("{name} is {shown}, not a number, expected {self}");
        }
        match self {
            Cond::VersionAtLeast(w, _) | Cond::VersionBelow(w, _)
                if DebVersion::parse(&text(v)).is_err() =>
            {
                format!("{name} {shown} is not a Debian version, cannot compare with {w}")
            }
            Cond::VersionAtLeast(w, _) => format!("{name} {shown} is below {w}"),
            Cond::VersionBelow(w, _) => format!("{name} {shown} is not below {w}"),
            _ => format!("{name} is {shown}, expected {self}"),
        }
    }
}

/// Strings print bare unless they would read ambiguously (empty, spaces at the ends).
fn quoted_if_odd(v: &Value) -> String {
    match v {
        Value::Str(s) if s.is_empty() || s.trim() != s => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn list(values: &[Value]) -> String {
    let shown: Vec<String> = values.iter().map(quoted_if_odd).collect();
    shown.join(", ")
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cond::Equals(v) => write!(f, "{}", quoted_if_odd(v)),
            Cond::OneOf(vs) => write!(f, "one of {}", list(vs)),
            Cond::Matches(re) => write!(f, "to match {re}"),
            Cond::NotMatches(re) => write!(f, "not to match {re}"),
            Cond::Lt(n) => write!(f, "< {n}"),
            Cond::Le(n) => write!(f, "<= {n}"),
            Cond::Ge(n) => write!(f, ">= {n}"),
            Cond::Gt(n) => write!(f, "> {n}"),
            Cond::VersionAtLeast(w, _) => write!(f, "version >= {w}"),
            Cond::VersionBelow(w, _) => write!(f, "version < {w}"),
        }
    }
}

impl fmt::Display for ContentExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentExpect::Matches(re) => write!(f, "content matches {re}"),
            ContentExpect::NotMatches(re) => write!(f, "content does not match {re}"),
        }
    }
}

impl Expectation {
    /// Whether `item` satisfies every condition. A definite failure wins over an error, so
    /// `none` and `all` checks still decide when some other condition cannot be evaluated.
    pub fn test(&self, item: &Item) -> Verdict {
        let mut verdict = Verdict::Holds;
        for a in &self.attributes {
            let Some(v) = item.attributes.get(&a.name) else {
                return Verdict::Fails;
            };
            for c in &a.conds {
                match c.test(v) {
                    Verdict::Holds => {}
                    Verdict::Fails => return Verdict::Fails,
                    Verdict::Error => verdict = Verdict::Error,
                }
            }
        }
        for c in &self.content {
            let Some(text) = item.content.as_deref() else {
                verdict = Verdict::Error;
                continue;
            };
            let holds = match c {
                ContentExpect::Matches(re) => re.is_match(text),
                ContentExpect::NotMatches(re) => !re.is_match(text),
            };
            if !holds {
                return Verdict::Fails;
            }
        }
        verdict
    }

    /// Evidence for `item` without the key: for an item that does not hold, every condition
    /// that failed or could not be evaluated; for a holding item, the values that were checked.
    pub fn explain(&self, item: &Item) -> String {
        let holds = self.test(item) == Verdict::Holds;
        let mut parts = Vec::new();
        for a in &self.attributes {
            let Some(v) = item.attributes.get(&a.name) else {
                let want: Vec<String> = a.conds.iter().map(|c| c.to_string()).collect();
                parts.push(format!(
                    "no attribute {}, expected {}",
                    a.name,
                    want.join(" and ")
                ));
                continue;
            };
            if holds {
                parts.push(format!("{} is {}", a.name, quoted_if_odd(v)));
                continue;
            }
            for c in a.conds.iter().filter(|c| c.test(v) != Verdict::Holds) {
                parts.push(c.why_not(&a.name, v));
            }
        }
        if !self.content.is_empty() && item.content.is_none() {
            parts.push(no_content(item));
        }
        for c in &self.content {
            let Some(text) = item.content.as_deref() else {
                continue;
            };
            match c {
                ContentExpect::Matches(re) if !re.is_match(text) => {
                    parts.push(format!("content does not match {re}"))
                }
                ContentExpect::NotMatches(re) => match first_match_line(re, text) {
                    // Evidence is shown to every user and mailed: a private file's line is
                    // not (issue 16).
                    Some(_) if crate::proto::private_mode(&item.attributes) => parts.push(
                        format!("content matches {re} (the line is not shown: the file is not world-readable)"),
                    ),
                    Some(line) => parts.push(format!("content matches {re} at {line:?}")),
                    None if holds => parts.push(c.to_string()),
                    None => {}
                },
                ContentExpect::Matches(_) if holds => parts.push(c.to_string()),
                ContentExpect::Matches(_) => {}
            }
        }
        parts.join("; ")
    }

    /// The conditions in words, for `none` evidence: `mode to match ^..$, type is file`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for a in &self.attributes {
            for c in &a.conds {
                parts.push(match c {
                    Cond::Equals(_) => format!("{} = {c}", a.name),
                    Cond::Matches(re) => format!("{} matches {re}", a.name),
                    Cond::NotMatches(re) => format!("{} does not match {re}", a.name),
                    Cond::VersionAtLeast(w, _) => format!("{} >= {w}", a.name),
                    Cond::VersionBelow(w, _) => format!("{} < {w}", a.name),
                    _ => format!("{} {c}", a.name),
                });
            }
        }
        parts.extend(self.content.iter().map(|c| c.to_string()));
        parts.join(" and ")
    }
}

/// The error for a content check on an item without captured content (the caller prefixes
/// the key).
fn no_content(item: &Item) -> String {
    match item.attributes.get("content_skipped") {
        Some(why) => format!("content not captured ({why})"),
        None => "no content captured: add it to the files plugin's `content` globs".to_owned(),
    }
}

/// The first line containing a match, trimmed and cut to a readable length.
fn first_match_line(re: &Regex, text: &str) -> Option<String> {
    let m = re.find(text)?;
    let start = text[..m.start()].rfind('\n').map_or(0, |i| i + 1);
    let end = text[m.start()..]
        .find('\n')
        .map_or(text.len(), |i| m.start() + i);
    let line = text[start..end].trim();
    Some(line.chars().take(120).collect())
}
