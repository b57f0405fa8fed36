//! The router: every endpoint of the table with its handler, and the layers around them
//! (users only beyond status, body limit, request timeout, the error envelope). Handlers
//! reply only after their effect has happened (committed to the store, or applied).

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::timeout::TimeoutLayer;

use super::endpoint::{Req, Routes};
use super::error::{envelope_bare_errors, ApiError};
use super::{AppState, Limits};
use crate::caller::Caller;
use crate::proto::endpoints::{Endpoint, GetStatus, ListUsers, Reload};
use crate::proto::{ErrorCode, Reloaded, Status, UserInfo};

/// Every endpoint with its handler.
pub fn routes() -> Routes {
    let routes = Routes::new()
        .json::<GetStatus, _, _>(status)
        .json::<Reload, _, _>(reload)
        .json::<ListUsers, _, _>(users);
    let routes = super::queue_routes::add(routes);
    let routes = super::node_routes::add(routes);
    let routes = super::task_routes::add(routes);
    let routes = super::policy_routes::add(routes);
    let routes = super::event_routes::add(routes);
    let routes = super::outbox_routes::add(routes);
    super::webhook_routes::add(routes)
}

pub fn router(state: AppState, limits: &Limits) -> Router {
    routes()
        .into_router()
        .layer(middleware::from_fn_with_state(
            state.clone(),
            only_users_beyond_status,
        ))
        .layer(middleware::from_fn(say_what_was_left_out))
        .layer(middleware::from_fn(super::guard::refuse_forgeable))
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(middleware::map_response(envelope_bare_errors))
        .with_state(state)
}

/// A reply that is missing stored rows because they do not decode says how many in the
/// `Vigil-Undecodable-Rows` header (its JSON stays as it was; the CLI warns).
async fn say_what_was_left_out(request: Request, next: Next) -> Response {
    let (mut response, left_out) = crate::store::counting_left_out(next.run(request)).await;
    if left_out > 0 {
        response.headers_mut().insert(
            crate::proto::UNDECODABLE_ROWS_HEADER,
            axum::http::HeaderValue::from(left_out),
        );
    }
    response
}

/// A uid that is not a configured user may read status and nothing else.
async fn only_users_beyond_status(caller: Caller, request: Request, next: Next) -> Response {
    let is_status = request.method() == Method::GET && request.uri().path() == GetStatus::PATH;
    if !is_status {
        if let Err(e) = caller.require_user() {
            // Read (and drop) the body first, bounded like any body: a reply sent before
            // the client finished sending makes its send fail with EPIPE instead of
            // showing it the 403.
            let _ = axum::body::to_bytes(request.into_body(), super::MAX_BODY).await;
            return ApiError::from(e).into_response();
        }
    }
    next.run(request).await
}

/// The configured users in config order: whom an administrator may assign a task to.
async fn users(req: Req<ListUsers>) -> Result<Vec<UserInfo>, ApiError> {
    req.caller.require_admin("listing the users")?;
    Ok(req
        .state
        .app
        .config()
        .users
        .iter()
        .map(|u| UserInfo {
            email: u.email.clone(),
            role: u.role,
        })
        .collect())
}

async fn status(req: Req<GetStatus>) -> Result<Status, ApiError> {
    let (app, caller) = (&req.state.app, &req.caller);
    if caller.role.is_none() {
        return Ok(Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: 0,
            started_at: app.started_at,
            uptime_secs: 0,
            config_path: String::new(),
            config_loaded_at: app.started_at,
            last_reload_error: None,
            config_warnings: Vec::new(),
            // Not the store's state either: an unconfigured uid learns nothing of the daemon.
            store: Default::default(),
            caller: caller.identity(),
            nodes: 0,
            slots: 0,
            queue: None,
            outbox: None,
            webhooks: None,
            open_tasks: None,
            my_open_tasks: None,
            notice: Some(format!(
                "you (uid {}) are not configured in vigild: ask an admin to add a [[user]] \
                 with your uid or unix_user",
                caller.uid
            )),
        });
    }
    let setup = app.setup();
    let (open, mine) = app.tasks.open_counts(caller.email.as_deref());
    Ok(Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        started_at: app.started_at,
        uptime_secs: app.uptime_secs(),
        config_path: app.config_path.display().to_string(),
        config_loaded_at: setup.loaded_at,
        last_reload_error: app.last_reload_error(),
        config_warnings: setup.warnings.iter().map(|w| w.to_string()).collect(),
        store: store_health(&app.store),
        caller: caller.identity(),
        nodes: setup.config.nodes.len(),
        slots: setup.config.daemon.slots,
        queue: Some(app.queue.status().await),
        webhooks: match app.webhooks.status().await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!("cannot read the webhook deliveries for /v1/status: {e}");
                None
            }
        },
        outbox: match app.outbox.status().await {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::error!("cannot read the outbox for /v1/status: {e}");
                None
            }
        },
        open_tasks: Some(open),
        my_open_tasks: caller.email.as_ref().map(|_| mine),
        notice: None,
    })
}

/// The store's health for status (see `store::health`).
pub fn store_health(store: &crate::store::Store) -> crate::proto::StoreHealth {
    let undecodable_rows = crate::store::undecodable_rows()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    match store.failing() {
        None => crate::proto::StoreHealth {
            undecodable_rows,
            ..Default::default()
        },
        Some(f) => crate::proto::StoreHealth {
            state: crate::proto::StoreState::Failing,
            since: Some(f.since),
            error: Some(f.error),
            undecodable_rows,
        },
    }
}

async fn reload(req: Req<Reload>) -> Result<Reloaded, ApiError> {
    req.caller.require_admin("reloading the config")?;
    let who = req.caller.name();
    let allow_empty = req.body.allow_empty;
    match req
        .state
        .app
        .reload(&format!("API request by {who}"), allow_empty)
        .await
    {
        Ok(r) => Ok(r),
        Err(errors) => Err(ApiError::new(
            ErrorCode::InvalidConfig,
            format!("the new config was rejected and the previous one stays in force:\n{errors}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::proto::endpoints::ALL;

    /// The router serves exactly the endpoint table: every route is in the table and every
    /// endpoint of the table has a route.
    #[test]
    fn the_router_serves_exactly_the_endpoint_table() {
        let routes = super::routes();
        let registered: Vec<_> = routes.registered().to_vec();
        let served: BTreeSet<_> = registered.iter().copied().collect();
        assert_eq!(
            served.len(),
            registered.len(),
            "a route is registered twice"
        );
        let table: BTreeSet<_> = ALL.iter().copied().collect();
        assert_eq!(served, table);
    }
}
