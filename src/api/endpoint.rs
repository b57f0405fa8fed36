//! Serves the endpoints of `proto::endpoints`: every route of the API is registered here,
//! from the table, with its parameter, query and body parsed into the table's types before
//! the handler runs and its reply encoded after. A handler is left with one job: call the
//! service that does the work.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};

use super::error::ApiError;
use super::AppState;
use crate::caller::Caller;
use crate::proto::endpoints::{decode_body, Endpoint, Method, PathParam, RequestBody};
use crate::proto::ErrorCode;

/// One request to `E`, parsed.
pub struct Req<E: Endpoint> {
    pub state: AppState,
    pub caller: Caller,
    pub param: E::Param,
    pub query: E::Query,
    pub body: E::Body,
}

/// The router under construction, and what was registered (for the table test).
pub struct Routes {
    router: Router<AppState>,
    registered: Vec<(Method, &'static str)>,
}

impl Routes {
    pub fn new() -> Routes {
        Routes {
            router: Router::new(),
            registered: Vec::new(),
        }
    }

    /// Serves `E` with `handler`; its reply is sent as JSON.
    pub fn json<E, H, Fut>(self, handler: H) -> Routes
    where
        E: Endpoint + 'static,
        H: Fn(Req<E>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<E::Reply, ApiError>> + Send + 'static,
    {
        self.raw::<E, _, _>(move |req| {
            let reply = handler(req);
            async move { reply.await.map(|r| Json(r).into_response()) }
        })
    }

    /// Serves `E` with `handler`, which builds the whole response (CSV, streams).
    pub fn raw<E, H, Fut>(mut self, handler: H) -> Routes
    where
        E: Endpoint + 'static,
        H: Fn(Req<E>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
    {
        let serve = move |State(state): State<AppState>, request: axum::extract::Request| {
            let handler = handler.clone();
            async move {
                match parse::<E>(state, request).await {
                    Ok(req) => handler(req)
                        .await
                        .unwrap_or_else(IntoResponse::into_response),
                    Err(e) => e.into_response(),
                }
            }
        };
        let method_router: MethodRouter<AppState> = match E::METHOD {
            Method::Get => get(serve),
            Method::Post => post(serve),
        };
        self.router = self.router.route(E::PATH, method_router);
        self.registered.push((E::METHOD, E::PATH));
        self
    }

    /// The routes registered, in order.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn registered(&self) -> &[(Method, &'static str)] {
        &self.registered
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}

/// Parses a request for `E`: the caller, the path parameter, the query, and (for a POST)
/// the JSON body, whose errors all use the envelope.
async fn parse<E: Endpoint>(
    state: AppState,
    request: axum::extract::Request,
) -> Result<Req<E>, ApiError> {
    let (mut parts, body) = request.into_parts();
    let caller = Caller::from_request_parts(&mut parts, &state).await?;
    let segment = match RawPathParams::from_request_parts(&mut parts, &state).await {
        Ok(params) => params.iter().next().map(|(_, v)| v.to_owned()),
        Err(_) => None,
    };
    let param = E::Param::parse(segment.as_deref()).map_err(ApiError::bad_request)?;
    let query: E::Query = serde_urlencoded::from_str(parts.uri.query().unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("Failed to deserialize query string: {e}")))?;
    let body = match E::METHOD {
        Method::Get => E::Body::empty().map_err(ApiError::bad_request)?,
        Method::Post => {
            let request = axum::extract::Request::from_parts(parts, body);
            let bytes = Bytes::from_request(request, &state).await.map_err(|r| {
                let code = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ErrorCode::PayloadTooLarge
                } else {
                    ErrorCode::BadRequest
                };
                ApiError::with_status(r.status(), code, r.body_text())
            })?;
            decode_body::<E::Body>(&bytes).map_err(ApiError::bad_request)?
        }
    };
    Ok(Req {
        state,
        caller,
        param,
        query,
        body,
    })
}
