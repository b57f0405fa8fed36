//! Evaluates checks against one plugin's item stream, one item at a time.
//!
//! The audit runner streams a plugin's items once and must not keep them; an [`Evaluator`]
//! keeps only per-check counters and the few keys its evidence will quote. Exact keys are
//! found with one hash lookup and all `keys` globs with one `GlobSet` pass per item, so the
//! cost per item does not grow with the number of glob checks.

use std::collections::HashMap;
use std::fmt;

use globset::{GlobSet, GlobSetBuilder};
use vigil_plugin::Item;

use super::expect::Verdict;
use super::{Check, Expect, Quantifier, Selector};

/// How many item keys an evidence line quotes before saying "and N more".
const SHOWN: usize = 5;

/// The result of one check on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Pass,
    Fail,
    /// The check could not be evaluated (e.g. a content check on a file whose content was not
    /// captured): neither a pass nor a finding about the node.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Error => "error",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check's outcome with one readable line of evidence: the actual value against the
/// expectation, e.g. `/etc/shadow: mode is 0644, expected one of 0640, 0600`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub policy: String,
    pub check: String,
    pub outcome: Outcome,
    pub evidence: String,
}

/// What has been seen so far for one check.
#[derive(Debug, Default)]
struct State {
    selected: u64,
    holding: u64,
    failing: u64,
    errors: u64,
    /// Items the evidence will quote, with their explanation where useful.
    quoted: Vec<String>,
    /// The first item that could not be evaluated, with the reason.
    first_error: Option<String>,
    /// The first selected item (`present`) or the first that satisfies (`any`).
    example: Option<String>,
    /// For a `key` check: the item's verdict and explanation.
    single: Option<(Verdict, String)>,
}

/// Folds one plugin's items into results for the checks that read that plugin.
pub struct Evaluator<'a> {
    checks: Vec<&'a Check>,
    states: Vec<State>,
    exact: HashMap<&'a str, Vec<usize>>,
    /// All `keys` globs; `glob_owner[i]` is the check of glob `i`. `None` if the set could not
    /// be built (a regex size limit), in which case each check's matcher is tried in turn.
    globs: Option<GlobSet>,
    glob_owner: Vec<usize>,
    hits: Vec<usize>,
}

impl<'a> Evaluator<'a> {
    /// An evaluator for `checks`, which should all read the same plugin (typically
    /// `policy.checks_for(plugin)` over every policy that applies to the node).
    pub fn new(checks: &[&'a Check]) -> Evaluator<'a> {
        let mut exact: HashMap<&'a str, Vec<usize>> = HashMap::new();
        let mut set = GlobSetBuilder::new();
        let mut glob_owner = Vec::new();
        for (i, c) in checks.iter().enumerate() {
            match &c.selector {
                Selector::Key(k) => exact.entry(k.as_str()).or_default().push(i),
                Selector::Keys(g) => {
                    set.add(g.glob.clone());
                    glob_owner.push(i);
                }
            }
        }
        let globs = set.build().ok();
        Evaluator {
            checks: checks.to_vec(),
            states: checks.iter().map(|_| State::default()).collect(),
            exact,
            globs,
            glob_owner,
            hits: Vec::new(),
        }
    }

    /// Evaluates `item` for every check that selects it.
    pub fn observe(&mut self, item: &Item) {
        if let Some(list) = self.exact.get(item.key.as_str()) {
            for &i in list {
                fold(self.checks[i], &mut self.states[i], item);
            }
        }
        if self.glob_owner.is_empty() {
            return;
        }
        let mut hits = std::mem::take(&mut self.hits);
        match &self.globs {
            Some(set) => set.matches_into(&item.key, &mut hits),
            None => {
                hits.clear();
                hits.extend((0..self.glob_owner.len()).filter(|&g| {
                    let c = self.checks[self.glob_owner[g]];
                    matches!(&c.selector, Selector::Keys(k) if k.matcher.is_match(&item.key))
                }));
            }
        }
        for &g in &hits {
            let i = self.glob_owner[g];
            let check = self.checks[i];
            if let Selector::Keys(k) = &check.selector {
                if !k.excluded(&item.key) {
                    fold(check, &mut self.states[i], item);
                }
            }
        }
        self.hits = hits;
    }

    /// The results, in the order the checks were given.
    pub fn finish(self) -> Vec<CheckResult> {
        self.checks
            .iter()
            .zip(self.states)
            .map(|(c, st)| {
                let (outcome, evidence) = conclude(c, st);
                CheckResult {
                    policy: c.policy.clone(),
                    check: c.id.clone(),
                    outcome,
                    evidence,
                }
            })
            .collect()
    }
}

fn fold(check: &Check, st: &mut State, item: &Item) {
    st.selected += 1;
    let e = match &check.expect {
        Expect::Present | Expect::Absent => {
            st.example.get_or_insert_with(|| item.key.clone());
            quote(st, || item.key.clone());
            return;
        }
        Expect::Holds(e) => e,
    };
    let verdict = e.test(item);
    let q = match &check.selector {
        Selector::Key(_) => {
            // Keys are unique in a scan; should one repeat, the worse verdict stands.
            let rank = |v: Verdict| match v {
                Verdict::Holds => 0,
                Verdict::Error => 1,
                Verdict::Fails => 2,
            };
            if st
                .single
                .as_ref()
                .is_none_or(|(v, _)| rank(verdict) > rank(*v))
            {
                st.single = Some((verdict, e.explain(item)));
            }
            return;
        }
        Selector::Keys(k) => k.quantifier,
    };
    match verdict {
        Verdict::Holds => {
            st.holding += 1;
            match q {
                Quantifier::None => quote(st, || format!("{} ({})", item.key, e.explain(item))),
                Quantifier::Any => {
                    st.example.get_or_insert_with(|| item.key.clone());
                }
                Quantifier::All => {}
            }
        }
        Verdict::Fails => {
            st.failing += 1;
            // `all` quotes the items that fail; `any` those that fail while none holds
            // (once one holds, the check passes and the failures are beside the point).
            if q == Quantifier::All || (q == Quantifier::Any && st.holding == 0) {
                quote(st, || format!("{} ({})", item.key, e.explain(item)));
            }
        }
        Verdict::Error => {
            st.errors += 1;
            if st.first_error.is_none() {
                st.first_error = Some(format!("{}: {}", item.key, e.explain(item)));
            }
        }
    }
}

fn quote(st: &mut State, text: impl FnOnce() -> String) {
    if st.quoted.len() < SHOWN {
        st.quoted.push(text());
    }
}

/// `a, b, c and 4 more`, for `total` items of which `shown` are quoted.
fn listing(shown: &[String], total: u64) -> String {
    let more = total.saturating_sub(shown.len() as u64);
    match more {
        0 => shown.join(", "),
        n => format!("{} and {n} more", shown.join(", ")),
    }
}

fn conclude(check: &Check, st: State) -> (Outcome, String) {
    use Outcome::*;
    let (key, glob) = match &check.selector {
        Selector::Key(key) => {
            let r = match (&check.expect, st.single) {
                (Expect::Present, _) if st.selected > 0 => (Pass, format!("{key}: present")),
                (Expect::Present, _) => (Fail, format!("{key}: not found, expected present")),
                (Expect::Absent, _) if st.selected > 0 => {
                    (Fail, format!("{key}: present, expected absent"))
                }
                (Expect::Absent, _) => (Pass, format!("{key}: absent")),
                (_, None) => (Fail, format!("{key}: not found")),
                (_, Some((v, why))) => (verdict_outcome(v), format!("{key}: {why}")),
            };
            return r;
        }
        Selector::Keys(g) => (&g.pattern, g),
    };
    let mut label = format!("keys {key}");
    if !glob.exclude.is_empty() {
        label.push_str(&format!(" except {}", glob.exclude.join(", ")));
    }
    let n = st.selected;
    let e = match &check.expect {
        Expect::Present if n > 0 => {
            let e = st.example.unwrap_or_default();
            return (Pass, format!("{label}: {n} items match, e.g. {e}"));
        }
        Expect::Present => return (Fail, format!("{label}: no item matches, expected some")),
        Expect::Absent if n > 0 => {
            let keys = listing(&st.quoted, n);
            return (
                Fail,
                format!("{label}: {n} items match, expected none: {keys}"),
            );
        }
        Expect::Absent => return (Pass, format!("{label}: no item matches")),
        Expect::Holds(e) => e,
    };
    let what = e.describe();
    let label = format!("{label} ({})", glob.quantifier.as_str());
    let errors = |st: &State| {
        let first = st.first_error.as_deref().unwrap_or("");
        format!(
            "{} of {n} items cannot be checked, first {first}",
            st.errors
        )
    };
    match glob.quantifier {
        Quantifier::All if st.failing > 0 => {
            let items = listing(&st.quoted, st.failing);
            (
                Fail,
                format!("{label}: {} of {n} items fail: {items}", st.failing),
            )
        }
        Quantifier::All if st.errors > 0 => (Error, format!("{label}: {}", errors(&st))),
        Quantifier::All if n == 0 => (Pass, format!("{label}: 0 items selected")),
        Quantifier::All => (Pass, format!("{label}: all {n} items satisfy {what}")),
        Quantifier::Any if st.holding > 0 => {
            let (h, e) = (st.holding, st.example.unwrap_or_default());
            (
                Pass,
                format!("{label}: {h} of {n} items satisfy {what}, e.g. {e}"),
            )
        }
        Quantifier::Any if st.errors > 0 => {
            let msg = format!("{label}: no item satisfies {what}; {}", errors(&st));
            (Error, msg)
        }
        Quantifier::Any if n == 0 => (
            Fail,
            format!("{label}: 0 items selected, expected one satisfying {what}"),
        ),
        Quantifier::Any => {
            let items = listing(&st.quoted, st.failing);
            (
                Fail,
                format!("{label}: none of {n} items satisfies {what}: {items}"),
            )
        }
        Quantifier::None if st.holding > 0 => {
            let items = listing(&st.quoted, st.holding);
            (
                Fail,
                format!("{label}: {} of {n} items match {what}: {items}", st.holding),
            )
        }
        Quantifier::None if st.errors > 0 => (Error, format!("{label}: {}", errors(&st))),
        Quantifier::None if n == 0 => (Pass, format!("{label}: 0 items selected")),
        Quantifier::None => (Pass, format!("{label}: none of {n} items match {what}")),
    }
}

fn verdict_outcome(v: Verdict) -> Outcome {
    match v {
        Verdict::Holds => Outcome::Pass,
        Verdict::Fails => Outcome::Fail,
        Verdict::Error => Outcome::Error,
    }
}
