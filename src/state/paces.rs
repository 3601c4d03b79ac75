//! The `paces` tree: for each account and endpoint, the request rate a limiter last measured
//! against Zoom's limit, so that the next process starts at that pace. Without it, every
//! process finds the limit again with a burst of 429s, and one started just after another used
//! up Zoom's second measures almost nothing and crawls back from there.
//!
//! A pace is a hint, not a record: it is not flushed on its own, and one older than
//! [`PACE_TTL`] is ignored, since the account's other traffic changes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::StateError;
use super::codec::{self, KEY_FORMAT, encode};

/// How long a remembered pace is used.
pub const PACE_TTL: Duration = Duration::from_secs(24 * 3600);

/// One remembered pace.
#[derive(Debug, Serialize, Deserialize)]
struct Pace {
    per_second: f64,
    /// Seconds since the Unix epoch.
    measured_at: u64,
}

/// The `paces` tree.
#[derive(Debug, Clone)]
pub struct Paces {
    tree: sled::Tree,
}

impl Paces {
    pub(super) fn open(db: &sled::Db) -> Result<Self, StateError> {
        Ok(Self {
            tree: db.open_tree("paces")?,
        })
    }

    /// The pace remembered for `account`'s `endpoint`, unless it is older than [`PACE_TTL`].
    pub fn recall(&self, account: &str, endpoint: &str) -> Result<Option<f64>, StateError> {
        self.recall_at(account, endpoint, SystemTime::now())
    }

    /// Remembers `per_second` for `account`'s `endpoint`, measured now. A rate that is not a
    /// positive number is not stored.
    pub fn remember(
        &self,
        account: &str,
        endpoint: &str,
        per_second: f64,
    ) -> Result<(), StateError> {
        self.remember_at(account, endpoint, per_second, SystemTime::now())
    }

    fn recall_at(
        &self,
        account: &str,
        endpoint: &str,
        now: SystemTime,
    ) -> Result<Option<f64>, StateError> {
        let Some(pace) = codec::get::<Pace>(&self.tree, key(account, endpoint))? else {
            return Ok(None);
        };
        let age = unix_seconds(now).saturating_sub(pace.measured_at);
        Ok((usable(pace.per_second) && age < PACE_TTL.as_secs()).then_some(pace.per_second))
    }

    fn remember_at(
        &self,
        account: &str,
        endpoint: &str,
        per_second: f64,
        now: SystemTime,
    ) -> Result<(), StateError> {
        if !usable(per_second) {
            return Ok(());
        }
        let pace = Pace {
            per_second,
            measured_at: unix_seconds(now),
        };
        self.tree.insert(key(account, endpoint), encode(&pace))?;
        Ok(())
    }
}

/// Whether `per_second` is a rate at all (a positive number).
fn usable(per_second: f64) -> bool {
    per_second.is_finite() && per_second > 0.0
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `KEY_FORMAT`, the account, a NUL, then the endpoint's name.
fn key(account: &str, endpoint: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(account.len() + endpoint.len() + 2);
    key.push(KEY_FORMAT);
    key.extend_from_slice(account.as_bytes());
    key.push(0);
    key.extend_from_slice(endpoint.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paces() -> Paces {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Paces::open(&db).unwrap()
    }

    #[test]
    fn a_pace_is_recalled_per_app_and_endpoint_until_it_is_a_day_old() {
        let paces = paces();
        let then = SystemTime::now();
        paces.remember_at("a", "chat", 23.75, then).unwrap();
        paces.remember_at("a", "users", 9.5, then).unwrap();
        assert_eq!(paces.recall_at("a", "chat", then).unwrap(), Some(23.75));
        assert_eq!(paces.recall_at("a", "users", then).unwrap(), Some(9.5));
        assert_eq!(
            paces.recall_at("b", "chat", then).unwrap(),
            None,
            "another app"
        );
        let almost = then + PACE_TTL - Duration::from_secs(1);
        assert_eq!(paces.recall_at("a", "chat", almost).unwrap(), Some(23.75));
        assert_eq!(
            paces.recall_at("a", "chat", then + PACE_TTL).unwrap(),
            None,
            "a day old: the account's traffic may have changed"
        );
        paces
            .remember_at("a", "chat", 30.0, then + PACE_TTL)
            .unwrap();
        assert_eq!(
            paces.recall_at("a", "chat", then + PACE_TTL).unwrap(),
            Some(30.0),
            "a new measurement replaces the old"
        );
    }

    #[test]
    fn a_damaged_pace_is_an_error_and_a_nonsense_one_is_ignored() {
        let paces = paces();
        paces
            .tree
            .insert(key("a", "chat"), b"\x01{".to_vec())
            .unwrap();
        assert!(paces.recall("a", "chat").is_err());
        let zero = encode(&Pace {
            per_second: 0.0,
            measured_at: unix_seconds(SystemTime::now()),
        });
        paces.tree.insert(key("a", "chat"), zero).unwrap();
        assert_eq!(paces.recall("a", "chat").unwrap(), None);
        paces.remember("a", "users", f64::NAN).unwrap();
        assert_eq!(paces.recall("a", "users").unwrap(), None, "never stored");
    }
}
