//! User tasks in the store, and ingestion of findings: plain functions over a write
//! transaction, so that a scan's log row, its findings' tasks and events, and the mails of
//! new assignments all commit together.

use chrono::Utc;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::finding::Finding;
use super::index::TaskIndex;
use super::rows::{StoredEvent, StoredUserTask, TASK_EVENTS, USER_TASKS};
use crate::config::Config;
use crate::proto::{UserTask, UserTaskEvent, UserTaskNode, UserTaskState};
use crate::snapshot::day_number;
use crate::store::tables::{
    LAST_FINGERPRINTS, META, OPEN_FINGERPRINTS, TASK_EVENT_DAYS, TASK_NODES, TASK_NODE_RESOLVED,
};
use crate::store::StoreError;

const NEXT_TASK: &str = "tasks.next_id";
/// Nodes listed in a task's `first_nodes`.
const FIRST_NODES: usize = 10;

pub fn get(tx: &WriteTransaction, id: u64) -> Result<Option<UserTask>, StoreError> {
    Ok(USER_TASKS.write(tx)?.get(id)?.map(UserTask::from))
}

/// Stores a changed task, raising its revision: of two copies of a task, the one with the
/// higher revision is the newer (the in-memory index relies on it).
pub fn put(tx: &WriteTransaction, task: &mut UserTask) -> Result<(), StoreError> {
    task.revision += 1;
    USER_TASKS
        .write(tx)?
        .put(task.id, &StoredUserTask::from(&*task))
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
        let open = OPEN_FINGERPRINTS
            .write(tx)?
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
        let seen = TASK_EVENT_DAYS
            .write(tx)?
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
        TASK_EVENTS
            .write(tx)?
            .put((task.id, seq), &StoredEvent::from(&event))?;
        TASK_EVENT_DAYS
            .write(tx)?
            .insert((task.id, f.node.as_str(), day), seq)?;
        let mut nodes = TASK_NODES.write(tx)?;
        let per_node = nodes
            .get((task.id, f.node.as_str()))?
            .map_or(0, |v| v.value());
        nodes.insert((task.id, f.node.as_str()), per_node + 1)?;
        drop(nodes);
        // Failing again: no longer resolved.
        TASK_NODE_RESOLVED
            .write(tx)?
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
    let mut meta = META.write(tx)?;
    let id = meta.get(NEXT_TASK)?.map_or(0, |v| v.value()) + 1;
    meta.insert(NEXT_TASK, id)?;
    drop(meta);
    let previous = LAST_FINGERPRINTS
        .write(tx)?
        .get(f.fingerprint.as_str())?
        .map(|v| v.value());
    let mut description = f.description.clone();
    if let Some(prev) = previous.map(|p| get(tx, p)).transpose()?.flatten() {
        let closed = match &prev.state {
            UserTaskState::Closed { by, at } => {
                format!(", closed by {by} on {}", at.format("%Y-%m-%d"))
            }
            UserTaskState::Open => String::new(),
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
        state: UserTaskState::Open,
        assignee: first_auto_group(config, &f.node)
            .and_then(|g| config.group(&g))
            .and_then(|g| g.owners.first().cloned()),
        created_at: now,
        last_event_at: now,
        events: 0,
        nodes: 0,
        first_nodes: Vec::new(),
        fingerprint: f.fingerprint.clone(),
        recurrence_of: previous,
        revision: 0,
    };
    put(tx, &mut task)?;
    OPEN_FINGERPRINTS
        .write(tx)?
        .insert(f.fingerprint.as_str(), id)?;
    LAST_FINGERPRINTS
        .write(tx)?
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
    if !nodes.iter().any(|n| n == node) {
        return Ok(None);
    }
    let mut resolved = TASK_NODE_RESOLVED.write(tx)?;
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
    let mut index = OPEN_FINGERPRINTS.write(tx)?;
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
        task.state = UserTaskState::Open;
        index.insert(task.fingerprint.as_str(), task.id)?;
    } else {
        task.state = UserTaskState::Closed {
            by: by.to_owned(),
            at: Utc::now(),
        };
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
    let mut tasks = USER_TASKS.write(tx)?;
    let mut index = OPEN_FINGERPRINTS.write(tx)?;
    let mut out = Vec::new();
    for &id in ids {
        let Some(mut task) = tasks.get(id)?.map(UserTask::from) else {
            continue;
        };
        if !task.is_open() || !keep(&task) {
            continue;
        }
        mark(&mut index, &mut task, false, by)?;
        task.revision += 1;
        tasks.put(task.id, &StoredUserTask::from(&task))?;
        out.push(task);
    }
    Ok(out)
}

/// The open task with this fingerprint, if any.
pub fn open_with_fingerprint(tx: &WriteTransaction, fp: &str) -> Result<Option<u64>, StoreError> {
    Ok(OPEN_FINGERPRINTS.write(tx)?.get(fp)?.map(|v| v.value()))
}

/// Loads every task with its nodes into `index` (at start). Both tables are ordered by task
/// id, so one merged pass over them needs no memory beyond the index. A task row that does
/// not decode is logged and counted, and left in the store, untouched.
pub fn load_into(tx: &ReadTransaction, index: &mut TaskIndex) -> Result<(), StoreError> {
    let nodes_table = TASK_NODES.read(tx)?;
    let mut nodes = nodes_table.iter()?;
    // The first (task id, node) entry not yet given to a task.
    let mut next: Option<(u64, String)> = None;
    for entry in USER_TASKS.read(tx)?.iter()? {
        let (k, task) = entry?;
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
        index.load(task.into(), names.iter().map(String::as_str));
    }
    Ok(())
}

/// A task's nodes with their event counts.
pub fn node_counts(tx: &ReadTransaction, id: u64) -> Result<Vec<UserTaskNode>, StoreError> {
    let table = TASK_NODES.read(tx)?;
    let resolved = TASK_NODE_RESOLVED.read(tx)?;
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
    let table = TASK_EVENTS.read(tx)?;
    let mut out = Vec::new();
    for entry in table
        .range((id, 0)..=(id, u64::MAX))?
        .rev()
        .skip(offset)
        .take(limit)
    {
        out.push(entry?.1.into());
    }
    Ok(out)
}
