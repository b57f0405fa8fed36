//! The control API: HTTP/1.1 + JSON on a Unix socket. This is the only module that knows
//! HTTP. Each connection's peer uid is read once at accept (SO_PEERCRED) and attached to
//! every request on it; handlers map it to a user and role through the current config.

mod admission;
mod caller;
mod csv;
mod endpoint;
mod error;
mod event_routes;
mod guard;
mod node_routes;
mod outbox_routes;
mod policy_routes;
mod queue_routes;
mod routes;
mod task_routes;
mod webhook_routes;

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

pub use caller::PeerUid;
pub use error::ApiError;

use crate::app::App;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub app: Arc<App>,
}

/// Protections against misbehaving clients.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Largest request body accepted (413 beyond).
    pub max_body: usize,
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Time a request may take from its headers to the response (408 beyond).
    pub request_timeout: Duration,
}

impl Limits {
    pub fn of(daemon: &crate::config::DaemonConfig) -> Self {
        Limits {
            max_connections: daemon.max_connections as usize,
            max_body: MAX_BODY,
            header_timeout: daemon.client_timeout,
            request_timeout: daemon.request_timeout,
        }
    }
}

/// Longest a connection is kept open: `vigil` makes one per request; a client that keeps
/// a connection alive reconnects after this.
const MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// Largest request body: a queue or close-all request is a few hundred bytes.
pub(crate) const MAX_BODY: usize = 256 * 1024;

/// Accepts connections until `shutdown` is cancelled, then lets in-flight requests finish
/// (graceful HTTP shutdown) and returns once every connection is closed.
pub async fn serve(
    listener: UnixListener,
    state: AppState,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let app = state.app.clone();
    let router = routes::router(state, &limits);
    let admission = admission::Admission::new(limits.max_connections);
    let tracker = TaskTracker::new();
    loop {
        let (mut stream, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("accept on the control socket failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let uid = match stream.peer_cred() {
            Ok(cred) => cred.uid(),
            Err(e) => {
                tracing::warn!("cannot read peer credentials of a connection, dropping it: {e}");
                continue;
            }
        };
        // Admitted by uid and role (see `admission`); a refused client is told why at once
        // instead of waiting in the backlog behind whoever holds the connections.
        let role = crate::caller::Caller::resolve(uid, &app.config()).role;
        let ticket = match admission.admit(uid, role) {
            Ok(t) => t,
            Err(refusal) => {
                tracing::debug!(uid, "control connection refused: {refusal}");
                tracker.spawn(async move {
                    let body = ApiError::new(
                        crate::proto::ErrorCode::TooManyConnections,
                        refusal.to_string(),
                    )
                    .json_body();
                    let reply = format!(
                        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let write = stream.write_all(reply.as_bytes());
                    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
                    let _ = stream.shutdown().await;
                });
                continue;
            }
        };
        let service = router
            .clone()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(PeerUid(uid));
                req
            });
        let header_timeout = limits.header_timeout;
        let limits_request_timeout = limits.request_timeout;
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _ticket = ticket;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(uid, "control connection ended with an error: {e}");
                    }
                }
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
                // A connection's lifetime is capped: a kept-alive client cannot hold its
                // place for ever. The request in flight finishes; then it is closed.
                _ = tokio::time::sleep(MAX_CONNECTION_LIFETIME) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits_request_timeout, conn).await;
                }
            }
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}
