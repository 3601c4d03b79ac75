//! The `runs` tree: one [`RunRecord`] per run of a job, kept in step with its indexes and
//! the job's totals.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use sled::Transactional;

use sled::transaction::{
    ConflictableTransactionError as Conflict, TransactionError, TransactionalTree as Tx,
};

use super::codec::{self, KEY_FORMAT, decode, encode};
use super::record::{RunId, RunRecord};
use super::totals::Totals;
use super::{Flusher, StateError};

/// The `runs` tree and the trees kept in step with it in one transaction: `run_ticks` (job
/// and tick to run id, which gives a tick one run), `job_runs` (job and run id, so that one
/// job's runs are one range) and `totals` (each job's [`Totals`]).
#[derive(Clone)]
pub struct Runs {
    pub(super) tree: sled::Tree,
    flusher: Flusher,
    ticks: sled::Tree,
    pub(super) index: sled::Tree,
    totals: sled::Tree,
}

/// The trees of one transaction, in [`Runs::transaction`]'s order.
type Trees<'a> = (&'a Tx, &'a Tx, &'a Tx, &'a Tx);

impl Runs {
    pub(super) fn open(db: &sled::Db, flusher: &Flusher) -> Result<Self, StateError> {
        Ok(Self {
            tree: db.open_tree("runs")?,
            flusher: flusher.clone(),
            ticks: db.open_tree("run_ticks")?,
            index: db.open_tree("job_runs")?,
            totals: db.open_tree("totals")?,
        })
    }

    /// Runs `body` over (`runs`, `run_ticks`, `job_runs`, `totals`) in one sled transaction.
    fn transaction<T>(
        &self,
        body: impl Fn(Trees<'_>) -> Result<T, Conflict<StateError>>,
    ) -> Result<T, StateError> {
        let trees = (&self.tree, &self.ticks, &self.index, &self.totals);
        trees
            .transaction(|(runs, ticks, index, totals)| body((runs, ticks, index, totals)))
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => e.into(),
            })
    }

    /// Records the start of a run of `job` (for a schedule tick, or by hand) and returns it.
    /// The record, its indexes and the job's totals are written in one transaction.
    pub async fn start(
        &self,
        job: &str,
        app_account: (&str, Option<&str>),
        job_file: Option<PathBuf>,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> Result<RunRecord, StateError> {
        let record = RunRecord {
            scheduled_for,
            ..RunRecord::new(RunId(0), job, app_account, job_file)
        };
        self.start_as(record).await
    }

    /// Records `record` as a new run under the next free id (whatever id it holds), durably.
    pub async fn start_as(&self, mut record: RunRecord) -> Result<RunRecord, StateError> {
        record.id = self.next_id()?;
        // Runs of several jobs start at the same tick: whichever inserts an id first owns it,
        // and the others take the next free one.
        while !self.insert_new(&record)? {
            record.id = self.next_id()?;
        }
        self.flusher.flush().await?;
        Ok(record)
    }

    /// Inserts a new run's record, its indexes and totals in one transaction, unless another
    /// run already has its id (then `false`, and nothing is written).
    fn insert_new(&self, record: &RunRecord) -> Result<bool, StateError> {
        let key = record.id.key();
        let bytes = encode(record);
        let tick_key = record.scheduled_for.map(|t| tick_key(&record.job, t));
        self.transaction(|(runs, ticks, index, totals)| {
            if runs.get(key)?.is_some() {
                return Ok(false);
            }
            runs.insert(&key, bytes.as_slice())?;
            if let Some(tick) = &tick_key {
                ticks.insert(tick.as_slice(), &key)?;
            }
            index.insert(index_key(&record.job, record.id), &[flags(record)])?;
            change_totals(totals, &record.job, |t| t.record(None, record))?;
            Ok(true)
        })
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

    /// The newest run of each of `jobs`, finished or not, in their order.
    pub fn latest_of(&self, jobs: &[String]) -> Result<Vec<Option<RunRecord>>, StateError> {
        jobs.iter()
            .map(|job| match self.ids_of(job, RunId(0)).next_back() {
                Some(id) => self.get(id?.0),
                None => Ok(None),
            })
            .collect()
    }

    /// One more than the newest run's id: a candidate, which [`Runs::insert_new`] claims.
    /// (Not sled's `generate_id`, which jumps by its reserve after a crash.)
    fn next_id(&self) -> Result<RunId, StateError> {
        let newest = self.tree.last()?.map(|(key, _)| RunId::from_key(&key));
        Ok(RunId(newest.map_or(0, |id| id.0) + 1))
    }

    /// Stores (replaces) a run record, durably.
    pub async fn put(&self, record: &RunRecord) -> Result<(), StateError> {
        self.put_all(std::slice::from_ref(record)).await
    }

    /// Stores (replaces) run records, durably, with one flush.
    pub async fn put_all(&self, records: &[RunRecord]) -> Result<(), StateError> {
        self.write(records)?;
        self.flusher.flush().await
    }

    /// Stores (replaces) run records, each with its index entry and job's totals in one
    /// transaction; not flushed.
    pub fn write(&self, records: &[RunRecord]) -> Result<(), StateError> {
        for record in records {
            let key = record.id.key();
            let bytes = encode(record);
            self.transaction(|(runs, _, index, totals)| {
                let old: Option<RunRecord> = match runs.insert(&key, bytes.as_slice())? {
                    Some(old) => Some(decode_record(&old).map_err(abort)?),
                    None => None,
                };
                index.insert(index_key(&record.job, record.id), &[flags(record)])?;
                change_totals(totals, &record.job, |t| t.record(old.as_ref(), record))?;
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Removes a run's record and index entries, counting it as folded in its job's totals
    /// (which already hold everything it counted); not flushed. Its per-recipient details
    /// must be gone already (see [`super::retention`]).
    pub fn fold(&self, record: &RunRecord) -> Result<(), StateError> {
        let tick_key = record.scheduled_for.map(|t| tick_key(&record.job, t));
        self.transaction(|(runs, ticks, index, totals)| {
            runs.remove(&record.id.key())?;
            if let Some(tick) = &tick_key {
                ticks.remove(tick.as_slice())?;
            }
            index.remove(index_key(&record.job, record.id))?;
            change_totals(totals, &record.job, |t| t.fold(record))
        })
    }

    /// Makes every write durable, blocking the thread.
    pub fn flush_blocking(&self) -> Result<(), StateError> {
        self.flusher.flush_blocking()
    }

    /// The runs of `job` whose per-recipient outcomes are to be deleted when the newest `keep`
    /// finished runs keep theirs: older finished runs not pruned yet, newest first. Read from
    /// the job's index back to the first finished run pruned already (older ones were dealt
    /// with by earlier runs); unfinished runs are never among them (the next run resumes them).
    pub fn details_to_prune(&self, job: &str, keep: usize) -> Result<Vec<RunRecord>, StateError> {
        let mut finished = 0;
        let mut ids = Vec::new();
        for entry in self.ids_of(job, RunId(0)).rev() {
            let (id, flags) = entry?;
            if flags & UNFINISHED != 0 {
                continue;
            }
            finished += 1;
            if finished <= keep {
                continue;
            }
            if flags & PRUNED != 0 {
                break;
            }
            ids.push(id);
        }
        self.get_all(&ids)
    }

    /// The runs of `job` to fold so that it keeps its newest `keep` run records, oldest first.
    /// The job's newest unfinished run is never among them: the next run by hand resumes it.
    pub fn to_fold(&self, job: &str, keep: usize) -> Result<Vec<RunRecord>, StateError> {
        let totals = self.totals(job)?.unwrap_or_default();
        let excess = usize::try_from(totals.kept)
            .unwrap_or(usize::MAX)
            .saturating_sub(keep);
        let resumable = totals.unfinished.last().copied();
        let mut ids = Vec::new();
        for entry in self.ids_of(job, RunId(0)) {
            if ids.len() >= excess {
                break;
            }
            let (id, _) = entry?;
            if Some(id) != resumable {
                ids.push(id);
            }
        }
        self.get_all(&ids)
    }

    fn get_all(&self, ids: &[RunId]) -> Result<Vec<RunRecord>, StateError> {
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            records.extend(self.get(*id)?);
        }
        Ok(records)
    }

    /// One run.
    pub fn get(&self, id: RunId) -> Result<Option<RunRecord>, StateError> {
        match self.tree.get(id.key())? {
            Some(bytes) => Ok(Some(decode_record(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The newest run of `job` that did not finish (interrupted or aborted): the one the next
    /// run of the job resumes.
    pub fn unfinished(&self, job: &str) -> Result<Option<RunRecord>, StateError> {
        match self.totals(job)?.and_then(|t| t.unfinished.last().copied()) {
            Some(id) => self.get(id),
            None => Ok(None),
        }
    }

    /// The runs of `job`, newest first, read one at a time.
    pub fn newest_first<'a>(
        &'a self,
        job: &'a str,
    ) -> impl Iterator<Item = Result<RunRecord, StateError>> + 'a {
        self.ids_of(job, RunId(0))
            .rev()
            .filter_map(move |entry| entry.and_then(|(id, _)| self.get(id)).transpose())
    }

    /// The ids of `job`'s runs from `from` on, oldest first, with their index flags.
    pub(super) fn ids_of(
        &self,
        job: &str,
        from: RunId,
    ) -> impl DoubleEndedIterator<Item = Result<(RunId, u8), StateError>> + use<> {
        let skip = index_prefix(job).len();
        let range = index_key(job, from)..=index_key(job, RunId(u64::MAX));
        self.index.range(range).map(move |entry| {
            let (key, flags) = entry?;
            Ok((
                RunId::from_key(&key[skip..]),
                flags.first().copied().unwrap_or(0),
            ))
        })
    }

    /// Every run kept, oldest first, optionally of one job only.
    pub fn list(&self, job: Option<&str>) -> Result<Vec<RunRecord>, StateError> {
        match job {
            Some(job) => {
                let ids = self.ids_of(job, RunId(0));
                ids.filter_map(|entry| entry.and_then(|(id, _)| self.get(id)).transpose())
                    .collect()
            }
            None => self.tree.iter().map(record).collect(),
        }
    }

    /// The totals of `job`, if it ever ran.
    pub fn totals(&self, job: &str) -> Result<Option<Totals>, StateError> {
        codec::get(&self.totals, codec::job_key(job))
    }

    /// Every job's totals, in name order.
    pub fn all_totals(&self) -> Result<Vec<(String, Totals)>, StateError> {
        let mut all = Vec::new();
        for entry in self.totals.scan_prefix([KEY_FORMAT]) {
            let (key, bytes) = entry?;
            let job = String::from_utf8_lossy(&key[1..]).into_owned();
            all.push((job, decode(&bytes)?));
        }
        Ok(all)
    }

    /// Builds `job_runs` and `totals` from the run records, unless they were built: the first
    /// open of a state written by a release without them. One pass over the records; the
    /// totals count each finished run's one ending. A crash midway builds again.
    pub(super) fn build_indexes(&self) -> Result<usize, StateError> {
        if self.totals.contains_key(BUILT)? {
            return Ok(0);
        }
        let mut totals = std::collections::BTreeMap::<String, Totals>::new();
        let mut indexed = sled::Batch::default();
        let mut count = 0;
        for entry in &self.tree {
            let record = record(entry)?;
            indexed.insert(index_key(&record.job, record.id), &[flags(&record)]);
            totals
                .entry(record.job.clone())
                .or_default()
                .record(None, &record);
            count += 1;
        }
        self.index.apply_batch(indexed)?;
        let mut batch = sled::Batch::default();
        for (job, t) in &totals {
            batch.insert(codec::job_key(job), encode(t));
        }
        batch.insert(BUILT, &[]);
        self.totals.apply_batch(batch)?;
        self.flusher.flush_blocking()?;
        Ok(count)
    }
}

/// The `totals` key that says they were built from the run records.
const BUILT: &[u8] = b"\0built";

/// `job_runs` flag: the run is unfinished.
const UNFINISHED: u8 = 1;
/// `job_runs` flag: the run's per-recipient details were deleted.
const PRUNED: u8 = 2;

/// A run's `job_runs` flags.
fn flags(record: &RunRecord) -> u8 {
    let mut flags = 0;
    if record.status.is_unfinished() {
        flags |= UNFINISHED;
    }
    if record.details_pruned {
        flags |= PRUNED;
    }
    flags
}

/// Changes the totals of `job` inside a transaction.
fn change_totals(
    totals: &Tx,
    job: &str,
    change: impl FnOnce(&mut Totals),
) -> Result<(), Conflict<StateError>> {
    let key = codec::job_key(job);
    let mut current: Totals = match totals.get(&key)? {
        Some(bytes) => decode(&bytes).map_err(abort)?,
        None => Totals::default(),
    };
    change(&mut current);
    totals.insert(key, encode(&current))?;
    Ok(())
}

fn abort(e: codec::CodecError) -> Conflict<StateError> {
    Conflict::Abort(StateError::Codec(e))
}

/// The run record of a `runs` tree entry.
pub(super) fn record(
    entry: sled::Result<(sled::IVec, sled::IVec)>,
) -> Result<RunRecord, StateError> {
    let (_, bytes) = entry?;
    Ok(decode_record(&bytes)?)
}

thread_local! {
    static RECORDS_READ: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many run records this thread has decoded: what shows that a reader (a metrics scrape)
/// reads none.
pub fn records_read() -> u64 {
    RECORDS_READ.with(std::cell::Cell::get)
}

/// Decodes a stored run record, counting it ([`records_read`]).
fn decode_record(bytes: &[u8]) -> Result<RunRecord, codec::CodecError> {
    RECORDS_READ.with(|n| n.set(n.get() + 1));
    decode(bytes)
}

/// The `job_runs` keys of `job` start with this: its `totals` key ([`codec::job_key`]), then
/// a zero byte.
fn index_prefix(job: &str) -> Vec<u8> {
    let mut key = codec::job_key(job);
    key.push(0);
    key
}

/// `job_runs` key: [`index_prefix`], then the run id (big-endian).
fn index_key(job: &str, id: RunId) -> Vec<u8> {
    let mut key = index_prefix(job);
    key.extend_from_slice(&id.key());
    key
}

/// `run_ticks` key: format byte, job name, a zero byte, the tick in milliseconds (big-endian).
fn tick_key(job: &str, tick: DateTime<Utc>) -> Vec<u8> {
    let mut key = index_prefix(job);
    key.extend_from_slice(&tick.timestamp_millis().to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RunStatus;

    fn run(id: u64, status: RunStatus, details_pruned: bool) -> RunRecord {
        RunRecord {
            status,
            details_pruned,
            ..RunRecord::new(RunId(id), "j", ("default", None), None)
        }
    }

    fn runs() -> Runs {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Runs::open(&db, &Flusher::new(&db)).unwrap()
    }

    fn ids(records: &[RunRecord]) -> Vec<u64> {
        records.iter().map(|r| r.id.0).collect()
    }

    #[test]
    fn pruning_keeps_the_newest_finished_runs_and_every_unfinished_one() {
        let runs = runs();
        runs.write(&[
            run(1, RunStatus::Succeeded, true),
            run(2, RunStatus::PartlyFailed, false),
            run(3, RunStatus::Aborted("daily limit".into()), false),
            run(4, RunStatus::Succeeded, false),
            run(5, RunStatus::Running, false),
            run(6, RunStatus::Succeeded, false),
            run(7, RunStatus::PartlyFailed, false),
        ])
        .unwrap();
        let ids = |keep| ids(&runs.details_to_prune("j", keep).unwrap());
        // 7 and 6 are kept; 5 and 3 can still be resumed; 1 is already pruned.
        assert_eq!(ids(2), [4, 2]);
        assert_eq!(ids(1), [6, 4, 2]);
        assert_eq!(ids(4), Vec::<u64>::new());
    }

    #[test]
    fn folding_spares_the_run_a_run_by_hand_resumes() {
        let runs = runs();
        runs.write(&[
            run(1, RunStatus::Succeeded, true),
            run(2, RunStatus::Aborted("daily limit".into()), false),
            run(3, RunStatus::Aborted("daily limit".into()), false),
            run(4, RunStatus::Succeeded, false),
            run(5, RunStatus::Succeeded, false),
        ])
        .unwrap();
        // The newest two are 5 and 3, which a run by hand resumes; 2 is older.
        assert_eq!(ids(&runs.to_fold("j", 2).unwrap()), [1, 2, 4]);
        for record in runs.to_fold("j", 2).unwrap() {
            runs.fold(&record).unwrap();
        }
        let totals = runs.totals("j").unwrap().unwrap();
        assert_eq!((totals.runs, totals.kept, totals.folded), (5, 2, 3));
        assert_eq!(totals.unfinished, [RunId(3)]);
        assert_eq!(ids(&runs.list(Some("j")).unwrap()), [3, 5]);
        assert_eq!(runs.unfinished("j").unwrap().unwrap().id, RunId(3));
        assert!(runs.get(RunId(1)).unwrap().is_none());
    }

    #[test]
    fn the_latest_runs_of_several_jobs_come_in_the_order_asked() {
        let runs = runs();
        for (id, job) in [(1, "a"), (2, "b"), (3, "a"), (4, "c")] {
            let record = RunRecord {
                job: job.into(),
                ..run(id, RunStatus::Succeeded, false)
            };
            runs.write(&[record]).unwrap();
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

    #[test]
    fn indexes_and_totals_are_built_once_from_the_records_of_an_earlier_release() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let runs = Runs::open(&db, &Flusher::new(&db)).unwrap();
        for (id, job, status) in [
            (1, "a", RunStatus::Succeeded),
            (2, "b", RunStatus::PartlyFailed),
            (3, "a", RunStatus::Running),
        ] {
            let record = RunRecord {
                job: job.into(),
                ..run(id, status, false)
            };
            runs.tree.insert(record.id.key(), encode(&record)).unwrap();
        }
        assert_eq!(runs.build_indexes().unwrap(), 3);
        assert_eq!(runs.build_indexes().unwrap(), 0, "built once");
        let a = runs.totals("a").unwrap().unwrap();
        assert_eq!((a.runs, a.kept, a.ended.succeeded), (2, 2, 1));
        assert_eq!(a.unfinished, [RunId(3)]);
        assert_eq!(ids(&runs.list(Some("a")).unwrap()), [1, 3]);
        let jobs: Vec<String> = runs
            .all_totals()
            .unwrap()
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(jobs, ["a", "b"]);
    }

    /// The scheduler starts runs of several jobs at the same tick; each must get its own id,
    /// or one record (and its deliveries) would overwrite the other's.
    #[test]
    fn runs_started_together_get_distinct_ids() {
        const RUNS: usize = 16;
        let runs = runs();
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
        assert_eq!(runs.all_totals().unwrap().len(), RUNS);
    }
}
