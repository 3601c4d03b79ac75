//! Sweeps of trees whose entries expire (`once`, `idempotency`, `alert_groups`): at most one
//! every so often across every handle of a tree, and an entry deleted only if it did not
//! change since it was read.

use std::sync::atomic::{AtomicI64, Ordering};

use super::StateError;

/// Whether a sweep is due at `now` (seconds since the epoch), claiming it for this caller:
/// `next` is when it is next due, shared by the tree's handles, and moves `every` seconds on.
pub(super) fn due(next: &AtomicI64, now: i64, every: i64) -> bool {
    let due = next.load(Ordering::Relaxed);
    now >= due
        && next
            .compare_exchange(due, now + every, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Deletes every entry of `tree` whose value `expired` says has expired, unless it changed
/// meanwhile. A scan as long as the tree: callers run it off the runtime's workers, or
/// rarely.
pub(super) fn delete_expired(
    tree: &sled::Tree,
    expired: impl Fn(&[u8]) -> bool,
) -> Result<(), StateError> {
    for entry in tree {
        let (key, value) = entry?;
        if expired(&value) {
            let _ = tree.compare_and_swap(&key, Some(value), None::<&[u8]>)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_is_due_once_per_period_whoever_asks() {
        let next = AtomicI64::new(0);
        assert!(due(&next, 100, 60));
        assert!(!due(&next, 120, 60), "claimed until 160");
        assert!(due(&next, 160, 60));
    }
}
