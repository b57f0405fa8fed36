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

pub mod fired;
#[cfg(test)]
mod fired_tests;

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Offset, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Direction;
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
/// due time already ran (decided inside the queue's write transaction, so a fire racing a
/// catch-up or another job for the same due time queues nothing).
async fn fire(queue: &Queue, schedule: &ScheduleConfig, tz: Tz, now: DateTime<Utc>) {
    let Some(due) = latest_due(&schedule.cron, tz, now) else {
        return;
    };
    let claim = fired::claim(&schedule.name, due);
    if let Err(e) = queue.enqueue_scheduled(schedule, due, claim).await {
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
        match fired::last(queue.store(), &schedule.name).await {
            Ok(None) => {
                if let Err(e) = fired::seen(queue.store(), &schedule.name, now).await {
                    tracing::error!(schedule = %schedule.name, "cannot record the schedule: {e}");
                }
            }
            Ok(Some(last)) => {
                let Some(due) = latest_due(&schedule.cron, tz, now) else {
                    continue;
                };
                if !is_new_due(Some(last), due) {
                    continue;
                }
                let claim = fired::claim(&schedule.name, due);
                match queue.enqueue_scheduled(schedule, due, claim).await {
                    Ok(true) => {
                        tracing::info!(schedule = %schedule.name, %due, "catching up a run missed while vigild was down")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(schedule = %schedule.name, "missed run not queued: {e}")
                    }
                }
            }
            Err(e) => {
                tracing::error!(schedule = %schedule.name, "cannot read the schedule's last run: {e}")
            }
        }
    }
}

/// The latest due time of `cron` at or before `now`, in the real timezone, as an instant.
///
/// Due times follow croner's DST rules (those of Vixie cron): in the repeated hour of a
/// fall-back, a fixed-time job (`0 30 2 * * *`) is due once, at the first 02:30, and an
/// interval job (`0 */15 * * * *`) is due at every instant that matches in either pass; in
/// the skipped hour of a spring-forward, a fixed-time job is due at the first instant after
/// the gap. croner's backward search works on local wall-clock time, so from the second pass
/// of a repeated hour it answers with the *first* pass's instant; this walks forward from
/// that answer through every due instant up to `now` and keeps the latest.
pub fn latest_due(cron: &str, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    latest_due_of(&parse_cron(cron).ok()?, tz, now)
}

fn latest_due_of(cron: &croner::Cron, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // Cron has one-second resolution: a due time is a whole second (croner's inclusive
    // search would otherwise hand back `now` itself, nanoseconds and all).
    let now = now.trunc_subsecs(0);
    let mut before = now.with_timezone(&tz);
    // Two rounds cover croner snapping a spring-forward gap backwards to a second that is
    // not itself due; a third would never find more.
    for _ in 0..2 {
        let start = cron.find_previous_occurrence(&before, true).ok()?;
        let mut latest = None;
        for due in cron.iter_from(start, Direction::Forward) {
            let due_utc = due.with_timezone(&Utc);
            // The iterator walks wall-clock time; once even the earliest reading of a local
            // time is past `now`, nothing later can be at or before it.
            if earliest(due.naive_local(), tz).unwrap_or(due_utc) > now {
                break;
            }
            let due = due_utc;
            if due <= now && latest.is_none_or(|l| due > l) {
                latest = Some(due);
            }
        }
        if latest.is_some() {
            return latest;
        }
        before = start - chrono::Duration::seconds(1);
    }
    None
}

/// The earliest instant a local wall-clock time names (two in a repeated hour).
fn earliest(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// Whether `due` has not run yet: due times are instants, so each real due instant runs
/// once — both passes of a repeated hour for an interval job, once for a fixed-time job
/// (whose second pass [`latest_due`] never yields).
pub fn is_new_due(last: Option<DateTime<Utc>>, due: DateTime<Utc>) -> bool {
    last.is_none_or(|last| due > last)
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

    /// Due times that run when something fires every `step` from `from` to `to`, as `fire`
    /// and `catch_up` decide (the due time of `from` counts as already run).
    fn runs(cron: &str, from: &str, to: &str, step: i64) -> Vec<DateTime<Utc>> {
        let cron = parse_cron(cron).unwrap();
        let (from, to) = (utc(from), utc(to));
        let mut last = latest_due_of(&cron, Berlin, from);
        let mut out = Vec::new();
        let mut now = from;
        while now <= to {
            let due = latest_due_of(&cron, Berlin, now).unwrap();
            assert!(due <= now, "{due} is after {now}");
            if is_new_due(last, due) {
                out.push(due);
                last = Some(due);
            }
            now += chrono::Duration::seconds(step);
        }
        out
    }

    fn locals(times: &[DateTime<Utc>]) -> Vec<String> {
        times
            .iter()
            .map(|t| t.with_timezone(&Berlin).format("%H:%M %Z").to_string())
            .collect()
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
        assert!(is_new_due(Some(last), due), "two nights missed: run once");
        assert!(
            !is_new_due(Some(due), due),
            "and not again for the same due time"
        );
    }

    #[test]
    fn dst_fall_back_runs_each_real_due_instant_once() {
        // 2026-10-25, the last Sunday of October: Berlin goes from 03:00 CEST back to
        // 02:00 CET, so 02:00-03:00 local happens twice (00:00-01:00 and 01:00-02:00 UTC).
        // Firing every second through the night, a quarter-hourly schedule runs at each of
        // the 8 real instants of the repeated hour, in order, once each.
        let quarterly = runs(
            "0 */15 * * * *",
            "2026-10-24T23:00:00Z",
            "2026-10-25T02:10:00Z",
            1,
        );
        let repeated: Vec<DateTime<Utc>> = quarterly
            .iter()
            .copied()
            .filter(|t| *t >= utc("2026-10-25T00:00:00Z") && *t < utc("2026-10-25T02:00:00Z"))
            .collect();
        assert_eq!(
            locals(&repeated),
            [
                "02:00 CEST",
                "02:15 CEST",
                "02:30 CEST",
                "02:45 CEST",
                "02:00 CET",
                "02:15 CET",
                "02:30 CET",
                "02:45 CET"
            ]
        );
        let mut whole_night: Vec<String> = ["01:15 CEST", "01:30 CEST", "01:45 CEST"]
            .map(String::from)
            .to_vec();
        whole_night.extend(locals(&repeated));
        whole_night.push("03:00 CET".into());
        assert_eq!(locals(&quarterly), whole_night, "nothing else ran");
        // From inside the second pass, the latest due time is the second pass's.
        assert_eq!(
            latest_due("0 */15 * * * *", Berlin, utc("2026-10-25T01:20:00Z")).unwrap(),
            utc("2026-10-25T01:15:00Z")
        );

        // A daily 02:30 runs once that night: at the first 02:30.
        let daily = runs(
            "0 30 2 * * *",
            "2026-10-24T22:00:00Z",
            "2026-10-25T04:00:00Z",
            1,
        );
        assert_eq!(daily, [utc("2026-10-25T00:30:00Z")]);
        assert_eq!(
            latest_due("0 30 2 * * *", Berlin, utc("2026-10-25T01:45:00Z")).unwrap(),
            utc("2026-10-25T00:30:00Z"),
            "the second 02:30 is not a due time of a fixed-time job"
        );
        // The next night runs normally.
        let next = latest_due("0 30 2 * * *", Berlin, utc("2026-10-26T12:00:00Z")).unwrap();
        assert_eq!(next, utc("2026-10-26T01:30:00Z"));
        assert!(is_new_due(Some(daily[0]), next));
    }

    #[test]
    fn dst_spring_forward_still_runs_that_day() {
        // 2026-03-29: Berlin jumps from 02:00 to 03:00; 02:30 does not exist that day. A
        // daily 02:30 runs once, at 03:00 CEST; a quarter-hourly one skips the gap.
        let daily = runs(
            "0 30 2 * * *",
            "2026-03-28T23:00:00Z",
            "2026-03-29T03:00:00Z",
            // Each call walks croner through the gap second by second; every 10 s still
            // lands on every due time.
            10,
        );
        assert_eq!(locals(&daily), ["03:00 CEST"]);
        let quarterly = runs(
            "0 */15 * * * *",
            "2026-03-29T00:20:00Z",
            "2026-03-29T01:20:00Z",
            1,
        );
        assert_eq!(
            locals(&quarterly),
            ["01:30 CET", "01:45 CET", "03:00 CEST", "03:15 CEST"]
        );
    }
}
