//! The state machine as data: keys and answers in, effects out.

use super::*;
use crate::cli::ui::keymap::Key;
use crate::cli::ui::state::{Modal, Screen};
use crate::proto::UserTaskFilter;

fn loaded(api: &FakeApi) -> App {
    let mut app = app();
    app.list.rows = 3;
    let effects = app.start();
    api.settle(&mut app, effects);
    app
}

fn key(app: &mut App, k: Key) -> Vec<Effect> {
    app.update(Event::Key(k))
}

fn tasks_query(effects: &[Effect]) -> Option<&crate::proto::UserTaskQuery> {
    effects.iter().find_map(|e| match e {
        Effect::LoadTasks { query, .. } => Some(query),
        _ => None,
    })
}

#[test]
fn the_first_screen_asks_for_the_status_and_one_page() {
    let mut app = app();
    app.list.rows = 25;
    let effects = app.start();
    assert!(effects.contains(&Effect::LoadStatus));
    let q = tasks_query(&effects).unwrap();
    assert_eq!((q.offset, q.limit), (0, Some(25)));
    assert_eq!(
        q.filter.status,
        Some(crate::proto::UserTaskStatusFilter::Open)
    );
}

#[test]
fn the_filter_applies_as_typed_debounced_and_the_newest_answer_wins() {
    let api = FakeApi::admin();
    let mut app = loaded(&api);
    assert!(key(&mut app, Key::Char('/')).is_empty());
    let first = key(&mut app, Key::Char('o'));
    let second = key(&mut app, Key::Char('p'));
    assert_eq!(first, vec![Effect::Debounce { generation: 1 }]);
    assert_eq!(second, vec![Effect::Debounce { generation: 2 }]);
    // The first timer is stale: nothing asked.
    assert!(app.update(Event::FilterDue(1)).is_empty());
    let effects = app.update(Event::FilterDue(2));
    let q = tasks_query(&effects).unwrap().clone();
    assert_eq!(q.filter.q.as_deref(), Some("op"));
    let Effect::LoadTasks { generation, .. } = effects[0] else {
        panic!("{effects:?}")
    };
    // An older answer arriving late is dropped.
    let old = app.update(Event::Tasks {
        generation: generation - 1,
        answer: Ok(UserTaskList {
            tasks: Vec::new(),
            total: 0,
        }),
    });
    assert!(old.is_empty());
    assert_eq!(
        app.list.page.as_ref().unwrap().total,
        5 - 1,
        "the open tasks before the filter"
    );
    api.settle(&mut app, effects);
    assert_eq!(app.list.page.as_ref().unwrap().total, 1);
    assert!(matches!(app.modal, Some(Modal::Filter)));
    // Esc ends the prompt and keeps the filter; it never quits.
    assert!(key(&mut app, Key::Esc).is_empty());
    assert!(app.modal.is_none() && !app.quit);
    assert_eq!(app.filters.q, "op");
}

#[test]
fn changes_elsewhere_while_loading_are_one_reload_after_the_answer() {
    let api = FakeApi::admin();
    let mut app = loaded(&api);
    let first = app.update(Event::Changed { seq: 10 });
    assert!(tasks_query(&first).is_some());
    for seq in 11..20 {
        let more = app.update(Event::Changed { seq });
        assert!(
            tasks_query(&more).is_none(),
            "asked again while loading: {more:?}"
        );
    }
    let Effect::LoadTasks { generation, query } = first
        .iter()
        .find(|e| matches!(e, Effect::LoadTasks { .. }))
        .unwrap()
        .clone()
    else {
        unreachable!()
    };
    let answer = api
        .answer(&Effect::LoadTasks { generation, query })
        .unwrap();
    let after = app.update(answer);
    assert_eq!(
        after
            .iter()
            .filter(|e| matches!(e, Effect::LoadTasks { .. }))
            .count(),
        1
    );
    assert_eq!(app.last_seq, 19);
}

#[test]
fn esc_closes_the_expansion_and_the_help_and_q_quits() {
    let api = FakeApi::admin();
    let mut app = loaded(&api);
    let effects = key(&mut app, Key::Enter);
    assert_eq!(effects, vec![Effect::LoadDetail { id: 7 }]);
    api.settle(&mut app, effects);
    assert!(app.expansion.as_ref().unwrap().loaded.is_some());
    key(&mut app, Key::Esc);
    assert!(app.expansion.is_none());
    key(&mut app, Key::Char('?'));
    assert!(matches!(app.modal, Some(Modal::Help { .. })));
    key(&mut app, Key::Esc);
    assert!(app.modal.is_none());
    assert!(key(&mut app, Key::Esc).is_empty());
    assert!(!app.quit);
    assert_eq!(key(&mut app, Key::Char('q')), vec![Effect::Quit]);
}

#[test]
fn readonly_refuses_every_action_without_asking_the_daemon() {
    let api = FakeApi::admin();
    let mut app = loaded(&api);
    app.readonly = true;
    for k in ['c', 'C', 'a', 't', 'o'] {
        assert!(key(&mut app, Key::Char(k)).is_empty(), "{k}");
        assert!(app.modal.is_none(), "{k}");
    }
    assert!(app.notice.as_ref().unwrap().text.contains("read-only"));
}

#[test]
fn a_site_users_cancel_explains_and_an_admins_cancels_the_marked_tasks() {
    let mut app = loaded(&FakeApi::site_user());
    let effects = key(&mut app, Key::Char('2'));
    assert!(effects.contains(&Effect::LoadQueue));
    FakeApi::site_user().settle(&mut app, effects);
    assert!(key(&mut app, Key::Char('x')).is_empty());
    let n = app.notice.as_ref().unwrap();
    assert!(
        n.error && n.text.contains("for Site Administrators"),
        "{n:?}"
    );

    let api = FakeApi::admin();
    let mut app = loaded(&api);
    let effects = key(&mut app, Key::Tab);
    api.settle(&mut app, effects);
    assert_eq!(app.screen, Screen::Queue);
    key(&mut app, Key::Char(' '));
    key(&mut app, Key::Char(' '));
    let effects = key(&mut app, Key::Char('x'));
    assert_eq!(
        effects,
        vec![Effect::Cancel {
            ids: vec!["Scan #12".into(), "Scan #13".into()]
        }]
    );
}

#[test]
fn close_all_asks_with_the_daemons_count_and_closes_open_tasks_only() {
    let api = FakeApi::admin();
    let mut app = loaded(&api);
    let effects = key(&mut app, Key::Char('C'));
    let filter = UserTaskFilter {
        status: Some(crate::proto::UserTaskStatusFilter::Open),
        ..UserTaskFilter::default()
    };
    assert_eq!(
        effects,
        vec![Effect::PreviewCloseAll {
            filter: filter.clone()
        }]
    );
    // `y` before the count is known does nothing.
    assert!(key(&mut app, Key::Char('y')).is_empty());
    api.settle(&mut app, effects);
    let Some(Modal::ConfirmCloseAll {
        preview: Some(p), ..
    }) = &app.modal
    else {
        panic!()
    };
    assert_eq!(p.total, 4);
    let effects = key(&mut app, Key::Char('y'));
    assert_eq!(
        effects,
        vec![Effect::CloseAll {
            filter: UserTaskFilter {
                status: None,
                ..filter
            }
        }]
    );
}

#[test]
fn a_refused_action_shows_the_daemons_message_and_changes_nothing() {
    let api = FakeApi::site_user();
    let mut app = loaded(&api);
    let before = app.list.page.as_ref().unwrap().tasks.clone();
    let effects = key(&mut app, Key::Char('c'));
    assert_eq!(effects, vec![Effect::Close { id: 7 }]);
    let answer = api.answer(&effects[0]).unwrap();
    assert!(app.update(answer).is_empty(), "a refusal reloads nothing");
    let n = app.notice.as_ref().unwrap();
    assert!(n.error && n.text.contains("not assigned to you"), "{n:?}");
    assert_eq!(app.list.page.as_ref().unwrap().tasks, before);
}

#[test]
fn take_assigns_to_the_caller_and_success_reloads_what_is_shown() {
    let api = FakeApi::site_user();
    let mut app = loaded(&api);
    key(&mut app, Key::Down);
    let effects = key(&mut app, Key::Char('t'));
    assert_eq!(
        effects,
        vec![Effect::Assign {
            id: 6,
            email: "alice@example.com".into()
        }]
    );
    let after = app.update(Event::Done(Ok(
        "6 assigned to alice@example.com (mailed)".into()
    )));
    assert!(after.contains(&Effect::LoadStatus));
    assert!(tasks_query(&after).is_some());
}

#[test]
fn a_lost_daemon_is_a_banner_until_the_stream_is_back() {
    let api = FakeApi::admin();
    let mut app = loaded(&api);
    assert!(
        app.update(Event::Connected).is_empty(),
        "the first connection reloads nothing"
    );
    app.update(Event::Disconnected(
        "cannot reach vigild at /run/vigil/vigil.sock: gone".into(),
    ));
    assert!(app.banner.is_some());
    let effects = app.update(Event::Connected);
    assert!(app.banner.is_none());
    // Back before the stream (the header's poll answered first): still one reload.
    app.update(Event::Disconnected("gone".into()));
    app.update(Event::Status(Ok(Box::new(status(true, 4, 0)))));
    assert!(app.banner.is_none());
    let again = app.update(Event::Connected);
    assert!(tasks_query(&again).is_some() || app.list.stale, "{again:?}");
    assert!(effects.contains(&Effect::LoadStatus) && tasks_query(&effects).is_some());
    // A failed load while gone is the banner too, not an error line.
    app.update(Event::Status(Err(ApiError {
        message: "cannot reach".into(),
        unreachable: true,
    })));
    assert!(app.banner.is_some());
    assert!(!app.notice.as_ref().unwrap().error, "{:?}", app.notice);
}

#[test]
fn moving_past_the_last_row_asks_for_the_next_page() {
    let api = FakeApi::admin();
    let mut app = loaded(&api);
    assert_eq!(app.list.page.as_ref().unwrap().tasks.len(), 3);
    key(&mut app, Key::Down);
    key(&mut app, Key::Down);
    let effects = key(&mut app, Key::Down);
    assert_eq!(tasks_query(&effects).unwrap().offset, 3);
    api.settle(&mut app, effects);
    assert_eq!(app.selected_task().unwrap().id, 4);
    let effects = key(&mut app, Key::Up);
    assert_eq!(tasks_query(&effects).unwrap().offset, 0);
    api.settle(&mut app, effects);
    assert_eq!(
        app.selected_task().unwrap().id,
        5,
        "the last row of the page before"
    );
}

#[test]
fn the_queue_and_the_header_are_polled_and_the_list_is_not() {
    let api = FakeApi::admin();
    let mut app = loaded(&api);
    app.screen = Screen::Queue;
    assert!(app
        .update(Event::Tick(now() + chrono::Duration::milliseconds(500)))
        .is_empty());
    let effects = app.update(Event::Tick(now() + chrono::Duration::seconds(2)));
    assert!(effects.contains(&Effect::LoadStatus) && effects.contains(&Effect::LoadQueue));
    assert!(tasks_query(&effects).is_none());
}

#[test]
fn an_admins_assign_prompt_offers_every_configured_user_and_a_site_user_asks_for_none() {
    let admin = loaded(&FakeApi::admin());
    assert!(admin.users_asked);
    for email in ["alice@example.com", "bob@example.com", "carol@example.com"] {
        assert!(admin.known_assignees.contains(email), "{email}");
    }
    let site_user = loaded(&FakeApi::site_user());
    assert!(!site_user.users_asked, "a Site User assigns to nobody else");
}
