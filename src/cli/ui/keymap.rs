//! The keymap: one table of every key, where it works and what it does. The state machine
//! looks keys up here, and the `?` help and the footer are generated from it, so the help
//! can never disagree with the keys.

/// A key, as the state machine sees it (the terminal's key events are mapped to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    Backspace,
    /// Ctrl-C: quits from anywhere.
    CtrlC,
    /// Ctrl-U: clears a prompt.
    CtrlU,
}

/// Where a key works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Everywhere but in a prompt.
    Global,
    /// The User Tasks screen.
    Tasks,
    /// The Active tasks screen.
    Queue,
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    SwitchScreen,
    TasksScreen,
    QueueScreen,
    Refresh,
    Up,
    Down,
    PageUp,
    PageDown,
    First,
    Last,
    Expand,
    Collapse,
    Filter,
    CycleStatus,
    Mine,
    AssigneeFilter,
    CycleKind,
    ViewChanges,
    Assign,
    Take,
    Close,
    Reopen,
    CloseAll,
    Mark,
    CancelQueued,
    SwitchLog,
}

pub struct Binding {
    pub keys: &'static [Key],
    /// How the help writes the keys.
    pub label: &'static str,
    pub context: Context,
    pub action: Action,
    pub help: &'static str,
    /// Changes something on the daemon: hidden, and refused, under `--readonly`.
    pub changes: bool,
    /// Shown in the footer of its screen.
    pub footer: Option<&'static str>,
}

const fn bind(
    keys: &'static [Key],
    label: &'static str,
    context: Context,
    action: Action,
    help: &'static str,
) -> Binding {
    Binding {
        keys,
        label,
        context,
        action,
        help,
        changes: false,
        footer: None,
    }
}

const fn footer(mut b: Binding, word: &'static str) -> Binding {
    b.footer = Some(word);
    b
}

const fn changes(mut b: Binding) -> Binding {
    b.changes = true;
    b
}

use Context::*;
use Key::*;

/// Every key of `vigil ui`, in the order the help lists them.
pub const KEYMAP: &[Binding] = &[
    footer(
        bind(
            &[Char('?')],
            "?",
            Global,
            Action::Help,
            "this help (Esc closes it)",
        ),
        "help",
    ),
    footer(
        bind(
            &[Char('q'), CtrlC],
            "q, Ctrl-C",
            Global,
            Action::Quit,
            "quit",
        ),
        "quit",
    ),
    footer(
        bind(
            &[Tab, BackTab],
            "Tab",
            Global,
            Action::SwitchScreen,
            "switch between User Tasks and Active tasks",
        ),
        "screen",
    ),
    bind(
        &[Char('1')],
        "1",
        Global,
        Action::TasksScreen,
        "User Tasks screen",
    ),
    bind(
        &[Char('2')],
        "2",
        Global,
        Action::QueueScreen,
        "Active tasks screen",
    ),
    bind(
        &[Char('r')],
        "r",
        Global,
        Action::Refresh,
        "reload what is on screen now",
    ),
    bind(
        &[Up, Char('k')],
        "↑, k",
        Global,
        Action::Up,
        "previous row (in an expansion: scroll up)",
    ),
    bind(
        &[Down, Char('j')],
        "↓, j",
        Global,
        Action::Down,
        "next row (in an expansion: scroll down)",
    ),
    bind(
        &[PageUp],
        "PgUp",
        Global,
        Action::PageUp,
        "previous page (in an expansion: scroll up a page)",
    ),
    bind(
        &[PageDown],
        "PgDn",
        Global,
        Action::PageDown,
        "next page (in an expansion: scroll down a page)",
    ),
    bind(
        &[Home, Char('g')],
        "Home, g",
        Global,
        Action::First,
        "first row",
    ),
    bind(
        &[End, Char('G')],
        "End, G",
        Global,
        Action::Last,
        "last row",
    ),
    footer(
        bind(
            &[Enter],
            "Enter",
            Tasks,
            Action::Expand,
            "expand the task: counters, nodes, events, report",
        ),
        "expand",
    ),
    bind(
        &[Esc],
        "Esc",
        Tasks,
        Action::Collapse,
        "close the expansion, the help or a prompt (never quits)",
    ),
    footer(
        bind(
            &[Char('/')],
            "/",
            Tasks,
            Action::Filter,
            "filter on the text as you type (Enter or Esc ends the prompt, Ctrl-U clears)",
        ),
        "filter",
    ),
    footer(
        bind(
            &[Char('s')],
            "s",
            Tasks,
            Action::CycleStatus,
            "status filter: open → closed → all",
        ),
        "status",
    ),
    footer(
        bind(
            &[Char('m')],
            "m",
            Tasks,
            Action::Mine,
            "Mine: only tasks assigned to you (again: everyone's)",
        ),
        "mine",
    ),
    bind(
        &[Char('@')],
        "@",
        Tasks,
        Action::AssigneeFilter,
        "assignee filter: an email, `none` for unassigned, empty for any",
    ),
    bind(
        &[Char('f')],
        "f",
        Tasks,
        Action::CycleKind,
        "kind filter: all → drift → policy → scan-failure",
    ),
    bind(
        &[Char('v')],
        "v",
        Tasks,
        Action::ViewChanges,
        "view changes: previous → current values and content diffs",
    ),
    footer(
        changes(bind(
            &[Char('a')],
            "a",
            Tasks,
            Action::Assign,
            "assign the task (type an email; Tab offers the configured users)",
        )),
        "assign",
    ),
    changes(bind(
        &[Char('t')],
        "t",
        Tasks,
        Action::Take,
        "take the task: assign it to yourself",
    )),
    footer(
        changes(bind(
            &[Char('c')],
            "c",
            Tasks,
            Action::Close,
            "close the task",
        )),
        "close",
    ),
    changes(bind(
        &[Char('o')],
        "o",
        Tasks,
        Action::Reopen,
        "reopen the task (Site Administrators)",
    )),
    footer(
        changes(bind(
            &[Char('C')],
            "C",
            Tasks,
            Action::CloseAll,
            "Close All open tasks of the current filter (asks first, with the count)",
        )),
        "close all",
    ),
    footer(
        changes(bind(
            &[Char(' ')],
            "Space",
            Queue,
            Action::Mark,
            "mark or unmark the task for cancelling",
        )),
        "mark",
    ),
    footer(
        changes(bind(
            &[Char('x')],
            "x",
            Queue,
            Action::CancelQueued,
            "cancel the marked tasks, or the selected one (Site Administrators)",
        )),
        "cancel",
    ),
    footer(
        bind(
            &[Char('l')],
            "l",
            Queue,
            Action::SwitchLog,
            "show the Scan log or the Audit log",
        ),
        "log",
    ),
];

/// The binding of `key` on a screen (`queue` says which); Global bindings apply on both.
pub fn lookup(key: Key, queue: bool) -> Option<&'static Binding> {
    KEYMAP.iter().find(|b| {
        b.keys.contains(&key)
            && match b.context {
                Global => true,
                Tasks => !queue,
                Queue => queue,
            }
    })
}

/// The help screen's lines: every binding, grouped by where it works; `readonly` leaves out
/// the ones that change something.
pub fn help_lines(readonly: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (context, heading) in [
        (Global, "Everywhere"),
        (Tasks, "User Tasks"),
        (Queue, "Active tasks"),
    ] {
        out.push((heading.to_owned(), String::new()));
        for b in KEYMAP
            .iter()
            .filter(|b| b.context == context && !(readonly && b.changes))
        {
            out.push((format!("  {}", b.label), b.help.to_owned()));
        }
    }
    out
}

/// The footer of a screen: `key word` pairs of its footer bindings.
pub fn footer_items(queue: bool, readonly: bool) -> Vec<(&'static str, &'static str)> {
    KEYMAP
        .iter()
        .filter(|b| !(readonly && b.changes))
        .filter(|b| match b.context {
            Global => true,
            Tasks => !queue,
            Queue => queue,
        })
        .filter_map(|b| Some((b.label.split(',').next()?, b.footer?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_means_two_things_on_one_screen() {
        for queue in [false, true] {
            for (i, a) in KEYMAP.iter().enumerate() {
                for b in &KEYMAP[i + 1..] {
                    let both = |c: Context| c == Global || (c == Queue) == queue;
                    if both(a.context) && both(b.context) {
                        for k in a.keys {
                            assert!(!b.keys.contains(k), "{k:?} is bound twice");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_help_lists_every_binding_and_readonly_hides_the_actions() {
        let all = help_lines(false);
        assert_eq!(all.len(), KEYMAP.len() + 3);
        let ro = help_lines(true);
        assert!(ro.iter().all(|(k, _)| k.trim() != "c" && k.trim() != "x"));
        assert!(ro.iter().any(|(k, _)| k.trim() == "/"));
    }

    #[test]
    fn the_readme_lists_exactly_these_keys() {
        let readme = include_str!("../../../README.md");
        for b in KEYMAP {
            let where_ = match b.context {
                Global => "everywhere",
                Tasks => "User Tasks",
                Queue => "Active tasks",
            };
            let row = format!("| `{}` | {where_} | {} |", b.label, b.help);
            assert!(readme.contains(&row), "README.md lacks the key row {row}");
        }
        let listed = readme.lines().filter(|l| {
            ["everywhere", "User Tasks", "Active tasks"]
                .iter()
                .any(|w| l.starts_with("| `") && l.contains(&format!("` | {w} | ")))
        });
        assert_eq!(
            listed.count(),
            KEYMAP.len(),
            "README.md lists keys the keymap lacks"
        );
    }
}
