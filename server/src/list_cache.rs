//! Invalidation scopes for cached list pages, fine enough that a write throws away only
//! the pages it can change, at a cost per write that does not depend on how many pages
//! are cached.
//!
//! Lists are newest first with keyset cursors (`id < cursor`). Each filter combination a
//! write matches (e.g. an invoice for customer C with status S matches "everything",
//! "customer C", "status S" and "C and S") has two generations:
//! - `head`, embedded in the key of first pages (no cursor);
//! - `rows`, embedded in the key of every later page.
//!
//! A create bumps `head` only: its id is larger than every id already committed, so it
//! can only appear on a first page (pages behind a cursor hold smaller ids). That holds
//! where ids become visible in id order (SQLite: one writer); on PostgreSQL two
//! transactions may commit their ids out of order, so a create bumps `rows` too. An
//! update or delete can touch a row on any page: it bumps both, for the combinations
//! the row matched before and after. Pages of other customers or statuses survive.

use std::collections::BTreeSet;

use crate::cache::{Cache, tenant_scope};

/// What a write did to the rows of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// New rows, with ids above every id already visible.
    Added,
    /// Existing rows changed or disappeared.
    Changed,
}

/// The filter part of a scope: one dimension per list filter, `None` meaning "any".
pub fn filter_key(dimensions: &[Option<&str>]) -> String {
    format!("{dimensions:?}")
}

/// Every filter combination a row with these dimension values matches: each dimension
/// either fixed to the row's value or left open (2^n combinations).
pub fn matching_filters(values: &[&str]) -> Vec<String> {
    let n = values.len();
    (0..1u32 << n)
        .map(|mask| {
            let dims: Vec<Option<&str>> = values
                .iter()
                .enumerate()
                .map(|(i, value)| (mask & (1 << i) != 0).then_some(*value))
                .collect();
            filter_key(&dims)
        })
        .collect()
}

/// The scope a page's key embeds the generation of.
pub fn page_scope(tenant_id: i64, list: &str, filter: &str, first_page: bool) -> String {
    let part = if first_page { "head" } else { "rows" };
    tenant_scope(tenant_id, &format!("{list}:{filter}:{part}"))
}

/// The scope of one row's cached `GET /api/{list}/{id}` body.
pub fn item_scope(tenant_id: i64, list: &str, id: i64) -> String {
    tenant_scope(tenant_id, &format!("{list}:item:{id}"))
}

/// What a committed write changed in one list: the filter combinations its rows match
/// (before and after) and the ids of rows that existed before it.
pub struct Written {
    pub filters: BTreeSet<String>,
    pub ids: Vec<i64>,
    pub change: Change,
}

/// After a committed write: makes unreachable every page it may have changed, the
/// cached bodies of the rows it changed (a create changes none: its ids were never
/// served), and the tenant's dashboard. `ids_in_commit_order`: new ids become visible
/// in increasing order (one writer), so creates spare later pages.
pub async fn invalidate(
    cache: &dyn Cache,
    tenant_id: i64,
    list: &str,
    written: Written,
    ids_in_commit_order: bool,
) {
    let later_pages_too = written.change == Change::Changed || !ids_in_commit_order;
    let mut scopes = Vec::with_capacity(2 * written.filters.len() + written.ids.len() + 1);
    for filter in &written.filters {
        scopes.push(page_scope(tenant_id, list, filter, true));
        if later_pages_too {
            scopes.push(page_scope(tenant_id, list, filter, false));
        }
    }
    if written.change == Change::Changed {
        for id in written.ids {
            scopes.push(item_scope(tenant_id, list, id));
        }
    }
    scopes.push(tenant_scope(tenant_id, "dashboard"));
    cache.invalidate_scopes(&scopes).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_matches_every_mix_of_its_values_and_open_filters() {
        let filters = matching_filters(&["ACME", "sent"]);
        assert_eq!(filters.len(), 4);
        assert!(filters.contains(&filter_key(&[None, None])));
        assert!(filters.contains(&filter_key(&[Some("ACME"), None])));
        assert!(filters.contains(&filter_key(&[None, Some("sent")])));
        assert!(filters.contains(&filter_key(&[Some("ACME"), Some("sent")])));
        // Quoting keeps values apart that plain concatenation would confuse.
        assert_ne!(
            filter_key(&[Some("a\", Some(\"b"), None]),
            filter_key(&[Some("a"), Some("b")])
        );
    }
}
