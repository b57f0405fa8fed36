//! User tasks: `/v1/tasks` and below.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::{ApiError, ApiJson, ApiQuery};
use super::AppState;
use crate::caller::Caller;
use crate::proto::{
    AssignRequest, CloseAllResponse, UserTask, UserTaskDetail, UserTaskFilter, UserTaskKind,
    UserTaskList, UserTaskReport,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tasks", get(list))
        .route("/v1/tasks/export", get(export))
        .route("/v1/tasks/close", post(close_all))
        .route("/v1/tasks/{id}", get(detail))
        .route("/v1/tasks/{id}/report", get(report))
        .route("/v1/tasks/{id}/assign", post(assign))
        .route("/v1/tasks/{id}/close", post(close))
        .route("/v1/tasks/{id}/reopen", post(reopen))
}

/// Query of list and export: the filter plus paging or format.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    assignee: Option<String>,
    q: Option<String>,
    kind: Option<UserTaskKind>,
    node: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
    format: Option<String>,
    /// Lists only the open tasks the caller may close: what Close All would close.
    #[serde(default)]
    closable: bool,
}

impl ListQuery {
    fn filter(&self) -> UserTaskFilter {
        UserTaskFilter {
            status: self.status.clone(),
            assignee: self.assignee.clone(),
            q: self.q.clone(),
            kind: self.kind,
            node: self.node.clone(),
        }
    }
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<UserTaskList>, ApiError> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    let tasks = &state.daemon.tasks;
    let list = if q.closable {
        tasks
            .list_closable(&q.filter(), &caller, q.offset, limit)
            .await?
    } else {
        tasks.list(&q.filter(), &caller, q.offset, limit).await?
    };
    Ok(Json(list))
}

async fn export(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let tasks = state.daemon.tasks.export(&q.filter(), &caller).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(tasks).into_response()),
        "csv" => {
            let body = super::csv::tasks(&tasks)
                .map_err(|e| ApiError::internal(format!("cannot write CSV: {e}")))?;
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
        }
        other => Err(ApiError::bad_request(format!(
            "format {other:?}: use json or csv"
        ))),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailQuery {
    #[serde(default)]
    events_offset: usize,
    events_limit: Option<usize>,
}

async fn detail(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    ApiQuery(q): ApiQuery<DetailQuery>,
) -> Result<Json<UserTaskDetail>, ApiError> {
    let limit = q.events_limit.unwrap_or(100).min(10_000);
    Ok(Json(
        state
            .daemon
            .tasks
            .detail(id, q.events_offset, limit)
            .await?,
    ))
}

async fn report(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<UserTaskReport>, ApiError> {
    Ok(Json(
        state.daemon.tasks.report(id, state.daemon.config()).await?,
    ))
}

async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<Option<AssignRequest>>,
) -> Result<Json<UserTask>, ApiError> {
    let req = req
        .ok_or_else(|| ApiError::bad_request("the request needs a body: {\"assignee\": EMAIL}"))?;
    Ok(Json(
        state.daemon.tasks.assign(id, req.assignee, &caller).await?,
    ))
}

async fn close(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<u64>,
) -> Result<Json<UserTask>, ApiError> {
    Ok(Json(state.daemon.tasks.set_open(id, false, &caller).await?))
}

async fn reopen(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<u64>,
) -> Result<Json<UserTask>, ApiError> {
    Ok(Json(state.daemon.tasks.set_open(id, true, &caller).await?))
}

async fn close_all(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(filter): ApiJson<UserTaskFilter>,
) -> Result<Json<CloseAllResponse>, ApiError> {
    Ok(Json(state.daemon.tasks.close_all(&filter, &caller).await?))
}
