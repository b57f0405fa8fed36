//! Open tasks written before tasks were grouped per destination carry fingerprints without
//! one (`policy:P/C`, `scan-failure:H`). Once, at start, each open one gets the destination
//! of its first node under the config in force (`policy:DEST:P/C`), so that the next audit
//! or scan finds, updates and resolves it instead of opening a duplicate; a scan-failure
//! task's nodes are indexed so that a clean scan resolves them. Old drift tasks stand for a
//! node's whole change set and keep their fingerprint: nothing new joins them, and they
//! close as before.

use redb::{ReadableTable, WriteTransaction};

use super::grouping;
use super::persist::{self, destination_key};
use super::rows::USER_TASKS;
use crate::config::Config;
use crate::proto::UserTaskKind;
use crate::store::tables::{META, OPEN_FINGERPRINTS, SCAN_FAILURE_NODES, TASK_NODES};
use crate::store::StoreError;

/// Marks the store as upgraded.
const DONE: &str = "tasks.per_destination";

/// Upgrades the open tasks once; returns how many it changed.
pub fn per_destination(tx: &WriteTransaction, config: &Config) -> Result<usize, StoreError> {
    if META.write(tx)?.get(DONE)?.is_some() {
        return Ok(0);
    }
    let open: Vec<(String, u64)> = {
        let table = OPEN_FINGERPRINTS.write(tx)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push((k.value().to_owned(), v.value()));
        }
        out
    };
    let mut changed = 0;
    for (fp, id) in open {
        if destination_key(&fp).is_some() || fp.starts_with("drift:") {
            continue;
        }
        let Some(mut task) = persist::get(tx, id)? else {
            continue;
        };
        let nodes: Vec<String> = {
            let table = TASK_NODES.write(tx)?;
            let mut out = Vec::new();
            for entry in table.range((id, "")..)? {
                let (k, _) = entry?;
                let (tid, n) = k.value();
                if tid != id {
                    break;
                }
                out.push(n.to_owned());
            }
            out
        };
        let Some(first) = nodes.first() else { continue };
        let dest = grouping::destination(config, first);
        let Some((kind, rest)) = fp.split_once(':') else {
            continue;
        };
        task.fingerprint = format!("{kind}:{}:{rest}", dest.key);
        task.destination = dest.group().map(str::to_owned);
        {
            let mut index = OPEN_FINGERPRINTS.write(tx)?;
            index.remove(fp.as_str())?;
            index.insert(task.fingerprint.as_str(), id)?;
        }
        if task.kind == UserTaskKind::ScanFailure {
            // "Scan failure: PLUGIN plugin: …"
            if let Some(plugin) = task
                .title
                .strip_prefix("Scan failure: ")
                .and_then(|t| t.split_once(" plugin: "))
                .map(|(p, _)| p.to_owned())
            {
                let mut failing = SCAN_FAILURE_NODES.write(tx)?;
                for n in &nodes {
                    failing.insert((n.as_str(), plugin.as_str(), id), ())?;
                }
            }
        }
        persist::put(tx, &mut task)?;
        changed += 1;
    }
    META.write(tx)?.insert(DONE, 1)?;
    Ok(changed)
}

/// Marks the store's tasks as having their dedup keys.
const KEYED: &str = "tasks.dedup_keys";

/// Gives every task written before dedup keys its key, once; returns how many it changed.
/// The rows' revision stays: the key is what the task always was, not a change.
pub fn dedup_keys(tx: &WriteTransaction) -> Result<usize, StoreError> {
    let instance = {
        let mut meta = META.write(tx)?;
        if meta.get(KEYED)?.is_some() {
            return Ok(0);
        }
        let instance = crate::events::instance_in(&mut meta)?;
        meta.insert(KEYED, 1)?;
        instance
    };
    let mut rows = USER_TASKS.write(tx)?;
    let mut missing = Vec::new();
    for entry in rows.iter()? {
        let (_, row) = entry?;
        if row.dedup_key().is_empty() {
            missing.push(row);
        }
    }
    for row in &mut missing {
        row.set_dedup_key(crate::events::dedup_key(&instance, row.id()));
        rows.put(row.id(), &*row)?;
    }
    Ok(missing.len())
}
