//! The `once` tree: what may be used once only, for as long as it could be presented at all.
//!
//! - A webhook's signature ([`Use::Webhook`]): Zoom signs each event, and a captured request
//!   stays valid for the 5 minutes its timestamp is accepted. Remembered here rather than in
//!   memory, a replay after a restart is refused too.
//! - An install's `state` ([`Use::Install`]): the cookie of one `/install` allows one code
//!   exchange at Zoom, however often its callback is called.
//!
//! Each entry is the id (a MAC or a hash) under a byte naming its use, holding when its window
//! closes; entries whose window closed are pruned at most once a minute, off the runtime's
//! workers. Nothing is written before the caller has checked what it records: a webhook
//! signature only Zoom can make, or an install cookie this server signed. Anyone may fetch
//! such a cookie at `/install`, so install entries grow as fast as a client can go through
//! `/install` and its callback, one flushed write each, and go 10 minutes later.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use super::{Flusher, StateError, sweep};

/// What an entry is for: its key's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A webhook request's signature.
    Webhook,
    /// An install's `state`.
    Install,
}

impl Use {
    fn byte(self) -> u8 {
        match self {
            Self::Webhook => b'w',
            Self::Install => b'i',
        }
    }
}

/// How often closed windows are pruned, in seconds.
const PRUNE_EVERY: i64 = 60;

/// The `once` tree.
#[derive(Clone)]
pub struct Once {
    tree: sled::Tree,
    flusher: Flusher,
    /// When entries are next pruned (seconds since the epoch), shared by every handle.
    next_prune: Arc<AtomicI64>,
}

impl Once {
    pub(super) fn open(
        db: &sled::Db,
        flusher: &Flusher,
        next_prune: Arc<AtomicI64>,
    ) -> Result<Self, StateError> {
        Ok(Self {
            tree: db.open_tree("once")?,
            flusher: flusher.clone(),
            next_prune,
        })
    }

    /// Records `id` as used for `what` until `until` (seconds since the epoch), durably;
    /// `false` when it was used already and its window is still open at `now`.
    pub async fn first_use(
        &self,
        what: Use,
        id: &[u8],
        until: i64,
        now: i64,
    ) -> Result<bool, StateError> {
        self.prune(now).await?;
        let key = key(what, id);
        let value = until.to_be_bytes();
        let mut expected: Option<sled::IVec> = None;
        loop {
            match self
                .tree
                .compare_and_swap(&key, expected.as_ref(), Some(&value[..]))?
            {
                Ok(()) => break,
                Err(taken) => match taken.current {
                    Some(current) if closes(&current) >= now => return Ok(false),
                    // Its window closed (not pruned yet): this is a new use.
                    current => expected = current,
                },
            }
        }
        if let Err(e) = self.flusher.flush().await {
            // Not durable, so not used: the sender's retry must not be taken for a replay.
            self.tree.remove(&key)?;
            return Err(e);
        }
        Ok(true)
    }

    /// Forgets that `id` was used for `what`: handling it failed on zoomcast's side, and the
    /// sender may try again.
    pub fn forget(&self, what: Use, id: &[u8]) -> Result<(), StateError> {
        self.tree.remove(key(what, id))?;
        Ok(())
    }

    /// Removes the entries whose window closed before `now`, if none was pruned for a minute,
    /// on tokio's blocking pool: the scan is as long as the tree.
    async fn prune(&self, now: i64) -> Result<(), StateError> {
        if !sweep::due(&self.next_prune, now, PRUNE_EVERY) {
            return Ok(());
        }
        let tree = self.tree.clone();
        tokio::task::spawn_blocking(move || {
            sweep::delete_expired(&tree, |value| closes(value) < now)
        })
        .await
        .expect("pruning does not panic")
    }

    /// How many entries are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.tree.len()
    }
}

fn key(what: Use, id: &[u8]) -> Vec<u8> {
    [&[what.byte()][..], id].concat()
}

/// When an entry's window closes; a damaged value counts as closed long ago.
fn closes(value: &[u8]) -> i64 {
    value.try_into().map_or(i64::MIN, i64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Store;

    const NOW: i64 = 1_700_000_000;

    #[tokio::test]
    async fn an_id_is_accepted_once_while_its_window_is_open_and_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let once = store.once().unwrap();
            assert!(
                once.first_use(Use::Webhook, b"aa", NOW + 300, NOW)
                    .await
                    .unwrap()
            );
            assert!(
                !once
                    .first_use(Use::Webhook, b"aa", NOW + 310, NOW + 10)
                    .await
                    .unwrap()
            );
            assert!(
                once.first_use(Use::Webhook, b"bb", NOW + 300, NOW + 10)
                    .await
                    .unwrap()
            );
            // Another use of the same bytes is another entry.
            assert!(
                once.first_use(Use::Install, b"aa", NOW + 600, NOW + 10)
                    .await
                    .unwrap()
            );
        }
        // A restart remembers.
        let store = Store::open(dir.path()).unwrap();
        let once = store.once().unwrap();
        assert!(
            !once
                .first_use(Use::Webhook, b"aa", NOW + 320, NOW + 20)
                .await
                .unwrap()
        );
        // Forgotten (the handling failed), it may be used again.
        once.forget(Use::Webhook, b"aa").unwrap();
        assert!(
            once.first_use(Use::Webhook, b"aa", NOW + 320, NOW + 20)
                .await
                .unwrap()
        );
        // Past its window an id is new again; the closed ones are pruned.
        assert!(
            once.first_use(Use::Webhook, b"bb", NOW + 900, NOW + 400)
                .await
                .unwrap()
        );
        assert_eq!(
            once.len(),
            2,
            "the webhook's aa pruned; bb renewed; the install's aa kept"
        );
    }
}
