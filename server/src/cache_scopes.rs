//! Scope generations the L1 checks without a lookup of its own: every cached entry holds
//! its scope's [`ScopeCell`] and the generation it was built at, so a read is one map
//! lookup plus one atomic load, and an invalidation bumps the cell every entry of the
//! scope shares.
//!
//! The table maps a scope's name to its cell *weakly*: a cell lives exactly as long as
//! an entry (or a load in progress) holds it, and while it lives the table finds it, so
//! an invalidation always reaches every entry of the scope. The old design (generations
//! in a second cache, embedded in every key) cost a second lookup and a key `format!`
//! on every read; with cells, an invalidation of a scope nothing is cached under costs
//! one lookup and stores nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// The table is swept of dead cells once it grows past this, and then past twice the
/// cells that were alive at the last sweep: amortised O(1) per new cell.
const FIRST_SWEEP_AT: usize = 1024;

/// One scope's current generation.
#[derive(Debug, Default)]
pub struct ScopeCell {
    generation: AtomicU64,
}

impl ScopeCell {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Cells {
    by_scope: HashMap<String, Weak<ScopeCell>, foldhash::fast::RandomState>,
    sweep_at: usize,
}

/// The cells of every scope something is cached under.
#[derive(Default)]
pub struct Scopes {
    cells: Mutex<Cells>,
}

impl Scopes {
    fn lock(&self) -> MutexGuard<'_, Cells> {
        // Every update below leaves the map consistent, so a poisoned lock is usable.
        self.cells
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live cell of `scope`, created if nothing holds one.
    pub fn cell(&self, scope: &str) -> Arc<ScopeCell> {
        let mut cells = self.lock();
        if let Some(cell) = cells.by_scope.get(scope).and_then(Weak::upgrade) {
            return cell;
        }
        let cell = Arc::new(ScopeCell::default());
        cells
            .by_scope
            .insert(scope.to_owned(), Arc::downgrade(&cell));
        if cells.by_scope.len() >= cells.sweep_at.max(FIRST_SWEEP_AT) {
            cells.by_scope.retain(|_, cell| cell.strong_count() > 0);
            cells.sweep_at = 2 * cells.by_scope.len();
        }
        cell
    }

    /// Makes every entry held under each of `scopes` stale.
    pub fn invalidate(&self, scopes: &[String]) {
        let mut cells = self.lock();
        for scope in scopes {
            match cells.by_scope.get(scope.as_str()).map(Weak::upgrade) {
                Some(Some(cell)) => cell.bump(),
                Some(None) => {
                    cells.by_scope.remove(scope.as_str());
                }
                None => {}
            }
        }
    }

    /// Scopes in the table, dead ones not yet swept included (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().by_scope.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalidation_reaches_every_holder_of_the_scope_and_no_other() {
        let scopes = Scopes::default();
        let (a1, a2, b) = (scopes.cell("a"), scopes.cell("a"), scopes.cell("b"));
        assert!(Arc::ptr_eq(&a1, &a2), "one live cell per scope");
        let (a_before, b_before) = (a1.generation(), b.generation());
        scopes.invalidate(&["a".to_owned()]);
        assert_ne!(a1.generation(), a_before);
        assert_eq!(a2.generation(), a1.generation());
        assert_eq!(b.generation(), b_before);
    }

    #[test]
    fn a_cell_nothing_holds_is_forgotten_and_invalidating_its_scope_stores_nothing() {
        let scopes = Scopes::default();
        drop(scopes.cell("gone"));
        scopes.invalidate(&["gone".to_owned(), "never-seen".to_owned()]);
        assert_eq!(scopes.len(), 0);
    }

    #[test]
    fn dead_cells_are_swept_as_the_table_grows_and_live_ones_kept() {
        let scopes = Scopes::default();
        let kept: Vec<_> = (0..10).map(|i| scopes.cell(&format!("kept{i}"))).collect();
        for i in 0..10 * FIRST_SWEEP_AT {
            drop(scopes.cell(&format!("dropped{i}")));
        }
        assert!(
            scopes.len() <= 2 * FIRST_SWEEP_AT,
            "{} cells kept for 10 live ones",
            scopes.len()
        );
        let before = kept[3].generation();
        scopes.invalidate(&["kept3".to_owned()]);
        assert_ne!(
            kept[3].generation(),
            before,
            "a live cell survived the sweeps"
        );
    }
}
