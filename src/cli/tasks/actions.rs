//! The actions on tasks: assign, close, reopen, Close All (with its preview and
//! confirmation) and export.

use std::io::{BufRead, IsTerminal, Write as _};

use crate::cli::term;

use super::*;

pub(super) async fn assign(client: &Client, id: u64, email: String, json: bool) -> CmdResult {
    let task: UserTask = client
        .post::<AssignUserTask>(&id, &AssignRequest { assignee: email })
        .await?;
    if json {
        print_json(&task);
    } else {
        let head = format!(
            "task {} assigned to {} (mailed): ",
            task.id,
            task.assignee.as_deref().unwrap_or("nobody")
        );
        let title = table::fit_text(&clean(&task.title), head.chars().count());
        println!("{head}{title}");
    }
    Ok(())
}

pub(super) async fn close(client: &Client, ids: Vec<u64>, json: bool) -> CmdResult {
    let asked = ids.len();
    let mut closed = Vec::new();
    let mut failed = 0;
    for id in ids {
        match client.post::<CloseUserTask>(&id, &NoBody {}).await {
            Ok(task) => {
                if !json {
                    let head = format!("closed task {}: ", task.id);
                    let title = table::fit_text(&clean(&task.title), head.chars().count());
                    println!("{head}{title}");
                }
                closed.push(task);
            }
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Denied { .. })) => {
                return Err(e.into())
            }
            Err(e) => {
                eprintln!("vigil: task {id}: {}", term::for_terminal(&e.to_string()));
                failed += 1;
            }
        }
    }
    if json {
        print_json(&closed);
    }
    if failed > 0 {
        return Err(CliError::Failed(format!(
            "{failed} of {asked} task(s) were not closed"
        )));
    }
    Ok(())
}

pub(super) async fn reopen(client: &Client, id: u64, json: bool) -> CmdResult {
    let task: UserTask = client.post::<ReopenUserTask>(&id, &NoBody {}).await?;
    if json {
        print_json(&task);
    } else {
        let head = format!("reopened task {}: ", task.id);
        let title = table::fit_text(&clean(&task.title), head.chars().count());
        println!("{head}{title}");
    }
    Ok(())
}

pub(super) async fn close_all(
    client: &Client,
    filter: &FilterArgs,
    yes: bool,
    json: bool,
) -> CmdResult {
    // The daemon lists exactly what Close All would close (for a Site User, only their own
    // tasks); the role only words the answer when that is nothing.
    let me: Status = client.get::<GetStatus>(&()).await?;
    let site_user = me.caller.role != Some(Role::Admin);
    let query = UserTaskQuery {
        filter: filter.filter(StatusArg::Open),
        limit: Some(CLOSE_ALL_PREVIEW),
        closable: true,
        ..UserTaskQuery::default()
    };
    let preview: UserTaskList = client.query::<ListUserTasks>(&(), &query).await?;
    let n = preview.total;
    if n == 0 {
        if json {
            print_json(&CloseAllResponse {
                count: 0,
                ids: Vec::new(),
            });
        } else if site_user {
            println!(
                "No open task assigned to you matches these filters: nothing to close \
                 (a Site User closes only their own tasks)."
            );
        } else {
            println!("No open task matches these filters: nothing to close.");
        }
        return Ok(());
    }
    let what = StatusArg::Open.count(n);
    if !json {
        print!("{}", task_table(&preview.tasks));
        if preview.tasks.len() < n {
            println!("… and {} more", n - preview.tasks.len());
        }
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Failed(format!(
                "not closing {what} without confirmation: stdin is not a terminal; add --yes"
            )));
        }
        if !confirm(&format!("Close {what}? [y/N] ")) {
            eprintln!("Nothing closed.");
            return Ok(());
        }
    }
    // Close All only ever closes open tasks: the status of the filter is left out.
    let body = UserTaskFilter {
        status: None,
        ..filter.filter(StatusArg::Open)
    };
    let resp: CloseAllResponse = client.post::<CloseAllUserTasks>(&(), &body).await?;
    if json {
        print_json(&resp);
    } else {
        let ids: Vec<String> = resp.ids.iter().map(u64::to_string).collect();
        let s = if resp.count == 1 { "" } else { "s" };
        if ids.is_empty() {
            println!(
                "closed 0 tasks (none of them may be closed by you, or they were closed meanwhile)"
            );
        } else {
            println!("closed {} task{s}: {}", resp.count, ids.join(", "));
        }
    }
    Ok(())
}

/// Asks on stderr and reads one line from stdin: `y` or `yes` (any case) is a yes.
pub(in crate::cli) fn confirm(prompt: &str) -> bool {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

pub(super) async fn export(
    client: &Client,
    format: ExportFormat,
    status: StatusArg,
    filter: &FilterArgs,
) -> CmdResult {
    let query = ExportQuery {
        filter: filter.filter(status),
        format: Some(match format {
            ExportFormat::Json => crate::proto::ExportFormat::Json,
            ExportFormat::Csv => crate::proto::ExportFormat::Csv,
        }),
    };
    let body = client
        .call_text::<ExportUserTasks>(&(), &query, &NoBody {})
        .await?;
    // An export is data, kept exact in a file or a pipe; on a terminal it is text to read.
    let body = if std::io::stdout().is_terminal() {
        term::for_terminal(&body).into_owned()
    } else {
        body
    };
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_all(body.as_bytes()).and_then(|()| {
        if body.ends_with('\n') {
            Ok(())
        } else {
            stdout.write_all(b"\n")
        }
    });
    written.map_err(|e| CliError::Failed(format!("cannot write the export: {e}")))
}
