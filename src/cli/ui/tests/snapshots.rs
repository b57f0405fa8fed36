//! The screens as text, on a 120×32 `TestBackend`, at a fixed time in UTC, with the data
//! of [`FakeApi`]: the task list, an expanded drift task with view changes, a policy task,
//! the Close All confirmation, the Active tasks screen, a Site User's view, the help.

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::*;
use crate::cli::ui::keymap::Key;
use crate::cli::ui::render;

const WIDTH: u16 = 120;
const HEIGHT: u16 = 32;

/// The screen's text, one line per row, trailing blanks cut.
fn screen(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).unwrap();
    terminal.draw(|f| render::draw(f, app)).unwrap();
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..HEIGHT {
        let mut line = String::new();
        for x in 0..WIDTH {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn started(api: &FakeApi) -> App {
    let mut app = app();
    app.list.rows = render::table_rows(HEIGHT);
    let effects = app.start();
    api.settle(&mut app, effects);
    app
}

fn keys(api: &FakeApi, app: &mut App, keys: &[Key]) {
    for k in keys {
        let effects = app.update(Event::Key(*k));
        api.settle(app, effects);
    }
}

fn no_control_characters(text: &str) {
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "a control character reached the screen:\n{text}"
    );
}

#[test]
fn the_task_list() {
    let api = FakeApi::admin();
    let app = started(&api);
    let text = screen(&app);
    no_control_characters(&text);
    insta::assert_snapshot!("task_list", text);
}

#[test]
fn an_expanded_drift_task_with_view_changes() {
    let api = FakeApi::admin();
    let mut app = started(&api);
    keys(&api, &mut app, &[Key::Enter]);
    insta::assert_snapshot!("drift_expanded", screen(&app));
    keys(&api, &mut app, &[Key::Char('v')]);
    let text = screen(&app);
    assert!(
        text.contains("version: 3.0.11-1~deb12u2 → 3.0.13-1~deb12u1"),
        "{text}"
    );
    insta::assert_snapshot!("drift_view_changes", text);
}

#[test]
fn a_policy_task() {
    let api = FakeApi::admin();
    let mut app = started(&api);
    keys(&api, &mut app, &[Key::Down, Key::Enter]);
    let text = screen(&app);
    assert!(
        text.contains("PermitRootLogin is yes, expected no"),
        "{text}"
    );
    insta::assert_snapshot!("policy_expanded", text);
}

#[test]
fn the_close_all_confirmation() {
    let api = FakeApi::admin();
    let mut app = started(&api);
    keys(&api, &mut app, &[Key::Char('f'), Key::Char('C')]);
    let text = screen(&app);
    assert!(text.contains("2 open tasks will close"), "{text}");
    insta::assert_snapshot!("close_all_confirmation", text);
}

#[test]
fn the_active_tasks_screen() {
    let api = FakeApi::admin();
    let mut app = started(&api);
    keys(&api, &mut app, &[Key::Tab, Key::Char(' ')]);
    let text = screen(&app);
    assert!(text.contains("Failed"), "{text}");
    insta::assert_snapshot!("active_tasks", text);
}

#[test]
fn a_site_users_view() {
    let api = FakeApi::site_user();
    let mut app = started(&api);
    keys(
        &api,
        &mut app,
        &[Key::Char('m'), Key::Char('m'), Key::Char('c')],
    );
    let text = screen(&app);
    assert!(text.contains("Site User"), "{text}");
    assert!(
        text.contains("a Site User closes only their own tasks"),
        "{text}"
    );
    insta::assert_snapshot!("site_user", text);
}

#[test]
fn the_help_and_a_readonly_footer() {
    let api = FakeApi::admin();
    let mut app = started(&api);
    app.readonly = true;
    keys(&api, &mut app, &[Key::Char('?')]);
    let text = screen(&app);
    assert!(!text.contains("Close All open tasks"), "{text}");
    insta::assert_snapshot!("help_readonly", text);
}
