//! Tests for policy loading, evaluation and the shipped example policies.

mod baseline;
mod eval;
mod load;

use std::collections::BTreeSet;
use std::path::Path;

use vigil_plugin::Item;

use super::{parse, CheckResult, Evaluator, Outcome, Policy};
use crate::located::LocatedErrors;

pub(super) fn plugins() -> BTreeSet<String> {
    ["files", "packages", "accounts", "sysctl", "services"]
        .into_iter()
        .map(String::from)
        .collect()
}

pub(super) fn load(text: &str) -> Result<Policy, LocatedErrors> {
    parse(Path::new("p.toml"), text, &plugins())
}

/// A policy header followed by `checks`.
pub(super) fn policy(checks: &str) -> Policy {
    let text = format!("name = \"p\"\ndescription = \"d\"\n{checks}");
    load(&text).unwrap_or_else(|e| panic!("{e}\n--- in ---\n{text}"))
}

/// Evaluates every check of `p` (whatever its plugin) over `items`.
pub(super) fn run(p: &Policy, items: &[Item]) -> Vec<CheckResult> {
    let checks: Vec<_> = p.checks.iter().collect();
    let mut ev = Evaluator::new(&checks);
    for item in items {
        ev.observe(item);
    }
    ev.finish()
}

/// Evaluates the single check in `checks` and returns (outcome, evidence).
pub(super) fn one(checks: &str, items: &[Item]) -> (Outcome, String) {
    let r = run(&policy(checks), items);
    assert_eq!(r.len(), 1);
    (r[0].outcome, r[0].evidence.clone())
}
