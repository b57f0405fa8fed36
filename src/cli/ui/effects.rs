//! The effects' I/O: each [`Effect`] as calls of the typed endpoint table through the
//! client, answered with the [`Event`] that carries the daemon's reply; and the event-log
//! follower that tells the app when something changed elsewhere.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::state::{ApiError, Effect, Event, DEBOUNCE, LOG_ROWS};
use crate::client::{Client, ClientError};
use crate::proto::endpoints::{
    AssignUserTask, CancelQueueTasks, CloseAllUserTasks, CloseUserTask, GetEvents, GetLog,
    GetStatus, GetUserTask, GetUserTaskReport, ListQueue, ListUserTasks, ListUsers, NoBody,
    ReopenUserTask,
};
use crate::proto::{
    AssignRequest, CancelOutcome, CancelRequest, EventLine, EventsPage, EventsQuery, LogQuery,
    QueueQuery, UserTaskQuery,
};

/// Events of a task shown in its expansion (newest first).
pub const DETAIL_EVENTS: usize = 20;
/// Seconds between heartbeats of the followed event stream: a dead daemon is noticed
/// within this (and a stream that goes quiet is reconnected).
const HEARTBEAT_SECS: u64 = 2;
/// Wait before reconnecting the event stream.
const RECONNECT: Duration = Duration::from_millis(500);

/// Carries out `effect`; `None` for one that answers nothing (Quit is the driver's).
pub async fn run(client: &Client, effect: Effect) -> Option<Event> {
    Some(match effect {
        Effect::Quit => return None,
        Effect::Debounce { generation } => {
            tokio::time::sleep(DEBOUNCE).await;
            Event::FilterDue(generation)
        }
        Effect::LoadStatus => Event::Status(
            client
                .get::<GetStatus>(&())
                .await
                .map(Box::new)
                .map_err(Into::into),
        ),
        Effect::LoadTasks { generation, query } => Event::Tasks {
            generation,
            answer: client
                .query::<ListUserTasks>(&(), &query)
                .await
                .map_err(Into::into),
        },
        Effect::LoadDetail { id } => {
            let page = EventsPage {
                events_offset: 0,
                events_limit: Some(DETAIL_EVENTS),
            };
            let detail = client.query::<GetUserTask>(&id, &page);
            let report = client.get::<GetUserTaskReport>(&id);
            let (detail, report) = tokio::join!(detail, report);
            Event::Detail {
                id,
                answer: match (detail, report) {
                    (Ok(d), Ok(r)) => Ok(Box::new((d, r))),
                    (Err(e), _) | (_, Err(e)) => Err(e.into()),
                },
            }
        }
        Effect::LoadUsers => Event::Users(client.get::<ListUsers>(&()).await.map_err(Into::into)),
        Effect::LoadQueue => Event::Queue(
            client
                .query::<ListQueue>(&(), &QueueQuery::default())
                .await
                .map_err(Into::into),
        ),
        Effect::LoadLog { log } => {
            let query = LogQuery {
                limit: Some(LOG_ROWS),
                ..LogQuery::default()
            };
            Event::Log {
                log,
                answer: client
                    .query::<GetLog>(&log.param().to_owned(), &query)
                    .await
                    .map_err(Into::into),
            }
        }
        Effect::PreviewCloseAll { filter } => {
            // The CLI's preview rule: the daemon lists exactly what Close All would close.
            let query = UserTaskQuery {
                filter,
                offset: 0,
                limit: Some(super::state::CLOSE_ALL_PREVIEW),
                closable: true,
            };
            Event::CloseAllPreview {
                answer: client
                    .query::<ListUserTasks>(&(), &query)
                    .await
                    .map_err(Into::into),
            }
        }
        Effect::Assign { id, email } => Event::Done(
            client
                .post::<AssignUserTask>(&id, &AssignRequest { assignee: email })
                .await
                .map(|t| {
                    format!(
                        "{} assigned to {} (mailed)",
                        t.id,
                        t.assignee.as_deref().unwrap_or("nobody")
                    )
                })
                .map_err(Into::into),
        ),
        Effect::Close { id } => Event::Done(
            client
                .post::<CloseUserTask>(&id, &NoBody {})
                .await
                .map(|t| format!("closed {}", t.id))
                .map_err(Into::into),
        ),
        Effect::Reopen { id } => Event::Done(
            client
                .post::<ReopenUserTask>(&id, &NoBody {})
                .await
                .map(|t| format!("reopened {}", t.id))
                .map_err(Into::into),
        ),
        Effect::CloseAll { filter } => Event::Done(
            client
                .post::<CloseAllUserTasks>(&(), &filter)
                .await
                .map(|r| match r.count {
                    0 => {
                        "closed no task (none may be closed by you, or they were closed meanwhile)"
                            .to_owned()
                    }
                    1 => "closed 1 task".to_owned(),
                    n => format!("closed {n} tasks"),
                })
                .map_err(Into::into),
        ),
        Effect::Cancel { ids } => Event::Done(
            client
                .post::<CancelQueueTasks>(&(), &CancelRequest { ids })
                .await
                .map_err(ApiError::from)
                .and_then(|r| {
                    let refused: Vec<String> = r
                        .results
                        .iter()
                        .filter(|c| c.outcome != CancelOutcome::Cancelled)
                        .map(|c| format!("{}: {}", c.id, c.message))
                        .collect();
                    if refused.is_empty() {
                        let ids: Vec<&str> = r.results.iter().map(|c| c.id.as_str()).collect();
                        Ok(format!("cancelled {}", ids.join(", ")))
                    } else {
                        Err(ApiError {
                            message: refused.join("; "),
                            unreachable: false,
                        })
                    }
                }),
        ),
    })
}

/// Follows the event log from its newest event on, for as long as the app runs: each event
/// is an [`Event::Changed`]; a lost daemon an [`Event::Disconnected`] (then it reconnects,
/// resuming after the last event seen, and says [`Event::Connected`]).
pub async fn follow(client: &Client, events: UnboundedSender<Event>) {
    let mut after: Option<u64> = None;
    loop {
        // Without a place yet, a stream past every event learns the newest one from its
        // first heartbeat (a second), then ends, and the next one streams from there.
        let query = EventsQuery {
            after: Some(after.unwrap_or(u64::MAX)),
            follow: true,
            heartbeat: Some(if after.is_none() { 1 } else { HEARTBEAT_SECS }),
        };
        let mut told = false;
        let result = client
            .call_lines::<GetEvents>(&(), &query, |line| {
                if !told {
                    told = true;
                    let _ = events.send(Event::Connected);
                }
                match line {
                    EventLine::Event(e) => {
                        after = Some(e.seq);
                        let _ = events.send(Event::Changed { seq: e.seq });
                    }
                    EventLine::Heartbeat(h) => match after {
                        None => {
                            after = Some(h.last_seq);
                            return false;
                        }
                        // The log restarted lower (a new state dir): follow it from there.
                        Some(a) if h.last_seq < a => after = Some(h.last_seq),
                        _ => {}
                    },
                }
                !events.is_closed()
            })
            .await;
        if events.is_closed() {
            return;
        }
        match result {
            Ok(()) if told => {
                // Bounded: a stream that keeps ending at once is retried 20 times a second.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Ok(()) => {
                let _ = events.send(Event::Disconnected(
                    "vigild closed the event stream; reconnecting…".to_owned(),
                ));
            }
            // Refused (not a configured user, or not in the socket's group): no live
            // updates; the header's poll goes on and shows why.
            Err(e @ (ClientError::Api { .. } | ClientError::Denied { .. })) => {
                let _ = events.send(Event::Done(Err(ApiError {
                    message: format!("no live updates: {e}"),
                    unreachable: false,
                })));
                return;
            }
            Err(e) => {
                let _ = events.send(Event::Disconnected(format!(
                    "{}; reconnecting…",
                    ApiError::from(e).message
                )));
            }
        }
        tokio::time::sleep(RECONNECT).await;
    }
}
