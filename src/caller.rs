//! Who is calling: a uid (the peer credentials of a control connection, read once at accept)
//! mapped to a configured user and role through the config in force. A domain type: the
//! ticketing and queue services decide rights on it; the API only extracts it.

use crate::config::Config;
use crate::proto::{Identity, Role};

/// A refusal on account of who the caller is: nothing was done. The message says why and
/// what to do (HTTP 403 at the API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

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

    /// Whether the caller may read content captured from files others may not read: admins
    /// only (issue 16); Site Users read that it changed, never what it says.
    pub fn sees_private_content(&self) -> bool {
        self.role == Some(Role::Admin)
    }

    /// The caller's role; a caller that is not a configured user is refused.
    pub fn require_user(&self) -> Result<Role, Refused> {
        self.role.ok_or_else(|| {
            Refused(format!(
                "uid {} is not a vigil user: an administrator must add a [[user]] with uid = {} \
                 (or its unix_user) to the config",
                self.uid, self.uid
            ))
        })
    }

    /// Refuses callers that are not administrators; `action` names what they tried.
    pub fn require_admin(&self, action: &str) -> Result<(), Refused> {
        match self.require_user()? {
            Role::Admin => Ok(()),
            Role::User => Err(self.needs_admin(action)),
        }
    }

    /// Why a Site User may not do `action`.
    pub fn needs_admin(&self, action: &str) -> Refused {
        Refused(format!(
            "{action} needs the admin role; {} is a Site User",
            self.email.as_deref().unwrap_or("this caller")
        ))
    }
}
