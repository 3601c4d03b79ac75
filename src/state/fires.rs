//! The `schedule` tree: for each job, the newest schedule tick the scheduler has dealt with
//! (run, queued to run, or skipped with a logged reason). After a restart, the ticks between it
//! and now are the ones missed while down.

use chrono::{DateTime, Utc};

use super::codec::{self, encode};
use super::{Flusher, StateError};

/// The `schedule` tree.
#[derive(Clone)]
pub struct Fires {
    tree: sled::Tree,
    flusher: Flusher,
}

impl Fires {
    pub(super) fn open(db: &sled::Db, flusher: &Flusher) -> Result<Self, StateError> {
        Ok(Self {
            tree: db.open_tree("schedule")?,
            flusher: flusher.clone(),
        })
    }

    /// The newest tick of `job` dealt with, if the scheduler has seen the job before.
    pub fn last(&self, job: &str) -> Result<Option<DateTime<Utc>>, StateError> {
        codec::get(&self.tree, key(job))
    }

    /// Records that `job`'s ticks up to `tick` are dealt with, durably. Never moves backwards.
    pub fn set(&self, job: &str, tick: DateTime<Utc>) -> Result<(), StateError> {
        if self.last(job)?.is_some_and(|last| last >= tick) {
            return Ok(());
        }
        self.tree.insert(key(job), encode(&tick))?;
        self.flusher.flush_blocking()?;
        Ok(())
    }
}

fn key(job: &str) -> Vec<u8> {
    codec::job_key(job)
}
