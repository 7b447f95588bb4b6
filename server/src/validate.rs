//! Input rules shared by the resources. Serde already rejects wrong types, unknown
//! fields and unknown enum values (422); these check what types cannot express.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer};

use crate::error::{AppError, Result};

/// A request body that checks (and may normalise) itself before it is used.
pub trait Validate {
    fn validate(&mut self) -> Result<()>;
}

/// Trimmed, non-empty, at most `max_chars` characters, no control characters. The
/// models state it in the OpenAPI document as a pattern (no C0, DEL or C1 character,
/// one that is not white space); `server/tests/api/schema.rs` holds the two together.
pub fn text_field(field: &str, value: &str, max_chars: usize) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(AppError::validation(format!("`{field}` must not be empty")));
    }
    if trimmed.chars().count() > max_chars {
        return Err(AppError::validation(format!(
            "`{field}` must be at most {max_chars} characters"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(AppError::validation(format!(
            "`{field}` must not contain control characters"
        )));
    }
    Ok(trimmed.to_owned())
}

/// An ISO 4217-shaped code: three uppercase ASCII letters.
pub fn currency(field: &str, value: &str) -> Result<()> {
    if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(AppError::validation(format!(
            "`{field}` must be a three-letter currency code such as \"USD\""
        )))
    }
}

/// Amounts are non-negative cents, at most ten billion (so sums cannot overflow).
pub const MAX_AMOUNT_CENTS: i64 = 1_000_000_000_000;

pub fn amount_cents(field: &str, value: i64) -> Result<()> {
    if value < 0 {
        return Err(AppError::validation(format!(
            "`{field}` must not be negative"
        )));
    }
    if value > MAX_AMOUNT_CENTS {
        return Err(AppError::validation(format!(
            "`{field}` must be at most {MAX_AMOUNT_CENTS}"
        )));
    }
    Ok(())
}

/// Dates are stored and compared as `YYYY-MM-DD` text, which sorts like the dates
/// only while every year has four digits: years 1 to 9999 are accepted, nothing else.
pub const MIN_YEAR: i32 = 1;
pub const MAX_YEAR: i32 = 9999;

fn in_range(date: NaiveDate) -> std::result::Result<NaiveDate, String> {
    if (MIN_YEAR..=MAX_YEAR).contains(&date.year()) {
        Ok(date)
    } else {
        Err(format!(
            "dates must be YYYY-MM-DD with a year from {MIN_YEAR:04} to {MAX_YEAR}, got {date}"
        ))
    }
}

/// A date field (`#[serde(deserialize_with = "validate::date")]`): ISO 8601 within
/// [`MIN_YEAR`]..=[`MAX_YEAR`]. Out of range is a deserialization error, so it is
/// answered like any wrong value (422 in a body, 400 in a query string).
pub fn date<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<NaiveDate, D::Error> {
    in_range(NaiveDate::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

/// [`date`] for an optional field (with `#[serde(default)]`).
pub fn optional_date<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<NaiveDate>, D::Error> {
    Option::<NaiveDate>::deserialize(deserializer)?
        .map(in_range)
        .transpose()
        .map_err(serde::de::Error::custom)
}

/// `date` plus `days`, refused with a 422 naming `field` past [`MAX_YEAR`].
pub fn days_after(field: &str, date: NaiveDate, days: u64) -> Result<NaiveDate> {
    date.checked_add_days(chrono::Days::new(days))
        .and_then(|later| in_range(later).ok())
        .ok_or_else(|| {
            AppError::validation(format!(
                "`{field}` would fall after the year {MAX_YEAR}; give it explicitly"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert_eq!(text_field("f", "  Acme  ", 10).unwrap(), "Acme");
        assert!(text_field("f", "   ", 10).is_err());
        assert!(text_field("f", "abcdefghijk", 10).is_err());
        assert!(text_field("f", "a\u{7}b", 10).is_err());
    }

    #[test]
    fn currency_and_amount_rules() {
        assert!(currency("c", "EUR").is_ok());
        for bad in ["eur", "EURO", "E1R", ""] {
            assert!(currency("c", bad).is_err());
        }
        assert!(amount_cents("a", 0).is_ok());
        assert!(amount_cents("a", -1).is_err());
        assert!(amount_cents("a", MAX_AMOUNT_CENTS + 1).is_err());
    }

    #[derive(serde::Deserialize)]
    struct Dated {
        #[serde(deserialize_with = "date")]
        on: NaiveDate,
        #[serde(default, deserialize_with = "optional_date")]
        maybe: Option<NaiveDate>,
    }

    #[test]
    fn dates_keep_four_digit_years() {
        let parse = |json: &str| serde_json::from_str::<Dated>(json).map(|d| (d.on, d.maybe));
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(
            parse(r#"{"on":"0001-01-01"}"#).unwrap(),
            (day(1, 1, 1), None)
        );
        assert_eq!(
            parse(r#"{"on":"9999-12-31","maybe":null}"#).unwrap(),
            (day(9999, 12, 31), None)
        );
        // Dates chrono reads (a signed or zero year) are refused by the range check…
        for bad in [
            r#"{"on":"+262142-12-31"}"#,
            r#"{"on":"0000-12-31"}"#,
            r#"{"on":"-0001-01-01"}"#,
            r#"{"on":"2026-01-01","maybe":"+10000-01-01"}"#,
        ] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(error.contains("year from 0001 to 9999"), "{bad}: {error}");
        }
        // …and an unsigned five-digit year by chrono itself.
        assert!(parse(r#"{"on":"10000-01-01"}"#).is_err());
        assert_eq!(
            days_after("d", day(2026, 11, 30), 30).unwrap(),
            day(2026, 12, 30)
        );
        assert!(days_after("d", day(9999, 12, 20), 30).is_err());
        assert!(days_after("d", NaiveDate::MAX, 1).is_err());
    }
}
