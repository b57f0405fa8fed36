//! The routes of the control API and their handlers. Handlers reply only after their effect
//! has happened (committed to the store, or applied to the daemon).

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::timeout::TimeoutLayer;

use super::error::{envelope_bare_errors, ApiError, ApiJson};
use super::{AppState, Limits};
use crate::caller::Caller;
use crate::proto::{ReloadRequest, Reloaded, Status};

pub fn router(state: AppState, limits: &Limits) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/reload", post(reload))
        .merge(super::outbox_routes::routes())
        .merge(super::queue_routes::routes())
        .merge(super::node_routes::routes())
        .merge(super::task_routes::routes())
        .merge(super::policy_routes::routes())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            only_users_beyond_status,
        ))
        .layer(DefaultBodyLimit::max(limits.max_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(middleware::map_response(envelope_bare_errors))
        .with_state(state)
}

/// A uid that is not a configured user may read status and nothing else.
async fn only_users_beyond_status(caller: Caller, request: Request, next: Next) -> Response {
    let is_status = request.method() == Method::GET && request.uri().path() == "/v1/status";
    if !is_status {
        if let Err(e) = caller.require_user() {
            let e = ApiError::from(e);
            // Read (and drop) the body first, bounded like any body: a reply sent before
            // the client finished sending makes its send fail with EPIPE instead of
            // showing it the 403.
            let _ = axum::body::to_bytes(request.into_body(), super::MAX_BODY).await;
            return e.into_response();
        }
    }
    next.run(request).await
}

async fn status(State(state): State<AppState>, caller: Caller) -> Json<Status> {
    let daemon = &state.daemon;
    let loaded = daemon.setup();
    let (open, mine) = daemon.tasks.open_counts(caller.email.as_deref());
    Json(Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        started_at: daemon.started_at,
        uptime_secs: daemon.uptime_secs(),
        config_path: daemon.config_path.display().to_string(),
        config_loaded_at: loaded.loaded_at,
        last_reload_error: daemon.last_reload_error(),
        caller: caller.identity(),
        nodes: loaded.config.nodes.len(),
        slots: loaded.config.daemon.slots,
        queue: Some(daemon.queue.status().await),
        outbox: match daemon.outbox.status().await {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::error!("cannot read the outbox for /v1/status: {e}");
                None
            }
        },
        open_tasks: Some(open),
        my_open_tasks: caller.email.as_ref().map(|_| mine),
    })
}

async fn reload(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(_): ApiJson<ReloadRequest>,
) -> Result<Json<Reloaded>, ApiError> {
    caller.require_admin("reloading the config")?;
    let who = caller
        .email
        .unwrap_or_else(|| format!("uid {}", caller.uid));
    match state.daemon.reload(&format!("API request by {who}")).await {
        Ok(r) => Ok(Json(r)),
        Err(errors) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
            format!("the new config was rejected and the previous one stays in force:\n{errors}"),
        )),
    }
}
