//! Cancelling queue tasks: Queued ones end at once, Running ones have their worker's
//! process group killed and end Cancelled; every id gets its own answer.

use std::time::Duration;

use super::*;

impl Queue {
    /// Cancels tasks by id. Queued ones end at once; Running ones have their worker killed
    /// and are answered once they have ended. Each id gets its own result.
    pub async fn cancel(&self, ids: &[String]) -> Result<Vec<CancelResult>, QueueError> {
        let mut results = Vec::with_capacity(ids.len());
        let mut queued_now = std::collections::BTreeSet::new();
        let mut running: Vec<(usize, u64)> = Vec::new();
        let mut inner = self.shared.lock().await;
        let counters = self
            .shared
            .store
            .read(|tx| -> Result<_, StoreError> {
                Ok((
                    persist::counter(tx, persist::NEXT_SCAN)?,
                    persist::counter(tx, persist::NEXT_AUDIT)?,
                ))
            })
            .await?;
        for raw in ids {
            let result = |outcome, message: String| CancelResult {
                id: raw.clone(),
                outcome,
                message,
            };
            let id: QueueTaskId = match raw.parse() {
                Ok(id) => id,
                Err(e) => {
                    results.push(result(CancelOutcome::Invalid, e));
                    continue;
                }
            };
            match inner.by_id.get(&id).copied() {
                Some(seq) if inner.tasks[&seq].status() == QueueTaskStatus::Queued => {
                    queued_now.insert(seq);
                    results.push(result(CancelOutcome::Cancelled, format!("{id} cancelled")));
                }
                Some(seq) => {
                    if let Some(token) = inner.running.get(&seq) {
                        token.cancel();
                    }
                    running.push((results.len(), seq));
                    results.push(result(
                        CancelOutcome::Cancelled,
                        format!("{id} cancelled; its worker was killed"),
                    ));
                }
                None => {
                    let issued = if id.kind == QueueTaskKind::Scan {
                        counters.0
                    } else {
                        counters.1
                    };
                    if id.number >= 1 && id.number <= issued {
                        results.push(result(
                            CancelOutcome::AlreadyFinished,
                            format!("{id} has already ended; see `vigil log`"),
                        ));
                    } else {
                        results.push(result(
                            CancelOutcome::NotFound,
                            format!("there is no task {id}"),
                        ));
                    }
                }
            }
        }
        if !queued_now.is_empty() {
            let now = Utc::now();
            let rows: Vec<(u64, LogRow)> = queued_now
                .iter()
                .map(|seq| (*seq, log_row(&inner.tasks[seq], cancelled_result(), now)))
                .collect();
            let due = self
                .shared
                .store
                .write(move |tx| -> Result<Vec<u64>, StoreError> {
                    let mut due = Vec::new();
                    for (seq, row) in &rows {
                        persist::remove_task(tx, *seq)?;
                        let log_seq = persist::append_log(tx, row)?;
                        // A cancelled task of a run ends in it, finding nothing.
                        if let Some(run) = row.run {
                            if runs::task_ended(tx, run, &row.target, log_seq, None)? {
                                due.push(run);
                            }
                        }
                    }
                    Ok(due)
                })
                .await?;
            for t in inner.remove_all(&queued_now) {
                tracing::info!(id = %t.id(), "queued task Cancelled");
            }
            for run in due {
                self.group_run(run);
            }
        }
        drop(inner);
        // Answer for running tasks once their end is committed (worker killed, row written).
        for (index, seq) in running {
            if !self.wait_ended(seq, Duration::from_secs(30)).await {
                results[index].message = format!(
                    "{}: cancel requested; the worker is still stopping",
                    results[index].id
                );
            }
        }
        Ok(results)
    }

    /// Waits until the task `seq` has left the queue; false on timeout.
    async fn wait_ended(&self, seq: u64, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let ended = self.shared.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if !self.shared.lock().await.tasks.contains_key(&seq) {
                return true;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return false;
            }
        }
    }
}
