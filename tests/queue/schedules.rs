//! Queue (issue 4): cron schedules firing, coalescing, missed-run catch-up, runs that do not
//! fit the queue, and reloads that add or change schedules.

use super::*;

#[test]
fn schedules_fire_coalesce_and_follow_reloads() {
    let dir = TestDir::new();
    let every_second = "[[schedule]]\nname = \"often\"\nkind = \"scan\"\ncron = \"* * * * * *\"\nplugins = [\"gated\"]\n";
    let d = start(&dir, 2, "slots = 1", every_second);
    // Fires every second; with n1 stuck Running, at most one Queued task per node remains.
    d.wait_for("three fires", |d| {
        d.log_text().matches("schedule fired").count() >= 3
    });
    let q = queue(&d);
    for node in ["n1", "n2"] {
        let queued = q
            .iter()
            .filter(|t| t["target"] == node && t["status"] == "Queued")
            .count();
        assert!(
            queued <= 1,
            "{node}: {queued} Queued tasks from one schedule: {q:?}"
        );
    }
    assert!(
        q.iter()
            .all(|t| t["initiator"] == "Schedule" && t["schedule"] == "often"),
        "{q:?}"
    );

    // Reload without the schedule: no more fires; queued work is kept.
    dir.write_config(&queue_config(&dir, 2, "slots = 1"));
    d.wait_for("schedules re-applied", |d| {
        d.log_text().contains("schedules=0")
    });
    let fires = d.log_text().matches("schedule fired").count();
    let before = queue(&d).len();
    assert!(before >= 2, "queued and running work survives the reload");
    open_gate(&dir);
    d.wait_for("the queue to drain", |d| queue(d).is_empty());
    assert!(d.log_text().matches("schedule fired").count() <= fires + 1);
}

#[test]
fn a_run_missed_while_down_is_caught_up_once() {
    let dir = TestDir::new();
    let yearly = |cron: &str| {
        format!("[[schedule]]\nname = \"nightly\"\nkind = \"scan\"\ncron = \"{cron}\"\nplugins = [\"ok\"]\n")
    };
    let mut d = start(&dir, 1, "", &yearly("0 0 0 1 1 *"));
    d.wait_for("the schedule to be recorded", |d| {
        d.log_text().contains("schedules active")
    });
    d.signal(Signal::SIGTERM);
    d.wait_exit();
    // A due time after the schedule was first recorded, and before the restart.
    let seen = chrono::Utc::now();
    while chrono::Utc::now() < seen + chrono::Duration::milliseconds(1100) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let due = chrono::Utc::now();
    let cron = due.format("%S %M %H * * *").to_string();
    dir.write_config(&(queue_config(&dir, 1, "") + &yearly(&cron)));
    let mut d = Daemon::start_on(&dir).unwrap();
    let log = wait_log_total(&d, 1);
    assert_eq!(log["rows"][0]["schedule"], "nightly");
    assert_eq!(log["rows"][0]["initiator"], "Schedule");
    assert!(d.log_text().contains("catching up a run missed"));
    d.signal(Signal::SIGTERM);
    d.wait_exit();
    // Restarting again does not run the same due time twice.
    let d = Daemon::start_on(&dir).unwrap();
    d.wait_for("schedules active", |d| {
        d.log_text().contains("schedules active")
    });
    assert_eq!(scan_log(&d, "")["total"], 1, "{}", d.log_text());
    assert!(!d.log_text().contains("catching up"), "{}", d.log_text());
}

#[test]
fn scheduled_runs_that_do_not_fit_are_counted_and_logged() {
    let dir = TestDir::new();
    // Three nodes, room for one Queued task, n1 stuck Running: every fire drops some.
    let every_second = "[[schedule]]\nname = \"often\"\nkind = \"scan\"\ncron = \"* * * * * *\"\nplugins = [\"gated\"]\n";
    let mut d = start(&dir, 3, "slots = 1\nqueue_capacity = 1", every_second);
    d.wait_for("dropped_scheduled in status", |d| {
        d.status_json()["queue"]["dropped_scheduled"]
            .as_u64()
            .unwrap()
            >= 4
    });
    let warned = |log: &str| -> u64 {
        log.lines()
            .filter(|l| l.contains("WARN") && l.contains("scheduled tasks dropped"))
            .map(|l| {
                let n = l.split("dropped=").nth(1).expect(l);
                n.split_whitespace().next().unwrap().parse::<u64>().unwrap()
            })
            .sum()
    };
    let log = d.log_text();
    assert!(warned(&log) >= 4, "logged at warn:\n{log}");
    assert!(
        log.contains("schedule=often") && log.contains("capacity=1"),
        "{log}"
    );
    assert!(
        queue(&d).iter().filter(|t| t["status"] == "Queued").count() <= 1,
        "capacity holds"
    );
    let seen = d.status_json()["queue"]["dropped_scheduled"]
        .as_u64()
        .unwrap();
    d.signal(Signal::SIGTERM);
    d.wait_exit();
    let logged = warned(&d.log_text());

    // The count survives a restart (without the schedule, nothing adds to it).
    dir.write_config(&queue_config(&dir, 3, "slots = 1\nqueue_capacity = 1"));
    let d = Daemon::start_on(&dir).unwrap();
    let after = d.status_json()["queue"]["dropped_scheduled"]
        .as_u64()
        .unwrap();
    assert!(
        after >= seen && after == logged,
        "{after} vs {seen}, {logged} logged"
    );
    open_gate(&dir);
}

/// Rows of the Scan log that schedule `name` queued.
fn runs_of(d: &Daemon, name: &str) -> usize {
    scan_log(d, "?limit=1000")["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["schedule"] == name)
        .count()
}

#[test]
fn reloads_add_schedules_and_change_crons() {
    let dir = TestDir::new();
    let schedule = |name: &str, cron: &str| {
        format!(
            "[[schedule]]\nname = \"{name}\"\nkind = \"scan\"\ncron = \"{cron}\"\nplugins = [\"ok\"]\n\n"
        )
    };
    const YEARLY: &str = "0 0 0 1 1 *";
    const EVERY_SECOND: &str = "* * * * * *";
    let config = |schedules: &str| queue_config(&dir, 1, "slots = 1") + schedules;
    let applied = |d: &Daemon| d.log_text().matches("schedules active").count();
    dir.write_config(&config(&schedule("nightly", YEARLY)));
    let d = Daemon::start_on(&dir).unwrap();
    d.wait_for("schedules active", |d| applied(d) == 1);

    // A reload that adds a schedule: it runs on its cron (not at once on first sight).
    dir.write_config(&config(
        &(schedule("nightly", YEARLY) + &schedule("often", EVERY_SECOND)),
    ));
    d.wait_for("the added schedule to run twice", |d| {
        runs_of(d, "often") >= 2
    });
    assert!(d.log_text().contains("schedules=2"), "{}", d.log_text());
    assert_eq!(runs_of(&d, "nightly"), 0);

    // A reload that changes both crons: `nightly` now runs every second, `often` no more.
    let before = applied(&d);
    dir.write_config(&config(
        &(schedule("nightly", EVERY_SECOND) + &schedule("often", YEARLY)),
    ));
    d.wait_for("the changed crons in force", |d| applied(d) > before);
    d.wait_for("the changed schedule to run", |d| {
        runs_of(d, "nightly") >= 2
    });
    // A fire of the old cron may have been in flight during the reload; none after it.
    let often = runs_of(&d, "often");
    let nightly = runs_of(&d, "nightly");
    d.wait_for("two more runs of the changed schedule", |d| {
        runs_of(d, "nightly") >= nightly + 2
    });
    assert_eq!(runs_of(&d, "often"), often, "the old cron no longer fires");
}
