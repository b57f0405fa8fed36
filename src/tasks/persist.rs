//! User tasks in the store: rows, events and the indexes that find an open task by its
//! fingerprint, by its changes, or by a failing node — plain functions over the tables of
//! one write transaction ([`Tables`], each opened once), so that a scan's log row, its
//! findings' tasks and events, and the mails of new assignments all commit together.

use chrono::{DateTime, NaiveDate, Utc};
use redb::{ReadTransaction, ReadableTable, Table, WriteTransaction};

use super::index::TaskIndex;
use super::rows::{StoredEvent, StoredUserTask, TASK_EVENTS, USER_TASKS};
use crate::proto::{
    QueueTaskId, TaskChange, UserTask, UserTaskEvent, UserTaskKind, UserTaskNode, UserTaskState,
};
use crate::snapshot::day_number;
use crate::store::tables::{
    LAST_FINGERPRINTS, META, OPEN_DRIFT_CHANGES, OPEN_FINGERPRINTS, SCAN_FAILURE_NODES,
    TASK_CHANGE_IDS, TASK_EVENT_DAYS, TASK_NODES, TASK_NODE_RESOLVED,
};
use crate::store::{StoreError, WriteRows};

const NEXT_TASK: &str = "tasks.next_id";
/// Nodes listed in a task's `first_nodes`.
const FIRST_NODES: usize = 10;
/// Changes kept in a drift task's row (all of them are in `TASK_CHANGE_IDS`).
pub const MAX_TASK_CHANGES: usize = 1000;

/// The user-task tables of one write transaction, each opened once.
pub struct Tables<'t> {
    tasks: WriteRows<'t, u64, StoredUserTask>,
    events: WriteRows<'t, (u64, u64), StoredEvent>,
    nodes: Table<'t, (u64, &'static str), u64>,
    event_days: Table<'t, (u64, &'static str, i32), u64>,
    resolved: Table<'t, (u64, &'static str), &'static str>,
    open_fingerprints: Table<'t, &'static str, u64>,
    last_fingerprints: Table<'t, &'static str, u64>,
    change_ids: Table<'t, (u64, &'static str), ()>,
    open_drift: Table<'t, (&'static str, &'static str, u64), ()>,
    failure_nodes: Table<'t, (&'static str, &'static str, u64), ()>,
    meta: Table<'t, &'static str, u64>,
}

impl<'t> Tables<'t> {
    pub fn open(tx: &'t WriteTransaction) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            tasks: USER_TASKS.write(tx)?,
            events: TASK_EVENTS.write(tx)?,
            nodes: TASK_NODES.write(tx)?,
            event_days: TASK_EVENT_DAYS.write(tx)?,
            resolved: TASK_NODE_RESOLVED.write(tx)?,
            open_fingerprints: OPEN_FINGERPRINTS.write(tx)?,
            last_fingerprints: LAST_FINGERPRINTS.write(tx)?,
            change_ids: TASK_CHANGE_IDS.write(tx)?,
            open_drift: OPEN_DRIFT_CHANGES.write(tx)?,
            failure_nodes: SCAN_FAILURE_NODES.write(tx)?,
            meta: META.write(tx)?,
        })
    }

    pub fn get(&self, id: u64) -> Result<Option<UserTask>, StoreError> {
        Ok(self.tasks.get(id)?.map(UserTask::from))
    }

    /// Stores a changed task, raising its revision: of two copies of a task, the one with
    /// the higher revision is the newer (the in-memory index relies on it).
    pub fn put(&mut self, task: &mut UserTask) -> Result<(), StoreError> {
        task.revision += 1;
        self.tasks.put(task.id, &StoredUserTask::from(&*task))
    }

    /// The open task with this fingerprint, if any.
    pub fn open_with_fingerprint(&self, fp: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.open_fingerprints.get(fp)?.map(|v| v.value()))
    }

    /// The newest task of this fingerprint, open or closed.
    pub fn last_with_fingerprint(&self, fp: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.last_fingerprints.get(fp)?.map(|v| v.value()))
    }

    /// Stores a new task (open, no events yet), indexed by its fingerprint and, for drift,
    /// by its changes in its destination.
    pub fn create(&mut self, new: NewTask, now: DateTime<Utc>) -> Result<UserTask, StoreError> {
        let id = self.meta.get(NEXT_TASK)?.map_or(0, |v| v.value()) + 1;
        self.meta.insert(NEXT_TASK, id)?;
        let previous = self.last_with_fingerprint(&new.fingerprint)?;
        let mut description = new.description;
        if let Some(prev) = previous.map(|p| self.get(p)).transpose()?.flatten() {
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
        let change_count = new.change_ids.len() as u64;
        let mut task = UserTask {
            id,
            kind: new.kind,
            title: new.title,
            description,
            state: UserTaskState::Open,
            assignee: new.assignee,
            created_at: now,
            last_event_at: now,
            events: 0,
            nodes: 0,
            first_nodes: Vec::new(),
            fingerprint: new.fingerprint,
            recurrence_of: previous,
            revision: 0,
            changes: new.changes.into_iter().take(MAX_TASK_CHANGES).collect(),
            change_count,
            destination: new.destination,
            siblings: Vec::new(),
            dedup_key: crate::events::dedup_key(&crate::events::instance_in(&mut self.meta)?, id),
        };
        for cid in &new.change_ids {
            self.change_ids.insert((id, cid.as_str()), ())?;
        }
        self.put(&mut task)?;
        self.last_fingerprints
            .insert(task.fingerprint.as_str(), id)?;
        self.index_open(&task, true)?;
        Ok(task)
    }

    /// Adds one event for `node` to `task` (the caller stores the task afterwards), unless
    /// the task has one for that node and day already. Returns whether it added one and
    /// whether the node is new to the task.
    pub fn add_event(
        &mut self,
        task: &mut UserTask,
        e: &NewEvent<'_>,
    ) -> Result<Added, StoreError> {
        let day = day_number(e.day);
        if self.event_days.get((task.id, e.node, day))?.is_some() {
            return Ok(Added::No);
        }
        let seq = task.events + 1;
        let event = UserTaskEvent {
            node: e.node.to_owned(),
            time: e.time,
            source: e.source,
            day: e.day,
            details: e.details.to_owned(),
            changes: task.change_count,
        };
        self.events
            .put((task.id, seq), &StoredEvent::from(&event))?;
        self.event_days.insert((task.id, e.node, day), seq)?;
        let per_node = self.nodes.get((task.id, e.node))?.map_or(0, |v| v.value());
        self.nodes.insert((task.id, e.node), per_node + 1)?;
        // Found again: no longer resolved.
        self.resolved.remove((task.id, e.node))?;
        task.events = seq;
        task.last_event_at = e.time;
        if per_node > 0 {
            return Ok(Added::Event);
        }
        task.nodes += 1;
        if task.first_nodes.len() < FIRST_NODES {
            task.first_nodes.push(e.node.to_owned());
        }
        Ok(Added::NewNode)
    }

    /// The change ids of a drift task.
    pub fn change_ids_of(&self, id: u64) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for entry in self.change_ids.range((id, "")..)? {
            let (k, _) = entry?;
            let (tid, cid) = k.value();
            if tid != id {
                break;
            }
            out.push(cid.to_owned());
        }
        Ok(out)
    }

    /// Open drift tasks of `destination` that have the change `change_id`.
    pub fn open_drift_with(
        &self,
        destination: &str,
        change_id: &str,
    ) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        let rows = self
            .open_drift
            .range((destination, change_id, 0)..=(destination, change_id, u64::MAX))?;
        for entry in rows {
            out.push(entry?.0.value().2);
        }
        Ok(out)
    }

    /// Remembers that `node` fails `plugin` in the scan-failure task `id`.
    pub fn note_failing(&mut self, node: &str, plugin: &str, id: u64) -> Result<(), StoreError> {
        self.failure_nodes.insert((node, plugin, id), ())?;
        Ok(())
    }

    /// The scan-failure tasks in which `node` fails `plugin` (taken out of the index: the
    /// caller resolves the node in them).
    pub fn take_failing(&mut self, node: &str, plugin: &str) -> Result<Vec<u64>, StoreError> {
        let mut ids = Vec::new();
        for entry in self
            .failure_nodes
            .range((node, plugin, 0)..=(node, plugin, u64::MAX))?
        {
            ids.push(entry?.0.value().2);
        }
        for id in &ids {
            self.failure_nodes.remove((node, plugin, *id))?;
        }
        Ok(ids)
    }

    /// Marks `node` resolved (by `by`) in the open task `id`; when every node of the task
    /// is resolved, the task closes itself and is returned so its assignee can be told.
    pub fn resolve_node(
        &mut self,
        id: u64,
        node: &str,
        by: &str,
    ) -> Result<Option<UserTask>, StoreError> {
        let Some(mut task) = self.get(id)? else {
            return Ok(None);
        };
        if !task.is_open() || self.nodes.get((id, node))?.is_none() {
            return Ok(None);
        }
        self.resolved.insert((id, node), by)?;
        for entry in self.nodes.range((id, "")..)? {
            let (k, _) = entry?;
            let (tid, n) = k.value();
            if tid != id {
                break;
            }
            if self.resolved.get((id, n))?.is_none() {
                return Ok(None);
            }
        }
        self.set_open(&mut task, false, by)?;
        tracing::info!(task = id, %by, "user task closed itself: every node is fine again");
        Ok(Some(task))
    }

    /// Marks a task closed or open again, keeping the open indexes right, and stores it.
    pub fn set_open(
        &mut self,
        task: &mut UserTask,
        open: bool,
        by: &str,
    ) -> Result<(), StoreError> {
        task.state = if open {
            UserTaskState::Open
        } else {
            UserTaskState::Closed {
                by: by.to_owned(),
                at: Utc::now(),
            }
        };
        self.index_open(task, open)?;
        self.put(task)
    }

    /// Adds an open task to the open indexes, or takes a closed one out.
    fn index_open(&mut self, task: &UserTask, open: bool) -> Result<(), StoreError> {
        let fp = task.fingerprint.as_str();
        if open {
            self.open_fingerprints.insert(fp, task.id)?;
        } else if self.open_fingerprints.get(fp)?.map(|v| v.value()) == Some(task.id) {
            self.open_fingerprints.remove(fp)?;
        }
        if task.kind != UserTaskKind::Drift {
            return Ok(());
        }
        let Some(dest) = destination_key(fp) else {
            return Ok(());
        };
        for cid in self.change_ids_of(task.id)? {
            if open {
                self.open_drift.insert((dest, cid.as_str(), task.id), ())?;
            } else {
                self.open_drift.remove((dest, cid.as_str(), task.id))?;
            }
        }
        Ok(())
    }
}

/// A task to create.
pub struct NewTask {
    pub kind: UserTaskKind,
    pub fingerprint: String,
    pub title: String,
    pub description: String,
    pub destination: Option<String>,
    pub assignee: Option<String>,
    /// Drift: the changes (the first ones are kept in the row) and every change's id.
    pub changes: Vec<TaskChange>,
    pub change_ids: Vec<String>,
}

/// An event to add.
pub struct NewEvent<'a> {
    pub node: &'a str,
    pub source: QueueTaskId,
    pub day: NaiveDate,
    pub time: DateTime<Utc>,
    pub details: &'a str,
}

/// What [`Tables::add_event`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The task has an event for this node and day already.
    No,
    Event,
    /// An event, on a node the task did not have.
    NewNode,
}

/// The destination segment of a fingerprint written since tasks are grouped per
/// destination (`drift:web:…`); `None` for older ones (`drift:…`).
pub fn destination_key(fingerprint: &str) -> Option<&str> {
    let mut parts = fingerprint.splitn(3, ':');
    let (_, dest, _) = (parts.next()?, parts.next()?, parts.next()?);
    Some(dest)
}

pub fn get(tx: &WriteTransaction, id: u64) -> Result<Option<UserTask>, StoreError> {
    Ok(USER_TASKS.write(tx)?.get(id)?.map(UserTask::from))
}

/// Stores a changed task, raising its revision (see [`Tables::put`]).
pub fn put(tx: &WriteTransaction, task: &mut UserTask) -> Result<(), StoreError> {
    task.revision += 1;
    USER_TASKS
        .write(tx)?
        .put(task.id, &StoredUserTask::from(&*task))
}

/// Closes each of `ids` that exists, is open and for which `keep` holds on the task as
/// stored; returns the closed tasks. Each table opened once (Close All).
pub fn close_many(
    tx: &WriteTransaction,
    ids: &[u64],
    by: &str,
    keep: impl Fn(&UserTask) -> bool,
) -> Result<Vec<UserTask>, StoreError> {
    let mut t = Tables::open(tx)?;
    let mut out = Vec::new();
    for &id in ids {
        let Some(mut task) = t.get(id)? else {
            continue;
        };
        if !task.is_open() || !keep(&task) {
            continue;
        }
        t.set_open(&mut task, false, by)?;
        out.push(task);
    }
    Ok(out)
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

/// The change ids of a drift task (none for other kinds, and for drift tasks from before
/// tasks knew their changes).
pub fn change_ids(tx: &ReadTransaction, id: u64) -> Result<Vec<String>, StoreError> {
    let table = TASK_CHANGE_IDS.read(tx)?;
    let mut out = Vec::new();
    for entry in table.range((id, "")..)? {
        let (k, _) = entry?;
        let (tid, cid) = k.value();
        if tid != id {
            break;
        }
        out.push(cid.to_owned());
    }
    Ok(out)
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
