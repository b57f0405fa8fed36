//! The end of a task: its log row, its findings (user-task changes and mails for a
//! single-node task; kept with its run otherwise), and the start of the tasks that take its
//! slot, committed together; ends that wait for each other share one commit (group commit).
//! A run whose last task ended is grouped into user tasks right after, in a commit of its
//! own that does not hold the queue.

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
            let row = log_row(&task, result, Utc::now());
            ends.push((seq, row, findings));
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
                let mut due = Vec::new();
                for (seq, mut row, findings) in ends {
                    persist::remove_task(tx, seq)?;
                    crate::audits::record_checks(tx, &row.checks)?;
                    crate::events::record(tx, crate::events::NewLogEvent::queue_failed(&row))?;
                    let ingested = match row.run {
                        Some(run) => {
                            let log_seq = persist::append_log(tx, &row)?;
                            if runs::task_ended(tx, run, &row.target, log_seq, findings)? {
                                due.push(run);
                            }
                            None
                        }
                        None => {
                            let ingested = match &findings {
                                Some(f) => UserTasks::ingest_single(tx, &config, f)?,
                                None => Ingested::default(),
                            };
                            row.user_tasks_created = ingested.created.len() as u64;
                            row.user_tasks_updated =
                                (ingested.updated.len() + ingested.closed.len()) as u64;
                            persist::append_log(tx, &row)?;
                            Some(ingested)
                        }
                    };
                    done.push((row.id, row.status, row.errors, ingested));
                }
                for (seq, t) in &next {
                    persist::put_task(tx, *seq, t)?;
                }
                Ok((done, next, due))
            })
            .await;
        for seq in seqs {
            inner.remove(seq);
        }
        match committed {
            Ok((done, next, due)) => {
                if done
                    .iter()
                    .any(|d| d.1 == crate::proto::FinalStatus::Failed)
                {
                    self.shared.tasks.events().published();
                }
                for (id, status, errors, ingested) in &done {
                    if let Some(ingested) = ingested {
                        self.shared.tasks.committed(ingested);
                    }
                    tracing::info!(%id, status = ?status, errors, "task ended");
                }
                self.launch(inner, next, loaded);
                for run in due {
                    self.group_run(run);
                }
            }
            Err(e) => {
                let ids = ids.join(", ");
                tracing::error!(
                    "cannot record the end of {ids} ({e}); they will run again at the next start"
                )
            }
        }
    }

    /// Makes the user tasks of a run whose tasks all ended, in the background: one commit
    /// of its own, which neither holds the queue's lock nor delays the task ends before it.
    pub(super) fn group_run(&self, run: u64) {
        let queue = self.clone();
        tokio::spawn(async move {
            let config = queue.shared.config.config();
            let started = std::time::Instant::now();
            let result = queue
                .shared
                .store
                .write(move |tx| runs::complete(tx, &config, run))
                .await;
            match result {
                Ok(Some((ingested, info))) => {
                    queue.shared.tasks.committed(&ingested);
                    tracing::info!(
                        run,
                        tasks = info.tasks,
                        created = info.user_tasks_created,
                        updated = info.user_tasks_updated,
                        closed = info.user_tasks_closed,
                        took_ms = started.elapsed().as_millis() as u64,
                        "run ended: its findings are user tasks"
                    );
                }
                Ok(None) => {}
                Err(e) => tracing::error!(
                    run,
                    "cannot make the user tasks of the run ({e}); trying again at the next start"
                ),
            }
            queue.shared.ended.notify_waiters();
        });
    }
}

/// A task that ended, ready to commit: its queue sequence number, log row and findings.
type TaskEnd = (u64, LogRow, Option<crate::tasks::NodeFindings>);
