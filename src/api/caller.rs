//! The caller of a request: the peer uid of its connection (SO_PEERCRED, read once at
//! accept, attached to every request on it) resolved through the config in force when the
//! request arrives. Only the extraction lives here; `crate::caller` is the domain type.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::caller::Caller;

/// The peer uid of a connection, put into every request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct PeerUid(pub u32);

impl FromRequestParts<super::AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &super::AppState,
    ) -> Result<Self, Self::Rejection> {
        let uid = parts
            .extensions
            .get::<PeerUid>()
            .ok_or_else(|| ApiError::internal("connection has no peer credentials"))?
            .0;
        Ok(Caller::resolve(uid, &state.app.config()))
    }
}
