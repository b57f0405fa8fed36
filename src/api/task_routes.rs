//! User tasks: `/v1/tasks` and below.

use axum::http::header;
use axum::response::{IntoResponse, Response};

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

/// Tasks per read of their events while an export streams.
const EXPORT_BATCH: usize = 200;

/// Streams the export a batch of tasks at a time: memory stays bounded by a batch whatever
/// the number of tasks and events. An error after the first bytes can only end the stream
/// (the status line is gone); it is logged, and the client sees a truncated body.
async fn export(req: Req<ExportUserTasks>) -> Result<Response, ApiError> {
    let service = req.state.app.tasks.clone();
    let tasks = service.export_tasks(&req.query.filter, &req.caller).await?;
    let format = req.query.format.unwrap_or_default();
    let batches: Vec<Vec<_>> = tasks.chunks(EXPORT_BATCH).map(<[_]>::to_vec).collect();
    let total = batches.len();
    let head = match format {
        ExportFormat::Json => b"[".to_vec(),
        ExportFormat::Csv => super::csv::header()
            .map_err(|e| ApiError::internal(format!("cannot write CSV: {e}")))?,
    };
    let tail = match format {
        ExportFormat::Json => b"]".to_vec(),
        ExportFormat::Csv => Vec::new(),
    };
    let body = futures::stream::unfold(
        (batches.into_iter().enumerate(), Some(head), Some(tail)),
        move |(mut batches, mut head, mut tail)| {
            let service = service.clone();
            async move {
                if let Some(h) = head.take() {
                    return Some((Ok(h), (batches, head, tail)));
                }
                let Some((i, batch)) = batches.next() else {
                    return tail.take().map(|t| (Ok(t), (batches, head, tail)));
                };
                let chunk = match service.export_events(batch).await {
                    Ok(exported) => export_chunk(format, &exported, i == 0),
                    Err(e) => Err(e.to_string()),
                };
                match chunk {
                    Ok(bytes) => Some((Ok(bytes), (batches, head, tail))),
                    Err(e) => {
                        tracing::error!("the export stopped after {i} of {total} batches: {e}");
                        Some((Err(std::io::Error::other(e)), (batches, None, None)))
                    }
                }
            }
        },
    );
    let content_type = match format {
        ExportFormat::Json => "application/json",
        ExportFormat::Csv => "text/csv; charset=utf-8",
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// One batch of an export in its format: JSON array elements (comma-led after the first
/// batch) or CSV rows.
fn export_chunk(
    format: ExportFormat,
    exported: &[crate::proto::ExportedUserTask],
    first: bool,
) -> Result<Vec<u8>, String> {
    match format {
        ExportFormat::Json => {
            let mut out = Vec::new();
            for (j, t) in exported.iter().enumerate() {
                if !(first && j == 0) {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, t).map_err(|e| e.to_string())?;
            }
            Ok(out)
        }
        ExportFormat::Csv => super::csv::rows(exported).map_err(|e| e.to_string()),
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
