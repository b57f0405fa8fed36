//! Drift: what changed on a node between its baseline snapshot and a day's, and the one
//! home of everything about it — the ignore rules ([`DiffRules`]), the streaming merge
//! (`diff`), the recorded drift of each day (`rows`, written by the snapshot commit hook
//! [`record`] and pruned here), and the [`Fingerprint`] of a change set. Ignore rules apply
//! at diff time, so changing them needs no rescan: reports re-diff with the rules in force.

mod diff;
mod fingerprint;
mod rows;

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use globset::{Glob, GlobSet, GlobSetBuilder};
use redb::{ReadTransaction, WriteTransaction};

pub use diff::{diff, ContentDiffs, ReadyDiffs};
pub use fingerprint::{ChangeId, Fingerprint};

use crate::config::PluginConfig;
use crate::proto::ChangeKind;
use crate::proto::PluginDrift;
use crate::snapshot::{self, day_number, from_day_number, ChunkRef, Committed, Reader};
use crate::store::{Commit, Store, StoreError};
use rows::DRIFT;

/// Its tables of encoded rows, for `vigild check` (every row decoded).
pub(crate) const STORED_ROWS: &[&dyn crate::store::RowCheck] = &[&rows::DRIFT];

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

/// The content diffs of a scan's snapshot against its baseline, computed in a read
/// transaction before the snapshot's commit, so that the costly part of drift never holds
/// the store's write lock. `chunks` are the sealed snapshot's (see
/// `SnapshotWriter::seal`). What the commit's merge finds here it does not compute again.
pub fn prepare(
    tx: &ReadTransaction,
    node: &str,
    plugin: &str,
    day: NaiveDate,
    chunks: &[ChunkRef],
    rules: &DiffRules,
    volatile: &[String],
) -> Result<ReadyDiffs, StoreError> {
    let mut ready = ReadyDiffs::default();
    let Some((_, base)) = snapshot::baseline_before(tx, node, plugin, day)? else {
        return Ok(ready);
    };
    let reader = Reader::in_read(tx)?;
    let empty = ReadyDiffs::default();
    let changes = diff(
        &reader,
        &base.chunks,
        chunks,
        rules,
        volatile,
        &ContentDiffs::Compute { ready: &empty },
    )?;
    for c in &changes {
        if let (ChangeKind::Modified, Some(d), Some(p), Some(cur)) = (
            c.kind,
            &c.content_diff,
            &c.previous_digest,
            &c.current_digest,
        ) {
            ready
                .contents
                .insert((c.key.clone(), p.clone(), cur.clone()), d.clone());
        }
    }
    ready.whole = Some(diff::WholeDiff {
        baseline: base.chunks.iter().map(|c| c.hash).collect(),
        current: chunks.iter().map(|c| c.hash).collect(),
        changes,
    });
    Ok(ready)
}

/// The snapshot commit hook of a scan: diffs the snapshot just recorded against its
/// baseline and records that drift for the day, in the snapshot's own transaction. Content
/// diffs come from `ready` (see [`prepare`]); one missing there (the baseline changed in
/// between) is computed here, bounded like every content diff.
pub fn record(
    tx: &WriteTransaction,
    c: &Committed<'_>,
    rules: &DiffRules,
    ready: &ReadyDiffs,
) -> Result<PluginDrift, StoreError> {
    let (baseline_day, changes) = match c.baseline {
        Some((day, base)) => {
            // The same two snapshots as `prepare` compared (with the same rules and volatile
            // attributes): its diff is this one. Otherwise the baseline or the chunk list
            // changed in between (a commit came first, entries were carried): merge again.
            if let Some(changes) = ready.changes_of(&base.chunks, &c.meta.chunks) {
                (Some(day), changes)
            } else {
                let reader = Reader::in_write(tx)?;
                let changes = diff(
                    &reader,
                    &base.chunks,
                    &c.meta.chunks,
                    rules,
                    &c.meta.volatile,
                    &ContentDiffs::Compute { ready },
                )?;
                (Some(day), changes)
            }
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
/// time). Where a snapshot was pruned, the recorded drift is returned as it was. Content
/// diffs are never computed here: they are the ones recorded at scan time.
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
            let recorded: HashMap<String, String> = std::mem::take(&mut pd.changes)
                .into_iter()
                .filter_map(|c| Some((c.key, c.content_diff?)))
                .collect();
            pd.changes = diff(
                &reader,
                &base.chunks,
                &cur.chunks,
                &rules,
                &cur.volatile,
                &ContentDiffs::Recorded(&recorded),
            )?;
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
