//! The outbox for administrators: `GET /v1/outbox`, `POST /v1/outbox/retry`,
//! `POST /v1/outbox/test`. Handlers only read or commit outbox rows; the sender delivers.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::{ApiError, ApiJson, ApiQuery};
use super::AppState;
use crate::caller::Caller;
use crate::proto::{
    OutboxEntry, OutboxRetryRequest, OutboxRetryResponse, OutboxState, OutboxTestRequest,
    OutboxTestResponse,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/outbox", get(list))
        .route("/v1/outbox/retry", post(retry))
        .route("/v1/outbox/test", post(test))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<OutboxState>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<OutboxEntry>>, ApiError> {
    caller.require_admin("reading the outbox")?;
    let mut mails = state.daemon.outbox.list().await?;
    if let Some(s) = q.state {
        mails.retain(|m| m.state == s);
    }
    Ok(Json(mails))
}

async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<OutboxRetryRequest>,
) -> Result<Json<OutboxRetryResponse>, ApiError> {
    caller.require_admin("retrying dead letters")?;
    let ids =
        match (req.all, req.ids.is_empty()) {
            (true, true) => None,
            (false, false) => Some(req.ids),
            _ => return Err(ApiError::bad_request(
                "name the mails to retry with {\"ids\": [3, 4]} or say {\"all\": true}, not both",
            )),
        };
    Ok(Json(state.daemon.outbox.retry(ids).await?))
}

async fn test(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<Option<OutboxTestRequest>>,
) -> Result<Json<OutboxTestResponse>, ApiError> {
    caller.require_admin("sending a test mail")?;
    let req = req.ok_or_else(|| {
        ApiError::bad_request("the request needs a body: {\"to\": \"you@example.com\"}")
    })?;
    let to = req.to.trim();
    if let Err(e) = to.parse::<lettre::Address>() {
        return Err(ApiError::bad_request(format!(
            "{to:?} is not an email address ({e}); write it like alice@example.com"
        )));
    }
    Ok(Json(
        state.daemon.outbox.send_test(to, &caller.name()).await?,
    ))
}
