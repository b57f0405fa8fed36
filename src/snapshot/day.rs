//! The calendar day a snapshot belongs to: the local date in `daemon.timezone`.
//!
//! Tests (and an administrator replaying history) can set `VIGIL_TODAY_FILE` to a file that
//! holds `YYYY-MM-DD`; it is read at every scan, so a test changes the day by rewriting the
//! file instead of waiting for midnight.

use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("1970-01-01 is a date"),
};

/// Environment variable naming a file that overrides today's date.
pub const TODAY_FILE_ENV: &str = "VIGIL_TODAY_FILE";

pub fn day_number(day: NaiveDate) -> i32 {
    (day - EPOCH).num_days() as i32
}

pub fn from_day_number(n: i32) -> NaiveDate {
    EPOCH + chrono::Duration::days(i64::from(n))
}

/// Today in `tz`, unless `VIGIL_TODAY_FILE` says otherwise.
pub fn today(tz: Tz) -> NaiveDate {
    if let Some(path) = std::env::var_os(TODAY_FILE_ENV) {
        match std::fs::read_to_string(&path) {
            Ok(text) => match NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
                Ok(d) => return d,
                Err(e) => tracing::warn!(
                    "{TODAY_FILE_ENV}: cannot parse {:?}: {e}; using the clock",
                    text.trim()
                ),
            },
            Err(e) => tracing::warn!("{TODAY_FILE_ENV}: cannot read it: {e}; using the clock"),
        }
    }
    Utc::now().with_timezone(&tz).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        assert_eq!(from_day_number(day_number(d)), d);
        assert_eq!(day_number(EPOCH), 0);
    }
}
