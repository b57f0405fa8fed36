//! Who may do what to a user task. Site Administrators may do everything; a Site User may
//! close tasks assigned to them and take an unassigned task for themselves; only admins
//! reopen. The service checks these on the task as its write transaction reads it.

use super::index::Filter;
use super::UserTaskError;
use crate::caller::Caller;
use crate::proto::{Role, UserTask, UserTaskFilter, UserTaskStatus};

/// The caller's role; callers that are not configured users may not touch tasks.
pub(super) fn role_of(caller: &Caller) -> Result<Role, UserTaskError> {
    caller
        .require_user()
        .map_err(|r| UserTaskError::Forbidden(r.0))
}

/// What Close All looks at for `caller`: the filter (open tasks only), who they are, and
/// their role, which with [`may_close`] decides which matching tasks they may close.
pub(super) fn closable(
    filter: &UserTaskFilter,
    caller: &Caller,
) -> Result<(Filter, Option<String>, Role), UserTaskError> {
    let role = role_of(caller)?;
    let mut f = Filter::resolve(filter, caller)?;
    f.status = Some(UserTaskStatus::Open);
    Ok((f, caller.email.clone(), role))
}

/// Admins close any task; a Site User the tasks assigned to them.
pub(super) fn may_close(task: &UserTask, me: Option<&str>, role: Role) -> bool {
    role == Role::Admin || (me.is_some() && task.assignee.as_deref() == me)
}

/// Admins assign any task to anyone; a Site User takes an unassigned task for themselves.
pub(super) fn check_assign(
    task: &UserTask,
    assignee: &str,
    me: Option<&str>,
    role: Role,
) -> Result<(), UserTaskError> {
    if role == Role::Admin {
        return Ok(());
    }
    if let Some(current) = &task.assignee {
        return Err(UserTaskError::Forbidden(format!(
            "task #{} is assigned to {current}; a Site User may only take an unassigned task \
             for themselves: ask an administrator to reassign it",
            task.id
        )));
    }
    if me != Some(assignee) {
        return Err(UserTaskError::Forbidden(format!(
            "a Site User may only take an unassigned task for themselves ({}), not assign it \
             to {assignee}; ask an administrator",
            me.unwrap_or("no email configured")
        )));
    }
    Ok(())
}

/// Refuses a close the caller may not make (see [`may_close`]).
pub(super) fn check_close(
    task: &UserTask,
    me: Option<&str>,
    role: Role,
) -> Result<(), UserTaskError> {
    if may_close(task, me, role) {
        return Ok(());
    }
    Err(UserTaskError::Forbidden(format!(
        "task #{} is not assigned to you; a Site User may only close tasks assigned to them",
        task.id
    )))
}

/// Only administrators reopen tasks.
pub(super) fn check_reopen(caller: &Caller, role: Role) -> Result<(), UserTaskError> {
    match role {
        Role::Admin => Ok(()),
        Role::User => Err(UserTaskError::Forbidden(
            caller.needs_admin("reopening a task").0,
        )),
    }
}
