//! The Active tasks screen: the queue with the seed's columns (Device/Resource, Task,
//! Start date, Scope, Initiator, Status), marks for cancelling, and the Scan log or Audit
//! log below it with the Errors count, so a Failed task never reads as Finished.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use crate::cli::text::{active_status_word, final_status_word, initiator};
use crate::cli::ui::state::{App, LOG_ROWS};
use crate::cli::ui::text::{cell, cut, stamp};
use crate::proto::{FinalStatus, QueueTaskStatus};

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let log_height = u16::try_from(LOG_ROWS).unwrap_or(10) + 2;
    let [top, bottom] =
        Layout::vertical([Constraint::Min(4), Constraint::Length(log_height)]).areas(area);
    active(frame, app, top);
    log(frame, app, bottom);
}

fn bold_header(cells: &[&'static str]) -> Row<'static> {
    Row::new(cells.iter().map(|h| Cell::from(*h)))
        .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED))
}

fn active(frame: &mut Frame, app: &App, area: Rect) {
    let block = Block::new()
        .borders(Borders::TOP)
        .title(Line::from(" Active tasks ").style(Style::new().add_modifier(Modifier::BOLD)));
    let Some(tasks) = &app.queue.tasks else {
        frame.render_widget(Paragraph::new(" loading the queue…").block(block), area);
        return;
    };
    if tasks.is_empty() {
        frame.render_widget(
            Paragraph::new(" No active task: nothing queued or running.").block(block),
            area,
        );
        return;
    }
    let rows = tasks.iter().map(|t| {
        let id = t.id().to_string();
        let mark = if app.queue.marked.contains(&id) {
            "[x]"
        } else {
            "[ ]"
        };
        let status = t.status();
        Row::new([
            Cell::from(mark),
            Cell::from(cut(&cell(&t.target), 30)),
            Cell::from(id),
            Cell::from(stamp(t.state.started_at().unwrap_or(t.queued_at), app.tz)),
            Cell::from(cut(&cell(&t.scope.to_string()), 20)),
            Cell::from(cut(
                &cell(&initiator(&t.initiator, t.schedule.as_deref())),
                40,
            )),
            Cell::from(active_status_word(status)).style(match status {
                QueueTaskStatus::Running => Style::new().fg(Color::Green),
                QueueTaskStatus::Queued => Style::new().fg(Color::Yellow),
            }),
        ])
    });
    let widths = [
        Constraint::Length(3),
        Constraint::Length(30),
        Constraint::Length(12),
        Constraint::Length(19),
        Constraint::Length(20),
        Constraint::Fill(1),
        Constraint::Length(8),
    ];
    let table = Table::new(rows, widths)
        .header(bold_header(&[
            "",
            "DEVICE/RESOURCE",
            "TASK",
            "START DATE",
            "SCOPE",
            "INITIATOR",
            "STATUS",
        ]))
        .block(block)
        .row_highlight_style(Style::new().bg(Color::Blue).fg(Color::White))
        .highlight_symbol("▶");
    let mut state = TableState::default().with_selected(Some(app.queue.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn log(frame: &mut Frame, app: &App, area: Rect) {
    let title = match &app.queue.log_page {
        Some(p) => format!(
            " {} ({} ended; l: the other log) ",
            app.queue.log.title(),
            p.total
        ),
        None => format!(" {} ", app.queue.log.title()),
    };
    let block = Block::new()
        .borders(Borders::TOP)
        .title(Line::from(title).style(Style::new().add_modifier(Modifier::BOLD)));
    let Some(page) = &app.queue.log_page else {
        frame.render_widget(Paragraph::new(" loading…").block(block), area);
        return;
    };
    let rows = page.rows.iter().map(|r| {
        let message = match r.status {
            FinalStatus::Failed => r.messages.first(),
            _ => r.summary.as_ref(),
        }
        .map(|m| cell(m).into_owned())
        .unwrap_or_default();
        Row::new([
            Cell::from(r.id.to_string()),
            Cell::from(cut(&cell(&r.target), 20)),
            Cell::from(final_status_word(r.status)).style(match r.status {
                FinalStatus::Failed => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                FinalStatus::Cancelled => Style::new().fg(Color::Yellow),
                FinalStatus::Finished => Style::new().fg(Color::Green),
            }),
            Cell::from(r.errors.to_string()),
            Cell::from(r.items_scanned.to_string()),
            Cell::from(stamp(r.finished_at, app.tz)),
            Cell::from(cut(
                &cell(&initiator(&r.initiator, r.schedule.as_deref())),
                20,
            )),
            Cell::from(message),
        ])
    });
    let widths = [
        Constraint::Length(12),
        Constraint::Length(20),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(19),
        Constraint::Length(20),
        Constraint::Fill(1),
    ];
    let table = Table::new(rows, widths)
        .header(bold_header(&[
            "TASK",
            "DEVICE/RESOURCE",
            "STATUS",
            "ERRORS",
            "ITEMS",
            "FINISHED",
            "INITIATOR",
            "MESSAGE",
        ]))
        .block(block);
    frame.render_widget(table, area);
}
