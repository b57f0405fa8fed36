//! How the CLI writes values for people, in one place so that every table reads the same:
//! times, initiators, shortened messages, and the parsers for enum-valued options.

use chrono::{DateTime, Local, Utc};

use crate::proto::{FinalStatus, QueueTaskKind, QueueTaskStatus};

/// `2025-03-01 14:05:09` in the local time zone of the machine running `vigil`.
pub fn local_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The Initiator column: the caller's email, or `Schedule (nightly-scan)` for scheduled tasks.
pub fn initiator(initiator: &str, schedule: Option<&str>) -> String {
    match schedule {
        Some(name) => format!("{initiator} ({name})"),
        None => initiator.to_owned(),
    }
}

/// The first line of `s`, cut to `max` characters with `…` when longer.
pub fn shorten(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("").trim_end();
    if line.chars().count() > max {
        let mut out: String = line.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    } else if s.trim_end().len() > line.len() {
        format!("{line} …")
    } else {
        line.to_owned()
    }
}

pub fn active_status_word(s: QueueTaskStatus) -> &'static str {
    match s {
        QueueTaskStatus::Queued => "Queued",
        QueueTaskStatus::Running => "Running",
    }
}

pub fn final_status_word(s: FinalStatus) -> &'static str {
    match s {
        FinalStatus::Finished => "Finished",
        FinalStatus::Cancelled => "Cancelled",
        FinalStatus::Failed => "Failed",
    }
}

/// `--status` of `vigil queue`: `queued` or `running`, any case.
pub fn parse_active_status(s: &str) -> Result<QueueTaskStatus, String> {
    match s.to_ascii_lowercase().as_str() {
        "queued" => Ok(QueueTaskStatus::Queued),
        "running" => Ok(QueueTaskStatus::Running),
        _ => Err(format!("expected Queued or Running, not {s:?}")),
    }
}

/// `--status` of `vigil log`: `finished`, `cancelled` or `failed`, any case.
pub fn parse_final_status(s: &str) -> Result<FinalStatus, String> {
    match s.to_ascii_lowercase().as_str() {
        "finished" => Ok(FinalStatus::Finished),
        "cancelled" | "canceled" => Ok(FinalStatus::Cancelled),
        "failed" => Ok(FinalStatus::Failed),
        _ => Err(format!("expected Finished, Cancelled or Failed, not {s:?}")),
    }
}

/// `--kind`: `scan` or `audit`, any case.
pub fn parse_kind(s: &str) -> Result<QueueTaskKind, String> {
    match s.to_ascii_lowercase().as_str() {
        "scan" => Ok(QueueTaskKind::Scan),
        "audit" => Ok(QueueTaskKind::Audit),
        _ => Err(format!("expected scan or audit, not {s:?}")),
    }
}

/// The API's spelling of a kind in query strings and log paths.
pub fn kind_word(k: QueueTaskKind) -> &'static str {
    match k {
        QueueTaskKind::Scan => "scan",
        QueueTaskKind::Audit => "audit",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_initiators_name_the_schedule() {
        assert_eq!(
            initiator("Schedule", Some("nightly-scan")),
            "Schedule (nightly-scan)"
        );
        assert_eq!(initiator("ann@example.com", None), "ann@example.com");
    }

    #[test]
    fn long_messages_are_shortened() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("0123456789abc", 10), "012345678…");
        assert_eq!(shorten("first\nsecond", 10), "first …");
    }

    #[test]
    fn local_time_has_the_table_format() {
        let t = "2025-03-01T14:05:09Z".parse().unwrap();
        let s = local_time(t);
        assert_eq!(s.len(), "2025-03-01 14:05:09".len(), "{s}");
    }

    #[test]
    fn status_options_ignore_case() {
        assert_eq!(parse_active_status("running"), Ok(QueueTaskStatus::Running));
        assert_eq!(parse_final_status("FAILED"), Ok(FinalStatus::Failed));
        assert_eq!(parse_kind("Audit"), Ok(QueueTaskKind::Audit));
        assert!(parse_kind("both").is_err());
    }
}
