//! The `jids` tree: per account, email to Zoom user (JID and names) with the time it was
//! fetched, and misses (Zoom said 1001) with Zoom's answer, so a daily job does not look the
//! same people up every day. Keys are the account, a zero byte, then the email. Entries expire by the reader's time-to-live; misses get a shorter one.
//!
//! Expired entries are deleted by [`Jids::sweep_if_due`], which a finished run calls: at most
//! once a day, it deletes every answer older than the caller's horizon. Without it, a job whose
//! recipients change would grow the tree by every address it ever looked up. A sweep reads at
//! most [`SWEEP_CHUNK`] entries; a larger cache is swept over several runs, each going on where
//! the last stopped. The time of the last sweep, and where a sweep in progress stopped, are
//! kept under keys no email can have (they start with a zero byte).

use std::ops::Bound;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::StateError;
use super::codec::{self, encode};
use crate::user::ZoomUser;

/// What Zoom said about an email, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLookup {
    /// The user, or `None` for a miss.
    pub user: Option<ZoomUser>,
    /// For a miss: Zoom's code.
    pub code: Option<i64>,
    /// For a miss: Zoom's message.
    pub message: String,
    /// When Zoom answered.
    pub fetched_at: DateTime<Utc>,
}

/// How long cached answers stay good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheTtl {
    /// For found users.
    pub hit: TimeDelta,
    /// For unknown emails.
    pub miss: TimeDelta,
}

/// How often [`Jids::sweep_if_due`] scans the tree.
pub const SWEEP_EVERY: TimeDelta = TimeDelta::days(1);

/// The key of the last sweep's time: no email starts with a zero byte.
const SWEPT_KEY: &[u8] = b"\0swept";

/// The key of the last email a sweep in progress read.
const CURSOR_KEY: &[u8] = b"\0sweep-cursor";

/// The most entries one sweep reads: a sweep runs at the end of a run, and reading a whole
/// large cache there would raise that run's peak memory with the cache's size.
pub const SWEEP_CHUNK: usize = 10_000;

/// The `jids` tree.
#[derive(Clone)]
pub struct Jids {
    tree: sled::Tree,
}

impl Jids {
    pub(super) fn open(db: &sled::Db) -> Result<Self, StateError> {
        Ok(Self {
            tree: db.open_tree("jids")?,
        })
    }

    /// The answers for one account: the same email is another user (or nobody) elsewhere.
    pub fn of(&self, account: &str) -> AccountJids<'_> {
        AccountJids {
            tree: &self.tree,
            prefix: prefix(account),
        }
    }

    /// Deletes every answer cached for `account`, and those of earlier releases, which kept no
    /// account (then an app had one); how many there were. Not flushed.
    pub fn forget_account(&self, account: &str) -> Result<usize, StateError> {
        let mut deleted = 0;
        for key in self.tree.scan_prefix(prefix(account)).keys() {
            self.tree.remove(key?)?;
            deleted += 1;
        }
        // An earlier release's key is a bare email: no zero byte in it, none before it.
        for key in self.tree.range(&[1u8][..]..).keys() {
            let key = key?;
            if !key.contains(&0) {
                self.tree.remove(key)?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Unless the tree was swept less than [`SWEEP_EVERY`] before `now`: reads the next
    /// [`SWEEP_CHUNK`] entries, deletes every answer among them fetched `horizon` or longer
    /// before `now`, and answers how many. The sweep is done once it read the last entry;
    /// until then it stays due, and the next call goes on after the last entry this one read.
    /// Reads from disk, so it blocks; not flushed (a crash only leaves work for the next one).
    pub fn sweep_if_due(
        &self,
        now: DateTime<Utc>,
        horizon: TimeDelta,
    ) -> Result<Option<usize>, StateError> {
        self.sweep_chunk_if_due(now, horizon, SWEEP_CHUNK)
    }

    /// [`Jids::sweep_if_due`], reading at most `chunk` (at least 1) entries.
    fn sweep_chunk_if_due(
        &self,
        now: DateTime<Utc>,
        horizon: TimeDelta,
        chunk: usize,
    ) -> Result<Option<usize>, StateError> {
        let swept: Option<DateTime<Utc>> = codec::get(&self.tree, SWEPT_KEY)?;
        if swept.is_some_and(|at| now - at < SWEEP_EVERY) {
            return Ok(None);
        }
        // Emails sort after the bookkeeping keys, which start with a zero byte.
        let mut entries = match self.tree.get(CURSOR_KEY)? {
            Some(after) => self.tree.range((Bound::Excluded(after), Bound::Unbounded)),
            None => self.tree.range(sled::IVec::from(&[1u8])..),
        };
        let (mut deleted, mut last) = (0, None);
        for entry in entries.by_ref().take(chunk.max(1)) {
            let (email, bytes) = entry?;
            last = Some(email.clone());
            let cached: CachedLookup = codec::decode(&bytes)?;
            // Only if nobody refreshed it meanwhile: another run may be looking it up now.
            if now - cached.fetched_at >= horizon
                && self
                    .tree
                    .compare_and_swap(&email, Some(bytes), None as Option<&[u8]>)?
                    .is_ok()
            {
                deleted += 1;
            }
        }
        if let (Some(_), Some(last)) = (entries.next(), last) {
            // More to read: the next sweep goes on from here.
            self.tree.insert(CURSOR_KEY, last)?;
        } else {
            self.tree.remove(CURSOR_KEY)?;
            self.tree.insert(SWEPT_KEY, encode(&now))?;
        }
        Ok(Some(deleted))
    }
}

/// The account's part of the key: the account id and a zero byte (an empty id, which no
/// grant has, is written `_`, so that no key starts with the bookkeeping's zero byte).
fn prefix(account: &str) -> Vec<u8> {
    let mut prefix = if account.is_empty() { "_" } else { account }
        .as_bytes()
        .to_vec();
    prefix.push(0);
    prefix
}

/// The cached answers of one account ([`Jids::of`]).
pub struct AccountJids<'a> {
    tree: &'a sled::Tree,
    prefix: Vec<u8>,
}

impl AccountJids<'_> {
    fn key(&self, email: &str) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.extend_from_slice(email.as_bytes());
        key
    }

    /// The cached answer for `email`, if it is younger than its time-to-live at `now`.
    pub fn get(
        &self,
        email: &str,
        ttl: CacheTtl,
        now: DateTime<Utc>,
    ) -> Result<Option<CachedLookup>, StateError> {
        let Some(cached): Option<CachedLookup> = codec::get(self.tree, self.key(email))? else {
            return Ok(None);
        };
        let life = if cached.user.is_some() {
            ttl.hit
        } else {
            ttl.miss
        };
        Ok((now - cached.fetched_at < life).then_some(cached))
    }

    /// Caches Zoom's answer for `email` (not flushed: losing it costs one lookup).
    pub fn put(&self, email: &str, answer: &CachedLookup) -> Result<(), StateError> {
        self.tree.insert(self.key(email), encode(answer))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_and_misses_expire_by_their_own_ttl() {
        let jids = empty_cache();
        let t0 = Utc::now();
        let user = ZoomUser {
            id: "u".into(),
            email: "a@x.io".into(),
            jid: "u@xmpp.zoom.us".into(),
            account_id: "acc".into(),
            first_name: "A".into(),
            ..ZoomUser::default()
        };
        jids.of("acct")
            .put(
                "a@x.io",
                &CachedLookup {
                    user: Some(user),
                    code: None,
                    message: String::new(),
                    fetched_at: t0,
                },
            )
            .unwrap();
        jids.of("acct").put("ghost@x.io", &miss(t0)).unwrap();
        let ttl = CacheTtl {
            hit: TimeDelta::days(7),
            miss: TimeDelta::hours(1),
        };
        let later = t0 + TimeDelta::hours(2);
        assert!(jids.of("acct").get("a@x.io", ttl, later).unwrap().is_some());
        assert!(
            jids.of("acct")
                .get("ghost@x.io", ttl, later)
                .unwrap()
                .is_none(),
            "the miss expired"
        );
        assert_eq!(
            jids.of("acct")
                .get("ghost@x.io", ttl, t0)
                .unwrap()
                .unwrap()
                .code,
            Some(1001)
        );
        assert!(
            jids.of("acct")
                .get("a@x.io", ttl, t0 + TimeDelta::days(8))
                .unwrap()
                .is_none()
        );
        assert!(
            jids.of("acct")
                .get("nobody@x.io", ttl, t0)
                .unwrap()
                .is_none()
        );
    }

    /// An empty cache in a temporary database (the tree keeps the database open).
    fn empty_cache() -> Jids {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Jids::open(&db).unwrap()
    }

    /// Zoom's answer for an unknown email, fetched at `fetched_at`.
    fn miss(fetched_at: DateTime<Utc>) -> CachedLookup {
        CachedLookup {
            user: None,
            code: Some(1001),
            message: "User does not exist".into(),
            fetched_at,
        }
    }

    #[test]
    fn a_sweep_deletes_answers_past_the_horizon_at_most_once_a_day() {
        let jids = empty_cache();
        let t0 = Utc::now();
        let ttl = CacheTtl {
            hit: TimeDelta::days(400),
            miss: TimeDelta::days(400),
        };
        jids.of("acct")
            .put("old@x.io", &miss(t0 - TimeDelta::days(31)))
            .unwrap();
        jids.of("acct")
            .put("new@x.io", &miss(t0 - TimeDelta::days(29)))
            .unwrap();
        let horizon = TimeDelta::days(30);
        assert_eq!(jids.sweep_if_due(t0, horizon).unwrap(), Some(1));
        assert!(jids.of("acct").get("old@x.io", ttl, t0).unwrap().is_none());
        assert!(jids.of("acct").get("new@x.io", ttl, t0).unwrap().is_some());

        // Swept an hour ago: not due, even though "new" is now past the horizon.
        let later = t0 + TimeDelta::days(2);
        assert_eq!(
            jids.sweep_if_due(t0 + TimeDelta::hours(1), horizon)
                .unwrap(),
            None
        );
        assert!(
            jids.of("acct")
                .get("new@x.io", ttl, later)
                .unwrap()
                .is_some()
        );
        assert_eq!(jids.sweep_if_due(later, horizon).unwrap(), Some(1));
        assert!(
            jids.of("acct")
                .get("new@x.io", ttl, later)
                .unwrap()
                .is_none()
        );
        // The sweep's own record is no cache entry.
        assert_eq!(jids.tree.len(), 1);
    }

    #[test]
    fn a_large_cache_is_swept_a_chunk_at_a_time_each_going_on_where_the_last_stopped() {
        let jids = empty_cache();
        let t0 = Utc::now();
        for i in 0..25 {
            let age = if i % 5 == 0 { 29 } else { 31 };
            jids.of("acct")
                .put(&format!("p{i:02}@x.io"), &miss(t0 - TimeDelta::days(age)))
                .unwrap();
        }
        let horizon = TimeDelta::days(30);
        let sweeps: Vec<_> = (0..4)
            .map(|_| jids.sweep_chunk_if_due(t0, horizon, 10).unwrap())
            .collect();
        // 10 read, 8 old; 10 read, 8 old; the last 5, 4 old; then done for the day.
        assert_eq!(sweeps, [Some(8), Some(8), Some(4), None]);
        let left: Vec<String> = jids
            .tree
            .iter()
            .keys()
            .map(|k| String::from_utf8(k.unwrap().to_vec()).unwrap())
            .filter(|k| !k.starts_with('\0'))
            .map(|k| k.trim_start_matches("acct\0").to_owned())
            .collect();
        assert_eq!(
            left,
            ["p00@x.io", "p05@x.io", "p10@x.io", "p15@x.io", "p20@x.io"]
        );
        assert!(
            jids.tree.get(CURSOR_KEY).unwrap().is_none(),
            "the sweep ended"
        );
    }

    #[test]
    fn each_account_has_its_own_answers_and_forgetting_one_keeps_the_others() {
        let jids = empty_cache();
        let t0 = Utc::now();
        let ttl = CacheTtl {
            hit: TimeDelta::days(7),
            miss: TimeDelta::days(7),
        };
        jids.of("a1").put("x@x.io", &miss(t0)).unwrap();
        jids.of("a2").put("y@x.io", &miss(t0)).unwrap();
        // An answer an earlier release cached, keyed by the bare email.
        jids.tree.insert("z@x.io", encode(&miss(t0))).unwrap();
        assert!(jids.of("a1").get("x@x.io", ttl, t0).unwrap().is_some());
        assert!(
            jids.of("a2").get("x@x.io", ttl, t0).unwrap().is_none(),
            "another account's answer is not this one's"
        );
        jids.sweep_chunk_if_due(t0, TimeDelta::days(30), 10)
            .unwrap();
        assert_eq!(
            jids.forget_account("a1").unwrap(),
            2,
            "its own and the legacy one"
        );
        assert!(jids.of("a1").get("x@x.io", ttl, t0).unwrap().is_none());
        assert!(jids.of("a2").get("y@x.io", ttl, t0).unwrap().is_some());
        assert!(
            jids.tree.get(SWEPT_KEY).unwrap().is_some(),
            "bookkeeping stays"
        );
    }
}
