//! The end of a task: its log row, findings, user-task changes and mails, and the start of
//! the tasks that take its slot, committed together; ends that wait for each other share
//! one commit (group commit).

use super::*;

impl Queue {
    /// Records a task's end: removes it from the queue and appends its log row, in one
    /// commit that also starts the next Queued task(s) in the slot it frees.
    pub(super) async fn complete(&self, seq: u64, end: RunEnd) {
        // Group commit: every task that ended while an earlier end was being committed is
        // committed together by whoever gets the lock next, so a fleet of short scans costs
        // one durable commit per batch rather than one per scan. A task's end is still
        // committed before anything acts on it.
        crate::sync::lock(&self.shared.ended_tasks).push((seq, end));
        let mut inner = self.shared.lock().await;
        let batch = std::mem::take(&mut *crate::sync::lock(&self.shared.ended_tasks));
        if batch.is_empty() {
            return; // committed with an earlier batch
        }
        let loaded = self.shared.config.current();
        let config = loaded.config.clone();
        let today = crate::snapshot::today(config.daemon.tz());
        let mut ends = Vec::new();
        for (seq, end) in batch {
            let Some(task) = inner.tasks.get(&seq).cloned() else {
                continue;
            };
            let Ok(result) = end else {
                // The stored row stays Running: the next start requeues it (attempt + 1).
                inner.remove(seq);
                tracing::info!(id = %task.id(), "task interrupted by shutdown; it will run again at the next start");
                continue;
            };
            let findings = findings_of(&task, &result, today, &loaded.policies);
            let passing = passing_of(&task, &result);
            let row = log_row(&task, result, Utc::now());
            ends.push((seq, row, findings, passing));
        }
        if !ends.is_empty() {
            self.commit_ends(&mut inner, ends, &loaded).await;
        }
        drop(inner);
        self.shared.ended.notify_waiters();
        self.shared.wake.notify_one();
    }

    /// Commits the ends of tasks in one transaction: per task its log row, the findings'
    /// user tasks and events, their mails; then the Running state of the tasks that take the
    /// freed slots, which are launched once that is durable.
    async fn commit_ends(&self, inner: &mut Inner, ends: Vec<TaskEnd>, loaded: &Setup) {
        let config = loaded.config.clone();
        let next = pick_ready(inner, config.daemon.slots, ends.len());
        let seqs: Vec<u64> = ends.iter().map(|(seq, ..)| *seq).collect();
        let ids: Vec<String> = ends.iter().map(|(_, row, ..)| row.id.to_string()).collect();
        let committed = self
            .shared
            .store
            .write(move |tx| -> Result<_, StoreError> {
                let mut done = Vec::with_capacity(ends.len());
                for (seq, mut row, findings, passing) in ends {
                    persist::remove_task(tx, seq)?;
                    let mut ingested = UserTasks::ingest(tx, &config, &findings)?;
                    UserTasks::resolve(tx, &passing, &row.id.to_string(), &mut ingested)?;
                    crate::audits::record_checks(tx, &row.checks)?;
                    row.user_tasks_created = ingested.created.len() as u64;
                    row.user_tasks_updated =
                        (ingested.updated.len() + ingested.closed_by_audit.len()) as u64;
                    persist::append_log(tx, &row)?;
                    done.push((row.id, row.status, row.errors, ingested));
                }
                for (seq, t) in &next {
                    persist::put_task(tx, *seq, t)?;
                }
                Ok((done, next))
            })
            .await;
        for seq in seqs {
            inner.remove(seq);
        }
        match committed {
            Ok((done, next)) => {
                for (id, status, errors, ingested) in &done {
                    self.shared.tasks.committed(ingested);
                    tracing::info!(%id, status = ?status, errors, "task ended");
                }
                self.launch(inner, next, loaded);
            }
            Err(e) => {
                let ids = ids.join(", ");
                tracing::error!(
                    "cannot record the end of {ids} ({e}); they will run again at the next start"
                )
            }
        }
    }
}

/// A task that ended, ready to commit: its queue sequence number, log row, findings, and
/// the (fingerprint, node) of the checks it found passing.
type TaskEnd = (
    u64,
    LogRow,
    Vec<crate::tasks::Finding>,
    Vec<(String, String)>,
);
