//! The `idempotency` tree: the `Idempotency-Key`s of the HTTP API's run requests, each with the
//! run it started, for 24 hours (design section 9). A retried request with the same key for the
//! same job answers with the first run and starts nothing, even after a restart.
//!
//! A key is claimed before its run starts (so two requests racing with one key start one run)
//! and given its run once the run is recorded; a claim whose run never started is released.
//! A claim left without a run by a crash is taken over after [`STALE_CLAIM`]. Entries older
//! than [`KEEP`] are deleted at most once an hour, off the request's path.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::codec::{decode, encode};
use super::{Flusher, RunId, StateError, sweep};

/// How long a key answers with its run.
pub const KEEP: TimeDelta = TimeDelta::hours(24);
/// How long a claim without a run holds off other requests with its key.
pub const STALE_CLAIM: TimeDelta = TimeDelta::minutes(10);
/// The longest `Idempotency-Key` taken, in bytes.
pub const MAX_KEY: usize = 255;

/// What a request's key finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody used it: this request has it now, and starts the run.
    Claimed,
    /// An earlier request started this run with it.
    Started(RunId),
    /// An earlier request with it is starting its run now.
    InProgress,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    at: DateTime<Utc>,
    run: Option<RunId>,
}

/// The `idempotency` tree (job and key to the run).
#[derive(Clone)]
pub struct Idempotency {
    tree: sled::Tree,
    flusher: Flusher,
    /// When old entries are next deleted (seconds since the epoch), shared by every handle.
    next_sweep: Arc<AtomicI64>,
}

impl Idempotency {
    pub(super) fn open(
        db: &sled::Db,
        flusher: &Flusher,
        next_sweep: Arc<AtomicI64>,
    ) -> Result<Self, StateError> {
        Ok(Self {
            tree: db.open_tree("idempotency")?,
            flusher: flusher.clone(),
            next_sweep,
        })
    }

    /// Claims `key` for a run of `job` at `now`, or says who has it.
    pub fn claim(&self, job: &str, key: &str, now: DateTime<Utc>) -> Result<Claim, StateError> {
        self.sweep_if_due(now)?;
        let id = entry_key(job, key);
        let claimed = encode(&Entry { at: now, run: None });
        loop {
            let old = self.tree.get(&id)?;
            if let Some(bytes) = &old {
                let entry: Entry = decode(bytes)?;
                match entry.run {
                    Some(run) if now - entry.at < KEEP => return Ok(Claim::Started(run)),
                    None if now - entry.at < STALE_CLAIM => return Ok(Claim::InProgress),
                    _ => {} // expired, or a claim a crash left: taken over
                }
            }
            let swapped = self
                .tree
                .compare_and_swap(&id, old, Some(claimed.as_slice()))?;
            if swapped.is_ok() {
                return Ok(Claim::Claimed);
            }
        }
    }

    /// Records that the claim of `key` started `run`, durably.
    pub async fn started(&self, job: &str, key: &str, run: RunId) -> Result<(), StateError> {
        let entry = Entry {
            at: Utc::now(),
            run: Some(run),
        };
        self.tree.insert(entry_key(job, key), encode(&entry))?;
        self.flusher.flush().await
    }

    /// Gives up the claim of `key`: its run did not start.
    pub fn release(&self, job: &str, key: &str) -> Result<(), StateError> {
        self.tree.remove(entry_key(job, key))?;
        Ok(())
    }

    /// Deletes entries older than [`KEEP`], at most once an hour.
    fn sweep_if_due(&self, now: DateTime<Utc>) -> Result<(), StateError> {
        if !sweep::due(&self.next_sweep, now.timestamp(), 3600) {
            return Ok(());
        }
        sweep::delete_expired(&self.tree, |value| {
            decode::<Entry>(value).map_or(true, |e| now - e.at >= KEEP)
        })
    }
}

fn entry_key(job: &str, key: &str) -> Vec<u8> {
    let mut id = super::codec::job_key(job);
    id.push(0);
    id.extend_from_slice(key.as_bytes());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_answers_with_its_run_for_a_day_and_a_crashed_claim_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let tree = Idempotency::open(&db, &Flusher::new(&db), Arc::default()).unwrap();
        let now = Utc::now();
        assert_eq!(tree.claim("deploy", "k1", now).unwrap(), Claim::Claimed);
        assert_eq!(tree.claim("deploy", "k1", now).unwrap(), Claim::InProgress);
        // Another job's key of the same text is its own.
        assert_eq!(tree.claim("backup", "k1", now).unwrap(), Claim::Claimed);
        tree.started("deploy", "k1", RunId(7)).await.unwrap();
        let later = now + TimeDelta::hours(23);
        assert_eq!(
            tree.claim("deploy", "k1", later).unwrap(),
            Claim::Started(RunId(7))
        );
        assert_eq!(
            tree.claim("deploy", "k1", now + KEEP + TimeDelta::minutes(1))
                .unwrap(),
            Claim::Claimed
        );
        // A claim whose run never started: released at once, or taken over once stale.
        assert_eq!(tree.claim("deploy", "k2", now).unwrap(), Claim::Claimed);
        tree.release("deploy", "k2").unwrap();
        assert_eq!(tree.claim("deploy", "k2", now).unwrap(), Claim::Claimed);
        let stale = now + STALE_CLAIM + TimeDelta::seconds(1);
        assert_eq!(tree.claim("deploy", "k2", stale).unwrap(), Claim::Claimed);
    }
}
