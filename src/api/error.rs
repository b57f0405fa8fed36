//! API errors and the `{"error": {"code", "message"}}` envelope, including for errors that
//! axum and tower produce themselves (bad JSON, unknown route, body too large, timeouts).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::proto::{ErrorBody, ErrorCode, ErrorDetail};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    /// An error with the status its code stands for.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::with_status(status, code, message)
    }
    pub fn with_status(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// The envelope as JSON text (for answers written outside the router).
    pub fn json_body(&self) -> String {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
            },
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<crate::caller::Refused> for ApiError {
    fn from(e: crate::caller::Refused) -> Self {
        ApiError::forbidden(e.0)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            // Logged once, where it happened (store::health).
            StoreError::Failing { .. } => ApiError::new(ErrorCode::StoreFailing, e.to_string()),
            StoreError::Panicked(_) | StoreError::Corrupt(_) => {
                tracing::error!("store error while serving a request: {e}");
                ApiError::new(ErrorCode::StoreCorrupt, e.to_string())
            }
            _ => {
                tracing::error!("store error while serving a request: {e}");
                ApiError::internal(format!("{e}; see the vigild log"))
            }
        }
    }
}

impl From<crate::queue::QueueError> for ApiError {
    fn from(e: crate::queue::QueueError) -> Self {
        use crate::queue::QueueError;
        match e {
            QueueError::Full { .. } => ApiError::new(ErrorCode::QueueFull, e.to_string()),
            QueueError::BadRequest(m) => ApiError::bad_request(m),
            QueueError::Stopping => ApiError::new(ErrorCode::Stopping, e.to_string()),
            QueueError::Store(s) => s.into(),
        }
    }
}

impl From<crate::tasks::UserTaskError> for ApiError {
    fn from(e: crate::tasks::UserTaskError) -> Self {
        use crate::tasks::UserTaskError;
        match e {
            UserTaskError::NotFound(_) => ApiError::not_found(e.to_string()),
            UserTaskError::Forbidden(m) => ApiError::forbidden(m),
            UserTaskError::BadRequest(m) => ApiError::bad_request(m),
            UserTaskError::Conflict { .. } => ApiError::new(ErrorCode::Conflict, e.to_string()),
            UserTaskError::UnknownAssignee(_) => {
                ApiError::new(ErrorCode::UnknownAssignee, e.to_string())
            }
            UserTaskError::Store(s) => s.into(),
            UserTaskError::Internal(_) => {
                tracing::error!("{e}");
                ApiError::internal(format!("{e}; see the vigild log"))
            }
        }
    }
}

/// Wraps bare error responses produced below the handlers (404, 405, 408, 413) in the
/// envelope, so a client only ever has one error shape to parse.
pub async fn envelope_bare_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (
            ErrorCode::NotFound,
            "no such endpoint; see `vigil --help` or the API table in the README",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            "this endpoint does not take that HTTP method",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            ErrorCode::Timeout,
            "the request took too long to arrive or to serve",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::PayloadTooLarge,
            "the request body is larger than the daemon accepts",
        ),
        _ => (
            ErrorCode::Error,
            status.canonical_reason().unwrap_or("request failed"),
        ),
    };
    let mut out = ApiError::with_status(status, code, message).into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}
