//! Windows over the screen: the help (generated from the keymap), the assignee and assign
//! prompts, and the Close All confirmation with the number of tasks that will close.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use crate::cli::ui::keymap;
use crate::cli::ui::state::{App, Modal, CLOSE_ALL_PREVIEW};
use crate::cli::ui::text::{cell, cut};

fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}

fn window(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line<'static>>, scroll: usize) {
    let block = Block::new()
        .borders(Borders::ALL)
        .title(Line::from(format!(" {title} ")).style(Style::new().add_modifier(Modifier::BOLD)));
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((u16::try_from(scroll).unwrap_or(0), 0)),
        area,
    );
}

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let key = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
    match &app.modal {
        None | Some(Modal::Filter) => {}
        Some(Modal::Help { scroll }) => {
            let lines: Vec<Line> = keymap::help_lines(app.readonly)
                .into_iter()
                .map(|(k, help)| {
                    if help.is_empty() {
                        Line::styled(k, Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD))
                    } else {
                        Line::from(vec![Span::styled(format!("{k:<14}"), key), Span::raw(help)])
                    }
                })
                .collect();
            let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
            let max = lines
                .len()
                .saturating_sub(usize::from(area.height.saturating_sub(2)));
            window(
                frame,
                centred(area, 96, height),
                "Keys (Esc closes)",
                lines,
                (*scroll).min(max),
            );
        }
        Some(Modal::AssigneeFilter { input }) => {
            let lines = vec![
                Line::from(format!(" {}▏", cell(input))),
                Line::styled(
                    " an email, `none` for unassigned tasks, empty for anyone · Enter · Esc",
                    Style::new().fg(Color::DarkGray),
                ),
            ];
            window(frame, centred(area, 76, 4), "Assignee filter", lines, 0);
        }
        Some(Modal::Assign { id, input, .. }) => {
            let mut lines = vec![
                Line::from(format!(" {}▏", cell(input))),
                Line::styled(
                    " type an email · Tab: a configured user · Enter: assign (and mail) · Esc",
                    Style::new().fg(Color::DarkGray),
                ),
            ];
            if !app.known_assignees.is_empty() {
                let known: Vec<String> = app
                    .known_assignees
                    .iter()
                    .take(5)
                    .map(|a| cell(a).into_owned())
                    .collect();
                lines.push(Line::from(format!(" users: {}", known.join(", "))));
            }
            window(
                frame,
                centred(area, 80, 5),
                &format!("Assign task {id} to"),
                lines,
                0,
            );
        }
        Some(Modal::ConfirmCloseAll { preview, .. }) => {
            let mut lines = Vec::new();
            match preview {
                None => lines.push(Line::from(" counting the tasks this would close…")),
                Some(p) if p.total == 0 => {
                    let why = if app.is_admin() {
                        " No open task matches these filters: nothing to close."
                    } else {
                        " No open task assigned to you matches these filters: nothing to close \
                         (a Site User closes only their own tasks)."
                    };
                    lines.push(Line::from(why));
                    lines.push(Line::styled(
                        " any key: back",
                        Style::new().fg(Color::DarkGray),
                    ));
                }
                Some(p) => {
                    let s = if p.total == 1 { "" } else { "s" };
                    lines.push(Line::styled(
                        format!(" {} open task{s} will close:", p.total),
                        Style::new().add_modifier(Modifier::BOLD),
                    ));
                    for t in p.tasks.iter().take(CLOSE_ALL_PREVIEW) {
                        lines.push(Line::from(format!(
                            "   {:>6}  {}",
                            t.id,
                            cut(&cell(&t.title), 60)
                        )));
                    }
                    if p.tasks.len() < p.total {
                        lines.push(Line::from(format!(
                            "   … and {} more",
                            p.total - p.tasks.len()
                        )));
                    }
                    lines.push(Line::from(vec![
                        Span::styled(" y", key),
                        Span::raw(format!(": close {} task{s}   ", p.total)),
                        Span::styled("n, Esc", key),
                        Span::raw(": keep them"),
                    ]));
                }
            }
            let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
            window(frame, centred(area, 84, height), "Close All", lines, 0);
        }
    }
}
