//! Active tasks and the Scan/Audit logs: `/v1/queue`, `/v1/queue/cancel`, `/v1/logs/*`.

use super::endpoint::{Req, Routes};
use super::error::ApiError;
use crate::proto::endpoints::{CancelQueueTasks, Enqueue, GetLog, GetRun, ListQueue};
use crate::proto::{
    log_name, CancelResponse, EnqueueResponse, LogPage, QueueTask, QueueTaskKind, RunInfo,
};
use crate::queue::{LogFilter, QueueFilter};

pub fn add(routes: Routes) -> Routes {
    routes
        .json::<ListQueue, _, _>(list)
        .json::<Enqueue, _, _>(enqueue)
        .json::<CancelQueueTasks, _, _>(cancel)
        .json::<GetLog, _, _>(log)
        .json::<GetRun, _, _>(run)
}

async fn run(req: Req<GetRun>) -> Result<RunInfo, ApiError> {
    let id = req.param;
    req.state
        .app
        .queue
        .run_info(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no run {id}")))
}

async fn list(req: Req<ListQueue>) -> Result<Vec<QueueTask>, ApiError> {
    let q = req.query;
    let filter = QueueFilter {
        status: q.status,
        node: q.node,
        kind: q.kind,
    };
    Ok(req.state.app.queue.list(&filter).await)
}

async fn enqueue(req: Req<Enqueue>) -> Result<EnqueueResponse, ApiError> {
    req.caller.require_admin("starting scans and audits")?;
    let (ids, run) = req
        .state
        .app
        .queue
        .enqueue(req.body, req.caller.name())
        .await?;
    Ok(EnqueueResponse { ids, run })
}

async fn cancel(req: Req<CancelQueueTasks>) -> Result<CancelResponse, ApiError> {
    req.caller.require_admin("cancelling tasks")?;
    if req.body.ids.is_empty() {
        return Err(ApiError::bad_request(
            "`ids` is empty: name the tasks to cancel, e.g. [\"Scan #12\"]",
        ));
    }
    let results = req.state.app.queue.cancel(&req.body.ids).await?;
    Ok(CancelResponse { results })
}

async fn log(req: Req<GetLog>) -> Result<LogPage, ApiError> {
    let kind = [QueueTaskKind::Scan, QueueTaskKind::Audit]
        .into_iter()
        .find(|k| log_name(*k) == req.param)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "there is no log {:?}: use /v1/logs/scans or /v1/logs/audits",
                req.param
            ))
        })?;
    let q = req.query;
    let filter = LogFilter {
        node: q.node,
        status: q.status,
        offset: q.offset,
        limit: q.limit.unwrap_or(50).min(1000),
    };
    Ok(req.state.app.queue.log(kind, filter).await?)
}
