//! Who gets a connection on the control socket. Any uid that can reach the socket can
//! connect, so connections are counted per uid: a uid not in the config holds at most
//! [`UNCONFIGURED_PER_UID`], a Site User at most a quarter of `max_connections`, and on top
//! of `max_connections` a reserve of [`ADMIN_RESERVE`] is kept for admins (uid 0, the
//! daemon's uid, configured admins), so that no other uid can lock them out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::proto::Role;

/// Connections that only admins may use once `max_connections` are taken.
pub const ADMIN_RESERVE: usize = 16;

/// Connections a uid that is not a configured user may hold at once (it may only read
/// `GET /v1/status`).
pub const UNCONFIGURED_PER_UID: usize = 2;

/// The connections held, per uid and in all.
#[derive(Debug)]
pub struct Admission {
    max_connections: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("uid {uid} already holds {held} connections to vigild, its limit; close some")]
    PerUid { uid: u32, held: usize },
    #[error(
        "vigild serves {0} connections already, its limit (daemon.max_connections); try again"
    )]
    Full(usize),
}

/// One admitted connection; dropping it gives the place back.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    uid: u32,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut held = self.admission.lock();
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.per_uid.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.per_uid.remove(&self.uid);
            }
        }
    }
}

impl Admission {
    pub fn new(max_connections: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_connections: max_connections.max(1),
            held: Mutex::new(Held::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // The counts stay consistent even if a holder panicked: every change is one step.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection of `uid` with `role` (`None`: not a configured user).
    pub fn admit(self: &Arc<Self>, uid: u32, role: Option<Role>) -> Result<Ticket, Refusal> {
        let mut held = self.lock();
        let mine = held.per_uid.get(&uid).copied().unwrap_or(0);
        let (per_uid, total) = match role {
            Some(Role::Admin) => (usize::MAX, self.max_connections + ADMIN_RESERVE),
            Some(Role::User) => ((self.max_connections / 4).max(4), self.max_connections),
            None => (UNCONFIGURED_PER_UID, self.max_connections),
        };
        if mine >= per_uid {
            return Err(Refusal::PerUid { uid, held: mine });
        }
        if held.total >= total {
            return Err(Refusal::Full(held.total));
        }
        held.total += 1;
        *held.per_uid.entry(uid).or_insert(0) += 1;
        Ok(Ticket {
            admission: self.clone(),
            uid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unconfigured_uid_gets_two_connections() {
        let a = Admission::new(64);
        let t1 = a.admit(1000, None).unwrap();
        let _t2 = a.admit(1000, None).unwrap();
        assert_eq!(
            a.admit(1000, None).unwrap_err(),
            Refusal::PerUid { uid: 1000, held: 2 }
        );
        drop(t1);
        assert!(
            a.admit(1000, None).is_ok(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn admins_have_a_reserve_when_others_fill_the_socket() {
        let a = Admission::new(8);
        let users: Vec<Ticket> = (0..4)
            .flat_map(|uid| (0..2).map(move |_| uid))
            .map(|uid| a.admit(uid, Some(Role::User)).unwrap())
            .collect();
        assert_eq!(users.len(), 8);
        assert_eq!(a.admit(99, Some(Role::User)).unwrap_err(), Refusal::Full(8));
        let admins: Vec<Ticket> = (0..ADMIN_RESERVE)
            .map(|_| a.admit(0, Some(Role::Admin)).unwrap())
            .collect();
        assert_eq!(admins.len(), ADMIN_RESERVE);
        assert!(
            a.admit(0, Some(Role::Admin)).is_err(),
            "the reserve is bounded too"
        );
    }

    #[test]
    fn a_site_user_holds_a_quarter_at_most() {
        let a = Admission::new(64);
        let held: Vec<Ticket> = (0..16)
            .map(|_| a.admit(7, Some(Role::User)).unwrap())
            .collect();
        assert_eq!(held.len(), 16);
        assert!(matches!(
            a.admit(7, Some(Role::User)),
            Err(Refusal::PerUid { .. })
        ));
    }
}
