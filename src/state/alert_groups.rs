//! The `alert_groups` tree: per job and Alertmanager `groupKey`, the run that sent the group's
//! messages and whether its last notification resolved it (design section 9). A later
//! notification of an open group edits that run's messages; after a resolution, the next
//! firing one starts a new run. Groups silent for [`FORGET_AFTER`] are deleted (Alertmanager
//! repeats an open group's notification every `repeat_interval`, 4 hours by default), at most
//! once an hour.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::codec::{decode, encode};
use super::{Flusher, RunId, StateError, sweep};

/// How long a group is remembered after its last notification.
pub const FORGET_AFTER: TimeDelta = TimeDelta::days(30);

/// One group's run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertGroup {
    /// The run that sent its messages.
    pub run: RunId,
    /// Whether its last notification resolved it.
    pub resolved: bool,
    /// When its last notification arrived.
    pub at: DateTime<Utc>,
}

/// The `alert_groups` tree.
#[derive(Clone)]
pub struct AlertGroups {
    tree: sled::Tree,
    flusher: Flusher,
    next_sweep: Arc<AtomicI64>,
}

impl AlertGroups {
    pub(super) fn open(
        db: &sled::Db,
        flusher: &Flusher,
        next_sweep: Arc<AtomicI64>,
    ) -> Result<Self, StateError> {
        Ok(Self {
            tree: db.open_tree("alert_groups")?,
            flusher: flusher.clone(),
            next_sweep,
        })
    }

    /// The group `group_key` of `job`, if remembered.
    pub fn get(&self, job: &str, group_key: &str) -> Result<Option<AlertGroup>, StateError> {
        match self.tree.get(key(job, group_key))? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Records the group's run and state, durably.
    pub async fn set(
        &self,
        job: &str,
        group_key: &str,
        group: &AlertGroup,
    ) -> Result<(), StateError> {
        self.tree.insert(key(job, group_key), encode(group))?;
        self.sweep_if_due(group.at)?;
        self.flusher.flush().await
    }

    /// Deletes groups silent for [`FORGET_AFTER`], at most once an hour.
    fn sweep_if_due(&self, now: DateTime<Utc>) -> Result<(), StateError> {
        if !sweep::due(&self.next_sweep, now.timestamp(), 3600) {
            return Ok(());
        }
        sweep::delete_expired(&self.tree, |value| {
            decode::<AlertGroup>(value).map_or(true, |g| now - g.at >= FORGET_AFTER)
        })
    }
}

fn key(job: &str, group_key: &str) -> Vec<u8> {
    let mut key = super::codec::job_key(job);
    key.push(0);
    key.extend_from_slice(group_key.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn a_group_remembers_its_run_until_it_has_been_silent_a_month() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let groups = AlertGroups::open(&db, &Flusher::new(&db), Arc::default()).unwrap();
        let now = Utc::now();
        let open = AlertGroup {
            run: RunId(4),
            resolved: false,
            at: now - FORGET_AFTER - TimeDelta::hours(1),
        };
        groups.set("oncall", "{}:{a=\"1\"}", &open).await.unwrap();
        assert_eq!(groups.get("oncall", "{}:{a=\"1\"}").unwrap(), Some(open));
        assert_eq!(groups.get("other", "{}:{a=\"1\"}").unwrap(), None);
        // A later notification of another group sweeps the silent one.
        groups.next_sweep.store(0, Ordering::Relaxed);
        let fresh = AlertGroup {
            run: RunId(5),
            resolved: true,
            at: now,
        };
        groups.set("oncall", "{}:{a=\"2\"}", &fresh).await.unwrap();
        assert_eq!(groups.get("oncall", "{}:{a=\"1\"}").unwrap(), None);
        assert_eq!(groups.get("oncall", "{}:{a=\"2\"}").unwrap(), Some(fresh));
    }
}
