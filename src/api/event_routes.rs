//! The event log: `GET /v1/events`, NDJSON, streamed a batch at a time; with `follow`,
//! kept open with new events as they commit and a heartbeat line while nothing happens.

use std::time::Duration;

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::endpoint::{Req, Routes};
use super::error::ApiError;
use crate::events::{Follower, Next};
use crate::proto::endpoints::GetEvents;
use crate::proto::{EventLine, Heartbeat};

const DEFAULT_HEARTBEAT: u64 = 15;
const MAX_HEARTBEAT: u64 = 300;

pub fn add(routes: Routes) -> Routes {
    routes.raw::<GetEvents, _, _>(events)
}

/// Every configured user may read the log, like the task list (the router refuses other
/// uids). An error after the first bytes can only end the stream; it is logged.
async fn events(req: Req<GetEvents>) -> Result<Response, ApiError> {
    let q = &req.query;
    let wait = match q.heartbeat {
        None => DEFAULT_HEARTBEAT,
        Some(s) if (1..=MAX_HEARTBEAT).contains(&s) => s,
        Some(s) => {
            return Err(ApiError::bad_request(format!(
                "heartbeat={s} is out of range: give seconds from 1 to {MAX_HEARTBEAT}"
            )))
        }
    };
    let wait = q.follow.then(|| Duration::from_secs(wait));
    let follower = req.state.app.tasks.events().follower(q.after.unwrap_or(0));
    let body = futures::stream::unfold(Some(follower), move |follower| async move {
        let mut follower: Follower = follower?;
        match follower.next(wait).await {
            Ok(Next::Events(events)) => {
                let lines = events.into_iter().map(EventLine::Event);
                Some((Ok(ndjson(lines)), Some(follower)))
            }
            Ok(Next::Quiet(last_seq)) => {
                let beat = EventLine::Heartbeat(Heartbeat {
                    heartbeat: chrono::Utc::now(),
                    last_seq,
                });
                Some((Ok(ndjson([beat])), Some(follower)))
            }
            Ok(Next::End) => None,
            Err(e) => {
                tracing::error!("the event stream stopped: {e}");
                Some((Err(std::io::Error::other(e.to_string())), None))
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// One JSON object per line.
fn ndjson(lines: impl IntoIterator<Item = EventLine>) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        // Serialising these plain types cannot fail (no maps with non-string keys).
        if serde_json::to_writer(&mut out, &line).is_ok() {
            out.push(b'\n');
        }
    }
    out
}
