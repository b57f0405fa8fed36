//! Who is calling: the peer uid of the connection (SO_PEERCRED, read once at accept) mapped
//! to a configured user and role through the config in force when the request arrives.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::config::{Config, Role};
use crate::proto::Identity;

/// The peer uid of a connection, put into every request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct PeerUid(pub u32);

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: u32,
    pub email: Option<String>,
    /// `None`: the uid is not a vigil user.
    pub role: Option<Role>,
}

impl Caller {
    pub fn resolve(uid: u32, config: &Config) -> Caller {
        // uid 0 is always an admin, and so is the daemon's own uid: a process running as
        // either can already read and change the daemon's state directly.
        let superuser = uid == 0 || uid == nix::unistd::geteuid().as_raw();
        match config.user_by_uid(uid) {
            Some(u) => Caller {
                uid,
                email: Some(u.email.clone()),
                role: Some(if superuser { Role::Admin } else { u.role }),
            },
            None if superuser => Caller {
                uid,
                email: None,
                role: Some(Role::Admin),
            },
            None => Caller {
                uid,
                email: None,
                role: None,
            },
        }
    }

    pub fn identity(&self) -> Identity {
        Identity {
            uid: self.uid,
            email: self.email.clone(),
            role: self.role,
        }
    }

    /// How the caller is named in records (initiator, closed by): the email, or the uid.
    pub fn name(&self) -> String {
        self.email
            .clone()
            .unwrap_or_else(|| format!("uid {}", self.uid))
    }

    /// Refuses callers that are not configured users.
    pub fn require_user(&self) -> Result<Role, ApiError> {
        self.role_or_refusal().map_err(ApiError::forbidden)
    }

    /// The caller's role, or why a caller that is not a configured user is refused.
    pub fn role_or_refusal(&self) -> Result<Role, String> {
        self.role.ok_or_else(|| {
            format!(
                "uid {} is not a vigil user: an administrator must add a [[user]] with uid = {} \
                 (or its unix_user) to the config",
                self.uid, self.uid
            )
        })
    }

    /// Why a Site User may not do `action`.
    pub fn needs_admin(&self, action: &str) -> String {
        format!(
            "{action} needs the admin role; {} is a Site User",
            self.email.as_deref().unwrap_or("this caller")
        )
    }

    /// Refuses callers that are not administrators.
    pub fn require_admin(&self, action: &str) -> Result<(), ApiError> {
        match self.require_user()? {
            Role::Admin => Ok(()),
            Role::User => Err(ApiError::forbidden(self.needs_admin(action))),
        }
    }
}

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
        Ok(Caller::resolve(uid, &state.daemon.config()))
    }
}
