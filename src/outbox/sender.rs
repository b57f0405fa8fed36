//! The background sender: delivers due outbox rows one at a time and commits each outcome
//! durably after the server answered, so a mail is sent twice only if the daemon died between
//! the server's acceptance and that commit (the duplicate then carries the same Message-ID).
//!
//! Failures back off exponentially with jitter (first retry within a minute, capped at
//! `email.max_backoff`) until `email.give_up_after`, then the mail is a dead letter. When the
//! transport itself is unavailable (refused, timed out), the whole outbox pauses until that
//! mail's next attempt, so a dead server costs one timeout per retry, not one per mail.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::attempt::{self, Found};
use super::transport::{build_message, send_maildir, SendError, SmtpTarget, Transport};
use super::{lock, MailId, MailState, Outbox, StoredMail};
use super::{OUTBOX, OUTBOX_SENT, SENT_STATES};
use crate::config::Config;
use crate::store::StoreError;

/// The first retry comes after about this long (with jitter: between half of it and all).
const FIRST_RETRY: Duration = Duration::from_secs(40);
/// No retry sooner than this, whatever `email.max_backoff` says.
const MIN_RETRY: Duration = Duration::from_millis(200);
/// The sender looks at the outbox at least this often, even if nobody woke it.
const IDLE_LOOK: Duration = Duration::from_secs(60);
/// How often delivered mails older than `daemon.retention_days` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Delay before retry number `attempts` (1 = after the first failure): exponential from
/// [`FIRST_RETRY`], capped at `max`, then scaled by `0.5 + 0.5 * jitter` (`jitter` in 0..1)
/// so that mails that failed together do not retry in lockstep.
pub fn backoff(attempts: u32, max: Duration, jitter: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(24);
    let base = FIRST_RETRY.saturating_mul(1u32 << exp).min(max);
    base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
        .max(MIN_RETRY)
}

/// The sender's state between rounds.
struct Pause {
    until: Instant,
    /// The SMTP settings the pause was decided under: a reload that changes them ends it.
    settings: String,
}

pub(super) async fn run(outbox: Outbox) {
    let shared = &outbox.shared;
    let mut pause: Option<Pause> = None;
    let mut next_prune = Instant::now();
    tracing::debug!("outbox sender started");
    resume_attempts(&outbox).await;
    loop {
        if shared.shutdown.is_cancelled() {
            return;
        }
        let config = shared.config.config();
        let settings = format!("{:?}", config.email.smtp);
        if shared.retry_now.swap(false, Ordering::SeqCst) {
            pause = None;
        }
        pause = pause.filter(|p| p.until > Instant::now() && p.settings == settings);
        *lock(&shared.paused_until) = pause.as_ref().map(|p| {
            Utc::now()
                + chrono::Duration::from_std(p.until.saturating_duration_since(Instant::now()))
                    .unwrap_or_default()
        });
        if Instant::now() >= next_prune {
            prune(&outbox, &config).await;
            next_prune = Instant::now() + PRUNE_EVERY;
        }

        let mut wait = IDLE_LOOK;
        match shared.store.read(super::load_read).await {
            Ok(rows) => {
                let now = Utc::now();
                let mut due = Vec::new();
                for (id, mail) in rows {
                    if let MailState::Pending { next_attempt_at } = mail.state {
                        if next_attempt_at <= now {
                            due.push((next_attempt_at, id, mail));
                        } else {
                            wait = wait.min((next_attempt_at - now).to_std().unwrap_or_default());
                        }
                    }
                }
                due.sort_by_key(|(at, id, _)| (*at, *id));
                match &pause {
                    Some(p) if !due.is_empty() => {
                        // Paused mails get no attempt, so their deadline is checked here.
                        give_up_overdue(&outbox, &config, &due).await;
                        wait = wait.min(p.until.saturating_duration_since(Instant::now()));
                    }
                    _ if !due.is_empty() => {
                        // This attempt is the "now" a retry or test mail asked for: a pause
                        // it ends in is not undone by that request.
                        shared.retry_now.store(false, Ordering::SeqCst);
                        let due = due.into_iter().map(|(_, id, m)| (id, m)).collect();
                        pause = deliver(&outbox, &config, due)
                            .await
                            .map(|until| Pause { until, settings });
                        continue;
                    }
                    _ => {}
                }
            }
            Err(e) => {
                tracing::error!("cannot read the outbox: {e}; trying again in a minute");
            }
        }
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

/// Delivers `due` mails in order. Returns when to try again if the transport turned out to
/// be unavailable (the rest of `due` then waits), `None` if every mail got its answer.
async fn deliver(
    outbox: &Outbox,
    config: &Config,
    due: Vec<(MailId, StoredMail)>,
) -> Option<Instant> {
    let shared = &outbox.shared;
    let transport = Transport::from_config(config);
    for (id, mail) in due {
        // No new exchange once a stop was asked for: the rest stays pending and goes out
        // after the next start.
        if shared.shutdown.is_cancelled() {
            return None;
        }
        let (result, tried) = match (&transport, build_message(&config.email.from, &mail)) {
            (Err(e), _) => (Err(e.clone()), Tried::Pending),
            (Ok(_), Err(e)) => (Err(e), Tried::Pending),
            (Ok(Transport::Maildir(dir)), Ok(message)) => (
                send_maildir(dir, id, mail.created_at.into(), &message).await,
                Tried::Pending,
            ),
            (Ok(Transport::Smtp(target)), Ok(message)) => {
                match attempt_smtp(outbox, config, id, &mail, target, &message).await {
                    Ok(Some(done)) => done,
                    // Retried or given up on meanwhile: the next round sees it as it is.
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::error!(id, "cannot record that a delivery starts: {e}");
                        return Some(Instant::now() + Duration::from_secs(5));
                    }
                }
            }
        };
        let via = transport
            .as_ref()
            .map_or_else(|_| "mail transport".to_owned(), Transport::describe);
        let unavailable = matches!(result, Err(SendError::Unavailable(_)));
        // A delivery after failures: the server is back, so what waits for its retry goes
        // now rather than at its backoff (up to `email.max_backoff` later).
        let back = result.is_ok() && (mail.attempts > 0 || lock(&shared.last_error).is_some());
        let recorded = record(outbox, config, id, &mail, &tried, result, &via).await;
        if let (Ok(_), Tried::Sending(token)) = (&recorded, &tried) {
            attempt::forget(&config.daemon.state_dir, token);
        }
        match recorded {
            Ok(retry_in) if unavailable => return Some(Instant::now() + retry_in),
            Ok(_) if back => {
                release_waiting(outbox).await;
                return None;
            }
            Ok(_) => {}
            Err(e) => {
                // Not recorded: the row is still due (or still `Sending`, resumed from its
                // attempt file at the next start), and will be tried next round.
                tracing::error!(id, "cannot record a delivery outcome: {e}");
                return Some(Instant::now() + Duration::from_secs(5));
            }
        }
    }
    None
}

/// The state a delivery was tried from: what [`record`] expects to find still in place.
enum Tried {
    Pending,
    /// The row says `Sending` this attempt.
    Sending(String),
}

/// One SMTP attempt: commits `Sending` with a new attempt token, then runs the attempt in a
/// delivery process of its own and waits for its outcome. `Ok(None)` if the row changed
/// before (nothing was sent), `Err` if `Sending` could not be committed (nothing was sent).
async fn attempt_smtp(
    outbox: &Outbox,
    config: &Config,
    id: MailId,
    mail: &StoredMail,
    target: &SmtpTarget,
    message: &lettre::Message,
) -> Result<Option<(Result<(), SendError>, Tried)>, StoreError> {
    let token = attempt::new_token(id);
    let mut row = mail.clone();
    row.state = MailState::Sending {
        attempt: token.clone(),
        since: Utc::now(),
    };
    let started = outbox
        .shared
        .store
        .write(move |tx| -> Result<bool, StoreError> {
            let current = super::load_one(tx, id)?;
            if !current.is_some_and(|c| matches!(c.state, MailState::Pending { .. })) {
                return Ok(false);
            }
            OUTBOX.write(tx)?.put(id, &row)?;
            Ok(true)
        })
        .await?;
    if !started {
        return Ok(None);
    }
    let envelope = message.envelope();
    let envelope = (
        envelope.from().map(ToString::to_string).unwrap_or_default(),
        envelope.to().iter().map(ToString::to_string).collect(),
    );
    let found = attempt::run(
        &config.daemon.state_dir,
        &token,
        target,
        envelope,
        message.formatted(),
    )
    .await;
    Ok(Some((outcome_of(id, found), Tried::Sending(token))))
}

/// What an attempt's outcome means for its mail. An attempt whose answer nobody knows is a
/// transient failure: the mail goes again (same Message-ID), since losing it is worse than a
/// duplicate.
fn outcome_of(id: MailId, found: Found) -> Result<(), SendError> {
    match found {
        Found::Answered(r) => r,
        Found::NotStarted => Err(SendError::Transient(
            "vigild stopped before the delivery started; nothing was sent".into(),
        )),
        Found::Unknown(why) => {
            tracing::warn!(id, "a delivery attempt ended without the server's answer ({why}); the mail goes again with the same Message-ID and may arrive twice");
            Err(SendError::Transient(format!(
                "the delivery attempt ended without the server's answer ({why}); sent again \
                 with the same Message-ID"
            )))
        }
    }
}

/// At start: every mail found `Sending` had its delivery process when vigild stopped. Waits
/// for each such process (bounded by `smtp.timeout`) and records what it found, so a mail the
/// server accepted meanwhile is not sent again; then removes attempt files nobody needs.
async fn resume_attempts(outbox: &Outbox) {
    let config = outbox.shared.config.config();
    let state_dir = config.daemon.state_dir.clone();
    let rows = match outbox.shared.store.read(super::load_read).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!("cannot read the outbox to resume deliveries: {e}");
            return;
        }
    };
    let timeout = config
        .email
        .smtp
        .as_ref()
        .map_or(Duration::from_secs(30), |s| s.timeout);
    let mut live = Vec::new();
    for (id, mail) in rows {
        let MailState::Sending { attempt: token, .. } = &mail.state else {
            continue;
        };
        let found = attempt::resume(&state_dir, token, timeout).await;
        tracing::info!(id, attempt = %token, "resuming a delivery that was in progress at the last stop: {found:?}");
        let via = "a delivery process of the previous vigild";
        let tried = Tried::Sending(token.clone());
        let fresh = matches!(found, Found::NotStarted);
        let result = outcome_of(id, found);
        let recorded = if fresh {
            // Nothing went out: back to pending, due now, no attempt counted.
            back_to_pending(outbox, id, token.clone()).await
        } else {
            record(outbox, &config, id, &mail, &tried, result, via)
                .await
                .map(|_| ())
        };
        match recorded {
            Ok(()) => attempt::forget(&state_dir, token),
            Err(e) => {
                tracing::error!(id, "cannot record a resumed delivery: {e}");
                live.push(token.clone());
            }
        }
    }
    attempt::sweep(&state_dir, &live);
}

async fn back_to_pending(outbox: &Outbox, id: MailId, token: String) -> Result<(), StoreError> {
    outbox
        .shared
        .store
        .write(move |tx| -> Result<(), StoreError> {
            let Some(mut row) = super::load_one(tx, id)? else {
                return Ok(());
            };
            if matches!(&row.state, MailState::Sending { attempt, .. } if *attempt == token) {
                row.state = MailState::Pending {
                    next_attempt_at: Utc::now(),
                };
                OUTBOX.write(tx)?.put(id, &row)?;
            }
            Ok(())
        })
        .await
}

/// Makes every pending mail due now (after a delivery succeeded following failures).
async fn release_waiting(outbox: &Outbox) {
    let now = Utc::now();
    let released = outbox
        .shared
        .store
        .write(move |tx| -> Result<usize, StoreError> {
            let rows = super::load(&OUTBOX.write(tx)?)?;
            let mut n = 0;
            for (id, mut row) in rows {
                if matches!(row.state, MailState::Pending { next_attempt_at } if next_attempt_at > now)
                {
                    row.state = MailState::Pending {
                        next_attempt_at: now,
                    };
                    OUTBOX.write(tx)?.put(id, &row)?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await;
    match released {
        Ok(0) => {}
        Ok(n) => tracing::info!("the mail server takes mail again: {n} waiting mail(s) go now"),
        Err(e) => tracing::error!("cannot release the mails waiting for a retry: {e}"),
    }
}

/// Makes dead letters of due mails past `email.give_up_after` that wait behind a paused
/// transport: without an attempt, nothing else would ever judge their deadline.
async fn give_up_overdue(
    outbox: &Outbox,
    config: &Config,
    due: &[(DateTime<Utc>, MailId, StoredMail)],
) {
    let now = Utc::now();
    let after = config.email.give_up_after;
    let limit = chrono::Duration::from_std(after).unwrap_or(chrono::TimeDelta::MAX);
    let overdue: Vec<(MailId, StoredMail)> = due
        .iter()
        .filter(|(_, _, m)| m.queued_at + limit <= now)
        .map(|(_, id, m)| (*id, m.clone()))
        .collect();
    if overdue.is_empty() {
        return;
    }
    let reason = lock(&outbox.shared.last_error).clone();
    let shown = humantime::format_duration(after).to_string();
    let written = overdue.clone();
    let why_shown = shown.clone();
    let result = outbox
        .shared
        .store
        .write(move |tx| -> Result<(), StoreError> {
            for (id, mut row) in written {
                // Only a row still pending may change.
                let current = super::load_one(tx, id)?;
                if !current.is_some_and(|c| matches!(c.state, MailState::Pending { .. })) {
                    continue;
                }
                let why = row.last_error.clone().or_else(|| reason.clone());
                row.last_error = Some(match why {
                    Some(e) => format!("not delivered within {why_shown} (last error: {e})"),
                    None => {
                        format!("not delivered within {why_shown}: the mail server was unavailable")
                    }
                });
                row.state = MailState::Dead { since: now };
                OUTBOX.write(tx)?.put(id, &row)?;
            }
            Ok(())
        })
        .await;
    match result {
        Ok(()) => {
            for (id, m) in &overdue {
                tracing::warn!(id, to = %m.to, "mail not delivered within {shown}, now a dead letter (`vigil outbox retry {id}` sends it again)");
            }
        }
        Err(e) => tracing::error!("cannot mark overdue mails as dead letters: {e}"),
    }
}

/// Commits the outcome of one attempt and logs it. Returns the backoff it computed (the
/// pause to apply if the transport was unavailable).
async fn record(
    outbox: &Outbox,
    config: &Config,
    id: MailId,
    mail: &StoredMail,
    tried: &Tried,
    result: Result<(), SendError>,
    via: &str,
) -> Result<Duration, StoreError> {
    let shared = &outbox.shared;
    let now = Utc::now();
    let attempts = mail.attempts + 1;
    let retry_in = backoff(attempts, config.email.max_backoff, fastrand::f64());
    let mut row = mail.clone();
    row.attempts = attempts;
    let sent = result.is_ok();
    match &result {
        Ok(()) => {
            row.state = MailState::Sent { sent_at: now };
        }
        Err(e) => {
            let give_up_at = mail.queued_at
                + chrono::Duration::from_std(config.email.give_up_after)
                    .unwrap_or(chrono::TimeDelta::MAX);
            row.last_error = Some(e.to_string());
            row.state = match e {
                SendError::Permanent(_) => MailState::Dead { since: now },
                _ if now >= give_up_at => MailState::Dead { since: now },
                _ => MailState::Pending {
                    next_attempt_at: (now
                        + chrono::Duration::from_std(retry_in).unwrap_or_default())
                    .min(give_up_at),
                },
            };
        }
    }
    let stored = row.clone();
    let expected = match tried {
        Tried::Pending => None,
        Tried::Sending(token) => Some(token.clone()),
    };
    let committed = shared
        .store
        .write(move |tx| -> Result<bool, StoreError> {
            // Only a row still in the state we tried it from may change.
            let current = super::load_one(tx, id)?;
            let unchanged = current.is_some_and(|c| match (&c.state, &expected) {
                (MailState::Pending { .. }, None) => true,
                (MailState::Sending { attempt, .. }, Some(token)) => attempt == token,
                _ => false,
            });
            if !unchanged {
                return Ok(false);
            }
            if sent {
                OUTBOX.write(tx)?.remove(id)?;
                OUTBOX_SENT.write(tx)?.put(id, &stored)?;
            } else {
                OUTBOX.write(tx)?.put(id, &stored)?;
            }
            Ok(true)
        })
        .await?;
    if !committed {
        return Ok(retry_in);
    }
    match (&result, &row.state) {
        (Ok(()), _) => {
            *lock(&shared.last_error) = None;
            tracing::info!(id, to = %row.to, message_id = %row.message_id, attempts, "mail sent via {via}");
        }
        (Err(e), MailState::Pending { next_attempt_at }) => {
            *lock(&shared.last_error) = Some(e.to_string());
            tracing::info!(id, to = %row.to, attempts, next_attempt_at = %fmt_time(*next_attempt_at), "mail delivery failed, will retry: {e}");
        }
        (Err(e), _) => {
            *lock(&shared.last_error) = Some(e.to_string());
            tracing::warn!(id, to = %row.to, attempts, "mail delivery failed, now a dead letter (`vigil outbox retry {id}` sends it again): {e}");
        }
    }
    Ok(retry_in)
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Removes delivered mails older than `daemon.retention_days`.
async fn prune(outbox: &Outbox, config: &Config) {
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(config.daemon.retention_days));
    let result = outbox
        .shared
        .store
        .write(move |tx| -> Result<usize, StoreError> {
            let old: Vec<MailId> = {
                let states = SENT_STATES.write(tx)?;
                let mut old = Vec::new();
                for row in states.iter()? {
                    let (k, s) = row?;
                    if matches!(s.state, MailState::Sent { sent_at } if sent_at < cutoff) {
                        old.push(k.value());
                    }
                }
                old
            };
            let mut table = OUTBOX_SENT.write(tx)?;
            for id in &old {
                table.remove(*id)?;
            }
            Ok(old.len())
        })
        .await;
    match result {
        Ok(0) => {}
        Ok(n) => tracing::info!("pruned {n} delivered mails older than the retention period"),
        Err(e) => tracing::warn!("cannot prune delivered mails: {e}; trying again in an hour"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_retry_within_a_minute_then_doubling_up_to_the_cap() {
        let hour = Duration::from_secs(3600);
        assert_eq!(backoff(1, hour, 1.0), FIRST_RETRY);
        assert!(backoff(1, hour, 1.0) <= Duration::from_secs(60));
        assert_eq!(backoff(1, hour, 0.0), FIRST_RETRY / 2);
        assert_eq!(backoff(2, hour, 1.0), FIRST_RETRY * 2);
        assert_eq!(backoff(3, hour, 1.0), FIRST_RETRY * 4);
        assert_eq!(backoff(30, hour, 1.0), hour);
        assert_eq!(backoff(u32::MAX, hour, 0.0), hour / 2);
    }

    #[test]
    fn a_tiny_cap_still_leaves_a_breath_between_tries() {
        assert_eq!(
            backoff(5, Duration::from_secs(1), 1.0),
            Duration::from_secs(1)
        );
        assert_eq!(backoff(5, Duration::ZERO, 0.5), MIN_RETRY);
    }
}
