//! The keys of an open window (help, prompts, the Close All confirmation).

use super::super::keymap::Key;
use super::super::state::*;
use crate::proto::UserTaskFilter;

impl App {
    pub(super) fn modal_key(&mut self, modal: Modal, key: Key) -> Vec<Effect> {
        match modal {
            Modal::Help { scroll } => {
                let scroll = match key {
                    Key::Esc | Key::Char('?') => return Vec::new(),
                    Key::Char('q') => return self.quit(),
                    Key::Up | Key::Char('k') => scroll.saturating_sub(1),
                    Key::Down | Key::Char('j') => scroll + 1,
                    _ => scroll,
                };
                self.modal = Some(Modal::Help { scroll });
                Vec::new()
            }
            Modal::Filter => {
                match key {
                    Key::Esc | Key::Enter => return Vec::new(),
                    Key::Char(c) => self.filters.q.push(c),
                    Key::Backspace => {
                        self.filters.q.pop();
                    }
                    Key::CtrlU => self.filters.q.clear(),
                    _ => {}
                }
                self.modal = Some(Modal::Filter);
                self.filter_generation += 1;
                vec![Effect::Debounce {
                    generation: self.filter_generation,
                }]
            }
            Modal::AssigneeFilter { mut input } => {
                match key {
                    Key::Esc => return Vec::new(),
                    Key::Enter => {
                        self.filters.assignee = input.trim().to_owned();
                        if !self.filters.assignee.is_empty() {
                            self.filters.mine = false;
                        }
                        return self.filters_changed();
                    }
                    key => edit(&mut input, key),
                }
                self.modal = Some(Modal::AssigneeFilter { input });
                Vec::new()
            }
            Modal::Assign {
                id,
                mut input,
                pick,
            } => {
                let mut pick = pick;
                match key {
                    Key::Esc => return Vec::new(),
                    Key::Enter => {
                        let email = input.trim().to_owned();
                        if email.is_empty() {
                            self.say("type an email to assign the task to (Esc: leave it)", true);
                            self.modal = Some(Modal::Assign { id, input, pick });
                            return Vec::new();
                        }
                        self.say(&format!("assigning {id} to {email}…"), false);
                        return vec![Effect::Assign { id, email }];
                    }
                    Key::Tab if !self.known_assignees.is_empty() => {
                        let known: Vec<&String> = self.known_assignees.iter().collect();
                        input = known[pick % known.len()].clone();
                        pick += 1;
                    }
                    key => edit(&mut input, key),
                }
                self.modal = Some(Modal::Assign { id, input, pick });
                Vec::new()
            }
            Modal::ConfirmCloseAll { filter, preview } => match (key, &preview) {
                (Key::Char('y' | 'Y'), Some(p)) if p.total > 0 => {
                    self.say(&format!("closing {} task(s)…", p.total), false);
                    // Close All only ever closes open tasks: the status is left out.
                    let filter = UserTaskFilter {
                        status: None,
                        ..filter
                    };
                    vec![Effect::CloseAll { filter }]
                }
                (Key::Char('y' | 'Y'), None) => {
                    self.modal = Some(Modal::ConfirmCloseAll { filter, preview });
                    Vec::new()
                }
                (Key::Char('n' | 'N') | Key::Esc, _) => {
                    self.say("Close All: nothing closed", false);
                    Vec::new()
                }
                (_, Some(p)) if p.total == 0 => Vec::new(),
                _ => {
                    self.modal = Some(Modal::ConfirmCloseAll { filter, preview });
                    Vec::new()
                }
            },
        }
    }
}

/// A prompt's line editing.
fn edit(input: &mut String, key: Key) {
    match key {
        Key::Char(c) => input.push(c),
        Key::Backspace => {
            input.pop();
        }
        Key::CtrlU => input.clear(),
        _ => {}
    }
}
