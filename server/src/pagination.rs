//! Keyset pagination. A cursor is the last id of the previous page, opaque to clients
//! (`v1:` prefix, base64url): pages stay stable while rows are inserted, and a page costs
//! an index range scan however deep it is.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::AppError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

pub fn encode_cursor(last_id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{last_id}"))
}

pub fn decode_cursor(cursor: &str) -> Result<i64, AppError> {
    let invalid = || {
        AppError::bad_request(
            "invalid_cursor",
            "`cursor` is not a cursor this API returned",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
    let id = text
        .strip_prefix("v1:")
        .ok_or_else(invalid)?
        .parse::<i64>()
        .map_err(|_| invalid())?;
    if id <= 0 {
        return Err(invalid());
    }
    Ok(id)
}

/// The page size asked for, checked against `MAX_LIMIT`.
pub fn checked_limit(limit: Option<u32>) -> Result<u32, AppError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        0 => Err(AppError::bad_request(
            "invalid_limit",
            "`limit` must be at least 1",
        )),
        n if n > MAX_LIMIT => Err(AppError::bad_request(
            "invalid_limit",
            format!("`limit` must be at most {MAX_LIMIT}"),
        )),
        n => Ok(n),
    }
}

/// Splits `limit + 1` fetched rows into a page: the extra row only says another page exists.
pub fn into_page<T>(mut rows: Vec<T>, limit: u32, id_of: impl Fn(&T) -> i64) -> Page<T> {
    let limit = limit as usize;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|row| encode_cursor(id_of(row)))
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        for bad in [
            "",
            "!!",
            "djE6",
            "djE6LTE",
            "eHg6MQ",
            &URL_SAFE_NO_PAD.encode("v1:abc"),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(checked_limit(None).unwrap(), DEFAULT_LIMIT);
        assert!(checked_limit(Some(0)).is_err());
        assert!(checked_limit(Some(MAX_LIMIT + 1)).is_err());
    }

    #[test]
    fn extra_row_makes_a_cursor() {
        let page = into_page(vec![5, 4, 3], 2, |id| *id);
        assert_eq!(page.items, vec![5, 4]);
        assert_eq!(
            page.next_cursor.map(|c| decode_cursor(&c).unwrap()),
            Some(4)
        );
        assert!(into_page(vec![5, 4], 2, |id| *id).next_cursor.is_none());
    }
}
