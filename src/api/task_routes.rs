//! User tasks: `/v1/tasks` and below.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::endpoint::{Req, Routes};
use super::error::ApiError;
use crate::proto::endpoints::{
    AssignUserTask, CloseAllUserTasks, CloseUserTask, ExportUserTasks, GetUserTask,
    GetUserTaskReport, ListUserTasks, ReopenUserTask,
};
use crate::proto::{
    CloseAllResponse, ExportFormat, UserTask, UserTaskDetail, UserTaskList, UserTaskReport,
};

pub fn add(routes: Routes) -> Routes {
    routes
        .json::<ListUserTasks, _, _>(list)
        .raw::<ExportUserTasks, _, _>(export)
        .json::<CloseAllUserTasks, _, _>(close_all)
        .json::<GetUserTask, _, _>(detail)
        .json::<GetUserTaskReport, _, _>(report)
        .json::<AssignUserTask, _, _>(assign)
        .json::<CloseUserTask, _, _>(close)
        .json::<ReopenUserTask, _, _>(reopen)
}

async fn list(req: Req<ListUserTasks>) -> Result<UserTaskList, ApiError> {
    let q = &req.query;
    let limit = q.limit.unwrap_or(100).min(10_000);
    let tasks = &req.state.app.tasks;
    Ok(if q.closable {
        tasks
            .list_closable(&q.filter, &req.caller, q.offset, limit)
            .await?
    } else {
        tasks.list(&q.filter, &req.caller, q.offset, limit).await?
    })
}

async fn export(req: Req<ExportUserTasks>) -> Result<Response, ApiError> {
    let tasks = req
        .state
        .app
        .tasks
        .export(&req.query.filter, &req.caller)
        .await?;
    match req.query.format.unwrap_or_default() {
        ExportFormat::Json => Ok(Json(tasks).into_response()),
        ExportFormat::Csv => {
            let body = super::csv::tasks(&tasks)
                .map_err(|e| ApiError::internal(format!("cannot write CSV: {e}")))?;
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
        }
    }
}

async fn detail(req: Req<GetUserTask>) -> Result<UserTaskDetail, ApiError> {
    let limit = req.query.events_limit.unwrap_or(100).min(10_000);
    Ok(req
        .state
        .app
        .tasks
        .detail(req.param, req.query.events_offset, limit)
        .await?)
}

async fn report(req: Req<GetUserTaskReport>) -> Result<UserTaskReport, ApiError> {
    let app = &req.state.app;
    let mut report = app.tasks.report(req.param, app.config()).await?;
    if !req.caller.sees_private_content() {
        report.redact_private();
    }
    Ok(report)
}

async fn assign(req: Req<AssignUserTask>) -> Result<UserTask, ApiError> {
    let tasks = &req.state.app.tasks;
    Ok(tasks
        .assign(req.param, req.body.assignee, &req.caller)
        .await?)
}

async fn close(req: Req<CloseUserTask>) -> Result<UserTask, ApiError> {
    let tasks = &req.state.app.tasks;
    Ok(tasks.set_open(req.param, false, &req.caller).await?)
}

async fn reopen(req: Req<ReopenUserTask>) -> Result<UserTask, ApiError> {
    let tasks = &req.state.app.tasks;
    Ok(tasks.set_open(req.param, true, &req.caller).await?)
}

async fn close_all(req: Req<CloseAllUserTasks>) -> Result<CloseAllResponse, ApiError> {
    let tasks = &req.state.app.tasks;
    Ok(tasks.close_all(&req.body, &req.caller).await?)
}
