//! Policies: files of checks that audits evaluate against the items plugins report.
//!
//! A pure library, with no I/O beyond reading policy files: [`load_dir`] / [`parse`] turn
//! `*.toml` files into compiled [`Policy`]s (regexes, globs and versions are compiled once, and
//! every error is reported as `file:line:column: reason`), and an [`Evaluator`] folds one
//! plugin's item stream into a [`CheckResult`] per check without keeping the items.
//!
//! Semantics decided here (SPEC §6 and §12 leave them open):
//! - `key` + `present`/`absent`: pass iff the item exists / does not. `key` with attribute or
//!   content expectations fails with `KEY: not found` when the item is missing.
//! - `keys` (a glob; `*` does not cross `/`, `**` does) selects items, minus any matching
//!   `exclude_keys`. `all`: every selected item satisfies the expectation (zero selected
//!   passes, with evidence saying `0 items selected`); `any`: at least one does (zero selected
//!   fails); `none`: no selected item satisfies it. With `keys`, `present` means at least one
//!   item is selected and `absent` means none is. A glob without wildcards under `all` reads
//!   "if the item exists, it must satisfy ...".
//! - An item satisfies an expectation when every condition on every named attribute holds and
//!   every content regex holds. A missing attribute fails. Content regexes on an item without
//!   captured content are an **error**, not a failure: the scan was not set up to answer.
//! - `equals`/`one_of` compare across scalar types as read: `0` equals `"0"`, `true` equals
//!   `"true"`. Numeric comparisons accept integers and strings that parse as a decimal
//!   integer (so a sysctl `value = "1"` compares as 1; a mode `"0644"` would compare as 644,
//!   which is why modes are matched with regexes). Versions compare with dpkg's ordering.

mod eval;
mod expect;
mod load;
mod version;

use std::collections::BTreeSet;
use std::path::PathBuf;

use globset::{Glob, GlobMatcher, GlobSet};
use serde::Deserialize;

use crate::config::Scope;

pub use eval::{CheckResult, Evaluator, Outcome};
pub use load::{load_dir, parse};
pub use version::DebVersion;

/// One policy file: a named set of checks.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub description: String,
    /// The nodes the policy applies to by default; `None` means all nodes.
    pub scope: Option<Scope>,
    pub checks: Vec<Check>,
    /// The file it was loaded from.
    pub file: PathBuf,
}

/// One check: which items of which plugin, and what is expected of them.
#[derive(Debug, Clone)]
pub struct Check {
    /// Name of the policy the check belongs to.
    pub policy: String,
    /// Unique within the policy.
    pub id: String,
    pub description: Option<String>,
    pub plugin: String,
    pub selector: Selector,
    expect: Expect,
}

/// Which items a check looks at.
#[derive(Debug, Clone)]
pub enum Selector {
    /// Exactly one key.
    Key(String),
    /// Every key matching a glob (and no `exclude_keys` glob).
    Keys(Box<KeyGlob>),
}

/// A compiled `keys` selector.
#[derive(Debug, Clone)]
pub struct KeyGlob {
    pub pattern: String,
    pub exclude: Vec<String>,
    pub quantifier: Quantifier,
    glob: Glob,
    matcher: GlobMatcher,
    exclude_set: GlobSet,
}

impl KeyGlob {
    /// Whether this selector picks `key` (its glob matches and no exclusion does).
    pub fn selects(&self, key: &str) -> bool {
        self.matcher.is_match(key) && !self.excluded(key)
    }

    fn excluded(&self, key: &str) -> bool {
        !self.exclude.is_empty() && self.exclude_set.is_match(key)
    }
}

/// How the items a `keys` glob selects must satisfy the expectation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantifier {
    /// Every selected item (vacuously true when none is selected).
    #[default]
    All,
    /// At least one selected item.
    Any,
    /// No selected item.
    None,
}

impl Quantifier {
    pub fn as_str(self) -> &'static str {
        match self {
            Quantifier::All => "all",
            Quantifier::Any => "any",
            Quantifier::None => "none",
        }
    }
}

/// What a check expects.
#[derive(Debug, Clone)]
enum Expect {
    Present,
    Absent,
    Holds(expect::Expectation),
}

impl Check {
    /// Whether the check reads captured content (so the files plugin must capture it).
    pub fn reads_content(&self) -> bool {
        matches!(&self.expect, Expect::Holds(e) if !e.content.is_empty())
    }

    /// The expectation in words, e.g. `absent` or `mode one of 0640, 0600 and uid = 0`.
    pub fn expectation(&self) -> String {
        match &self.expect {
            Expect::Present => "present".to_owned(),
            Expect::Absent => "absent".to_owned(),
            Expect::Holds(e) => e.describe(),
        }
    }
}

impl Policy {
    /// The checks that read items of `plugin`, in file order.
    pub fn checks_for<'a>(&'a self, plugin: &'a str) -> impl Iterator<Item = &'a Check> + 'a {
        self.checks.iter().filter(move |c| c.plugin == plugin)
    }

    /// Whether the policy's default scope covers the node `node` in groups `groups`.
    pub fn applies_to(&self, node: &str, groups: &[String]) -> bool {
        match &self.scope {
            None | Some(Scope::All) => true,
            Some(Scope::Group(g)) => groups.iter().any(|x| x == g),
            Some(Scope::Node(n)) => n == node,
        }
    }
}

/// Every plugin some check of these policies reads.
pub fn plugins_needed(policies: &[Policy]) -> BTreeSet<String> {
    policies
        .iter()
        .flat_map(|p| p.checks.iter().map(|c| c.plugin.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
