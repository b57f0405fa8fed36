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
        dedup_key: task.dedup_key.clone(),
    });
    outbox::enqueue(tx, mail)?;
    Ok(())
}

/// Queues the short mail telling the assignee that their task closed itself (`by` an audit
/// or a scan, because `why`).
pub fn closed_itself(
    tx: &WriteTransaction,
    task: &UserTask,
    by: &str,
    why: &str,
) -> Result<(), StoreError> {
    let Some(assignee) = &task.assignee else {
        return Ok(());
    };
    let id = task.id;
    let text = format!(
        "Task #{id} was closed by {by}: {why}.\n\n\
         Title:  {}\nEvents: {}\nNodes:  {}\nKey:    {}\n\nSee it with:\n    vigil tasks show {id}\n\n\
         If it happens again, a new task will open and name this one.\n",
        task.title, task.events, task.nodes, task.dedup_key
    );
    let html = format!(
        "<p>Task <b>#{id}</b> was closed by {}: {}.</p>\
         <p>{}<br>Events: {} &middot; Nodes: {}</p><p>See it with <code>vigil tasks show {id}</code></p>",
        outbox::content::html_escape(by),
        outbox::content::html_escape(why),
        outbox::content::html_escape(&task.title),
        task.events,
        task.nodes
    );
    outbox::enqueue(
        tx,
        outbox::NewMail {
            to: assignee.clone(),
            subject: format!("[vigil] Task #{id} closed by {by}: {}", task.title),
            text,
            html: Some(html),
            cause: format!("task {id} closed by {by}"),
        },
    )?;
    Ok(())
}
