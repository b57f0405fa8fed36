//! What an ended task leaves behind: its Scan log / Audit log row, and the findings (drift,
//! failed plugins, failed checks) and passing checks that the user-task service takes in.

use chrono::{DateTime, Utc};

use super::runner::QueueTaskResult;
use crate::proto::{CheckOutcome, FinalStatus, LogRow, QueueTask};
use crate::tasks::{finding, Finding};

/// What an ended task found: its drift (one finding for the node's whole change set) and
/// each plugin that failed. Cancelled tasks find nothing.
pub(super) fn findings_of(
    task: &QueueTask,
    result: &QueueTaskResult,
    today: chrono::NaiveDate,
    policies: &[crate::policy::Policy],
) -> Vec<Finding> {
    if result.status == FinalStatus::Cancelled {
        return Vec::new();
    }
    let day = result.drifts.first().map_or(today, |d| d.day);
    let mut out: Vec<Finding> = finding::from_drift(&task.target, task.id(), day, &result.drifts)
        .into_iter()
        .collect();
    for c in result
        .checks
        .iter()
        .filter(|c| c.outcome == CheckOutcome::Fail)
    {
        let policy_description = policies
            .iter()
            .find(|p| p.name == c.policy)
            .map_or("", |p| p.description.as_str());
        let failed = finding::FailedCheck {
            policy: &c.policy,
            policy_description,
            check: &c.check,
            check_description: &c.description,
            plugin: &c.plugin,
            evidence: &c.evidence,
        };
        out.push(finding::from_policy(&task.target, task.id(), day, &failed));
    }
    for run in &result.plugins {
        if let Some(error) = &run.error {
            out.push(finding::from_scan_failure(
                &task.target,
                task.id(),
                day,
                &run.plugin,
                error,
            ));
        }
    }
    out
}

/// The (fingerprint, node) of every policy check an audit found passing.
pub(super) fn passing_of(task: &QueueTask, result: &QueueTaskResult) -> Vec<(String, String)> {
    result
        .checks
        .iter()
        .filter(|c| c.outcome == CheckOutcome::Pass)
        .map(|c| {
            (
                finding::policy_fingerprint(&c.policy, &c.check),
                task.target.clone(),
            )
        })
        .collect()
}

pub(super) fn cancelled_result() -> QueueTaskResult {
    QueueTaskResult::with_message(FinalStatus::Cancelled, "cancelled while queued".into())
}

pub(super) fn interrupted_result(task: &QueueTask) -> QueueTaskResult {
    QueueTaskResult::failed(format!(
        "interrupted {} times by daemon stops or crashes; not retried again",
        task.state.attempt()
    ))
}

pub(super) fn log_row(
    task: &QueueTask,
    result: QueueTaskResult,
    finished_at: DateTime<Utc>,
) -> LogRow {
    let errors = if result.status == FinalStatus::Failed {
        result.messages.len().max(1) as u32
    } else {
        0
    };
    let changes_found = result.changes();
    let drift_fingerprint = result.fingerprint().map(|f| f.to_string());
    LogRow {
        id: task.id(),
        target: task.target.clone(),
        scope: task.scope.clone(),
        initiator: task.initiator.clone(),
        schedule: task.schedule.clone(),
        queued_at: task.queued_at,
        started_at: task.state.started_at(),
        finished_at,
        status: result.status,
        errors,
        messages: result.messages,
        summary: result.summary,
        attempt: task.state.attempt(),
        items_scanned: result.items,
        changes_found,
        checks: result.checks,
        drift_fingerprint,
        user_tasks_created: 0,
        user_tasks_updated: 0,
        plugins: result.plugins,
    }
}
