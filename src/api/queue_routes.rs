//! Active tasks and the Scan/Audit logs: `/v1/queue`, `/v1/queue/cancel`, `/v1/logs/*`.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::{ApiError, ApiJson, ApiQuery};
use super::AppState;
use crate::caller::Caller;
use crate::proto::{
    CancelRequest, CancelResponse, EnqueueRequest, EnqueueResponse, FinalStatus, LogPage,
    QueueTask, QueueTaskKind, QueueTaskStatus,
};
use crate::queue::{LogFilter, QueueFilter};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/queue", get(list).post(enqueue))
        .route("/v1/queue/cancel", post(cancel))
        .route("/v1/logs/{log}", get(log))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<QueueTaskStatus>,
    node: Option<String>,
    kind: Option<QueueTaskKind>,
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Json<Vec<QueueTask>> {
    let filter = QueueFilter {
        status: q.status,
        node: q.node,
        kind: q.kind,
    };
    Json(state.daemon.queue.list(&filter).await)
}

async fn enqueue(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<Option<EnqueueRequest>>,
) -> Result<Json<EnqueueResponse>, ApiError> {
    caller.require_admin("starting scans and audits")?;
    let req = req.ok_or_else(|| {
        ApiError::bad_request("the request needs a body: {\"kind\": \"scan\"|\"audit\", ...}")
    })?;
    let ids = state.daemon.queue.enqueue(req, caller.name()).await?;
    Ok(Json(EnqueueResponse { ids }))
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CancelRequest>,
) -> Result<Json<CancelResponse>, ApiError> {
    caller.require_admin("cancelling tasks")?;
    if req.ids.is_empty() {
        return Err(ApiError::bad_request(
            "`ids` is empty: name the tasks to cancel, e.g. [\"Scan #12\"]",
        ));
    }
    let results = state.daemon.queue.cancel(&req.ids).await?;
    Ok(Json(CancelResponse { results }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    node: Option<String>,
    status: Option<FinalStatus>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

async fn log(
    State(state): State<AppState>,
    Path(which): Path<String>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Json<LogPage>, ApiError> {
    let kind = match which.as_str() {
        "scans" => QueueTaskKind::Scan,
        "audits" => QueueTaskKind::Audit,
        other => {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                format!("there is no log {other:?}: use /v1/logs/scans or /v1/logs/audits"),
            ))
        }
    };
    let filter = LogFilter {
        node: q.node,
        status: q.status,
        offset: q.offset,
        limit: q.limit.unwrap_or(50).min(1000),
    };
    Ok(Json(state.daemon.queue.log(kind, filter).await?))
}
