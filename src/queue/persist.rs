//! The queue's rows in the store: active tasks, the Scan and Audit logs, counters and
//! schedule fire times. Plain blocking functions over a redb transaction, so that callers can
//! combine several of them (and other modules' writes) in one commit.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use crate::proto::{CheckRecord, FinalStatus, LastScan, LogPage, LogRow, QueueTask, TaskKind};
use crate::store::tables::{
    AUDIT_LOG, META, NODE_LAST_SCAN, POLICY_RESULTS, QUEUE, SCAN_LOG, SCHEDULE_FIRED,
};
use crate::store::StoreError;

/// Counter names in the meta table.
pub const NEXT_SEQ: &str = "queue.next_seq";
pub const NEXT_SCAN: &str = "queue.next_scan_id";
pub const NEXT_AUDIT: &str = "queue.next_audit_id";
pub const NEXT_LOG: &str = "queue.next_log";
pub const DROPPED_SCHEDULED: &str = "queue.dropped_scheduled";

/// Increments a counter and returns its new value (the first value handed out is 1).
pub fn next(tx: &WriteTransaction, name: &str) -> Result<u64, StoreError> {
    let mut meta = tx.open_table(META)?;
    let n = meta.get(name)?.map_or(0, |v| v.value()) + 1;
    meta.insert(name, n)?;
    Ok(n)
}

pub fn add(tx: &WriteTransaction, name: &str, by: u64) -> Result<u64, StoreError> {
    let mut meta = tx.open_table(META)?;
    let n = meta.get(name)?.map_or(0, |v| v.value()) + by;
    meta.insert(name, n)?;
    Ok(n)
}

pub fn counter(tx: &ReadTransaction, name: &str) -> Result<u64, StoreError> {
    Ok(tx.open_table(META)?.get(name)?.map_or(0, |v| v.value()))
}

pub fn next_task_number(tx: &WriteTransaction, kind: TaskKind) -> Result<u64, StoreError> {
    next(
        tx,
        if kind == TaskKind::Scan {
            NEXT_SCAN
        } else {
            NEXT_AUDIT
        },
    )
}

fn encode<T: serde::Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Encode {
        what,
        error: e.to_string(),
    })
}

pub fn put_task(tx: &WriteTransaction, seq: u64, task: &QueueTask) -> Result<(), StoreError> {
    let bytes = encode("queue task", task)?;
    tx.open_table(QUEUE)?.insert(seq, bytes.as_slice())?;
    Ok(())
}

pub fn remove_task(tx: &WriteTransaction, seq: u64) -> Result<(), StoreError> {
    tx.open_table(QUEUE)?.remove(seq)?;
    Ok(())
}

/// Every active task in queue order. A row that does not decode is logged and skipped: it
/// cannot be run, and refusing to start over it would take the whole daemon down.
pub fn load_tasks(tx: &WriteTransaction) -> Result<Vec<(u64, QueueTask)>, StoreError> {
    let table = tx.open_table(QUEUE)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        match serde_json::from_slice::<QueueTask>(v.value()) {
            Ok(task) => out.push((k.value(), task)),
            Err(e) => tracing::error!(
                seq = k.value(),
                "skipping a queue row that does not decode: {e}"
            ),
        }
    }
    Ok(out)
}

pub fn append_log(tx: &WriteTransaction, row: &LogRow) -> Result<(), StoreError> {
    let seq = next(tx, NEXT_LOG)?;
    let bytes = encode("log row", row)?;
    let def = if row.id.kind == TaskKind::Scan {
        SCAN_LOG
    } else {
        AUDIT_LOG
    };
    tx.open_table(def)?.insert(seq, bytes.as_slice())?;
    if row.id.kind == TaskKind::Scan {
        let last = LastScan {
            id: row.id,
            finished_at: row.finished_at,
            status: row.status,
            items_scanned: row.items_scanned,
            changes_found: row.changes_found,
        };
        let bytes = encode("last scan", &last)?;
        tx.open_table(NODE_LAST_SCAN)?
            .insert(row.target.as_str(), bytes.as_slice())?;
    }
    Ok(())
}

/// Keeps each check's latest result per node (for `GET /v1/policies`).
pub fn record_checks(tx: &WriteTransaction, checks: &[CheckRecord]) -> Result<(), StoreError> {
    if checks.is_empty() {
        return Ok(());
    }
    let mut table = tx.open_table(POLICY_RESULTS)?;
    for c in checks {
        let bytes = encode("check result", c)?;
        table.insert(
            (c.policy.as_str(), c.check.as_str(), c.node.as_str()),
            bytes.as_slice(),
        )?;
    }
    Ok(())
}

/// Latest results of one policy's checks: check → results per node.
pub fn policy_results(
    tx: &ReadTransaction,
    policy: &str,
) -> Result<std::collections::BTreeMap<String, Vec<CheckRecord>>, StoreError> {
    let table = tx.open_table(POLICY_RESULTS)?;
    let mut out: std::collections::BTreeMap<String, Vec<CheckRecord>> = Default::default();
    for entry in table.range((policy, "", "")..)? {
        let (k, v) = entry?;
        let (p, check, _) = k.value();
        if p != policy {
            break;
        }
        if let Ok(r) = serde_json::from_slice::<CheckRecord>(v.value()) {
            out.entry(check.to_owned()).or_default().push(r);
        }
    }
    Ok(out)
}

pub fn last_scan(tx: &ReadTransaction, node: &str) -> Result<Option<LastScan>, StoreError> {
    Ok(tx
        .open_table(NODE_LAST_SCAN)?
        .get(node)?
        .and_then(|v| serde_json::from_slice(v.value()).ok()))
}

/// Which log rows to return.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub node: Option<String>,
    pub status: Option<FinalStatus>,
    pub offset: usize,
    pub limit: usize,
}

/// Newest first, filtered and paged.
pub fn read_log(
    tx: &ReadTransaction,
    kind: TaskKind,
    filter: &LogFilter,
) -> Result<LogPage, StoreError> {
    let def = if kind == TaskKind::Scan {
        SCAN_LOG
    } else {
        AUDIT_LOG
    };
    let table = tx.open_table(def)?;
    let mut rows = Vec::new();
    let mut total = 0;
    for entry in table.iter()?.rev() {
        let (_, v) = entry?;
        let Ok(row) = serde_json::from_slice::<LogRow>(v.value()) else {
            continue;
        };
        if filter.node.as_ref().is_some_and(|n| n != &row.target)
            || filter.status.is_some_and(|s| s != row.status)
        {
            continue;
        }
        if total >= filter.offset && rows.len() < filter.limit {
            rows.push(row);
        }
        total += 1;
    }
    Ok(LogPage { rows, total })
}

pub fn schedule_fired(tx: &ReadTransaction, name: &str) -> Result<Option<i64>, StoreError> {
    Ok(tx.open_table(SCHEDULE_FIRED)?.get(name)?.map(|v| v.value()))
}

/// Compare-and-set of a schedule's last due time: records `due_unix` and returns true if it
/// is later than the recorded one (or none is recorded); false, changing nothing, if that
/// due time (or a later one) already ran.
pub fn claim_due(tx: &WriteTransaction, name: &str, due_unix: i64) -> Result<bool, StoreError> {
    let mut table = tx.open_table(SCHEDULE_FIRED)?;
    if table
        .get(name)?
        .is_some_and(|last| last.value() >= due_unix)
    {
        return Ok(false);
    }
    table.insert(name, due_unix)?;
    Ok(true)
}

/// Records `now_unix` as a schedule's last due time if it has none yet.
pub fn schedule_seen(tx: &WriteTransaction, name: &str, now_unix: i64) -> Result<(), StoreError> {
    let mut table = tx.open_table(SCHEDULE_FIRED)?;
    if table.get(name)?.is_none() {
        table.insert(name, now_unix)?;
    }
    Ok(())
}
