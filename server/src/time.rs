//! Timestamps as both backends store them: RFC 3339 UTC text with milliseconds and a
//! `Z`, fixed width, so comparing text compares time.

use chrono::{DateTime, SecondsFormat, Utc};

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn now() -> String {
    timestamp(Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T13:04:05.5+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp(at), "2026-11-28T11:04:05.500Z");
    }
}
