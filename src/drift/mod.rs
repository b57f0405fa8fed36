//! Drift: what changed on a node between its baseline snapshot and a day's, and the one
//! home of everything about it — the ignore rules ([`DiffRules`]), the streaming merge
//! (`diff`), the recorded drift of each day (`rows`, written by the snapshot commit hook
//! [`record`] and pruned here), and the [`Fingerprint`] of a change set. Ignore rules apply
//! at diff time, so changing them needs no rescan: reports re-diff with the rules in force.

mod diff;
mod fingerprint;
mod rows;

use std::collections::HashSet;

use chrono::NaiveDate;
use globset::{Glob, GlobSet, GlobSetBuilder};
use redb::{ReadTransaction, WriteTransaction};

pub use diff::diff;
pub use fingerprint::{ChangeId, Fingerprint};

use crate::config::PluginConfig;
use crate::proto::PluginDrift;
use crate::snapshot::{self, day_number, from_day_number, Committed, Reader};
use crate::store::{Commit, Store, StoreError};
use rows::DRIFT;

/// What drift ignores for one plugin.
#[derive(Debug, Clone, Default)]
pub struct DiffRules {
    pub ignore_attributes: HashSet<String>,
    pub ignore_keys: Option<GlobSet>,
}

impl DiffRules {
    /// The rules configured for a plugin. Globs were validated with the config.
    pub fn for_plugin(plugin: &PluginConfig) -> DiffRules {
        let mut builder = GlobSetBuilder::new();
        for g in &plugin.ignore_keys {
            if let Ok(glob) = Glob::new(g) {
                builder.add(glob);
            }
        }
        DiffRules {
            ignore_attributes: plugin.ignore_attributes.iter().cloned().collect(),
            ignore_keys: builder
                .build()
                .ok()
                .filter(|_| !plugin.ignore_keys.is_empty()),
        }
    }

    fn ignores_key(&self, key: &str) -> bool {
        self.ignore_keys.as_ref().is_some_and(|g| g.is_match(key))
    }
}

/// The snapshot commit hook of a scan: diffs the snapshot just recorded against its
/// baseline and records that drift for the day, in the snapshot's own transaction.
pub fn record(
    tx: &WriteTransaction,
    c: &Committed<'_>,
    rules: &DiffRules,
) -> Result<PluginDrift, StoreError> {
    let (baseline_day, changes) = match c.baseline {
        Some((day, base)) => {
            let reader = Reader::in_write(tx)?;
            let changes = diff(
                &reader,
                &base.chunks,
                &c.meta.chunks,
                rules,
                &c.meta.volatile,
            )?;
            (Some(day), changes)
        }
        None => (None, Vec::new()),
    };
    let mut coverage_notes = c.meta.notes.clone();
    if let (Some(day), true) = (baseline_day, c.meta.carried > 0) {
        coverage_notes.push(format!(
            "{} items under what the scan could not see are kept from the snapshot of {day}: \
             not seen, so neither unchanged nor removed",
            c.meta.carried
        ));
    }
    let drift = PluginDrift {
        node: c.node.to_owned(),
        plugin: c.plugin.to_owned(),
        day: c.day,
        scan: c.meta.scan,
        baseline_day,
        items: c.meta.items,
        changes,
        coverage_notes,
    };
    DRIFT.write(tx)?.put(
        (c.node, c.plugin, day_number(c.day)),
        &rows::StoredDrift::from(&drift),
    )?;
    Ok(drift)
}

/// Drift recorded for a node on a day, all plugins, as computed at scan time.
pub fn of_day(
    tx: &ReadTransaction,
    node: &str,
    day: NaiveDate,
) -> Result<Vec<PluginDrift>, StoreError> {
    let d = day_number(day);
    let table = DRIFT.read(tx)?;
    let mut out = Vec::new();
    for entry in table.range((node, "", d)..)? {
        let (k, drift) = entry?;
        let (n, _, day) = k.value();
        if n != node {
            break;
        }
        if day == d {
            out.push(drift.into());
        }
    }
    Ok(out)
}

/// A node's drift for a day, re-diffed from the stored snapshots with the ignore rules in
/// force now (`rules_for` gives a plugin's rules; `None` keeps the drift recorded at scan
/// time). Where a snapshot was pruned, the recorded drift is returned as it was.
pub fn of_day_now(
    tx: &ReadTransaction,
    node: &str,
    day: NaiveDate,
    rules_for: impl Fn(&str) -> Option<DiffRules>,
) -> Result<Vec<PluginDrift>, StoreError> {
    let mut out = of_day(tx, node, day)?;
    let reader = Reader::in_read(tx)?;
    for pd in &mut out {
        let (Some(rules), Some(base_day)) = (rules_for(&pd.plugin), pd.baseline_day) else {
            continue;
        };
        let base = snapshot::snapshot_of(tx, node, &pd.plugin, base_day)?;
        let cur = snapshot::snapshot_of(tx, node, &pd.plugin, day)?;
        if let (Some(base), Some(cur)) = (base, cur) {
            pd.changes = diff(&reader, &base.chunks, &cur.chunks, &rules, &cur.volatile)?;
        }
    }
    Ok(out)
}

/// The newest day with recorded drift for a node.
pub fn latest_day(tx: &ReadTransaction, node: &str) -> Result<Option<NaiveDate>, StoreError> {
    let rows = DRIFT.read(tx)?;
    let mut best = None;
    for entry in rows.undecoded().range((node, "", i32::MIN)..)? {
        let (k, _) = entry?;
        let (n, _, d) = k.value();
        if n != node {
            break;
        }
        best = best.max(Some(d));
    }
    Ok(best.map(from_day_number))
}

/// Prunes drift records older than `retention_days` before `today`, in small
/// transactions so that scans are never held up for long. Returns records pruned.
pub fn prune_blocking(
    store: &Store,
    today: NaiveDate,
    retention_days: u32,
) -> Result<usize, StoreError> {
    let cutoff = day_number(today) - retention_days as i32;
    const BATCH: usize = 256;
    let mut pruned = 0;
    let mut cursor: rows::PruneCursor = None;
    loop {
        pruned += store.write_blocking(Commit::Durable, |tx| {
            rows::prune_some(tx, cutoff, BATCH, &mut cursor)
        })?;
        if cursor.is_none() {
            break;
        }
    }
    Ok(pruned)
}
