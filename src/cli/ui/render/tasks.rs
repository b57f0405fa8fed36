//! The User Tasks screen: the filter line, the task table (paged from the server) and,
//! when a task is expanded, its detail below the table.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::detail;
use crate::cli::ui::state::{App, Modal};
use crate::cli::ui::text::{cell, cut, time};
use crate::proto::{UserTaskKind, UserTaskStatusFilter};

pub fn filters(frame: &mut Frame, app: &App, area: Rect) {
    let f = &app.filters;
    let dim = Style::new().fg(Color::DarkGray);
    let on = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let status = match f.status {
        UserTaskStatusFilter::Open => "open",
        UserTaskStatusFilter::Closed => "closed",
        UserTaskStatusFilter::All => "all",
    };
    let assignee = if f.mine {
        "me".to_owned()
    } else if f.assignee.is_empty() {
        "anyone".to_owned()
    } else {
        cell(&f.assignee).into_owned()
    };
    let kind = f.kind.map_or("all".to_owned(), |k| k.to_string());
    let editing = matches!(app.modal, Some(Modal::Filter));
    let mut spans = vec![
        Span::styled(" status ", dim),
        Span::styled(status, on),
        Span::styled("  mine ", dim),
        Span::styled(if f.mine { "on" } else { "off" }, on),
        Span::styled("  assignee ", dim),
        Span::styled(assignee, on),
        Span::styled("  kind ", dim),
        Span::styled(kind, on),
        Span::styled("  /", dim),
    ];
    let q = cell(&f.q).into_owned();
    if editing {
        spans.push(Span::styled(
            format!("{q}▏"),
            Style::new().fg(Color::Yellow),
        ));
    } else {
        spans.push(Span::styled(q, on));
    }
    if let Some(page) = &app.list.page {
        let first = if page.total == 0 {
            0
        } else {
            app.list.offset + 1
        };
        let last = app.list.offset + page.tasks.len();
        let s = if page.total == 1 { "" } else { "s" };
        spans.push(Span::styled(
            format!("   {first}–{last} of {} task{s}", page.total),
            dim,
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let (table_area, detail_area) = match &app.expansion {
        None => (area, None),
        Some(_) => {
            let rows = (area.height / 3).max(4);
            let [t, d] =
                Layout::vertical([Constraint::Length(rows), Constraint::Min(3)]).areas(area);
            (t, Some(d))
        }
    };
    table(frame, app, table_area);
    if let (Some(area), Some(x)) = (detail_area, &app.expansion) {
        detail::draw(frame, app, x, area);
    }
}

fn kind_word(k: UserTaskKind) -> &'static str {
    match k {
        UserTaskKind::Drift => "drift",
        UserTaskKind::Policy => "policy",
        UserTaskKind::ScanFailure => "scan failure",
    }
}

fn table(frame: &mut Frame, app: &App, area: Rect) {
    let header = Row::new(
        [
            "ID",
            "KIND",
            "TITLE",
            "EVENTS",
            "NODES",
            "ASSIGNEE",
            "STATUS",
            "LAST EVENT",
        ]
        .map(Cell::from),
    )
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let Some(page) = &app.list.page else {
        let text = if app.list.loading {
            " loading tasks…"
        } else {
            ""
        };
        frame.render_widget(Paragraph::new(text), area);
        return;
    };
    if page.tasks.is_empty() {
        let what = if app.filters == Default::default() {
            " No open task: nothing to look at."
        } else {
            " No task matches these filters."
        };
        frame.render_widget(Paragraph::new(what), area);
        return;
    }
    let title_width =
        usize::from(area.width.saturating_sub(6 + 12 + 6 + 5 + 24 + 6 + 11 + 8)).max(10);
    let rows = page.tasks.iter().map(|t| {
        let status = if t.is_open() { "open" } else { "closed" };
        Row::new([
            Cell::from(t.id.to_string()),
            Cell::from(kind_word(t.kind)),
            Cell::from(cut(&cell(&t.title), title_width)),
            Cell::from(t.events.to_string()),
            Cell::from(t.nodes.to_string()),
            Cell::from(cut(&cell(t.assignee.as_deref().unwrap_or("-")), 24)),
            Cell::from(status).style(if t.is_open() {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new().fg(Color::DarkGray)
            }),
            Cell::from(time(t.last_event_at, app.now, app.tz)),
        ])
    });
    let widths = [
        Constraint::Length(6),
        Constraint::Length(12),
        Constraint::Fill(1),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(24),
        Constraint::Length(6),
        Constraint::Length(11),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(Style::new().bg(Color::Blue).fg(Color::White))
        .highlight_symbol("▶")
        .block(Block::new().borders(Borders::NONE));
    let mut state = TableState::default().with_selected(Some(app.list.selected));
    frame.render_stateful_widget(table, area, &mut state);
}
