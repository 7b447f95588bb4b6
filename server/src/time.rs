//! Timestamps as both backends store them: RFC 3339 UTC text with milliseconds and a
//! `Z`, fixed width, so comparing text compares time.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn now() -> String {
    timestamp(Utc::now())
}

/// Midnight UTC on the first day of `at`'s month.
pub fn month_start(at: DateTime<Utc>) -> String {
    let first = NaiveDate::from_ymd_opt(at.year(), at.month(), 1).unwrap_or(at.date_naive());
    timestamp(first.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_and_month_start() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T13:04:05.5+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp(at), "2026-11-28T11:04:05.500Z");
        assert_eq!(month_start(at), "2026-11-01T00:00:00.000Z");
    }
}
