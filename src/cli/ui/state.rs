//! What `vigil ui` knows and wants: the [`App`] state, the [`Event`]s that change it (keys,
//! the clock, the daemon's answers, the event stream) and the [`Effect`]s it asks for (API
//! calls, a debounce timer, quitting). `update` (in `update.rs`) is a pure function of the
//! two; the driver (`mod.rs`) and the effects (`effects.rs`) are the only I/O.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use super::keymap::Key;
use crate::client::ClientError;
use crate::proto::{
    LogPage, QueueTask, Role, Status, UserInfo, UserTask, UserTaskDetail, UserTaskFilter,
    UserTaskKind, UserTaskList, UserTaskQuery, UserTaskReport, UserTaskStatusFilter,
};

/// Time after the last filter keystroke before the list is asked for.
pub const DEBOUNCE: Duration = Duration::from_millis(30);
/// How often the queue and the status header are asked for again (the event log does not
/// cover queue changes).
pub const POLL: Duration = Duration::from_millis(1500);
/// Tasks listed in the Close All confirmation (the CLI's preview shows as many).
pub const CLOSE_ALL_PREVIEW: usize = 10;
/// Rows of the Scan log / Audit log under the queue.
pub const LOG_ROWS: usize = 10;

/// A refused or failed call, as the screen shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub message: String,
    /// The daemon could not be reached (the banner, not the status line).
    pub unreachable: bool,
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        ApiError {
            unreachable: matches!(e, ClientError::Unreachable { .. }),
            message: e.to_string(),
        }
    }
}

pub type Answer<T> = Result<T, ApiError>;

/// Which log is under the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Scans,
    Audits,
}

impl LogKind {
    /// The log's path parameter.
    pub fn param(self) -> &'static str {
        match self {
            LogKind::Scans => "scans",
            LogKind::Audits => "audits",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            LogKind::Scans => "Scan log",
            LogKind::Audits => "Audit log",
        }
    }
}

/// Everything that happens to the app.
#[derive(Debug, Clone)]
pub enum Event {
    Key(Key),
    /// The clock (and the debounce and poll timers' reference).
    Tick(DateTime<Utc>),
    /// Rows the task table has room for.
    Resize {
        rows: usize,
    },
    Status(Answer<Box<Status>>),
    Tasks {
        generation: u64,
        answer: Answer<UserTaskList>,
    },
    Detail {
        id: u64,
        answer: Answer<Box<(UserTaskDetail, UserTaskReport)>>,
    },
    Queue(Answer<Vec<QueueTask>>),
    /// The configured users (`GET /v1/users`, admins only).
    Users(Answer<Vec<UserInfo>>),
    Log {
        log: LogKind,
        answer: Answer<LogPage>,
    },
    CloseAllPreview {
        answer: Answer<UserTaskList>,
    },
    /// An action ended: what the daemon said, in words.
    Done(Answer<String>),
    /// The debounce timer of filter generation `n` ran out.
    FilterDue(u64),
    /// The event stream delivered event `seq`.
    Changed {
        seq: u64,
    },
    /// The event stream is connected (again).
    Connected,
    /// The event stream lost the daemon.
    Disconnected(String),
}

/// Everything the app asks the outside to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    LoadStatus,
    LoadTasks {
        generation: u64,
        query: UserTaskQuery,
    },
    LoadDetail {
        id: u64,
    },
    LoadQueue,
    LoadUsers,
    LoadLog {
        log: LogKind,
    },
    PreviewCloseAll {
        filter: UserTaskFilter,
    },
    Assign {
        id: u64,
        email: String,
    },
    Close {
        id: u64,
    },
    Reopen {
        id: u64,
    },
    CloseAll {
        filter: UserTaskFilter,
    },
    Cancel {
        ids: Vec<String>,
    },
    /// Send [`Event::FilterDue`] with this generation after [`DEBOUNCE`].
    Debounce {
        generation: u64,
    },
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Tasks,
    Queue,
}

/// A window over the screen that takes the keys while it is open.
#[derive(Debug, Clone)]
pub enum Modal {
    Help {
        scroll: usize,
    },
    /// The `/` prompt: keys edit `filter.q` (applied as typed).
    Filter,
    /// The `@` prompt: the assignee filter.
    AssigneeFilter {
        input: String,
    },
    /// The `a` prompt: whom to assign task `id` to.
    Assign {
        id: u64,
        input: String,
        pick: usize,
    },
    /// Close All asked; waiting for the daemon's count, then for `y`.
    ConfirmCloseAll {
        filter: UserTaskFilter,
        preview: Option<UserTaskList>,
    },
}

/// The filters of the task list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub status: UserTaskStatusFilter,
    pub mine: bool,
    /// An email, `none`, or empty for anyone.
    pub assignee: String,
    pub kind: Option<UserTaskKind>,
    pub q: String,
}

impl Filters {
    /// The daemon's filter for these.
    pub fn to_filter(&self) -> UserTaskFilter {
        let assignee = if self.mine {
            Some("me".to_owned())
        } else if self.assignee.trim().is_empty() {
            None
        } else {
            Some(self.assignee.trim().to_owned())
        };
        let q = self.q.trim();
        UserTaskFilter {
            status: Some(self.status),
            assignee,
            q: (!q.is_empty()).then(|| q.to_owned()),
            kind: self.kind,
            node: None,
        }
    }
}

/// The expanded task.
#[derive(Debug, Clone)]
pub struct Expansion {
    pub id: u64,
    pub loaded: Option<Box<(UserTaskDetail, UserTaskReport)>>,
    pub error: Option<String>,
    pub scroll: usize,
    pub view_changes: bool,
}

/// The state of the User Tasks screen's list.
#[derive(Debug, Clone, Default)]
pub struct TaskList {
    pub page: Option<UserTaskList>,
    pub offset: usize,
    pub selected: usize,
    /// Rows per page (the table's height).
    pub rows: usize,
    /// The newest request; older answers are dropped.
    pub generation: u64,
    pub loading: bool,
    /// A change arrived while loading: ask again when the answer comes.
    pub stale: bool,
}

/// The Active tasks screen.
#[derive(Debug, Clone)]
pub struct QueueView {
    pub tasks: Option<Vec<QueueTask>>,
    pub selected: usize,
    pub marked: BTreeSet<String>,
    pub log: LogKind,
    pub log_page: Option<LogPage>,
    pub loading: bool,
}

/// A message in the status line.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub text: String,
    pub error: bool,
}

/// The whole state of `vigil ui`.
#[derive(Debug, Clone)]
pub struct App {
    pub socket: String,
    pub readonly: bool,
    pub now: DateTime<Utc>,
    pub tz: FixedOffset,
    pub screen: Screen,
    pub modal: Option<Modal>,
    pub status: Option<Status>,
    pub filters: Filters,
    pub list: TaskList,
    pub expansion: Option<Expansion>,
    pub queue: QueueView,
    pub notice: Option<Notice>,
    /// Why the daemon cannot be reached, while it cannot.
    pub banner: Option<String>,
    pub last_seq: u64,
    /// Connections of the event stream so far.
    pub stream_connections: u64,
    /// The filter generation the debounce waits for.
    pub filter_generation: u64,
    /// When the queue and the status were last asked for.
    pub polled_at: Option<DateTime<Utc>>,
    /// The configured users (an admin's) and assignees seen in the lists: what the assign
    /// prompt offers.
    pub known_assignees: BTreeSet<String>,
    /// Whether the configured users were asked for (once, when the caller is an admin).
    pub users_asked: bool,
    pub quit: bool,
}

impl App {
    pub fn new(socket: String, readonly: bool, now: DateTime<Utc>, tz: FixedOffset) -> App {
        App {
            socket,
            readonly,
            now,
            tz,
            screen: Screen::Tasks,
            modal: None,
            status: None,
            filters: Filters::default(),
            list: TaskList {
                rows: 20,
                ..TaskList::default()
            },
            expansion: None,
            queue: QueueView {
                tasks: None,
                selected: 0,
                marked: BTreeSet::new(),
                log: LogKind::Scans,
                log_page: None,
                loading: false,
            },
            notice: None,
            banner: None,
            last_seq: 0,
            stream_connections: 0,
            filter_generation: 0,
            polled_at: None,
            known_assignees: BTreeSet::new(),
            users_asked: false,
            quit: false,
        }
    }

    pub fn role(&self) -> Option<Role> {
        self.status.as_ref().and_then(|s| s.caller.role)
    }

    pub fn is_admin(&self) -> bool {
        self.role() == Some(Role::Admin)
    }

    pub fn me(&self) -> Option<&str> {
        self.status.as_ref()?.caller.email.as_deref()
    }

    /// The task under the cursor.
    pub fn selected_task(&self) -> Option<&UserTask> {
        self.list.page.as_ref()?.tasks.get(self.list.selected)
    }

    /// The list's query as it stands.
    pub fn query(&self) -> UserTaskQuery {
        UserTaskQuery {
            filter: self.filters.to_filter(),
            offset: self.list.offset,
            limit: Some(self.list.rows.max(1)),
            closable: false,
        }
    }
}
