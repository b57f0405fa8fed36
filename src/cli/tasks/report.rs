//! `vigil tasks show` and `vigil tasks changes`: one task in full, and its report per node
//! ("view changes": drift with previous → current values and content diffs, or the failure).

use std::fmt::Write as _;

use super::*;

pub(super) async fn show(client: &Client, id: u64, json: bool) -> CmdResult {
    let detail: UserTaskDetail = client
        .query::<GetUserTask>(
            &id,
            &EventsPage {
                events_limit: Some(SHOW_EVENTS),
                ..EventsPage::default()
            },
        )
        .await?;
    let report: UserTaskReport = client.get::<GetUserTaskReport>(&id).await?;
    if json {
        // The task as `GET /v1/tasks/{id}` gives it, with the report's nodes as `report`.
        let mut value = serde_json::to_value(&detail)
            .map_err(|e| CliError::Failed(format!("cannot encode JSON: {e}")))?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert(
                "report".into(),
                serde_json::to_value(&report.nodes)
                    .map_err(|e| CliError::Failed(format!("cannot encode JSON: {e}")))?,
            );
        }
        print_json(&value);
        return Ok(());
    }
    let paint = Paint::for_stdout();
    print!("{}", render_detail(&detail, &report, paint));
    Ok(())
}

fn render_detail(detail: &UserTaskDetail, report: &UserTaskReport, paint: Paint) -> String {
    let t = &detail.task;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        paint.bold(&format!("Task {}: {}", t.id, clean(&t.title)))
    );
    let status = match &t.state {
        UserTaskState::Closed { by, at } => {
            format!("closed by {by} at {}", text::local_time(*at))
        }
        UserTaskState::Open => "open".to_owned(),
    };
    let mut rows = vec![
        field("kind", t.kind.to_string()),
        field("status", status),
        field(
            "assignee",
            t.assignee.clone().unwrap_or_else(|| "nobody".into()),
        ),
        field("created", text::local_time(t.created_at)),
        field("last event", text::local_time(t.last_event_at)),
        field(
            "events",
            format!(
                "{} on {} node{}",
                t.events,
                t.nodes,
                if t.nodes == 1 { "" } else { "s" }
            ),
        ),
    ];
    if let Some(prev) = t.recurrence_of {
        rows.push(field("recurrence of", format!("task {prev} (closed)")));
    }
    rows.push(field("fingerprint", t.fingerprint.clone()));
    out.push_str(&indent(&table::render(None, &rows), "  "));

    if !t.description.trim().is_empty() {
        out.push_str("\nDescription:\n");
        for line in t.description.trim_end().lines() {
            let _ = writeln!(out, "  {}", clean(line));
        }
    }

    let _ = writeln!(out, "\nNodes ({}):", detail.nodes.len());
    let resolved = detail.nodes.iter().any(|n| n.resolved_by.is_some());
    let rows: Vec<Vec<String>> = detail
        .nodes
        .iter()
        .map(|n| {
            let mut row = vec![n.node.clone(), n.events.to_string()];
            if resolved {
                row.push(n.resolved_by.clone().unwrap_or_else(|| "-".into()));
            }
            row
        })
        .collect();
    let header: &[&str] = if resolved {
        &["NODE", "EVENTS", "RESOLVED BY"]
    } else {
        &["NODE", "EVENTS"]
    };
    out.push_str(&indent(&table::render(Some(header), &rows), "  "));

    let shown = detail.events.len() as u64;
    if shown < detail.events_total {
        let _ = writeln!(
            out,
            "\nRecent events ({shown} of {}, newest first):",
            detail.events_total
        );
    } else {
        let _ = writeln!(out, "\nEvents ({shown}, newest first):");
    }
    let rows: Vec<Vec<String>> = detail
        .events
        .iter()
        .map(|e| {
            vec![
                e.node.clone(),
                text::local_time(e.time),
                e.source.to_string(),
                clean(&e.details).into_owned(),
            ]
        })
        .collect();
    out.push_str(&indent(
        &table::render(Some(&["NODE", "TIME", "SOURCE", "DETAILS"]), &rows),
        "  ",
    ));

    out.push_str("\nChanges:\n");
    out.push_str(&render_report(&report.nodes, paint));
    out
}

fn field(name: &str, value: String) -> Vec<String> {
    vec![name.to_owned(), value]
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

pub(super) async fn changes(
    client: &Client,
    id: u64,
    node: Option<String>,
    json: bool,
) -> CmdResult {
    let mut report: UserTaskReport = client.get::<GetUserTaskReport>(&id).await?;
    if let Some(node) = &node {
        report.nodes.retain(|n| &n.node == node);
        if report.nodes.is_empty() {
            return Err(CliError::Failed(format!(
                "task {id} has no event on node {node:?}"
            )));
        }
    }
    if json {
        print_json(&report);
        return Ok(());
    }
    let paint = Paint::for_stdout();
    println!(
        "{}",
        paint.bold(&format!(
            "Task {}: {}",
            report.task.id,
            clean(&report.task.title)
        ))
    );
    print!("{}", render_report(&report.nodes, paint));
    Ok(())
}

/// The report per node; nodes whose report reads the same (a patch applied to 100 nodes)
/// are shown once under one heading.
pub fn render_report(nodes: &[UserTaskNodeReport], paint: Paint) -> String {
    if nodes.is_empty() {
        return "  no node has an event for this task\n".to_owned();
    }
    let mut groups: Vec<(String, Vec<&UserTaskNodeReport>)> = Vec::new();
    for n in nodes {
        let body = node_body(n, paint);
        let key = format!("{}\n{body}", n.day);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(n),
            None => groups.push((key, vec![n])),
        }
    }
    let mut out = String::new();
    for (key, members) in &groups {
        let first = members[0];
        let heading = if members.len() == 1 {
            format!("{}  {}  {}", first.node, first.day, first.source)
        } else {
            let mut names: Vec<&str> = members
                .iter()
                .take(GROUP_NAMES)
                .map(|n| n.node.as_str())
                .collect();
            if members.len() > GROUP_NAMES {
                names.push("…");
            }
            format!(
                "{} ({} nodes)  {}",
                names.join(", "),
                members.len(),
                first.day
            )
        };
        let _ = writeln!(out, "{}", paint.bold(&heading));
        let body = key.split_once('\n').map_or("", |(_, b)| b);
        out.push_str(body);
    }
    out
}

/// One node's report, indented under its heading: the drift, or the message.
fn node_body(n: &UserTaskNodeReport, paint: Paint) -> String {
    let mut out = String::new();
    if let Some(note) = &n.note {
        let _ = writeln!(out, "  note: {}", clean(note));
    }
    if let Some(message) = &n.message {
        for line in message.lines() {
            let _ = writeln!(out, "  {}", clean(line));
        }
    } else if n.drift.is_empty() {
        let _ = writeln!(
            out,
            "  no snapshot of {} is stored any more (pruned after retention_days)",
            n.day
        );
    } else {
        drift_view::plugins(&mut out, &n.drift, "  ", paint);
    }
    out
}
