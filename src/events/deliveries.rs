//! Webhook deliveries: the outbox rows of the event log. [`fan_out`] writes one row per
//! (event, endpoint) inside [`super::record`]'s transaction, for the endpoints in force
//! ([`set_routes`], written by the webhook service), so a delivery exists iff its event
//! committed. The webhook sender takes each endpoint's rows in sequence order ([`head`]) and
//! commits each outcome ([`delivered`], [`failed`]). Delivered and dead rows are pruned after
//! `daemon.retention_days`.

use chrono::{DateTime, Utc};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::rows::EVENT_LOG;
use crate::proto::{EventKind, LogEvent};
use crate::store::tables::{self, WEBHOOK_DONE, WEBHOOK_ROUTES};
use crate::store::{Commit, JsonTable, Store, StoreError};

pub(super) const QUEUE: JsonTable<(&str, u64), StoredDelivery> =
    JsonTable::new(tables::WEBHOOK_QUEUE, "webhook delivery");

/// Rows removed per commit while pruning.
const PRUNE_BATCH: usize = 1000;

/// A delivery waiting for its endpoint, or given up on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredDelivery {
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not before then (a retry's backoff, or the endpoint's `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Given up on: a dead letter, until an administrator retries it.
    #[serde(default)]
    pub dead: bool,
    /// When it was queued (or requeued).
    pub since: DateTime<Utc>,
}

/// Replaces the endpoints in force: name → the kinds it receives.
pub fn set_routes(
    tx: &WriteTransaction,
    routes: &[(String, Vec<EventKind>)],
) -> Result<(), StoreError> {
    let mut table = WEBHOOK_ROUTES.write(tx)?;
    table.retain(|_, _| false)?;
    for (name, kinds) in routes {
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        table.insert(name.as_str(), kinds.join(",").as_str())?;
    }
    Ok(())
}

/// Queues a delivery of each event to each endpoint in force that receives its kind.
pub(super) fn fan_out(
    tx: &WriteTransaction,
    events: &[(u64, EventKind)],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let routes = WEBHOOK_ROUTES.write(tx)?;
    let mut wanted = Vec::new();
    for row in routes.iter()? {
        let (name, kinds) = row?;
        let kinds: Vec<String> = kinds.value().split(',').map(str::to_owned).collect();
        wanted.push((name.value().to_owned(), kinds));
    }
    drop(routes);
    if wanted.is_empty() {
        return Ok(0);
    }
    let mut queue = QUEUE.write(tx)?;
    let row = StoredDelivery {
        since: now,
        ..StoredDelivery::default()
    };
    let mut n = 0;
    for (name, kinds) in &wanted {
        for (seq, kind) in events {
            if kinds.iter().any(|k| k == kind.as_str()) {
                queue.put((name.as_str(), *seq), &row)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// The next delivery of `endpoint` (its oldest row that is not dead) with its event
/// (`None` if the event was pruned meanwhile).
pub fn head(
    tx: &ReadTransaction,
    endpoint: &str,
) -> Result<Option<(u64, StoredDelivery, Option<LogEvent>)>, StoreError> {
    let queue = QUEUE.read(tx)?;
    for row in queue.range((endpoint, 0)..=(endpoint, u64::MAX))? {
        let (key, d) = row?;
        if d.dead {
            continue;
        }
        let seq = key.value().1;
        let event = EVENT_LOG.read(tx)?.get(seq)?.map(LogEvent::from);
        return Ok(Some((seq, d, event)));
    }
    Ok(None)
}

/// Records a delivery made.
pub fn delivered(
    tx: &WriteTransaction,
    endpoint: &str,
    seq: u64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    QUEUE.write(tx)?.remove((endpoint, seq))?;
    WEBHOOK_DONE
        .write(tx)?
        .insert((endpoint, seq), at.timestamp())?;
    Ok(())
}

/// Records a failed attempt: the row as it is now (its attempts, next time, or dead).
pub fn failed(
    tx: &WriteTransaction,
    endpoint: &str,
    seq: u64,
    row: &StoredDelivery,
) -> Result<(), StoreError> {
    let mut queue = QUEUE.write(tx)?;
    // A row retried or pruned meanwhile is left as it is.
    if queue.contains((endpoint, seq))? {
        queue.put((endpoint, seq), row)?;
    }
    Ok(())
}

/// An endpoint's figures.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub pending: u64,
    pub dead: u64,
    pub delivered: u64,
    /// When the head of the backlog is due.
    pub next_at: Option<DateTime<Utc>>,
}

/// An endpoint's figures; `delivered` only `with_delivered`.
pub fn counts(
    tx: &ReadTransaction,
    endpoint: &str,
    with_delivered: bool,
) -> Result<Counts, StoreError> {
    let mut c = Counts::default();
    let queue = QUEUE.read(tx)?;
    for row in queue.range((endpoint, 0)..=(endpoint, u64::MAX))? {
        let (_, d) = row?;
        if d.dead {
            c.dead += 1;
        } else {
            if c.pending == 0 {
                c.next_at = Some(d.next_at.unwrap_or(d.since));
            }
            c.pending += 1;
        }
    }
    if with_delivered {
        let done = WEBHOOK_DONE.read(tx)?;
        c.delivered = done.range((endpoint, 0)..=(endpoint, u64::MAX))?.count() as u64;
    }
    Ok(c)
}

/// Makes `endpoint`'s dead rows pending again and every pending one due now; returns
/// (requeued, made due).
pub fn retry(
    tx: &WriteTransaction,
    endpoint: &str,
    now: DateTime<Utc>,
) -> Result<(u64, u64), StoreError> {
    let mut queue = QUEUE.write(tx)?;
    let mut rows = Vec::new();
    for row in queue.range((endpoint, 0)..=(endpoint, u64::MAX))? {
        let (key, d) = row?;
        rows.push((key.value().1, d));
    }
    let (mut requeued, mut due) = (0, 0);
    for (seq, mut d) in rows {
        if d.dead {
            requeued += 1;
            d = StoredDelivery {
                since: now,
                ..StoredDelivery::default()
            };
        } else {
            due += 1;
            d.next_at = None;
        }
        queue.put((endpoint, seq), &d)?;
    }
    Ok((requeued, due))
}

/// Removes delivered rows, dead rows, and the rows of endpoints no longer configured, that
/// are older than `cutoff`; returns how many.
pub fn prune_blocking(
    store: &Store,
    cutoff: DateTime<Utc>,
    configured: &[String],
) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let configured = configured.to_vec();
        let removed = store.write_blocking(Commit::Durable, |tx| -> Result<usize, StoreError> {
            let mut done = WEBHOOK_DONE.write(tx)?;
            let mut old = Vec::new();
            for row in done.iter()? {
                let (k, at) = row?;
                if at.value() < cutoff.timestamp() {
                    let (name, seq) = k.value();
                    old.push((name.to_owned(), seq));
                    if old.len() >= PRUNE_BATCH {
                        break;
                    }
                }
            }
            for (name, seq) in &old {
                done.remove((name.as_str(), *seq))?;
            }
            let mut queue = QUEUE.write(tx)?;
            let mut stale = Vec::new();
            for row in queue.iter()? {
                let (k, d) = row?;
                let (name, seq) = k.value();
                let unconfigured = !configured.iter().any(|c| c == name);
                if (d.dead || unconfigured) && d.since < cutoff {
                    stale.push((name.to_owned(), seq));
                    if stale.len() >= PRUNE_BATCH {
                        break;
                    }
                }
            }
            for (name, seq) in &stale {
                queue.remove((name.as_str(), *seq))?;
            }
            Ok(old.len() + stale.len())
        })?;
        total += removed as u64;
        if removed < PRUNE_BATCH {
            return Ok(total);
        }
    }
}
