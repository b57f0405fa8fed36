//! Drawing the state: the header (the open-count badge, who you are, the queue), the
//! banner, the screen, the status line and the footer; `tasks`, `detail`, `queue` and
//! `overlay` draw their parts. Every string from the daemon goes through `ui::text`.

mod detail;
mod overlay;
mod queue;
mod tasks;

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::keymap;
use super::state::{App, Screen};
use super::text::cell;
use crate::proto::Role;

/// Lines above a screen (header, banner or filters) and below it (status line, footer).
const ABOVE: u16 = 2;
const BELOW: u16 = 2;

pub fn draw(frame: &mut Frame, app: &App) {
    let [head, second, body, status, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(ABOVE - 1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(BELOW - 1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(header(app)), head);
    match &app.banner {
        Some(why) => frame.render_widget(
            Paragraph::new(Line::from(format!(" {}", cell(why))))
                .style(Style::new().fg(Color::White).bg(Color::Red)),
            second,
        ),
        None if app.screen == Screen::Tasks => tasks::filters(frame, app, second),
        None => {}
    }
    match app.screen {
        Screen::Tasks => tasks::draw(frame, app, body),
        Screen::Queue => queue::draw(frame, app, body),
    }
    if let Some(n) = &app.notice {
        let style = if n.error {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(Color::Green)
        };
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(
                format!(" {}", cell(&n.text)),
                style,
            ))),
            status,
        );
    }
    frame.render_widget(Paragraph::new(footer(app)), foot);
    overlay::draw(frame, app);
}

/// Rows of tasks a page holds on a terminal `height` lines high (the table's own header
/// line taken off).
pub fn table_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(ABOVE + BELOW + 1)).max(1)
}

fn header(app: &App) -> Line<'static> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let tab = |name: &'static str, on: bool| {
        if on {
            Span::styled(format!(" {name} "), bold.fg(Color::Black).bg(Color::White))
        } else {
            Span::raw(format!(" {name} "))
        }
    };
    let mut spans = vec![
        Span::styled(" vigil ", bold.fg(Color::Black).bg(Color::Cyan)),
        Span::raw(" "),
        tab("1 User Tasks", app.screen == Screen::Tasks),
        tab("2 Active tasks", app.screen == Screen::Queue),
    ];
    match &app.status {
        None => spans.push(Span::raw(format!(
            " │ connecting to {}…",
            cell(&app.socket)
        ))),
        Some(s) => {
            let open = s.open_tasks.map_or("-".to_owned(), |n| n.to_string());
            let mine = s.my_open_tasks.map_or("-".to_owned(), |n| n.to_string());
            spans.push(Span::raw(" │ "));
            spans.push(Span::styled(
                format!("Open: {open} (mine: {mine})"),
                bold.fg(Color::Yellow),
            ));
            let who = s
                .caller
                .email
                .as_deref()
                .map_or_else(|| format!("uid {}", s.caller.uid), |e| cell(e).into_owned());
            let role = match s.caller.role {
                Some(Role::Admin) => "Site Administrator",
                Some(Role::User) => "Site User",
                None => "not a configured user",
            };
            spans.push(Span::raw(format!(" │ {who}, {role}")));
            if app.readonly {
                spans.push(Span::styled(", read-only", Style::new().fg(Color::Magenta)));
            }
            if let Some(q) = &s.queue {
                spans.push(Span::raw(format!(
                    " │ queue: {} running, {} queued, {} slots",
                    q.running, q.queued, q.slots
                )));
            }
        }
    }
    Line::from(spans)
}

fn footer(app: &App) -> Line<'static> {
    let key = Style::new().fg(Color::Black).bg(Color::Gray);
    let mut spans = Vec::new();
    for (k, word) in keymap::footer_items(app.screen == Screen::Queue, app.readonly) {
        spans.push(Span::styled(format!(" {k} "), key));
        spans.push(Span::raw(format!(" {word} ")));
    }
    Line::from(spans)
}
