//! An expanded task: its counters, its nodes and their events, and its report — for drift
//! the added/removed/modified items per node, with `v` the previous → current values and
//! the coloured content diffs; for a policy the failure message per node, for a scan
//! failure the reason per node.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

use crate::cli::drift_view::{self, Paint};
use crate::cli::ui::state::{App, Expansion};
use crate::cli::ui::text::{age, cell, lines, stamp};
use crate::proto::{ChangeKind, UserTaskDetail, UserTaskKind, UserTaskReport};

pub fn draw(frame: &mut Frame, app: &App, x: &Expansion, area: Rect) {
    let title = match &x.loaded {
        Some(b) => format!(" {} · {} ", b.0.task.id, cell(&b.0.task.title)),
        None => format!(" {} ", x.id),
    };
    let hint = if x.view_changes {
        " v: hide changes · ↑↓ scroll · Esc: close "
    } else {
        " v: view changes · ↑↓ scroll · Esc: close "
    };
    let block = Block::new()
        .borders(Borders::TOP)
        .title(Line::from(title).style(Style::new().add_modifier(Modifier::BOLD)))
        .title(
            Line::from(hint)
                .right_aligned()
                .style(Style::new().fg(Color::DarkGray)),
        );
    let body: Vec<Line> = match (&x.loaded, &x.error) {
        (Some(b), _) => content(app, &b.0, &b.1, x.view_changes),
        (None, Some(e)) => vec![Line::styled(
            format!(" {}", cell(e)),
            Style::new().fg(Color::Red),
        )],
        (None, None) => vec![Line::from(" loading…")],
    };
    let height = usize::from(area.height.saturating_sub(1));
    let scroll = x.scroll.min(body.len().saturating_sub(height));
    frame.render_widget(
        Paragraph::new(body)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((u16::try_from(scroll).unwrap_or(u16::MAX), 0)),
        area,
    );
}

fn heading(s: &str) -> Line<'static> {
    Line::styled(
        s.to_owned(),
        Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan),
    )
}

/// The expansion's lines.
pub fn content(
    app: &App,
    d: &UserTaskDetail,
    r: &UserTaskReport,
    view: bool,
) -> Vec<Line<'static>> {
    let t = &d.task;
    let mut out = Vec::new();
    let state = match t.state.closed_by() {
        None => "open".to_owned(),
        Some(by) => format!("closed by {}", cell(by)),
    };
    out.push(Line::from(format!(
        " {} · {state} · assignee {} · created {} · last event {} ({} ago)",
        t.kind,
        cell(t.assignee.as_deref().unwrap_or("nobody")),
        stamp(t.created_at, app.tz),
        stamp(t.last_event_at, app.tz),
        age(t.last_event_at, app.now),
    )));
    let changes = if t.kind == UserTaskKind::Drift {
        format!("   changes: {}", t.change_count.max(t.changes.len() as u64))
    } else {
        String::new()
    };
    out.push(Line::styled(
        format!(" events: {}   nodes: {}{changes}", t.events, t.nodes),
        Style::new().add_modifier(Modifier::BOLD),
    ));
    if !t.description.is_empty() {
        out.extend(
            lines(&t.description)
                .into_iter()
                .map(|l| Line::from(format!(" {l}"))),
        );
    }
    out.push(heading(" Nodes"));
    for n in &d.nodes {
        let resolved = n
            .resolved_by
            .as_deref()
            .map_or(String::new(), |by| format!("  resolved by {}", cell(by)));
        out.push(Line::from(format!(
            "   {}  {} event(s){resolved}",
            cell(&n.node),
            n.events
        )));
    }
    out.push(heading(&format!(
        " Events ({} of {}, newest first)",
        d.events.len(),
        d.events_total
    )));
    for e in &d.events {
        out.push(Line::from(format!(
            "   {}  {}  {}  {}",
            stamp(e.time, app.tz),
            cell(&e.node),
            e.source,
            cell(&e.details)
        )));
    }
    out.push(heading(match t.kind {
        UserTaskKind::Drift if view => " Changes (previous → current)",
        UserTaskKind::Drift => " Changes (v: previous → current values and diffs)",
        UserTaskKind::Policy => " Failures",
        UserTaskKind::ScanFailure => " Why the scans failed",
    }));
    if r.nodes.is_empty() {
        out.push(Line::from("   no node has an event for this task"));
    }
    for n in &r.nodes {
        out.push(Line::styled(
            format!("   {}  {}  {}", cell(&n.node), n.day, n.source),
            Style::new().add_modifier(Modifier::BOLD),
        ));
        if let Some(note) = &n.note {
            out.push(Line::from(format!("     note: {}", cell(note))));
        }
        if let Some(message) = &n.message {
            let red = Style::new().fg(Color::Red);
            out.extend(
                lines(message)
                    .into_iter()
                    .map(|l| Line::styled(format!("     {l}"), red)),
            );
        } else if n.drift.is_empty() {
            out.push(Line::from(format!(
                "     no snapshot of {} is stored any more (pruned after retention_days)",
                n.day
            )));
        } else if view {
            let mut text = String::new();
            drift_view::plugins(&mut text, &n.drift, "     ", Paint::plain());
            out.extend(lines(&text).into_iter().map(coloured));
        } else {
            for p in &n.drift {
                out.push(Line::from(format!(
                    "     {}  {}",
                    cell(&p.plugin),
                    drift_view::changes_word(p.changes.len())
                )));
                for c in &p.changes {
                    let (sign, colour) = match c.kind {
                        ChangeKind::Added => ('+', Color::Green),
                        ChangeKind::Removed => ('-', Color::Red),
                        ChangeKind::Modified => ('~', Color::Yellow),
                    };
                    out.push(Line::styled(
                        format!("       {sign} {}", cell(&c.key)),
                        Style::new().fg(colour),
                    ));
                }
            }
        }
    }
    out
}

/// A line of drift_view's plain text with the colours it would have in a terminal: heads
/// and diff lines by their first character.
fn coloured(line: String) -> Line<'static> {
    let t = line.trim_start();
    let style = if t.starts_with("+++") || t.starts_with("---") {
        Style::new().add_modifier(Modifier::BOLD)
    } else if t.starts_with('+') {
        Style::new().fg(Color::Green)
    } else if t.starts_with('-') {
        Style::new().fg(Color::Red)
    } else if t.starts_with('~') {
        Style::new().fg(Color::Yellow)
    } else if t.starts_with('@') {
        Style::new().fg(Color::Cyan)
    } else if t.starts_with("not seen:") {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new()
    };
    Line::styled(line, style)
}
