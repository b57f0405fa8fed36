//! The queue's rows in the store: active tasks, the Scan and Audit logs and their indexes,
//! each node's last scan, and the queue's counters. Plain blocking functions over a redb transaction, so that callers can
//! combine several of them (and other modules' writes) in one commit.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::rows::{
    StoredLastScan, StoredLogRow, StoredQueueTask, AUDIT_LOG, NODE_LAST_SCAN, QUEUE, SCAN_LOG,
};
use crate::proto::{FinalStatus, LastScan, LogPage, LogRow, QueueTask, QueueTaskKind};
use crate::store::tables::{LOG_BY_NODE, LOG_BY_STATUS, LOG_COUNTS, META};
use crate::store::{JsonTable, StoreError};

/// Counter names in the meta table.
pub const NEXT_SEQ: &str = "queue.next_seq";
pub const NEXT_SCAN: &str = "queue.next_scan_id";
pub const NEXT_AUDIT: &str = "queue.next_audit_id";
pub const NEXT_LOG: &str = "queue.next_log";
pub const DROPPED_SCHEDULED: &str = "queue.dropped_scheduled";

/// Increments a counter and returns its new value (the first value handed out is 1).
pub fn next(tx: &WriteTransaction, name: &str) -> Result<u64, StoreError> {
    let mut meta = META.write(tx)?;
    let n = meta.get(name)?.map_or(0, |v| v.value()) + 1;
    meta.insert(name, n)?;
    Ok(n)
}

pub fn add(tx: &WriteTransaction, name: &str, by: u64) -> Result<u64, StoreError> {
    let mut meta = META.write(tx)?;
    let n = meta.get(name)?.map_or(0, |v| v.value()) + by;
    meta.insert(name, n)?;
    Ok(n)
}

pub fn counter(tx: &ReadTransaction, name: &str) -> Result<u64, StoreError> {
    Ok(META.read(tx)?.get(name)?.map_or(0, |v| v.value()))
}

pub fn next_task_number(tx: &WriteTransaction, kind: QueueTaskKind) -> Result<u64, StoreError> {
    next(
        tx,
        if kind == QueueTaskKind::Scan {
            NEXT_SCAN
        } else {
            NEXT_AUDIT
        },
    )
}

pub fn put_task(tx: &WriteTransaction, seq: u64, task: &QueueTask) -> Result<(), StoreError> {
    QUEUE.write(tx)?.put(seq, &StoredQueueTask::from(task))
}

pub fn remove_task(tx: &WriteTransaction, seq: u64) -> Result<(), StoreError> {
    QUEUE.write(tx)?.remove(seq)?;
    Ok(())
}

/// Every active task in queue order. A row that does not decode (or describes a task that
/// cannot be) is logged and counted, and left out: it cannot be run, and refusing to start
/// over it would take the whole daemon down.
pub fn load_tasks(tx: &WriteTransaction) -> Result<Vec<(u64, QueueTask)>, StoreError> {
    let table = QUEUE.write(tx)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (k, row) = entry?;
        match QueueTask::try_from(row) {
            Ok(task) => out.push((k.value(), task)),
            Err(e) => tracing::error!(
                seq = k.value(),
                "skipping a queue row that cannot be run: {e}"
            ),
        }
    }
    Ok(out)
}

const STATUSES: [FinalStatus; 3] = [
    FinalStatus::Finished,
    FinalStatus::Cancelled,
    FinalStatus::Failed,
];

/// The log table of a kind, and its name in the log indexes.
fn log_table(kind: QueueTaskKind) -> (JsonTable<u64, StoredLogRow>, &'static str) {
    match kind {
        QueueTaskKind::Scan => (SCAN_LOG, "scans"),
        QueueTaskKind::Audit => (AUDIT_LOG, "audits"),
    }
}

/// Meta counter: how many rows of a log the indexes cover.
fn indexed_counter(log: &str) -> String {
    format!("queue.log_indexed.{log}")
}

fn status_name(status: FinalStatus) -> &'static str {
    match status {
        FinalStatus::Finished => "Finished",
        FinalStatus::Cancelled => "Cancelled",
        FinalStatus::Failed => "Failed",
    }
}

/// Appends a terminal task's row to its log; returns the row's log sequence number.
pub fn append_log(tx: &WriteTransaction, row: &LogRow) -> Result<u64, StoreError> {
    let seq = next(tx, NEXT_LOG)?;
    let (table, log) = log_table(row.id.kind);
    table.write(tx)?.put(seq, &StoredLogRow::from(row))?;
    index_log_row(tx, log, seq, &row.target, row.status)?;
    add(tx, &indexed_counter(log), 1)?;
    if row.id.kind == QueueTaskKind::Scan {
        NODE_LAST_SCAN
            .write(tx)?
            .put(row.target.as_str(), &StoredLastScan::from(row))?;
    }
    Ok(seq)
}

/// Fills in the user tasks a row's findings created and updated (for a run's rows, whose
/// tasks are made when the run ends).
pub fn set_log_counts(
    tx: &WriteTransaction,
    kind: QueueTaskKind,
    seq: u64,
    created: u64,
    updated: u64,
) -> Result<(), StoreError> {
    let (table, _) = log_table(kind);
    let mut rows = table.write(tx)?;
    if let Some(mut row) = rows.get(seq)? {
        row.user_tasks_created = created;
        row.user_tasks_updated = updated;
        rows.put(seq, &row)?;
    }
    Ok(())
}

fn index_log_row(
    tx: &WriteTransaction,
    log: &str,
    seq: u64,
    node: &str,
    status: FinalStatus,
) -> Result<(), StoreError> {
    let status = status_name(status);
    LOG_BY_NODE.write(tx)?.insert((log, node, seq), status)?;
    LOG_BY_STATUS.write(tx)?.insert((log, status, seq), ())?;
    let mut counts = LOG_COUNTS.write(tx)?;
    for key in [(log, Some(node), status), (log, None, status)] {
        let n = counts.get(key)?.map_or(0, |v| v.value()) + 1;
        counts.insert(key, n)?;
    }
    Ok(())
}

/// Rebuilds the log indexes if they do not cover every log row (a store written before
/// they existed, or by an older vigild). Returns how many rows were indexed; 0 when the
/// indexes were complete.
pub fn ensure_log_index(tx: &WriteTransaction) -> Result<u64, StoreError> {
    let mut complete = true;
    for kind in [QueueTaskKind::Scan, QueueTaskKind::Audit] {
        let (table, log) = log_table(kind);
        let rows = table.write(tx)?.len()?;
        let indexed = META
            .write(tx)?
            .get(indexed_counter(log).as_str())?
            .map_or(0, |v| v.value());
        complete &= rows == indexed;
    }
    if complete {
        return Ok(0);
    }
    LOG_BY_NODE.write(tx)?.retain(|_, _| false)?;
    LOG_BY_STATUS.write(tx)?.retain(|_, _| false)?;
    LOG_COUNTS.write(tx)?.retain(|_, _| false)?;
    let mut total = 0;
    for kind in [QueueTaskKind::Scan, QueueTaskKind::Audit] {
        let (table, log) = log_table(kind);
        let table = table.write(tx)?;
        // Rows that do not decode are counted as covered (reading leaves them out too).
        let rows = table.len()?;
        for entry in table.iter()? {
            let (k, row) = entry?;
            index_log_row(tx, log, k.value(), &row.target, row.status)?;
        }
        META.write(tx)?
            .insert(indexed_counter(log).as_str(), rows)?;
        total += rows;
    }
    Ok(total)
}

pub fn last_scan(tx: &ReadTransaction, node: &str) -> Result<Option<LastScan>, StoreError> {
    Ok(NODE_LAST_SCAN.read(tx)?.get(node)?.map(LastScan::from))
}

/// Which log rows to return.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub node: Option<String>,
    pub status: Option<FinalStatus>,
    pub offset: usize,
    pub limit: usize,
}

/// Newest first, filtered and paged. Reads only the page's rows: the indexes give the
/// sequence numbers (a node's rows, or a status's) and the counts give the total; only a
/// filter on node and status together walks that node's index entries (keys and a status
/// word, no rows) until the page is full.
pub fn read_log(
    tx: &ReadTransaction,
    kind: QueueTaskKind,
    filter: &LogFilter,
) -> Result<LogPage, StoreError> {
    let (table, log) = log_table(kind);
    let table = table.read(tx)?;
    let status = filter.status.map(status_name);
    let node = filter.node.as_deref();
    let counts = LOG_COUNTS.read(tx)?;
    let count = |node: Option<&str>, status: &str| -> Result<u64, StoreError> {
        Ok(counts.get((log, node, status))?.map_or(0, |v| v.value()))
    };
    let total = match (node, status) {
        (None, None) => table.len()?,
        (_, Some(s)) => count(node, s)?,
        (Some(_), None) => {
            let mut sum = 0;
            for s in STATUSES {
                sum += count(node, status_name(s))?;
            }
            sum
        }
    };
    let (skip, take) = (filter.offset, filter.limit);
    let mut seqs: Vec<u64> = Vec::with_capacity(take.min(1000));
    let mut seen = 0;
    let mut keep = |seq: u64| {
        if seen >= skip {
            seqs.push(seq);
        }
        seen += 1;
        seqs.len() < take
    };
    if take > 0 {
        match (node, status) {
            (None, None) => {
                for key in table.keys()?.rev() {
                    if !keep(key?.value()) {
                        break;
                    }
                }
            }
            (None, Some(s)) => {
                let index = LOG_BY_STATUS.read(tx)?;
                for entry in index.range((log, s, 0)..=(log, s, u64::MAX))?.rev() {
                    if !keep(entry?.0.value().2) {
                        break;
                    }
                }
            }
            (Some(n), s) => {
                let index = LOG_BY_NODE.read(tx)?;
                for entry in index.range((log, n, 0)..=(log, n, u64::MAX))?.rev() {
                    let (k, v) = entry?;
                    if s.is_some_and(|s| s != v.value()) {
                        continue;
                    }
                    if !keep(k.value().2) {
                        break;
                    }
                }
            }
        }
    }
    let mut rows = Vec::with_capacity(seqs.len());
    for seq in seqs {
        if let Some(row) = table.get(seq)? {
            rows.push(LogRow::from(row));
        }
    }
    Ok(LogPage {
        rows,
        total: total as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Scope;
    use crate::proto::QueueTaskId;
    use crate::store::{Commit, Store};

    fn row(kind: QueueTaskKind, number: u64, node: &str, status: FinalStatus) -> LogRow {
        let now = chrono::Utc::now();
        LogRow {
            id: QueueTaskId { kind, number },
            target: node.to_owned(),
            scope: Scope::All,
            initiator: "uid 0".into(),
            schedule: None,
            queued_at: now,
            started_at: Some(now),
            finished_at: now,
            status,
            errors: u32::from(status == FinalStatus::Failed),
            messages: Vec::new(),
            summary: None,
            attempt: 1,
            items_scanned: 0,
            changes_found: 0,
            checks: Vec::new(),
            drift_fingerprint: None,
            user_tasks_created: 0,
            user_tasks_updated: 0,
            plugins: Vec::new(),
            run: None,
        }
    }

    /// What `read_log` must return: every row decoded, filtered and paged.
    fn reference(rows: &[LogRow], kind: QueueTaskKind, f: &LogFilter) -> (Vec<String>, usize) {
        let matching: Vec<&LogRow> = rows
            .iter()
            .rev()
            .filter(|r| r.id.kind == kind)
            .filter(|r| f.node.as_ref().is_none_or(|n| n == &r.target))
            .filter(|r| f.status.is_none_or(|s| s == r.status))
            .collect();
        let page = matching
            .iter()
            .skip(f.offset)
            .take(f.limit)
            .map(|r| r.id.to_string())
            .collect();
        (page, matching.len())
    }

    fn check_pages(store: &Store, rows: &[LogRow]) {
        store
            .read_blocking(|tx| -> Result<(), StoreError> {
                check_pages_in(tx, rows);
                Ok(())
            })
            .unwrap();
    }

    fn check_pages_in(tx: &ReadTransaction, rows: &[LogRow]) {
        for kind in [QueueTaskKind::Scan, QueueTaskKind::Audit] {
            for node in [None, Some("n0"), Some("n2"), Some("gone")] {
                for status in [None, Some(FinalStatus::Failed), Some(FinalStatus::Finished)] {
                    for (offset, limit) in [(0, 50), (0, 3), (4, 3), (39, 5), (100, 5), (0, 0)] {
                        let f = LogFilter {
                            node: node.map(str::to_owned),
                            status,
                            offset,
                            limit,
                        };
                        let page = read_log(tx, kind, &f).unwrap();
                        let got: Vec<String> = page.rows.iter().map(|r| r.id.to_string()).collect();
                        assert_eq!(
                            (got, page.total),
                            reference(rows, kind, &f),
                            "{kind:?} {f:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn log_pages_come_from_the_indexes_and_match_a_full_scan() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let statuses = [
            FinalStatus::Finished,
            FinalStatus::Failed,
            FinalStatus::Cancelled,
        ];
        let rows: Vec<LogRow> = (0..60u64)
            .map(|i| {
                let kind = if i % 4 == 3 {
                    QueueTaskKind::Audit
                } else {
                    QueueTaskKind::Scan
                };
                let status = statuses[(i % 7 % 3) as usize];
                row(kind, i + 1, &format!("n{}", i % 3), status)
            })
            .collect();
        store
            .write_blocking(Commit::Durable, |tx| -> Result<(), StoreError> {
                for r in &rows {
                    append_log(tx, r)?;
                }
                Ok(())
            })
            .unwrap();
        check_pages(&store, &rows);
        // Complete indexes are left alone.
        assert_eq!(
            store
                .write_blocking(Commit::Durable, ensure_log_index)
                .unwrap(),
            0
        );

        // A store whose logs were written without the indexes gets them at the next start.
        store
            .write_blocking(Commit::Durable, |tx| -> Result<(), StoreError> {
                LOG_BY_NODE.write(tx)?.retain(|_, _| false)?;
                LOG_BY_STATUS.write(tx)?.retain(|_, _| false)?;
                LOG_COUNTS.write(tx)?.retain(|_, _| false)?;
                META.write(tx)?.remove(indexed_counter("audits").as_str())?;
                Ok(())
            })
            .unwrap();
        assert_eq!(
            store
                .write_blocking(Commit::Durable, ensure_log_index)
                .unwrap(),
            60
        );
        check_pages(&store, &rows);
    }
}
