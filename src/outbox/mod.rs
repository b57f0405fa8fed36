//! The durable outbox: every mail vigil sends is first a row in the store.
//!
//! A module that causes a mail calls [`enqueue`] inside its own `Store::write` closure, so the
//! mail exists if and only if the change that caused it committed; after the commit it calls
//! [`Outbox::wake`]. Nothing is sent from a request handler: the sender (`sender.rs`) delivers
//! rows in the background and records each delivery in a durable commit (see ARCHITECTURE.md).

mod attempt;
pub mod content;
mod sender;
mod transport;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use attempt::deliver_main;
pub use content::{assignment, AssignmentMail};

use crate::proto::{
    OutboxEntry, OutboxRetryResponse, OutboxRetrySkip, OutboxState, OutboxStatus,
    OutboxTestResponse,
};
use crate::setup::SetupCell;
use crate::store::tables::{self, META};
#[cfg(test)]
use crate::store::Commit;
use crate::store::{JsonTable, Rows, Store, StoreError};
use crate::sync::lock;

/// Its tables of encoded rows, for `vigild check` (every row decoded).
pub(crate) const STORED_ROWS: &[&dyn crate::store::RowCheck] = &[&OUTBOX, &OUTBOX_SENT];

/// Meta counters: the last mail id handed out, and the random tag of this state dir that
/// makes Message-IDs unique across installations.
const NEXT_ID: &str = "outbox.next_id";
const INSTANCE: &str = "outbox.instance";

/// Longest `cause` kept, in characters.
const MAX_CAUSE_CHARS: usize = 300;

/// A mail's id in the outbox; never reused.
pub type MailId = u64;

/// A mail to send. `subject` and `cause` are cleaned on enqueue (one line, no control
/// characters, bounded); `text` and `html` are kept as they are.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub to: String,
    pub subject: String,
    pub text: String,
    /// HTML alternative of `text`; already escaped by whoever built it.
    pub html: Option<String>,
    /// Why the mail exists, e.g. `task 42 assigned to alice@example.com`.
    pub cause: String,
}

/// A mail's stored form in the `outbox` and `outbox_sent` tables.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredMail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub message_id: String,
    pub cause: String,
    pub created_at: DateTime<Utc>,
    /// When delivery started counting toward `email.give_up_after`: at enqueue, and again
    /// when a dead letter is requeued.
    pub queued_at: DateTime<Utc>,
    /// Attempts since `queued_at`.
    pub attempts: u32,
    pub last_error: Option<String>,
    pub state: MailState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MailState {
    Pending {
        next_attempt_at: DateTime<Utc>,
    },
    /// A delivery process (`attempt`) has (or had, if vigild stopped meanwhile) this mail in
    /// an SMTP exchange: attempt `attempt`, started at `since`. Committed before the process
    /// starts; the next start resumes it from its attempt file instead of sending again.
    Sending {
        attempt: String,
        since: DateTime<Utc>,
    },
    Dead {
        since: DateTime<Utc>,
    },
    Sent {
        sent_at: DateTime<Utc>,
    },
}

/// Writes `mail` to the outbox inside the caller's write transaction and returns its id.
/// It is delivered after the caller's transaction commits and [`Outbox::wake`] is called
/// (or at the sender's next look, within a minute). A recipient that is not a valid address
/// is not an error here: the mail becomes a dead letter with that reason, visible in
/// `vigil outbox`, and the caller's change still commits.
pub fn enqueue(tx: &WriteTransaction, mail: NewMail) -> Result<MailId, StoreError> {
    let (id, instance) = {
        let mut meta = META.write(tx)?;
        let id = meta.get(NEXT_ID)?.map_or(0, |v| v.value()) + 1;
        meta.insert(NEXT_ID, id)?;
        let existing = meta.get(INSTANCE)?.map(|v| v.value());
        let instance = match existing {
            Some(v) => v,
            None => {
                let v = fastrand::u64(..);
                meta.insert(INSTANCE, v)?;
                v
            }
        };
        (id, instance)
    };
    let now = Utc::now();
    let row = StoredMail {
        to: mail.to.trim().to_owned(),
        subject: content::clean_subject(&mail.subject),
        text: mail.text,
        html: mail.html,
        message_id: format!("<outbox-{id}.{instance:016x}@{}>", message_id_host()),
        cause: content::clean_line(&mail.cause, MAX_CAUSE_CHARS),
        created_at: now,
        queued_at: now,
        attempts: 0,
        last_error: None,
        state: MailState::Pending {
            next_attempt_at: now,
        },
    };
    OUTBOX.write(tx)?.put(id, &row)?;
    Ok(id)
}

/// The host part of Message-IDs: this machine's name if it is a plain DNS name, else `vigil`.
fn message_id_host() -> String {
    let name = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok {
        name
    } else {
        "vigil".to_owned()
    }
}

/// Mails waiting or given up on, and delivered ones.
pub(crate) const OUTBOX: JsonTable<u64, StoredMail> = JsonTable::new(tables::OUTBOX, "outbox mail");
pub(crate) const OUTBOX_SENT: JsonTable<u64, StoredMail> =
    JsonTable::new(tables::OUTBOX_SENT, "sent mail");
/// The same rows, read for their state alone: counting and pruning stay cheap however many
/// mails (and bodies) the tables hold.
const OUTBOX_STATES: JsonTable<u64, StateOnly> = JsonTable::new(tables::OUTBOX, "outbox mail");
pub(crate) const SENT_STATES: JsonTable<u64, StateOnly> =
    JsonTable::new(tables::OUTBOX_SENT, "sent mail");

#[derive(Deserialize, Serialize)]
pub(crate) struct StateOnly {
    pub state: MailState,
}

/// Every pending and dead mail, by id.
pub(crate) fn load<T: ReadableTable<u64, &'static [u8]>>(
    rows: &Rows<T, u64, StoredMail>,
) -> Result<Vec<(MailId, StoredMail)>, StoreError> {
    rows.iter()?
        .map(|r| r.map(|(k, m)| (k.value(), m)))
        .collect()
}

fn load_read(tx: &ReadTransaction) -> Result<Vec<(MailId, StoredMail)>, StoreError> {
    load(&OUTBOX.read(tx)?)
}

/// (pending, dead) mails in the outbox.
fn count_states(tx: &ReadTransaction) -> Result<(u64, u64), StoreError> {
    let states: Vec<(MailId, MailState)> = OUTBOX_STATES
        .read(tx)?
        .iter()?
        .map(|r| r.map(|(k, s)| (k.value(), s.state)))
        .collect::<Result<_, _>>()?;
    let dead = states
        .iter()
        .filter(|(_, s)| matches!(s, MailState::Dead { .. }))
        .count() as u64;
    Ok((states.len() as u64 - dead, dead))
}

fn entry(id: MailId, m: &StoredMail) -> Option<OutboxEntry> {
    let (state, next_attempt_at) = match m.state {
        MailState::Pending { next_attempt_at } => (OutboxState::Pending, Some(next_attempt_at)),
        MailState::Sending { .. } => (OutboxState::Sending, None),
        MailState::Dead { .. } => (OutboxState::Dead, None),
        MailState::Sent { .. } => return None,
    };
    Some(OutboxEntry {
        id,
        to: m.to.clone(),
        subject: m.subject.clone(),
        cause: m.cause.clone(),
        message_id: m.message_id.clone(),
        state,
        created_at: m.created_at,
        attempts: m.attempts,
        next_attempt_at,
        last_error: m.last_error.clone(),
    })
}

/// Handle to the outbox and its sender; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    config: Arc<SetupCell>,
    /// Wakes the sender: a mail was enqueued or requeued.
    wake: Notify,
    /// Set with a wake when an administrator asks for delivery now (retry, test mail):
    /// the sender forgets that the server looked down and tries at once.
    retry_now: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Until when the sender waits because the transport was unavailable.
    paused_until: Mutex<Option<DateTime<Utc>>>,
    shutdown: CancellationToken,
    sender: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Outbox {
    pub fn new(store: Store, config: Arc<SetupCell>) -> Outbox {
        Outbox {
            shared: Arc::new(Shared {
                store,
                config,
                wake: Notify::new(),
                retry_now: AtomicBool::new(false),
                last_error: Mutex::new(None),
                paused_until: Mutex::new(None),
                shutdown: CancellationToken::new(),
                sender: Mutex::new(None),
            }),
        }
    }

    /// Starts the background sender. Call once, on a tokio runtime.
    pub fn start(&self) {
        let outbox = self.clone();
        let handle = tokio::spawn(async move { sender::run(outbox).await });
        *lock(&self.shared.sender) = Some(handle);
    }

    /// Tells the sender that mail was enqueued. Call after the enqueuing transaction committed.
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Stops the sender: no new delivery starts, and one in progress may finish within
    /// `limit` (so a mail the server accepted is recorded as sent). After that vigild stops
    /// waiting; an SMTP delivery process finishes on its own and the next start records its
    /// outcome (the row stays `Sending`).
    pub async fn shutdown(&self, limit: std::time::Duration) {
        self.shared.shutdown.cancel();
        let handle = lock(&self.shared.sender).take();
        if let Some(mut h) = handle {
            if tokio::time::timeout(limit, &mut h).await.is_err() {
                tracing::warn!("a mail delivery was still in progress after {limit:?}; its outcome is recorded at the next start");
                h.abort();
            }
        }
    }

    /// Figures for `/v1/status`.
    pub async fn status(&self) -> Result<OutboxStatus, StoreError> {
        let (pending, dead) = self.shared.store.read(count_states).await?;
        Ok(OutboxStatus {
            pending,
            dead,
            last_error: lock(&self.shared.last_error).clone(),
            paused_until: lock(&self.shared.paused_until).filter(|t| *t > Utc::now()),
        })
    }

    /// Pending and dead mails, oldest first.
    pub async fn list(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = self.shared.store.read(load_read).await?;
        Ok(rows.iter().filter_map(|(id, m)| entry(*id, m)).collect())
    }

    /// Delivers mails now (`None`: every mail in the outbox): a dead letter is queued again
    /// with a fresh `email.give_up_after` period, a pending mail waiting for its retry is
    /// tried at once (keeping its deadline); the sender forgets any pause.
    pub async fn retry(&self, ids: Option<Vec<MailId>>) -> Result<OutboxRetryResponse, StoreError> {
        let response = self
            .shared
            .store
            .write(move |tx| -> Result<_, StoreError> {
                let rows = load(&OUTBOX.write(tx)?)?;
                let wanted: Vec<MailId> = match ids {
                    Some(ids) => ids,
                    None => rows.iter().map(|(id, _)| *id).collect(),
                };
                let now = Utc::now();
                let mut response = OutboxRetryResponse {
                    requeued: Vec::new(),
                    skipped: Vec::new(),
                };
                for id in wanted {
                    let Some((_, row)) = rows.iter().find(|(i, _)| *i == id) else {
                        response.skipped.push(OutboxRetrySkip {
                            id,
                            reason: "no such mail in the outbox (already delivered, or never \
                                     existed)"
                                .into(),
                        });
                        continue;
                    };
                    if let MailState::Sending { .. } = row.state {
                        response.skipped.push(OutboxRetrySkip {
                            id,
                            reason: "being delivered right now".into(),
                        });
                        continue;
                    }
                    if let MailState::Pending { .. } = row.state {
                        let mut row = row.clone();
                        row.state = MailState::Pending {
                            next_attempt_at: now,
                        };
                        OUTBOX.write(tx)?.put(id, &row)?;
                        response.requeued.push(id);
                        continue;
                    }
                    let mut row = row.clone();
                    row.state = MailState::Pending {
                        next_attempt_at: now,
                    };
                    row.queued_at = now;
                    row.attempts = 0;
                    OUTBOX.write(tx)?.put(id, &row)?;
                    response.requeued.push(id);
                }
                Ok(response)
            })
            .await?;
        if !response.requeued.is_empty() {
            tracing::info!(ids = ?response.requeued, "mails queued for delivery now");
            self.deliver_now();
        }
        Ok(response)
    }

    /// Queues a test mail to `to` (already validated by the caller) and wakes the sender.
    pub async fn send_test(
        &self,
        to: &str,
        requested_by: &str,
    ) -> Result<OutboxTestResponse, StoreError> {
        let mail = content::test_mail(to, requested_by);
        let response = self
            .shared
            .store
            .write(move |tx| -> Result<_, StoreError> {
                let id = enqueue(tx, mail)?;
                let message_id = load_one(tx, id)?.map(|m| m.message_id).unwrap_or_default();
                Ok(OutboxTestResponse { id, message_id })
            })
            .await?;
        tracing::info!(id = response.id, "test mail queued");
        self.deliver_now();
        Ok(response)
    }

    fn deliver_now(&self) {
        self.shared.retry_now.store(true, Ordering::SeqCst);
        self.wake();
    }
}

fn load_one(tx: &WriteTransaction, id: MailId) -> Result<Option<StoredMail>, StoreError> {
    OUTBOX.write(tx)?.get(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(subject: &str) -> NewMail {
        NewMail {
            to: "alice@example.com".into(),
            subject: subject.into(),
            text: "body\r\n.\r\n".into(),
            html: None,
            cause: "task 1 assigned to alice@example.com\nBcc: x".into(),
        }
    }

    #[test]
    fn enqueue_commits_with_the_callers_transaction_or_not_at_all() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let r: Result<(), StoreError> = store.write_blocking(Commit::Durable, |tx| {
            enqueue(tx, mail("rolled back"))?;
            Err(StoreError::Join("the caller's change failed".into()))
        });
        assert!(r.is_err());
        let id = store
            .write_blocking(Commit::Durable, |tx| {
                enqueue(tx, mail("a\r\nBcc: evil@example.com"))
            })
            .unwrap();
        let rows = store
            .write_blocking(Commit::Durable, |tx| load(&OUTBOX.write(tx)?))
            .unwrap();
        assert_eq!(rows.len(), 1, "the rolled-back mail must not exist");
        let (got, m) = &rows[0];
        assert_eq!(*got, id);
        assert_eq!(m.subject, "a Bcc: evil@example.com");
        assert_eq!(m.cause, "task 1 assigned to alice@example.com Bcc: x");
        assert_eq!(m.text, "body\r\n.\r\n", "bodies are kept intact");
        assert!(m.message_id.starts_with(&format!("<outbox-{id}.")));
        assert!(m.message_id.ends_with('>'));
        assert!(matches!(m.state, MailState::Pending { .. }));
    }

    #[test]
    fn message_ids_are_unique_and_share_the_state_dir_tag() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let ids: Vec<String> = (0..3)
            .map(|_| {
                store
                    .write_blocking(Commit::Durable, |tx| {
                        let id = enqueue(tx, mail("s"))?;
                        Ok::<_, StoreError>(load_one(tx, id)?.unwrap().message_id)
                    })
                    .unwrap()
            })
            .collect();
        assert_eq!(ids.len(), 3);
        assert!(ids[0] != ids[1] && ids[1] != ids[2]);
        let tag = |s: &str| s.split(['.', '@']).nth(1).unwrap().to_owned();
        assert_eq!(tag(&ids[0]), tag(&ids[2]));
    }
}
