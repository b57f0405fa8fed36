//! The queue's in-memory state, and the figures `/v1/status` reads without taking its lock.
//!
//! Every change to the queue happens under one async mutex, held across the commit that
//! records it. A status request must not wait for such a commit, so each release of the
//! lock publishes the figures (depth, running, oldest start) to a plain mutex that is only
//! ever held for a copy: whoever reads them sees the queue as of its last change.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::{Deref, DerefMut};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::proto::{QueueTask, QueueTaskId, QueueTaskStatus};

#[derive(Default)]
pub(super) struct Inner {
    /// Every active task by queue sequence number.
    pub tasks: BTreeMap<u64, QueueTask>,
    /// Queued tasks, oldest first.
    pub fifo: VecDeque<u64>,
    /// Running tasks and the token that cancels each.
    pub running: HashMap<u64, CancellationToken>,
    pub by_id: HashMap<QueueTaskId, u64>,
    pub dropped_scheduled: u64,
    pub stopping: bool,
}

impl Inner {
    pub fn insert(&mut self, seq: u64, task: QueueTask) {
        if task.status() == QueueTaskStatus::Queued {
            self.fifo.push_back(seq);
        }
        self.by_id.insert(task.id(), seq);
        self.tasks.insert(seq, task);
    }

    pub fn remove(&mut self, seq: u64) -> Option<QueueTask> {
        let task = self.take(seq)?;
        if task.status() == QueueTaskStatus::Queued {
            self.fifo.retain(|s| *s != seq);
        }
        Some(task)
    }

    /// Removes many tasks with one pass over the FIFO (cancelling a full queue must not
    /// cost a pass per task).
    pub fn remove_all(&mut self, seqs: &BTreeSet<u64>) -> Vec<QueueTask> {
        self.fifo.retain(|s| !seqs.contains(s));
        seqs.iter().filter_map(|seq| self.take(*seq)).collect()
    }

    /// Removes a task from everything but the FIFO.
    fn take(&mut self, seq: u64) -> Option<QueueTask> {
        let task = self.tasks.remove(&seq)?;
        self.by_id.remove(&task.id());
        self.running.remove(&seq);
        Some(task)
    }

    pub fn figures(&self) -> Figures {
        Figures {
            queued: self.fifo.len(),
            running: self.running.len(),
            dropped_scheduled: self.dropped_scheduled,
            oldest_started: self
                .running
                .keys()
                .filter_map(|seq| self.tasks.get(seq).and_then(|t| t.state.started_at()))
                .min(),
        }
    }
}

/// What `/v1/status` shows of the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Figures {
    pub queued: usize,
    pub running: usize,
    pub dropped_scheduled: u64,
    pub oldest_started: Option<DateTime<Utc>>,
}

/// The queue's lock; publishes the figures when released.
pub(super) struct Guard<'a> {
    inner: tokio::sync::MutexGuard<'a, Inner>,
    figures: &'a std::sync::Mutex<Figures>,
}

impl Shared {
    pub(super) async fn lock(&self) -> Guard<'_> {
        Guard {
            inner: self.inner.lock().await,
            figures: &self.figures,
        }
    }
}

impl Deref for Guard<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        *crate::sync::lock(self.figures) = self.inner.figures();
    }
}
