//! What an ended task leaves behind: its Scan log / Audit log row, and the findings (drift,
//! failed plugins, failed checks) and passing checks that the user-task service takes in.

use chrono::{DateTime, Utc};

use super::runner::QueueTaskResult;
use crate::proto::{CheckOutcome, FinalStatus, LogRow, QueueTask, QueueTaskKind};
use crate::tasks::{task_change, CheckRef, FailedCheck, NodeFindings, PluginFailed};

/// What an ended task found on its node: its drift as changes, the plugins that failed and
/// those that scanned cleanly, the checks that failed and passed. Cancelled tasks find
/// nothing.
pub(super) fn findings_of(
    task: &QueueTask,
    result: &QueueTaskResult,
    today: chrono::NaiveDate,
    policies: &[crate::policy::Policy],
) -> Option<NodeFindings> {
    if result.status == FinalStatus::Cancelled {
        return None;
    }
    let day = result.drifts.first().map_or(today, |d| d.day);
    let mut f = NodeFindings::new(&task.target, task.id(), day);
    f.baseline = result.drifts.iter().find_map(|d| d.baseline_day);
    for d in &result.drifts {
        f.changes
            .extend(d.changes.iter().map(|c| task_change(&d.plugin, c)));
    }
    for c in &result.checks {
        match c.outcome {
            CheckOutcome::Fail => f.failed_checks.push(FailedCheck {
                policy: c.policy.clone(),
                policy_description: policies
                    .iter()
                    .find(|p| p.name == c.policy)
                    .map_or(String::new(), |p| p.description.clone()),
                check: c.check.clone(),
                check_description: c.description.clone(),
                plugin: c.plugin.clone(),
                evidence: c.evidence.clone(),
            }),
            CheckOutcome::Pass => f.passing_checks.push(CheckRef {
                policy: c.policy.clone(),
                check: c.check.clone(),
            }),
            CheckOutcome::Error => {}
        }
    }
    // A scan that got to its plugins found the node root in order.
    let root_failed = result
        .plugins
        .iter()
        .any(|r| r.plugin == super::runner::ROOT);
    if task.work.kind() == QueueTaskKind::Scan && !root_failed && !result.plugins.is_empty() {
        f.clean_plugins.push(super::runner::ROOT.to_owned());
    }
    // A scan that got to its plugins reached its node (a local node: nothing to resolve).
    let transport_failed = result
        .plugins
        .iter()
        .any(|r| r.plugin == super::runner::TRANSPORT);
    if task.work.kind() == QueueTaskKind::Scan && !transport_failed && !result.plugins.is_empty() {
        f.clean_plugins.push(super::runner::TRANSPORT.to_owned());
    }
    for run in &result.plugins {
        match &run.error {
            Some(error) => f.failures.push(PluginFailed {
                plugin: run.plugin.clone(),
                message: error.clone(),
            }),
            // A scan's clean plugin resolves its earlier failures on the node (an audit's
            // runs read only what its checks need).
            None if task.work.kind() == QueueTaskKind::Scan => {
                f.clean_plugins.push(run.plugin.clone())
            }
            None => {}
        }
    }
    Some(f)
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
        run: task.run,
    }
}
