//! The event log: every user-task change (and every queue task that ends Failed) as one
//! numbered event, written by [`record`] inside the transaction of the change itself, so an
//! event exists iff its change committed. Readers page through it by sequence number
//! ([`EventLog::after`]) and wait for new commits on the [`EventLog`]'s feed. The log is the
//! source a ticketing system, a SIEM or a webhook follows; pruned after
//! `daemon.retention_days`.

pub mod deliveries;
mod rows;

use chrono::{DateTime, Utc};
use redb::{ReadTransaction, ReadableTable, Table, WriteTransaction};
use tokio::sync::watch;

use crate::proto::{
    ClosedHow, EventKind, FinalStatus, LogEvent, LogRow, QueueTaskId, QueueTaskKind, UserTask,
    MAX_EVENT_NODES,
};
use crate::store::tables::META;
use crate::store::{Commit, Store, StoreError};
use rows::{StoredLogEvent, EVENT_LOG};

/// The event log's table of encoded rows, for `vigild check`.
pub(crate) const STORED_ROWS: &[&dyn crate::store::RowCheck] = &[&EVENT_LOG, &deliveries::QUEUE];

/// Meta key of the next event's sequence number.
const NEXT_SEQ: &str = "events.next_seq";
/// Meta key of this state dir's instance id (random, created once).
const INSTANCE: &str = "events.instance";
/// Events removed per commit while pruning.
const PRUNE_BATCH: usize = 1000;

/// This state dir's instance id, created on first use: 16 hex digits.
pub fn instance_in(meta: &mut Table<'_, &'static str, u64>) -> Result<String, StoreError> {
    let stored = meta.get(INSTANCE)?.map(|v| v.value());
    let id = match stored {
        Some(id) => id,
        None => {
            // Any value but 0; unique enough among a site's vigil instances (64 bits).
            let id = fastrand::u64(1..);
            meta.insert(INSTANCE, id)?;
            id
        }
    };
    Ok(format!("{id:016x}"))
}

/// [`instance_in`] opening the meta table itself.
pub fn instance(tx: &WriteTransaction) -> Result<String, StoreError> {
    instance_in(&mut META.write(tx)?)
}

/// The stable key of a task, to match a ticket made from it later: `vigil/<instance>/task/<id>`.
pub fn dedup_key(instance: &str, task: u64) -> String {
    format!("vigil/{instance}/task/{task}")
}

/// An event to record: what changed, on which task, concerning which nodes.
#[derive(Debug, Clone)]
pub struct NewLogEvent {
    pub kind: EventKind,
    /// The task as it is after the change (`None` for a failed queue task).
    pub task: Option<UserTask>,
    /// A failed queue task's first error (a task event takes the task's title).
    pub title: String,
    /// Every node the change concerns (the first [`MAX_EVENT_NODES`] are kept).
    pub nodes: Vec<String>,
    pub by: Option<String>,
    pub how: Option<ClosedHow>,
    pub source: Option<QueueTaskId>,
}

impl NewLogEvent {
    /// An event of `kind` on `task`, concerning `nodes`.
    pub fn task(kind: EventKind, task: &UserTask, nodes: Vec<String>) -> NewLogEvent {
        NewLogEvent {
            kind,
            task: Some(task.clone()),
            title: task.title.clone(),
            nodes,
            by: None,
            how: None,
            source: None,
        }
    }

    pub fn by(mut self, by: impl Into<String>) -> NewLogEvent {
        self.by = Some(by.into());
        self
    }

    pub fn how(mut self, how: ClosedHow) -> NewLogEvent {
        self.how = Some(how);
        self
    }

    pub fn source(mut self, source: Option<QueueTaskId>) -> NewLogEvent {
        self.source = source;
        self
    }

    /// `scan.failed` / `audit.failed` for a queue task that ended Failed; `None` otherwise.
    pub fn queue_failed(row: &LogRow) -> Option<NewLogEvent> {
        if row.status != FinalStatus::Failed {
            return None;
        }
        let kind = match row.id.kind {
            QueueTaskKind::Scan => EventKind::ScanFailed,
            QueueTaskKind::Audit => EventKind::AuditFailed,
        };
        Some(NewLogEvent {
            kind,
            task: None,
            title: row
                .messages
                .first()
                .cloned()
                .unwrap_or_else(|| format!("{} failed", row.id)),
            nodes: vec![row.target.clone()],
            by: Some(row.initiator.clone()),
            how: None,
            source: Some(row.id),
        })
    }
}

/// Appends `events` to the log inside the caller's transaction; returns how many.
/// Each gets the next sequence number and the id `<instance>-<seq>`, and a webhook
/// delivery row per endpoint in force that receives its kind (`deliveries::fan_out`).
pub fn record(
    tx: &WriteTransaction,
    events: impl IntoIterator<Item = NewLogEvent>,
) -> Result<usize, StoreError> {
    let mut events = events.into_iter().peekable();
    if events.peek().is_none() {
        return Ok(0);
    }
    let mut meta = META.write(tx)?;
    let instance = instance_in(&mut meta)?;
    let mut seq = meta.get(NEXT_SEQ)?.map_or(1, |v| v.value());
    let mut log = EVENT_LOG.write(tx)?;
    let time = Utc::now();
    let mut written = Vec::new();
    for e in events {
        let event = build(&instance, seq, time, e);
        log.put(seq, &StoredLogEvent::from(&event))?;
        written.push((seq, event.kind));
        seq += 1;
    }
    meta.insert(NEXT_SEQ, seq)?;
    drop((log, meta));
    deliveries::fan_out(tx, &written, time)?;
    Ok(written.len())
}

fn build(instance: &str, seq: u64, time: DateTime<Utc>, e: NewLogEvent) -> LogEvent {
    let nodes_in_event = e.nodes.len() as u64;
    let mut nodes = e.nodes;
    nodes.truncate(MAX_EVENT_NODES);
    let task = e.task.as_ref();
    LogEvent {
        seq,
        id: format!("{instance}-{seq}"),
        time,
        kind: e.kind,
        task: task.map(|t| t.id),
        dedup_key: task.map(|t| dedup_key(instance, t.id)),
        task_kind: task.map(|t| t.kind),
        title: e.title,
        status: task.map(UserTask::status),
        assignee: task.and_then(|t| t.assignee.clone()),
        events: task.map_or(0, |t| t.events),
        nodes: task.map_or(0, |t| t.nodes),
        event_nodes: nodes,
        nodes_in_event,
        by: e.by,
        how: e.how,
        source: e.source,
    }
}

/// Up to `limit` events after `after`, oldest first.
pub fn after(tx: &ReadTransaction, after: u64, limit: usize) -> Result<Vec<LogEvent>, StoreError> {
    let table = EVENT_LOG.read(tx)?;
    let mut out = Vec::new();
    for row in table.range(after.saturating_add(1)..)?.take(limit) {
        out.push(row?.1.into());
    }
    Ok(out)
}

/// The newest sequence number given out (0 before the first event).
pub fn last_seq(tx: &ReadTransaction) -> Result<u64, StoreError> {
    Ok(META
        .read(tx)?
        .get(NEXT_SEQ)?
        .map_or(0, |v| v.value().saturating_sub(1)))
}

/// Removes events older than `cutoff`, oldest first, a batch per commit; returns how many.
pub fn prune_blocking(store: &Store, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let removed = store.write_blocking(Commit::Durable, |tx| -> Result<usize, StoreError> {
            let mut log = EVENT_LOG.write(tx)?;
            let mut old = Vec::new();
            for row in log.iter()?.take(PRUNE_BATCH) {
                let (k, e) = row?;
                if e.time() >= cutoff {
                    break;
                }
                old.push(k.value());
            }
            for seq in &old {
                log.remove(*seq)?;
            }
            Ok(old.len())
        })?;
        total += removed as u64;
        if removed < PRUNE_BATCH {
            return Ok(total);
        }
    }
}

/// Events read per batch of a stream.
pub const BATCH: usize = 500;

/// What a follower gets next (see [`EventLog::next`]).
#[derive(Debug)]
pub enum Next {
    /// Events after the follower's sequence number, oldest first.
    Events(Vec<LogEvent>),
    /// Nothing new within the wait: the newest sequence number so far (for a heartbeat).
    Quiet(u64),
    /// Nothing more: the log was read to its end (not following), or vigild is stopping.
    End,
}

/// The event log as a service: reads, and the feed that wakes followers after a commit
/// that recorded events. Cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    store: Store,
    feed: watch::Sender<u64>,
    stopping: tokio_util::sync::CancellationToken,
}

impl EventLog {
    pub fn new(store: Store) -> EventLog {
        EventLog {
            store,
            feed: watch::Sender::new(0),
            stopping: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Wakes every follower: call after a commit that recorded events. A follower also
    /// re-reads after each quiet wait, so a missed wake delays it, never loses an event.
    pub fn published(&self) {
        self.feed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Ends every follow: vigild is stopping (open streams would hold its shutdown).
    pub fn stop_followers(&self) {
        self.stopping.cancel();
    }

    /// A follower of the log from `after`.
    pub fn follower(&self, after: u64) -> Follower {
        Follower {
            log: self.clone(),
            after,
            feed: self.feed.subscribe(),
        }
    }

    /// Up to `limit` events after `seq`, oldest first.
    pub async fn after(&self, seq: u64, limit: usize) -> Result<Vec<LogEvent>, StoreError> {
        self.store.read(move |tx| after(tx, seq, limit)).await
    }

    /// A receiver of the feed: it changes after each commit that recorded events.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.feed.subscribe()
    }

    /// The newest sequence number given out.
    pub async fn last_seq(&self) -> Result<u64, StoreError> {
        self.store.read(last_seq).await
    }
}

/// One reader's place in the log.
pub struct Follower {
    log: EventLog,
    after: u64,
    feed: watch::Receiver<u64>,
}

impl Follower {
    /// The next batch after the follower's place. With `wait`, an empty read waits up to
    /// that long for a commit that records events (then reads again), and says `Quiet` if
    /// none came; without, an empty read is the `End`.
    pub async fn next(&mut self, wait: Option<std::time::Duration>) -> Result<Next, StoreError> {
        loop {
            if self.log.stopping.is_cancelled() {
                return Ok(Next::End);
            }
            // Marked seen before the read: a commit after the read is a change to wait for.
            self.feed.borrow_and_update();
            let events = self.log.after(self.after, BATCH).await?;
            if let Some(last) = events.last() {
                self.after = last.seq;
                return Ok(Next::Events(events));
            }
            let Some(wait) = wait else {
                return Ok(Next::End);
            };
            tokio::select! {
                changed = self.feed.changed() => {
                    if changed.is_err() {
                        return Ok(Next::End);
                    }
                }
                _ = self.log.stopping.cancelled() => return Ok(Next::End),
                _ = tokio::time::sleep(wait) => {
                    return Ok(Next::Quiet(self.log.last_seq().await?));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
