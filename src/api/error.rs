//! API errors and the `{"error": {"code", "message"}}` envelope, including for errors that
//! axum and tower produce themselves (bad JSON, unknown route, body too large, timeouts).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::proto::{ErrorBody, ErrorDetail};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
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
        tracing::error!("store error while serving a request: {e}");
        ApiError::internal(format!("{e}; see the vigild log"))
    }
}

/// A JSON request body whose errors use the envelope. An empty body means `T::default()`,
/// so `curl -X POST` works for endpoints whose body is all optional.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            let status = r.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "payload_too_large"
            } else {
                "bad_request"
            };
            ApiError::new(status, code, r.body_text())
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(ApiJson(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
    }
}

/// Query parameters whose errors use the envelope.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r| ApiError::bad_request(r.body_text()))
    }
}

impl From<crate::queue::QueueError> for ApiError {
    fn from(e: crate::queue::QueueError) -> Self {
        use crate::queue::QueueError;
        match e {
            QueueError::Full { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", e.to_string())
            }
            QueueError::BadRequest(m) => ApiError::bad_request(m),
            QueueError::Stopping => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", e.to_string())
            }
            QueueError::Store(s) => s.into(),
        }
    }
}

impl From<crate::tasks::UserTaskError> for ApiError {
    fn from(e: crate::tasks::UserTaskError) -> Self {
        use crate::tasks::UserTaskError;
        match e {
            UserTaskError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            UserTaskError::Forbidden(m) => ApiError::forbidden(m),
            UserTaskError::BadRequest(m) => ApiError::bad_request(m),
            UserTaskError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
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
            "not_found",
            "no such endpoint; see `vigil --help` or the API table in the README",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not take that HTTP method",
        ),
        StatusCode::REQUEST_TIMEOUT => {
            ("timeout", "the request took too long to arrive or to serve")
        }
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the request body is larger than the daemon accepts",
        ),
        _ => (
            "error",
            status.canonical_reason().unwrap_or("request failed"),
        ),
    };
    let mut out = ApiError::new(status, code, message).into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}
