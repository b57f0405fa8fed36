//! Schedules: the config's `[[schedule]]` entries, run by tokio-cron-scheduler in
//! `daemon.timezone`, with systemd-`Persistent=true`-style catch-up of runs missed while the
//! daemon was down.
//!
//! tokio-cron-scheduler turns a timezone into the fixed UTC offset it has when a job is
//! created, so across a DST change its jobs would fire an hour off. Two things keep runs
//! right anyway: every fire recomputes the *true* due time with croner in the real timezone
//! and is recorded (per schedule, in the same commit as its tasks) so that one due time runs
//! at most once, whatever fires; and a watcher re-creates the jobs whenever the zone's offset
//! changes, catching up a due time that the old offset skipped.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Offset, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::config::validate::parse_cron;
use crate::config::{Config, ScheduleConfig};
use crate::queue::Queue;

/// Commands to the scheduler task.
enum Command {
    Apply(Arc<Config>),
    CheckOffset,
}

/// Handle to the scheduler task; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    tx: mpsc::Sender<Command>,
}

impl Scheduler {
    /// Starts the scheduler with `config`'s schedules, after catching up missed runs.
    pub async fn start(
        queue: Queue,
        config: Arc<Config>,
    ) -> Result<Scheduler, tokio_cron_scheduler::JobSchedulerError> {
        let sched = JobScheduler::new().await?;
        sched.start().await?;
        let (tx, rx) = mpsc::channel(8);
        let handle = Scheduler { tx: tx.clone() };
        // Checks four times an hour whether the zone's UTC offset changed (DST).
        let watcher = Job::new_async("0 */15 * * * *", move |_, _| {
            let tx = tx.clone();
            Box::pin(async move {
                let _ = tx.send(Command::CheckOffset).await;
            })
        })?;
        sched.add(watcher).await?;
        tokio::spawn(run(sched, queue, rx));
        handle.apply(config).await;
        Ok(handle)
    }

    /// Replaces the schedules with those of a newly loaded config. Queued and running
    /// tasks are not touched.
    pub async fn apply(&self, config: Arc<Config>) {
        let _ = self.tx.send(Command::Apply(config)).await;
    }
}

async fn run(sched: JobScheduler, queue: Queue, mut rx: mpsc::Receiver<Command>) {
    let mut jobs: Vec<uuid::Uuid> = Vec::new();
    let mut current: Option<(Arc<Config>, i32)> = None;
    while let Some(cmd) = rx.recv().await {
        let config = match cmd {
            Command::Apply(config) => config,
            Command::CheckOffset => match &current {
                Some((config, offset)) if utc_offset(config.daemon.tz()) != *offset => {
                    tracing::info!(timezone = %config.daemon.timezone, "UTC offset changed; re-creating schedule jobs");
                    config.clone()
                }
                _ => continue,
            },
        };
        for id in jobs.drain(..) {
            if let Err(e) = sched.remove(&id).await {
                tracing::warn!("cannot remove a schedule job: {e}");
            }
        }
        catch_up(&queue, &config).await;
        let tz = config.daemon.tz();
        for schedule in &config.schedules {
            match register(&sched, &queue, schedule, tz).await {
                Ok(id) => jobs.push(id),
                Err(e) => {
                    tracing::error!(schedule = %schedule.name, "cannot register schedule: {e}")
                }
            }
        }
        tracing::info!(schedules = jobs.len(), timezone = %config.daemon.timezone, "schedules active");
        current = Some((config.clone(), utc_offset(tz)));
    }
}

async fn register(
    sched: &JobScheduler,
    queue: &Queue,
    schedule: &ScheduleConfig,
    tz: Tz,
) -> Result<uuid::Uuid, tokio_cron_scheduler::JobSchedulerError> {
    let (queue, schedule) = (queue.clone(), schedule.clone());
    let job = Job::new_async_tz(schedule.cron.clone(), tz, move |_, _| {
        let (queue, schedule) = (queue.clone(), schedule.clone());
        Box::pin(async move { fire(&queue, &schedule, tz, Utc::now()).await })
    })?;
    sched.add(job).await
}

/// A job fired: queue the run whose due time is the latest at or before `now`, unless that
/// due time already ran.
async fn fire(queue: &Queue, schedule: &ScheduleConfig, tz: Tz, now: DateTime<Utc>) {
    let Some(due) = latest_due(&schedule.cron, tz, now) else {
        return;
    };
    let last = match queue.schedule_fired(&schedule.name).await {
        Ok(last) => last,
        Err(e) => {
            tracing::error!(schedule = %schedule.name, "cannot read the schedule's last run: {e}");
            return;
        }
    };
    if !is_new_due(last, due, tz) {
        return;
    }
    if let Err(e) = queue.enqueue_scheduled(schedule, due).await {
        tracing::error!(schedule = %schedule.name, "scheduled run not queued: {e}");
    }
}

/// At start and on reload: a schedule whose last run is older than its latest due time runs
/// once now (however many due times were missed). A schedule seen for the first time only
/// records "now", so adding a schedule does not start a run at once.
async fn catch_up(queue: &Queue, config: &Config) {
    let tz = config.daemon.tz();
    let now = Utc::now();
    for schedule in &config.schedules {
        match queue.schedule_fired(&schedule.name).await {
            Ok(None) => {
                if let Err(e) = queue.set_schedule_fired(&schedule.name, now).await {
                    tracing::error!(schedule = %schedule.name, "cannot record the schedule: {e}");
                }
            }
            Ok(Some(last)) => {
                if let Some(due) = latest_due(&schedule.cron, tz, now) {
                    if is_new_due(Some(last), due, tz) {
                        tracing::info!(schedule = %schedule.name, %due, "catching up a run missed while vigild was down");
                        if let Err(e) = queue.enqueue_scheduled(schedule, due).await {
                            tracing::error!(schedule = %schedule.name, "missed run not queued: {e}");
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(schedule = %schedule.name, "cannot read the schedule's last run: {e}")
            }
        }
    }
}

/// The latest due time of `cron` at or before `now`, in the real timezone.
pub fn latest_due(cron: &str, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = parse_cron(cron).ok()?;
    // Cron has one-second resolution: a due time is a whole second (croner's inclusive
    // search would otherwise hand back `now` itself, nanoseconds and all).
    let now = now.trunc_subsecs(0);
    cron.find_previous_occurrence(&now.with_timezone(&tz), true)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Whether `due` is a due time that has not run yet. Due times are compared both as
/// instants and as local wall-clock times, so that the repeated hour of a DST fall-back
/// (02:30 CEST, then 02:30 CET) runs a daily schedule once, not twice.
pub fn is_new_due(last: Option<DateTime<Utc>>, due: DateTime<Utc>, tz: Tz) -> bool {
    match last {
        None => true,
        Some(last) => due > last && local(due, tz) > local(last, tz),
    }
}

fn local(t: DateTime<Utc>, tz: Tz) -> NaiveDateTime {
    t.with_timezone(&tz).naive_local()
}

fn utc_offset(tz: Tz) -> i32 {
    tz.offset_from_utc_datetime(&Utc::now().naive_utc())
        .fix()
        .local_minus_utc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Berlin;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn latest_due_is_in_local_time() {
        // 02:30 Berlin in winter is 01:30 UTC.
        let due = latest_due("0 30 2 * * *", Berlin, utc("2026-01-10T12:00:00Z")).unwrap();
        assert_eq!(due, utc("2026-01-10T01:30:00Z"));
        // Exactly at the due time counts (inclusive), to the whole second.
        assert_eq!(latest_due("0 30 2 * * *", Berlin, due).unwrap(), due);
        let within = due + chrono::Duration::milliseconds(700);
        assert_eq!(latest_due("0 30 2 * * *", Berlin, within).unwrap(), due);
        assert_eq!(latest_due("* * * * * *", Berlin, within).unwrap(), due);
    }

    #[test]
    fn missed_runs_catch_up_once() {
        let last = utc("2026-01-08T01:30:00Z");
        let now = utc("2026-01-10T12:00:00Z");
        let due = latest_due("0 30 2 * * *", Berlin, now).unwrap();
        assert!(
            is_new_due(Some(last), due, Berlin),
            "two nights missed: run once"
        );
        assert!(
            !is_new_due(Some(due), due, Berlin),
            "and not again for the same due time"
        );
    }

    #[test]
    fn dst_fall_back_runs_the_repeated_hour_once() {
        // 2026-10-25: Berlin goes from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
        let first = utc("2026-10-25T00:30:00Z"); // 02:30 CEST
        let second = utc("2026-10-25T01:30:00Z"); // 02:30 CET
        assert_eq!(local(first, Berlin), local(second, Berlin));
        assert!(is_new_due(Some(utc("2026-10-24T00:30:00Z")), first, Berlin));
        assert!(
            !is_new_due(Some(first), second, Berlin),
            "the repeated 02:30 must not run again"
        );
        // Whatever fires during the repeated hour maps to a due time that already ran.
        let due = latest_due("0 30 2 * * *", Berlin, utc("2026-10-25T01:45:00Z")).unwrap();
        assert!(!is_new_due(Some(first), due, Berlin));
        // The next night runs normally.
        let next = latest_due("0 30 2 * * *", Berlin, utc("2026-10-26T12:00:00Z")).unwrap();
        assert_eq!(next, utc("2026-10-26T01:30:00Z"));
        assert!(is_new_due(Some(first), next, Berlin));
    }

    #[test]
    fn dst_spring_forward_still_runs_that_day() {
        // 2026-03-29: Berlin jumps from 02:00 to 03:00; 02:30 does not exist that day.
        let before = utc("2026-03-28T01:30:00Z");
        let due = latest_due("0 30 2 * * *", Berlin, utc("2026-03-29T12:00:00Z")).unwrap();
        assert!(due > before, "a due time on the skipped day: {due}");
        assert!(is_new_due(Some(before), due, Berlin));
        let again = latest_due("0 30 2 * * *", Berlin, utc("2026-03-29T20:00:00Z")).unwrap();
        assert!(!is_new_due(Some(due), again, Berlin), "and only once");
    }
}
