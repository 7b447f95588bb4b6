//! The one duration grammar of every input: slo.toml objectives, experiment files and
//! command-line flags alike. `1m` or `1.5s` work everywhere or nowhere.
//!
//! ```text
//! duration := "0" | term+          term := number unit
//! number   := digits ["." digits]  unit := "us" | "µs" | "ms" | "s" | "m" | "min" | "h" | "d"
//! ```
//! e.g. `250us`, `500ms`, `1.5s`, `2m`, `1m30s`, `1h`. No sign: a negative duration is
//! refused with its own message.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("`{0}` is negative; durations start at 0")]
    Negative(String),
    #[error("`{0}` is not a duration; use a number and a unit such as 500ms, 1.5s, 2m or 1m30s")]
    Invalid(String),
    #[error("`{0}` needs a unit (us, ms, s, m or h)")]
    NoUnit(String),
    #[error("`{0}` is too long")]
    TooLong(String),
}

fn unit_seconds(unit: &str) -> Option<f64> {
    match unit {
        "us" | "µs" => Some(1e-6),
        "ms" => Some(1e-3),
        "s" => Some(1.0),
        "m" | "min" => Some(60.0),
        "h" => Some(3600.0),
        "d" => Some(86_400.0),
        _ => None,
    }
}

/// Parses `text` per the grammar above.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err(DurationError::Negative(text.to_owned()));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let invalid = || DurationError::Invalid(text.to_owned());
    if text.is_empty() {
        return Err(invalid());
    }
    let mut seconds = 0.0_f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::NoUnit(text.to_owned()));
        }
        seconds += value * unit_seconds(unit.trim()).ok_or_else(invalid)?;
        rest = next;
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| DurationError::TooLong(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_fractions_and_compounds() {
        let ms = |n| Duration::from_millis(n);
        for (text, want) in [
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("500ms", ms(500)),
            ("1.5s", ms(1500)),
            (" 2s ", ms(2000)),
            ("1m", ms(60_000)),
            ("2min", ms(120_000)),
            ("1m30s", ms(90_000)),
            ("1h", ms(3_600_000)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        assert!(matches!(parse("-1s"), Err(DurationError::Negative(_))));
        assert!(matches!(parse("10"), Err(DurationError::NoUnit(_))));
        for bad in ["", "s", "1x", "1.s", ".5s", "soon", "1s-", "1e3s"] {
            assert!(
                matches!(
                    parse(bad),
                    Err(DurationError::Invalid(_) | DurationError::NoUnit(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            parse("99999999999999999999h"),
            Err(DurationError::TooLong(_))
        ));
    }
}
