//! The state machine: `App::update(Event) -> Vec<Effect>`, pure (no I/O, no clock of its
//! own), so that every key and every answer of the daemon can be tested as data.

mod modal;

use super::keymap::{self, Action, Key};
use super::state::*;
use crate::proto::{UserTaskKind, UserTaskStatusFilter};

impl App {
    /// What the first screen needs.
    pub fn start(&mut self) -> Vec<Effect> {
        self.polled_at = Some(self.now);
        let mut out = vec![Effect::LoadStatus];
        out.extend(self.load_tasks(true));
        out
    }

    pub fn update(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Key(Key::CtrlC) => self.quit(),
            Event::Key(key) => match self.modal.take() {
                Some(modal) => self.modal_key(modal, key),
                None => match keymap::lookup(key, self.screen == Screen::Queue) {
                    Some(b) if b.changes && self.readonly => {
                        self.say("read-only (--readonly): actions are off", true);
                        Vec::new()
                    }
                    Some(b) => self.act(b.action),
                    None => Vec::new(),
                },
            },
            Event::Tick(now) => {
                self.now = now;
                let due = self
                    .polled_at
                    .is_none_or(|at| (now - at).to_std().unwrap_or_default() >= POLL);
                if !due {
                    return Vec::new();
                }
                self.polled_at = Some(now);
                let mut out = vec![Effect::LoadStatus];
                if self.screen == Screen::Queue {
                    out.extend(self.load_queue());
                }
                out
            }
            Event::Resize { rows } => {
                let rows = rows.max(1);
                if rows == self.list.rows {
                    return Vec::new();
                }
                self.list.rows = rows;
                self.list.offset -= self.list.offset % rows;
                self.load_tasks(true)
            }
            Event::Status(answer) => {
                match answer {
                    Ok(status) => {
                        self.status = Some(*status);
                        self.reached();
                        // An admin assigns to anyone configured: ask for them once.
                        if self.is_admin() && !self.readonly && !self.users_asked {
                            self.users_asked = true;
                            return vec![Effect::LoadUsers];
                        }
                    }
                    Err(e) => self.failed(e),
                }
                Vec::new()
            }
            Event::Users(answer) => {
                // Without the list the prompt still takes a typed email: nothing to say.
                if let Ok(users) = answer {
                    self.known_assignees
                        .extend(users.into_iter().map(|u| u.email));
                }
                Vec::new()
            }
            Event::Tasks { generation, answer } => self.tasks_answer(generation, answer),
            Event::Detail { id, answer } => {
                if let Some(x) = self.expansion.as_mut().filter(|x| x.id == id) {
                    match answer {
                        Ok(loaded) => {
                            x.loaded = Some(loaded);
                            x.error = None;
                        }
                        Err(e) => {
                            x.error = Some(e.message.clone());
                            self.failed(e);
                        }
                    }
                }
                Vec::new()
            }
            Event::Queue(answer) => {
                self.queue.loading = false;
                match answer {
                    Ok(tasks) => {
                        self.queue
                            .marked
                            .retain(|id| tasks.iter().any(|t| t.id().to_string() == *id));
                        self.queue.selected =
                            self.queue.selected.min(tasks.len().saturating_sub(1));
                        self.queue.tasks = Some(tasks);
                        self.reached();
                    }
                    Err(e) => self.failed(e),
                }
                Vec::new()
            }
            Event::Log { log, answer } => {
                match answer {
                    Ok(page) if log == self.queue.log => self.queue.log_page = Some(page),
                    Ok(_) => {}
                    Err(e) => self.failed(e),
                }
                Vec::new()
            }
            Event::CloseAllPreview { answer } => {
                match (self.modal.as_mut(), answer) {
                    (Some(Modal::ConfirmCloseAll { preview, .. }), Ok(list)) => {
                        *preview = Some(list);
                    }
                    (Some(Modal::ConfirmCloseAll { .. }), Err(e)) => {
                        self.modal = None;
                        self.failed(e);
                    }
                    _ => {}
                }
                Vec::new()
            }
            Event::Done(answer) => {
                match answer {
                    Ok(message) => self.say(&message, false),
                    Err(e) => {
                        self.failed(e);
                        return Vec::new();
                    }
                }
                self.refresh()
            }
            Event::FilterDue(generation) if generation == self.filter_generation => {
                self.list.offset = 0;
                self.list.selected = 0;
                self.load_tasks(true)
            }
            Event::FilterDue(_) => Vec::new(),
            Event::Changed { seq } => {
                self.last_seq = self.last_seq.max(seq);
                self.refresh()
            }
            Event::Connected => {
                self.stream_connections += 1;
                if self.banner.take().is_some() {
                    self.say("connected to vigild again", false);
                }
                // Every connection after the first may have missed changes: reload.
                if self.stream_connections > 1 {
                    return self.refresh();
                }
                Vec::new()
            }
            Event::Disconnected(why) => {
                self.banner = Some(why);
                Vec::new()
            }
        }
    }

    fn quit(&mut self) -> Vec<Effect> {
        self.quit = true;
        vec![Effect::Quit]
    }

    fn say(&mut self, text: &str, error: bool) {
        self.notice = Some(Notice {
            text: text.to_owned(),
            error,
        });
    }

    /// A call failed: the banner if the daemon is gone, else the daemon's message.
    fn failed(&mut self, e: ApiError) {
        if e.unreachable {
            // The event stream's follower reconnects, and the polls go on.
            self.banner = Some(format!("{}; reconnecting…", e.message));
        } else {
            self.say(&e.message, true);
        }
    }

    /// A call got an answer: the daemon is there.
    fn reached(&mut self) {
        self.banner = None;
    }

    /// Asks for the task list; while one is on its way, only remembers to ask again, unless
    /// `now` (the query changed: the newest answer wins, older ones are dropped).
    fn load_tasks(&mut self, now: bool) -> Vec<Effect> {
        if self.list.loading && !now {
            self.list.stale = true;
            return Vec::new();
        }
        self.list.generation += 1;
        self.list.loading = true;
        self.list.stale = false;
        vec![Effect::LoadTasks {
            generation: self.list.generation,
            query: self.query(),
        }]
    }

    fn load_queue(&mut self) -> Vec<Effect> {
        if self.queue.loading {
            return Vec::new();
        }
        self.queue.loading = true;
        vec![
            Effect::LoadQueue,
            Effect::LoadLog {
                log: self.queue.log,
            },
        ]
    }

    /// Everything on screen, asked for again (after a change elsewhere or an action).
    fn refresh(&mut self) -> Vec<Effect> {
        let mut out = vec![Effect::LoadStatus];
        out.extend(self.load_tasks(false));
        if let Some(x) = &self.expansion {
            out.push(Effect::LoadDetail { id: x.id });
        }
        if self.screen == Screen::Queue {
            out.extend(self.load_queue());
        }
        out
    }

    fn tasks_answer(
        &mut self,
        generation: u64,
        answer: Answer<crate::proto::UserTaskList>,
    ) -> Vec<Effect> {
        if generation != self.list.generation {
            return Vec::new();
        }
        self.list.loading = false;
        let list = match answer {
            Ok(list) => list,
            Err(e) => {
                self.failed(e);
                return Vec::new();
            }
        };
        self.reached();
        // A page past the end (tasks closed elsewhere): the last page instead.
        if list.tasks.is_empty() && self.list.offset > 0 && list.total > 0 {
            let rows = self.list.rows.max(1);
            self.list.offset = (list.total - 1) / rows * rows;
            return self.load_tasks(true);
        }
        let keep = self.selected_task().map(|t| t.id);
        self.known_assignees
            .extend(list.tasks.iter().filter_map(|t| t.assignee.clone()));
        self.list.selected = match keep.and_then(|id| list.tasks.iter().position(|t| t.id == id)) {
            Some(i) => i,
            None => self.list.selected.min(list.tasks.len().saturating_sub(1)),
        };
        self.list.page = Some(list);
        if self.list.stale {
            return self.load_tasks(false);
        }
        Vec::new()
    }

    fn act(&mut self, action: Action) -> Vec<Effect> {
        let on_queue = self.screen == Screen::Queue;
        match action {
            Action::Quit => self.quit(),
            Action::Help => {
                self.modal = Some(Modal::Help { scroll: 0 });
                Vec::new()
            }
            Action::SwitchScreen => match self.screen {
                Screen::Tasks => self.act(Action::QueueScreen),
                Screen::Queue => self.act(Action::TasksScreen),
            },
            Action::TasksScreen => {
                self.screen = Screen::Tasks;
                self.load_tasks(false)
            }
            Action::QueueScreen => {
                self.screen = Screen::Queue;
                self.load_queue()
            }
            Action::Refresh => self.refresh(),
            Action::Up
            | Action::Down
            | Action::PageUp
            | Action::PageDown
            | Action::First
            | Action::Last => self.movement(action),
            Action::Expand => {
                let Some(id) = self.selected_task().map(|t| t.id) else {
                    return Vec::new();
                };
                if self.expansion.as_ref().is_some_and(|x| x.id == id) {
                    self.expansion = None;
                    return Vec::new();
                }
                self.expansion = Some(Expansion {
                    id,
                    loaded: None,
                    error: None,
                    scroll: 0,
                    view_changes: false,
                });
                vec![Effect::LoadDetail { id }]
            }
            Action::Collapse => {
                self.expansion = None;
                Vec::new()
            }
            Action::Filter => {
                self.modal = Some(Modal::Filter);
                Vec::new()
            }
            Action::CycleStatus => {
                self.filters.status = match self.filters.status {
                    UserTaskStatusFilter::Open => UserTaskStatusFilter::Closed,
                    UserTaskStatusFilter::Closed => UserTaskStatusFilter::All,
                    UserTaskStatusFilter::All => UserTaskStatusFilter::Open,
                };
                self.filters_changed()
            }
            Action::Mine => {
                self.filters.mine = !self.filters.mine;
                self.filters_changed()
            }
            Action::AssigneeFilter => {
                self.modal = Some(Modal::AssigneeFilter {
                    input: self.filters.assignee.clone(),
                });
                Vec::new()
            }
            Action::CycleKind => {
                self.filters.kind = match self.filters.kind {
                    None => Some(UserTaskKind::Drift),
                    Some(UserTaskKind::Drift) => Some(UserTaskKind::Policy),
                    Some(UserTaskKind::Policy) => Some(UserTaskKind::ScanFailure),
                    Some(UserTaskKind::ScanFailure) => None,
                };
                self.filters_changed()
            }
            Action::ViewChanges => {
                match self.expansion.as_mut() {
                    Some(x) => x.view_changes = !x.view_changes,
                    None => self.say("Enter expands a task first; v then shows its changes", true),
                }
                Vec::new()
            }
            Action::Assign => {
                if let Some(id) = self.selected_task().map(|t| t.id) {
                    self.modal = Some(Modal::Assign {
                        id,
                        input: String::new(),
                        pick: 0,
                    });
                }
                Vec::new()
            }
            Action::Take => {
                let Some(id) = self.selected_task().map(|t| t.id) else {
                    return Vec::new();
                };
                match self.me().map(str::to_owned) {
                    Some(email) => {
                        self.say(&format!("assigning {id} to you…"), false);
                        vec![Effect::Assign { id, email }]
                    }
                    None => {
                        self.say(
                            "you are not a configured user (no email in the config for your uid): nothing to take",
                            true,
                        );
                        Vec::new()
                    }
                }
            }
            Action::Close => self.on_selected("closing", |id| Effect::Close { id }),
            Action::Reopen => self.on_selected("reopening", |id| Effect::Reopen { id }),
            Action::CloseAll => {
                let filter = self.filters.to_filter();
                self.modal = Some(Modal::ConfirmCloseAll {
                    filter: filter.clone(),
                    preview: None,
                });
                vec![Effect::PreviewCloseAll { filter }]
            }
            Action::Mark if on_queue => {
                if let Some(t) = self
                    .queue
                    .tasks
                    .as_ref()
                    .and_then(|t| t.get(self.queue.selected))
                {
                    let id = t.id().to_string();
                    if !self.queue.marked.remove(&id) {
                        self.queue.marked.insert(id);
                    }
                }
                self.movement(Action::Down)
            }
            Action::CancelQueued if on_queue => {
                if !self.is_admin() {
                    self.say(
                        "cancelling active tasks is for Site Administrators, and you are a Site User: \
                         ask an administrator to cancel it",
                        true,
                    );
                    return Vec::new();
                }
                let ids: Vec<String> = if self.queue.marked.is_empty() {
                    let current = self
                        .queue
                        .tasks
                        .as_ref()
                        .and_then(|t| t.get(self.queue.selected));
                    current.map(|t| t.id().to_string()).into_iter().collect()
                } else {
                    std::mem::take(&mut self.queue.marked).into_iter().collect()
                };
                if ids.is_empty() {
                    return Vec::new();
                }
                self.say(&format!("cancelling {}…", ids.join(", ")), false);
                vec![Effect::Cancel { ids }]
            }
            Action::SwitchLog if on_queue => {
                self.queue.log = match self.queue.log {
                    LogKind::Scans => LogKind::Audits,
                    LogKind::Audits => LogKind::Scans,
                };
                self.queue.log_page = None;
                vec![Effect::LoadLog {
                    log: self.queue.log,
                }]
            }
            Action::Mark | Action::CancelQueued | Action::SwitchLog => Vec::new(),
        }
    }

    fn on_selected(&mut self, doing: &str, effect: impl Fn(u64) -> Effect) -> Vec<Effect> {
        match self.selected_task().map(|t| t.id) {
            Some(id) => {
                self.say(&format!("{doing} {id}…"), false);
                vec![effect(id)]
            }
            None => Vec::new(),
        }
    }

    fn filters_changed(&mut self) -> Vec<Effect> {
        self.list.offset = 0;
        self.list.selected = 0;
        self.expansion = None;
        self.load_tasks(true)
    }

    fn movement(&mut self, action: Action) -> Vec<Effect> {
        if self.screen == Screen::Queue {
            let len = self.queue.tasks.as_ref().map_or(0, Vec::len);
            let s = &mut self.queue.selected;
            *s = match action {
                Action::Up => s.saturating_sub(1),
                Action::Down => (*s + 1).min(len.saturating_sub(1)),
                Action::PageUp => s.saturating_sub(10),
                Action::PageDown => (*s + 10).min(len.saturating_sub(1)),
                Action::First => 0,
                _ => len.saturating_sub(1),
            };
            return Vec::new();
        }
        if let Some(x) = self.expansion.as_mut() {
            x.scroll = match action {
                Action::Up => x.scroll.saturating_sub(1),
                Action::Down => x.scroll + 1,
                Action::PageUp => x.scroll.saturating_sub(10),
                Action::PageDown => x.scroll + 10,
                Action::First => 0,
                _ => usize::MAX / 2,
            };
            return Vec::new();
        }
        let (len, total) = self
            .list
            .page
            .as_ref()
            .map_or((0, 0), |p| (p.tasks.len(), p.total));
        let rows = self.list.rows.max(1);
        let offset = self.list.offset;
        let (offset, selected) = match action {
            Action::Up if self.list.selected == 0 && offset > 0 => {
                (offset.saturating_sub(rows), usize::MAX)
            }
            Action::Up => (offset, self.list.selected.saturating_sub(1)),
            Action::Down if self.list.selected + 1 >= len && offset + len < total => {
                (offset + rows, 0)
            }
            Action::Down => (offset, (self.list.selected + 1).min(len.saturating_sub(1))),
            Action::PageUp => (offset.saturating_sub(rows), self.list.selected),
            Action::PageDown if offset + rows < total => (offset + rows, self.list.selected),
            Action::PageDown => (offset, len.saturating_sub(1)),
            Action::First => (0, 0),
            _ => (total.saturating_sub(1) / rows * rows, usize::MAX),
        };
        self.list.selected = selected;
        if offset != self.list.offset {
            self.list.offset = offset;
            // The answer clamps the selection; the old page's task is not on the new one.
            if let Some(p) = self.list.page.as_mut() {
                p.tasks.clear();
            }
            return self.load_tasks(true);
        }
        self.list.selected = selected.min(len.saturating_sub(1));
        Vec::new()
    }
}
