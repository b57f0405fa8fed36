//! The control API: HTTP/1.1 + JSON on a Unix socket. This is the only module that knows
//! HTTP. Each connection's peer uid is read once at accept (SO_PEERCRED) and attached to
//! every request on it; handlers map it to a user and role through the current config.

mod caller;
mod csv;
mod endpoint;
mod error;
mod node_routes;
mod outbox_routes;
mod policy_routes;
mod queue_routes;
mod routes;
mod task_routes;

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
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
    let router = routes::router(state, &limits);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, _) = tokio::select! {
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
        let service = router
            .clone()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(PeerUid(uid));
                req
            });
        let header_timeout = limits.header_timeout;
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _permit = permit;
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
            }
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}
