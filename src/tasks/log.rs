//! The event-log entries of user-task changes (see `events`): what an ingest did as one
//! event per task — `task.opened` (+ `task.assigned`) for a new task, `task.updated` for a
//! task that got new findings, `task.closed` for one that closed itself — and the events of
//! the API's actions. Written in the transaction of the change.

use std::collections::BTreeMap;

use redb::WriteTransaction;

use super::ingest::Ingested;
use crate::events::{self, NewLogEvent};
use crate::proto::{ClosedHow, EventKind, QueueTaskId, QueueTaskKind, UserTask};
use crate::store::StoreError;

/// Records the events of an ingest; `source` is the single scan's queue task, if it was one.
pub fn ingested(
    tx: &WriteTransaction,
    out: &Ingested,
    source: Option<QueueTaskId>,
) -> Result<usize, StoreError> {
    // Per task, the nodes this ingest added events for (by name: `per_node` is sorted).
    let mut nodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (node, (created, updated)) in &out.per_node {
        for id in created.iter().chain(updated) {
            nodes.entry(*id).or_default().push(node.clone());
        }
    }
    let latest = |id: u64| out.changed.iter().find(|t| t.id == id);
    let nodes_of = |id: u64| nodes.get(&id).cloned().unwrap_or_default();
    let mut list = Vec::new();
    for &id in &out.created {
        let Some(task) = latest(id) else { continue };
        list.push(NewLogEvent::task(EventKind::TaskOpened, task, nodes_of(id)).source(source));
        if let Some(a) = out.assignments.iter().find(|a| a.task.id == id) {
            list.push(
                NewLogEvent::task(EventKind::TaskAssigned, task, nodes_of(id))
                    .by(a.assigned_by.clone())
                    .source(source),
            );
        }
    }
    for &id in out.updated.iter().filter(|id| !out.created.contains(id)) {
        let Some(task) = latest(id) else { continue };
        list.push(NewLogEvent::task(EventKind::TaskUpdated, task, nodes_of(id)).source(source));
    }
    for c in &out.closed {
        let how = match c.source.kind {
            QueueTaskKind::Audit => ClosedHow::Audit,
            QueueTaskKind::Scan => ClosedHow::Scan,
        };
        let task = latest(c.task.id).unwrap_or(&c.task);
        list.push(
            NewLogEvent::task(EventKind::TaskClosed, task, vec![c.node.clone()])
                .by(c.by.clone())
                .how(how)
                .source(Some(c.source)),
        );
    }
    events::record(tx, list)
}

/// `task.assigned` by `by`.
pub fn assigned(tx: &WriteTransaction, task: &UserTask, by: &str) -> Result<usize, StoreError> {
    events::record(
        tx,
        [NewLogEvent::task(EventKind::TaskAssigned, task, Vec::new()).by(by)],
    )
}

/// `task.closed` by a user (`how`: one task or Close All) or `task.reopened`.
pub fn set_open(
    tx: &WriteTransaction,
    tasks: &[UserTask],
    by: &str,
    how: ClosedHow,
) -> Result<usize, StoreError> {
    events::record(
        tx,
        tasks.iter().map(|t| {
            if t.is_open() {
                NewLogEvent::task(EventKind::TaskReopened, t, Vec::new()).by(by)
            } else {
                NewLogEvent::task(EventKind::TaskClosed, t, Vec::new())
                    .by(by)
                    .how(how)
            }
        }),
    )
}
