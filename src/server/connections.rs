//! The connections open at once, bounded without letting idle ones lock anyone out.
//!
//! A connection is admitted as soon as it is accepted, with no serving slot: it takes one only
//! once its request head has arrived (see [`super::Server`]), within the header deadline. At
//! most `max` are open at once; when one more arrives, the oldest connection not yet served
//! (waiting for its head, or with its head waiting for a slot) is closed to make room (a
//! client that opens connections and sends nothing only pushes out its own). Only when every
//! open connection is being served is the new one refused.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

/// The open connections.
#[derive(Default)]
pub struct Connections {
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next: u64,
    count: usize,
    /// The connections not yet served (waiting for their request head, or for a serving
    /// slot), oldest first, each with the token that closes it.
    waiting: BTreeMap<u64, CancellationToken>,
}

/// One admitted connection; dropping it says the connection closed.
pub struct Admitted {
    connections: Arc<Connections>,
    id: u64,
    /// Cancelled when the connection is closed to make room.
    pub evicted: CancellationToken,
}

impl Connections {
    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a new connection, closing the oldest one still waiting for its head if `max`
    /// are open; `None` when all `max` are being served.
    pub fn admit(self: &Arc<Self>, max: usize) -> Option<Admitted> {
        let mut open = self.open();
        if open.count >= max {
            let (_, oldest) = open.waiting.pop_first()?;
            oldest.cancel();
            open.count = open.count.saturating_sub(1);
        }
        let id = open.next;
        open.next += 1;
        open.count += 1;
        let evicted = CancellationToken::new();
        open.waiting.insert(id, evicted.clone());
        Some(Admitted {
            connections: self.clone(),
            id,
            evicted,
        })
    }

    /// How many connections are open.
    #[cfg(test)]
    fn count(&self) -> usize {
        self.open().count
    }
}

impl Admitted {
    /// The connection's request head arrived and it holds a serving slot: it can no longer be
    /// closed to make room.
    pub fn being_served(&self) {
        self.connections.open().waiting.remove(&self.id);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        // Under the lock: eviction cancels under it too, so the two cannot both uncount.
        let mut open = self.connections.open();
        if self.evicted.is_cancelled() {
            return; // already uncounted when it was closed to make room
        }
        open.waiting.remove(&self.id);
        open.count = open.count.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_limit_the_oldest_idle_connection_makes_room_and_busy_ones_never_do() {
        let connections = Arc::new(Connections::default());
        let first = connections.admit(2).unwrap();
        let second = connections.admit(2).unwrap();
        let third = connections.admit(2).unwrap();
        assert!(first.evicted.is_cancelled(), "the oldest waiting one");
        assert!(!second.evicted.is_cancelled());
        assert_eq!(connections.count(), 2);
        drop(first);
        assert_eq!(
            connections.count(),
            2,
            "an evicted connection is uncounted once"
        );
        second.being_served();
        third.being_served();
        assert!(
            connections.admit(2).is_none(),
            "every open one is being served"
        );
        drop(second);
        let fourth = connections.admit(2).unwrap();
        assert!(!third.evicted.is_cancelled());
        assert_eq!(connections.count(), 2);
        drop((third, fourth));
        assert_eq!(connections.count(), 0);
    }
}
