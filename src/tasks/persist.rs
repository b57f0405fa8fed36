//! User tasks in the store, and ingestion of findings: plain functions over a write
//! transaction, so that a scan's log row, its findings' tasks and events, and the mails of
//! new assignments all commit together.

use chrono::Utc;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::finding::Finding;
use super::index::TaskIndex;
use crate::config::Config;
use crate::proto::{UserTask, UserTaskEvent, UserTaskNode, UserTaskStatus};
use crate::snapshot::day_number;
use crate::store::tables::{
    LAST_FINGERPRINTS, META, OPEN_FINGERPRINTS, TASK_EVENTS, TASK_EVENT_DAYS, TASK_NODES,
    TASK_NODE_RESOLVED, USER_TASKS,
};
use crate::store::StoreError;

const NEXT_TASK: &str = "tasks.next_id";
/// Nodes listed in a task's `first_nodes`.
const FIRST_NODES: usize = 10;

fn encode<T: serde::Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Encode {
        what,
        error: e.to_string(),
    })
}

pub fn get(tx: &WriteTransaction, id: u64) -> Result<Option<UserTask>, StoreError> {
    Ok(tx
        .open_table(USER_TASKS)?
        .get(id)?
        .and_then(|v| serde_json::from_slice(v.value()).ok()))
}

/// Stores a changed task, raising its revision: of two copies of a task, the one with the
/// higher revision is the newer (the in-memory index relies on it).
pub fn put(tx: &WriteTransaction, task: &mut UserTask) -> Result<(), StoreError> {
    put_into(&mut tx.open_table(USER_TASKS)?, task)
}

fn put_into(
    table: &mut redb::Table<'_, u64, &'static [u8]>,
    task: &mut UserTask,
) -> Result<(), StoreError> {
    task.revision += 1;
    let bytes = encode("user task", task)?;
    table.insert(task.id, bytes.as_slice())?;
    Ok(())
}

/// A new assignment to announce by mail.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub task: UserTask,
    pub assigned_by: String,
}

/// What ingesting findings did.
#[derive(Debug, Default)]
pub struct Ingested {
    pub created: Vec<u64>,
    pub updated: Vec<u64>,
    /// Tasks as they are after this transaction (for the in-memory index).
    pub changed: Vec<UserTask>,
    /// Nodes newly added to tasks: (task, node).
    pub new_nodes: Vec<(u64, String)>,
    pub assignments: Vec<Assignment>,
    /// Tasks an audit closed because every node passes again.
    pub closed_by_audit: Vec<u64>,
}

/// Adds each finding to the open task with its fingerprint, or opens a task for it. One
/// event per task, node and day: a rescan on the same day adds nothing.
pub fn ingest(
    tx: &WriteTransaction,
    config: &Config,
    findings: &[Finding],
) -> Result<Ingested, StoreError> {
    let mut out = Ingested::default();
    let now = Utc::now();
    for f in findings {
        let open = tx
            .open_table(OPEN_FINGERPRINTS)?
            .get(f.fingerprint.as_str())?
            .map(|v| v.value());
        let mut task = match open.map(|id| get(tx, id)).transpose()?.flatten() {
            Some(task) => task,
            None => {
                let task = new_task(tx, config, f, now)?;
                out.created.push(task.id);
                if let Some(assignee) = &task.assignee {
                    let group = first_auto_group(config, &f.node).unwrap_or_default();
                    out.assignments.push(Assignment {
                        task: task.clone(),
                        assigned_by: format!("auto-assign (owner of group {group})"),
                    });
                    tracing::info!(task = task.id, %assignee, "user task auto-assigned");
                }
                task
            }
        };
        let day = day_number(f.day);
        let seen = tx
            .open_table(TASK_EVENT_DAYS)?
            .get((task.id, f.node.as_str(), day))?
            .is_some();
        if seen {
            continue;
        }
        let seq = task.events + 1;
        let event = UserTaskEvent {
            node: f.node.clone(),
            time: now,
            source: f.source,
            day: f.day,
            details: f.details.clone(),
        };
        tx.open_table(TASK_EVENTS)?
            .insert((task.id, seq), encode("task event", &event)?.as_slice())?;
        tx.open_table(TASK_EVENT_DAYS)?
            .insert((task.id, f.node.as_str(), day), seq)?;
        let mut nodes = tx.open_table(TASK_NODES)?;
        let per_node = nodes
            .get((task.id, f.node.as_str()))?
            .map_or(0, |v| v.value());
        nodes.insert((task.id, f.node.as_str()), per_node + 1)?;
        drop(nodes);
        // Failing again: no longer resolved.
        tx.open_table(TASK_NODE_RESOLVED)?
            .remove((task.id, f.node.as_str()))?;
        task.events = seq;
        task.last_event_at = now;
        if per_node == 0 {
            task.nodes += 1;
            out.new_nodes.push((task.id, f.node.clone()));
            if task.first_nodes.len() < FIRST_NODES {
                task.first_nodes.push(f.node.clone());
            }
        }
        put(tx, &mut task)?;
        if !out.created.contains(&task.id) && !out.updated.contains(&task.id) {
            out.updated.push(task.id);
        }
        out.changed.retain(|t| t.id != task.id);
        out.changed.push(task.clone());
        // The assignment mail should count the events of this transaction too.
        for a in out.assignments.iter_mut().filter(|a| a.task.id == task.id) {
            a.task = task.clone();
        }
    }
    Ok(out)
}

fn new_task(
    tx: &WriteTransaction,
    config: &Config,
    f: &Finding,
    now: chrono::DateTime<Utc>,
) -> Result<UserTask, StoreError> {
    let mut meta = tx.open_table(META)?;
    let id = meta.get(NEXT_TASK)?.map_or(0, |v| v.value()) + 1;
    meta.insert(NEXT_TASK, id)?;
    drop(meta);
    let previous = tx
        .open_table(LAST_FINGERPRINTS)?
        .get(f.fingerprint.as_str())?
        .map(|v| v.value());
    let mut description = f.description.clone();
    if let Some(prev) = previous.map(|p| get(tx, p)).transpose()?.flatten() {
        let closed = match (&prev.closed_by, prev.closed_at) {
            (Some(by), Some(at)) => format!(", closed by {by} on {}", at.format("%Y-%m-%d")),
            _ => String::new(),
        };
        description.push_str(&format!(
            "\nThis finding was seen before: task #{}{closed}.\n",
            prev.id
        ));
    }
    let mut task = UserTask {
        id,
        kind: f.kind,
        title: f.title.clone(),
        description,
        status: UserTaskStatus::Open,
        assignee: first_auto_group(config, &f.node)
            .and_then(|g| config.group(&g))
            .and_then(|g| g.owners.first().cloned()),
        created_at: now,
        last_event_at: now,
        closed_by: None,
        closed_at: None,
        events: 0,
        nodes: 0,
        first_nodes: Vec::new(),
        fingerprint: f.fingerprint.clone(),
        recurrence_of: previous,
        revision: 0,
    };
    put(tx, &mut task)?;
    tx.open_table(OPEN_FINGERPRINTS)?
        .insert(f.fingerprint.as_str(), id)?;
    tx.open_table(LAST_FINGERPRINTS)?
        .insert(f.fingerprint.as_str(), id)?;
    Ok(task)
}

/// The first group of the node that auto-assigns and has an owner.
fn first_auto_group(config: &Config, node: &str) -> Option<String> {
    let node = config.node(node)?;
    node.groups
        .iter()
        .filter_map(|g| config.group(g))
        .find(|g| g.auto_assign && !g.owners.is_empty())
        .map(|g| g.name.clone())
}

/// A later audit found the finding `fingerprint` fixed on `node`: marks the node resolved in
/// the open task of that finding; when every node of the task is resolved, the task closes
/// itself (`closed_by` = the audit) and is returned so its assignee can be told.
pub fn resolve(
    tx: &WriteTransaction,
    fingerprint: &str,
    node: &str,
    audit: &str,
) -> Result<Option<UserTask>, StoreError> {
    let Some(id) = open_with_fingerprint(tx, fingerprint)? else {
        return Ok(None);
    };
    let nodes: Vec<String> = {
        let table = tx.open_table(TASK_NODES)?;
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
    if !nodes.iter().any(|n| n == node) {
        return Ok(None);
    }
    let mut resolved = tx.open_table(TASK_NODE_RESOLVED)?;
    resolved.insert((id, node), audit)?;
    for n in &nodes {
        if resolved.get((id, n.as_str()))?.is_none() {
            return Ok(None);
        }
    }
    drop(resolved);
    let Some(mut task) = get(tx, id)? else {
        return Ok(None);
    };
    set_open(tx, &mut task, false, audit)?;
    tracing::info!(task = id, %audit, "user task closed itself: every node passes again");
    Ok(Some(task))
}

/// Marks a task closed or open again, keeping the open-fingerprint index right.
pub fn set_open(
    tx: &WriteTransaction,
    task: &mut UserTask,
    open: bool,
    by: &str,
) -> Result<(), StoreError> {
    let mut index = tx.open_table(OPEN_FINGERPRINTS)?;
    mark(&mut index, task, open, by)?;
    drop(index);
    put(tx, task)
}

fn mark(
    index: &mut redb::Table<'_, &'static str, u64>,
    task: &mut UserTask,
    open: bool,
    by: &str,
) -> Result<(), StoreError> {
    if open {
        task.status = UserTaskStatus::Open;
        task.closed_by = None;
        task.closed_at = None;
        index.insert(task.fingerprint.as_str(), task.id)?;
    } else {
        task.status = UserTaskStatus::Closed;
        task.closed_by = Some(by.to_owned());
        task.closed_at = Some(Utc::now());
        if index.get(task.fingerprint.as_str())?.map(|v| v.value()) == Some(task.id) {
            index.remove(task.fingerprint.as_str())?;
        }
    }
    Ok(())
}

/// Closes each of `ids` that exists, is open and for which `keep` holds on the task as
/// stored; returns the closed tasks. One pass with each table opened once (Close All).
pub fn close_many(
    tx: &WriteTransaction,
    ids: &[u64],
    by: &str,
    keep: impl Fn(&UserTask) -> bool,
) -> Result<Vec<UserTask>, StoreError> {
    let mut tasks = tx.open_table(USER_TASKS)?;
    let mut index = tx.open_table(OPEN_FINGERPRINTS)?;
    let mut out = Vec::new();
    for &id in ids {
        let task = tasks
            .get(id)?
            .and_then(|v| serde_json::from_slice::<UserTask>(v.value()).ok());
        let Some(mut task) = task else { continue };
        if task.status != UserTaskStatus::Open || !keep(&task) {
            continue;
        }
        mark(&mut index, &mut task, false, by)?;
        put_into(&mut tasks, &mut task)?;
        out.push(task);
    }
    Ok(out)
}

/// The open task with this fingerprint, if any.
pub fn open_with_fingerprint(tx: &WriteTransaction, fp: &str) -> Result<Option<u64>, StoreError> {
    Ok(tx
        .open_table(OPEN_FINGERPRINTS)?
        .get(fp)?
        .map(|v| v.value()))
}

/// Loads every task with its nodes into `index` (at start). Both tables are ordered by task
/// id, so one merged pass over them needs no memory beyond the index. A task row that does
/// not decode is logged and left in the store, untouched.
pub fn load_into(tx: &ReadTransaction, index: &mut TaskIndex) -> Result<(), StoreError> {
    let nodes_table = tx.open_table(TASK_NODES)?;
    let mut nodes = nodes_table.iter()?;
    // The first (task id, node) entry not yet given to a task.
    let mut next: Option<(u64, String)> = None;
    for entry in tx.open_table(USER_TASKS)?.iter()? {
        let (k, v) = entry?;
        let id = k.value();
        let mut names = Vec::new();
        loop {
            if next.is_none() {
                next = match nodes.next() {
                    Some(e) => {
                        let (key, _) = e?;
                        let (tid, node) = key.value();
                        Some((tid, node.to_owned()))
                    }
                    None => None,
                };
            }
            match next.take() {
                Some((tid, node)) if tid <= id => {
                    if tid == id {
                        names.push(node);
                    }
                }
                other => {
                    next = other;
                    break;
                }
            }
        }
        match serde_json::from_slice::<UserTask>(v.value()) {
            Ok(task) => index.load(task, names.iter().map(String::as_str)),
            Err(e) => tracing::error!(task = id, "skipping a task row that does not decode: {e}"),
        }
    }
    Ok(())
}

/// A task's nodes with their event counts.
pub fn node_counts(tx: &ReadTransaction, id: u64) -> Result<Vec<UserTaskNode>, StoreError> {
    let table = tx.open_table(TASK_NODES)?;
    let resolved = tx.open_table(TASK_NODE_RESOLVED)?;
    let mut out = Vec::new();
    for entry in table.range((id, "")..)? {
        let (k, v) = entry?;
        let (tid, node) = k.value();
        if tid != id {
            break;
        }
        out.push(UserTaskNode {
            node: node.to_owned(),
            events: v.value(),
            resolved_by: resolved.get((id, node))?.map(|r| r.value().to_owned()),
        });
    }
    Ok(out)
}

/// A task's events, newest first.
pub fn events(
    tx: &ReadTransaction,
    id: u64,
    offset: usize,
    limit: usize,
) -> Result<Vec<UserTaskEvent>, StoreError> {
    let table = tx.open_table(TASK_EVENTS)?;
    let mut out = Vec::new();
    for entry in table
        .range((id, 0)..=(id, u64::MAX))?
        .rev()
        .skip(offset)
        .take(limit)
    {
        let (_, v) = entry?;
        if let Ok(e) = serde_json::from_slice(v.value()) {
            out.push(e);
        }
    }
    Ok(out)
}
