//! Assignment mails: every assignment writes a mail to the assignee into the outbox, inside
//! the transaction that assigns.

use redb::WriteTransaction;

use crate::outbox::{self, content::AssignmentMail};
use crate::proto::UserTask;
use crate::store::StoreError;

/// What the task service wakes after committing mail.
pub type MailWaker = outbox::Outbox;

/// Queues the mail telling the task's assignee about it (nothing when unassigned).
pub fn assignment(
    tx: &WriteTransaction,
    task: &UserTask,
    assigned_by: &str,
) -> Result<(), StoreError> {
    let Some(assignee) = &task.assignee else {
        return Ok(());
    };
    let mail = outbox::content::assignment(&AssignmentMail {
        task_id: task.id,
        kind: task.kind.to_string(),
        title: task.title.clone(),
        description: task.description.clone(),
        events: task.events,
        nodes: task.nodes,
        first_nodes: task.first_nodes.clone(),
        assignee: assignee.clone(),
        assigned_by: assigned_by.to_owned(),
    });
    outbox::enqueue(tx, mail)?;
    Ok(())
}
