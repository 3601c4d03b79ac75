//! The `runs` tree: one record per run of a job (id, job, times, status, counts).

use std::fmt;
use std::str::FromStr;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::codec::{self, decode, encode};
use super::{Flusher, StateError};

/// A run's id: increasing across restarts, so runs list in the order they started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub u64);

impl RunId {
    /// The big-endian key, which sorts like the number.
    pub fn key(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// The id a key starts with (the inverse of [`RunId::key`]).
    pub fn from_key(key: &[u8]) -> Self {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&key[..8]);
        Self(u64::from_be_bytes(bytes))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for RunId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(RunId)
    }
}

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum RunStatus {
    /// Started and not finished. Only one process uses a state directory, so whoever reads a
    /// `Running` record from another process sees a run that was interrupted.
    Running,
    /// Every recipient was delivered.
    Succeeded,
    /// Finished, with some recipients failed or uncertain.
    PartlyFailed,
    /// Stopped before the end: the reason says why.
    Aborted(String),
    /// Stopped for good, never resumed: the account removed the app (deauthorization), and
    /// the run's per-recipient details were deleted with its data.
    Closed(String),
}

impl RunStatus {
    /// Whether a run in this state is resumed by the next run of its job.
    pub fn is_unfinished(&self) -> bool {
        matches!(self, Self::Running | Self::Aborted(_))
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Running => f.write_str("interrupted"),
            Self::Succeeded => f.write_str("succeeded"),
            Self::PartlyFailed => f.write_str("partly failed"),
            Self::Aborted(_) => f.write_str("aborted"),
            Self::Closed(_) => f.write_str("closed"),
        }
    }
}

/// How many recipients ended where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Recipients in the run (after de-duplication).
    pub total: u64,
    /// Delivered.
    pub sent: u64,
    /// Failed permanently.
    pub failed: u64,
    /// Outcome unknown (a crash hid it).
    pub uncertain: u64,
    /// Not sent: they told the bot `stop` (absent in runs of earlier releases).
    #[serde(default)]
    pub opted_out: u64,
}

/// A run's requests Zoom answered 429, per endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimited {
    /// Lookups (Users API).
    pub users: u64,
    /// Sends (Chatbot API).
    pub chat: u64,
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub id: RunId,
    /// The job's name.
    pub job: String,
    /// The app that sent.
    pub app: String,
    /// The account it sent in; `None` for runs of releases that did not record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished, if it did.
    pub finished_at: Option<DateTime<Utc>>,
    /// Where it stands.
    #[serde(flatten)]
    pub status: RunStatus,
    /// Outcome counts.
    pub counts: Counts,
    /// Requests Zoom answered 429 (absent in runs of earlier releases).
    #[serde(default)]
    pub rate_limited: RateLimited,
    /// How often an interrupted run was picked up again.
    #[serde(default)]
    pub resumes: u32,
    /// The value of the button that acknowledges the run's message (`[acknowledge]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledge: Option<String>,
    /// The schedule tick the run is for; `None` for a run started by hand. A job's tick has
    /// at most one run.
    #[serde(default)]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// True once the run's per-recipient outcomes were deleted to keep the state small (the
    /// job's `keep_details`); its summary stays.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub details_pruned: bool,
    /// The job file the run belongs to (canonical): a run resumes only for that file, not for
    /// another file of the same name. `None` for runs of releases that did not record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_file: Option<PathBuf>,
}

/// The `runs` tree, and `run_ticks` (job and tick to run id), which gives a tick one run.
#[derive(Clone)]
pub struct Runs {
    tree: sled::Tree,
    flusher: Flusher,
    ticks: sled::Tree,
}

impl Runs {
    pub(super) fn open(db: &sled::Db, flusher: &Flusher) -> Result<Self, StateError> {
        Ok(Self {
            tree: db.open_tree("runs")?,
            flusher: flusher.clone(),
            ticks: db.open_tree("run_ticks")?,
        })
    }

    /// Records the start of a run of `job` (for a schedule tick, or by hand) and returns it.
    /// The record and its tick index are written in one transaction.
    pub async fn start(
        &self,
        job: &str,
        (app, account): (&str, Option<&str>),
        job_file: Option<PathBuf>,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> Result<RunRecord, StateError> {
        let mut record = RunRecord {
            id: self.next_id()?,
            job: job.to_owned(),
            app: app.to_owned(),
            account: account.map(str::to_owned),
            started_at: Utc::now(),
            finished_at: None,
            status: RunStatus::Running,
            counts: Counts::default(),
            rate_limited: RateLimited::default(),
            resumes: 0,
            acknowledge: None,
            scheduled_for,
            details_pruned: false,
            job_file,
        };
        // Runs of several jobs start at the same tick: whichever inserts an id first owns it,
        // and the others take the next free one.
        while !self.insert_new(&record)? {
            record.id = self.next_id()?;
        }
        self.flusher.flush().await?;
        Ok(record)
    }

    /// Inserts a new run's record and its tick index in one transaction, unless another run
    /// already has its id (then `false`, and nothing is written).
    fn insert_new(&self, record: &RunRecord) -> Result<bool, StateError> {
        use sled::transaction::{ConflictableTransactionError as Conflict, TransactionError};
        struct IdTaken;
        let key = record.id.key();
        let bytes = encode(record);
        let tick_key = record.scheduled_for.map(|t| tick_key(&record.job, t));
        let written = (&self.tree, &self.ticks).transaction(|(runs, ticks)| {
            if runs.get(key)?.is_some() {
                return Err(Conflict::Abort(IdTaken));
            }
            runs.insert(&key, bytes.as_slice())?;
            if let Some(tick) = &tick_key {
                ticks.insert(tick.as_slice(), &key)?;
            }
            Ok(())
        });
        match written {
            Ok(()) => Ok(true),
            Err(TransactionError::Abort(IdTaken)) => Ok(false),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// The run of `job` for schedule tick `tick`, if the tick has one.
    pub fn for_tick(
        &self,
        job: &str,
        tick: DateTime<Utc>,
    ) -> Result<Option<RunRecord>, StateError> {
        match self.ticks.get(tick_key(job, tick))? {
            Some(id) => self.get(RunId::from_key(&id)),
            None => Ok(None),
        }
    }

    /// The newest run of each of `jobs`, finished or not, in their order: one pass over the
    /// runs, newest first, which ends as soon as every job has its run (a job that never ran
    /// costs one full pass, not one per such job).
    pub fn latest_of(&self, jobs: &[String]) -> Result<Vec<Option<RunRecord>>, StateError> {
        let mut latest: Vec<Option<RunRecord>> = vec![None; jobs.len()];
        let mut missing = jobs.len();
        for record in self.all_newest_first() {
            if missing == 0 {
                break;
            }
            let record = record?;
            for (slot, job) in latest.iter_mut().zip(jobs) {
                if slot.is_none() && *job == record.job {
                    *slot = Some(record.clone());
                    missing -= 1;
                }
            }
        }
        Ok(latest)
    }

    /// One more than the newest run's id: a candidate, which [`Runs::insert_new`] claims.
    /// (Not sled's `generate_id`, which jumps by its reserve after a crash.)
    fn next_id(&self) -> Result<RunId, StateError> {
        let last = self
            .tree
            .last()?
            .map_or(0, |(key, _)| RunId::from_key(&key).0);
        Ok(RunId(last + 1))
    }

    /// Stores (replaces) a run record, durably.
    pub async fn put(&self, record: &RunRecord) -> Result<(), StateError> {
        self.put_all(std::slice::from_ref(record)).await
    }

    /// Stores (replaces) run records, durably, with one flush.
    pub async fn put_all(&self, records: &[RunRecord]) -> Result<(), StateError> {
        for record in records {
            self.tree.insert(record.id.key(), encode(record))?;
        }
        self.flusher.flush().await?;
        Ok(())
    }

    /// The runs of `job` whose per-recipient outcomes are to be deleted when the newest `keep`
    /// finished runs keep theirs: older finished runs not pruned yet. Unfinished runs are never
    /// among them (the next run resumes them).
    pub fn details_to_prune(&self, job: &str, keep: usize) -> Result<Vec<RunRecord>, StateError> {
        beyond_newest_finished(self.newest_first(job), keep)
    }

    /// One run.
    pub fn get(&self, id: RunId) -> Result<Option<RunRecord>, StateError> {
        codec::get(&self.tree, id.key())
    }

    /// The newest run of `job` that did not finish (interrupted or aborted): the one the next
    /// run of the job resumes.
    pub fn unfinished(&self, job: &str) -> Result<Option<RunRecord>, StateError> {
        self.newest(job, |r| r.status.is_unfinished())
    }

    /// The newest run of `job` that `wanted` accepts: read from the newest key backwards,
    /// stopping at the first match, so it costs the runs since, not every run ever.
    fn newest(
        &self,
        job: &str,
        wanted: impl Fn(&RunRecord) -> bool,
    ) -> Result<Option<RunRecord>, StateError> {
        for record in self.newest_first(job) {
            let record = record?;
            if wanted(&record) {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    /// The runs of `job`, newest first, read one at a time (a job may have run for years).
    fn newest_first<'a>(
        &'a self,
        job: &'a str,
    ) -> impl Iterator<Item = Result<RunRecord, StateError>> + 'a {
        self.all_newest_first()
            .filter(move |record| !matches!(record, Ok(r) if r.job != job))
    }

    /// Every run, newest first, read one at a time.
    fn all_newest_first(&self) -> impl Iterator<Item = Result<RunRecord, StateError>> + '_ {
        self.tree.iter().rev().map(record)
    }

    /// Every run, oldest first, optionally of one job only.
    pub fn list(&self, job: Option<&str>) -> Result<Vec<RunRecord>, StateError> {
        self.tree
            .iter()
            .map(record)
            .filter(|r| !matches!((r, job), (Ok(r), Some(job)) if r.job != job))
            .collect()
    }
}

/// The run record of a `runs` tree entry.
fn record(entry: sled::Result<(sled::IVec, sled::IVec)>) -> Result<RunRecord, StateError> {
    let (_, bytes) = entry?;
    Ok(decode(&bytes)?)
}

/// Of a job's runs (newest first), the finished ones older than the newest `keep` finished
/// ones, unless already pruned.
fn beyond_newest_finished(
    newest_first: impl Iterator<Item = Result<RunRecord, StateError>>,
    keep: usize,
) -> Result<Vec<RunRecord>, StateError> {
    newest_first
        .filter(|r| !r.as_ref().is_ok_and(|r| r.status.is_unfinished()))
        .skip(keep)
        .filter(|r| !r.as_ref().is_ok_and(|r| r.details_pruned))
        .collect()
}

/// `run_ticks` key: format byte, job name, a zero byte, the tick in milliseconds (big-endian).
fn tick_key(job: &str, tick: DateTime<Utc>) -> Vec<u8> {
    let mut key = Vec::with_capacity(job.len() + 10);
    key.push(codec::KEY_FORMAT);
    key.extend_from_slice(job.as_bytes());
    key.push(0);
    key.extend_from_slice(&tick.timestamp_millis().to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: u64, status: RunStatus, details_pruned: bool) -> RunRecord {
        RunRecord {
            id: RunId(id),
            job: "j".into(),
            app: "default".into(),
            account: None,
            started_at: Utc::now(),
            finished_at: None,
            status,
            counts: Counts::default(),
            rate_limited: RateLimited::default(),
            resumes: 0,
            acknowledge: None,
            scheduled_for: None,
            details_pruned,
            job_file: None,
        }
    }

    #[test]
    fn pruning_keeps_the_newest_finished_runs_and_every_unfinished_one() {
        let runs = [
            run(1, RunStatus::Succeeded, true),
            run(2, RunStatus::PartlyFailed, false),
            run(3, RunStatus::Aborted("daily limit".into()), false),
            run(4, RunStatus::Succeeded, false),
            run(5, RunStatus::Running, false),
            run(6, RunStatus::Succeeded, false),
            run(7, RunStatus::PartlyFailed, false),
        ];
        let ids = |keep| {
            beyond_newest_finished(runs.iter().rev().cloned().map(Ok), keep)
                .unwrap()
                .iter()
                .map(|r| r.id.0)
                .collect::<Vec<_>>()
        };
        // 7 and 6 are kept; 5 and 3 can still be resumed; 1 is already pruned.
        assert_eq!(ids(2), [4, 2]);
        assert_eq!(ids(1), [6, 4, 2]);
        assert_eq!(ids(4), Vec::<u64>::new());
    }

    #[test]
    fn the_latest_runs_of_several_jobs_come_in_the_order_asked() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let runs = Runs::open(&db, &Flusher::new(&db)).unwrap();
        for (id, job) in [(1, "a"), (2, "b"), (3, "a"), (4, "c")] {
            let record = RunRecord {
                job: job.into(),
                ..run(id, RunStatus::Succeeded, false)
            };
            runs.tree.insert(record.id.key(), encode(&record)).unwrap();
        }
        let jobs = ["a", "never", "b", "a"].map(String::from);
        let ids: Vec<Option<u64>> = runs
            .latest_of(&jobs)
            .unwrap()
            .iter()
            .map(|r| r.as_ref().map(|r| r.id.0))
            .collect();
        assert_eq!(ids, [Some(3), None, Some(2), Some(3)]);
    }

    /// The scheduler starts runs of several jobs at the same tick; each must get its own id,
    /// or one record (and its deliveries) would overwrite the other's.
    #[test]
    fn runs_started_together_get_distinct_ids() {
        const RUNS: usize = 16;
        let db = sled::Config::new().temporary(true).open().unwrap();
        let runs = Runs::open(&db, &Flusher::new(&db)).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let together = std::sync::Barrier::new(RUNS);
        let ids: std::collections::BTreeSet<u64> = std::thread::scope(|scope| {
            let starts: Vec<_> = (0..RUNS)
                .map(|i| {
                    let (runs, together, runtime) = (&runs, &together, &runtime);
                    scope.spawn(move || {
                        let job = format!("job{i}");
                        together.wait();
                        let start = runs.start(&job, ("default", None), None, None);
                        runtime.block_on(start).unwrap().id.0
                    })
                })
                .collect();
            starts.into_iter().map(|s| s.join().unwrap()).collect()
        });
        assert_eq!(ids.len(), RUNS, "{ids:?}");
        let jobs: std::collections::BTreeSet<String> = runs
            .list(None)
            .unwrap()
            .into_iter()
            .map(|r| r.job)
            .collect();
        assert_eq!(jobs.len(), RUNS, "every run kept its record: {jobs:?}");
    }
}
