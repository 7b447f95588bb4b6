//! Input rules shared by the resources. Serde already rejects wrong types, unknown
//! fields and unknown enum values (422); these check what types cannot express.

use crate::error::{AppError, Result};

/// A request body that checks (and may normalise) itself before it is used.
pub trait Validate {
    fn validate(&mut self) -> Result<()>;
}

/// Trimmed, non-empty, at most `max_chars` characters, no control characters.
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
}
