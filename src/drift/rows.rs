//! The recorded drift of each day, as stored: (node, plugin, day) → the changes against
//! the baseline found at scan time, and what the scan could not see. Its own types, apart
//! from the wire's `PluginDrift`, in the JSON shape vigil has always stored.

use chrono::NaiveDate;
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::proto::{AttributeChange, Change, ChangeKind, PluginDrift, QueueTaskId, Value};
use crate::store::{tables, JsonTable, StoreError};

pub(super) const DRIFT: JsonTable<(&str, &str, i32), StoredDrift> =
    JsonTable::new(tables::DRIFT, "drift record");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredDrift {
    node: String,
    plugin: String,
    day: NaiveDate,
    scan: QueueTaskId,
    baseline_day: Option<NaiveDate>,
    items: u64,
    changes: Vec<StoredChange>,
    coverage_notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredChange {
    key: String,
    kind: ChangeKind,
    attributes: Vec<StoredAttribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_diff: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    content_private: bool,
    current_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_digest: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredAttribute {
    name: String,
    previous: Option<Value>,
    current: Option<Value>,
}

impl From<&PluginDrift> for StoredDrift {
    fn from(d: &PluginDrift) -> Self {
        StoredDrift {
            node: d.node.clone(),
            plugin: d.plugin.clone(),
            day: d.day,
            scan: d.scan,
            baseline_day: d.baseline_day,
            items: d.items,
            changes: d
                .changes
                .iter()
                .map(|c| StoredChange {
                    key: c.key.clone(),
                    kind: c.kind,
                    attributes: c
                        .attributes
                        .iter()
                        .map(|a| StoredAttribute {
                            name: a.name.clone(),
                            previous: a.previous.clone(),
                            current: a.current.clone(),
                        })
                        .collect(),
                    content_diff: c.content_diff.clone(),
                    content_private: c.content_private,
                    current_digest: c.current_digest.clone(),
                    previous_digest: c.previous_digest.clone(),
                })
                .collect(),
            coverage_notes: d.coverage_notes.clone(),
        }
    }
}

impl From<StoredDrift> for PluginDrift {
    fn from(d: StoredDrift) -> Self {
        PluginDrift {
            node: d.node,
            plugin: d.plugin,
            day: d.day,
            scan: d.scan,
            baseline_day: d.baseline_day,
            items: d.items,
            changes: d
                .changes
                .into_iter()
                .map(|c| Change {
                    key: c.key,
                    kind: c.kind,
                    attributes: c
                        .attributes
                        .into_iter()
                        .map(|a| AttributeChange {
                            name: a.name,
                            previous: a.previous,
                            current: a.current,
                        })
                        .collect(),
                    content_diff: c.content_diff,
                    content_private: c.content_private,
                    current_digest: c.current_digest,
                    previous_digest: c.previous_digest,
                })
                .collect(),
            coverage_notes: d.coverage_notes,
        }
    }
}

/// Where [`prune_some`] goes on: the first key the next batch looks at.
pub(super) type PruneCursor = Option<(String, String, i32)>;

/// Removes up to `limit` drift records of days before `cutoff`, looking from `cursor` on and
/// leaving it where the next batch should look (`None` once the table has been gone
/// through); returns how many it removed. Only keys are read.
pub(super) fn prune_some(
    tx: &WriteTransaction,
    cutoff: i32,
    limit: usize,
    cursor: &mut PruneCursor,
) -> Result<usize, StoreError> {
    let mut drift = DRIFT.write(tx)?;
    let mut old: Vec<(String, String, i32)> = Vec::new();
    {
        let table = drift.undecoded();
        let start = cursor.take();
        let rows = match &start {
            Some((n, p, d)) => table.range((n.as_str(), p.as_str(), *d)..)?,
            None => table.range::<(&str, &str, i32)>(..)?,
        };
        for entry in rows {
            let (k, _) = entry?;
            let (n, p, d) = k.value();
            if old.len() >= limit {
                // The first row not looked at: the next batch starts there.
                *cursor = Some((n.to_owned(), p.to_owned(), d));
                break;
            }
            if d < cutoff {
                old.push((n.to_owned(), p.to_owned(), d));
            }
        }
    }
    for (n, p, d) in &old {
        drift.remove((n.as_str(), p.as_str(), *d))?;
    }
    Ok(old.len())
}
