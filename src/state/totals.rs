//! Each job's totals: what all its runs add up to, kept up to date in the same transaction
//! as every run record written or folded away (see [`super::runs`]). The metrics and `history
//! JOB` read these, never the run records, so their cost does not grow with the history.
//!
//! Every figure only grows. A run that ends, is resumed and ends again counts both endings
//! (`ended`); a run's recipients count by how far its tally grew (`deliveries`), so folding a
//! run away changes no figure but `kept` and `folded`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::record::{Counts, RateLimited, RunId, RunRecord, RunStatus};

/// One job's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Runs started.
    pub runs: u64,
    /// Runs ended, by how.
    pub ended: Ended,
    /// The runs' recipients, by outcome.
    pub deliveries: Counts,
    /// The runs' requests Zoom answered 429.
    pub rate_limited: RateLimited,
    /// When the first run started.
    pub first_run: Option<DateTime<Utc>>,
    /// When the newest run started.
    pub last_run: Option<DateTime<Utc>>,
    /// When the newest fully successful run finished.
    pub last_success: Option<DateTime<Utc>>,
    /// Run records kept in the state.
    pub kept: u64,
    /// Run records folded into these totals (older than the job's newest `keep_runs`).
    pub folded: u64,
    /// The job's unfinished runs (interrupted or aborted), oldest first: the newest is the one
    /// the next run by hand resumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unfinished: Vec<RunId>,
    /// How long the runs took, from start to each ending.
    #[serde(default)]
    pub durations: Durations,
}

/// The upper bounds of the run duration histogram's buckets, in seconds.
pub const DURATION_BOUNDS: [u64; 9] = [1, 5, 15, 60, 300, 900, 3_600, 14_400, 86_400];

/// How long runs took: a histogram over [`DURATION_BOUNDS`] (and one bucket beyond).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durations {
    /// Endings in each bucket (not cumulative), the last one beyond every bound.
    pub buckets: Vec<u64>,
    /// Their durations added up, in milliseconds.
    pub sum_ms: u64,
    /// How many endings.
    pub count: u64,
}

impl Durations {
    fn observe(&mut self, ms: u64) {
        if self.buckets.len() != DURATION_BOUNDS.len() + 1 {
            self.buckets.resize(DURATION_BOUNDS.len() + 1, 0);
        }
        let at = DURATION_BOUNDS.partition_point(|bound| bound * 1000 < ms);
        self.buckets[at] += 1;
        self.sum_ms += ms;
        self.count += 1;
    }
}

/// Runs ended, by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// Every recipient delivered.
    pub succeeded: u64,
    /// Some recipients failed or are uncertain.
    pub partly_failed: u64,
    /// Stopped before the end (resumable).
    pub aborted: u64,
    /// Stopped for good.
    pub closed: u64,
}

impl Ended {
    /// Each ending with its label in the metrics.
    pub fn by_outcome(&self) -> [(&'static str, u64); 4] {
        [
            ("succeeded", self.succeeded),
            ("partly_failed", self.partly_failed),
            ("aborted", self.aborted),
            ("closed", self.closed),
        ]
    }

    fn count(&mut self, status: &RunStatus) {
        match status {
            RunStatus::Succeeded => self.succeeded += 1,
            RunStatus::PartlyFailed => self.partly_failed += 1,
            RunStatus::Aborted(_) => self.aborted += 1,
            RunStatus::Closed(_) => self.closed += 1,
            RunStatus::Running => {}
        }
    }
}

impl Totals {
    /// Accounts for `new` written over `old` (`None`: a run just started).
    pub fn record(&mut self, old: Option<&RunRecord>, new: &RunRecord) {
        if old.is_none() {
            self.runs += 1;
            self.kept += 1;
        }
        self.first_run = Some(
            self.first_run
                .map_or(new.started_at, |t| t.min(new.started_at)),
        );
        self.last_run = Some(
            self.last_run
                .map_or(new.started_at, |t| t.max(new.started_at)),
        );
        // An ending is a change to a status other than running: a rewrite of the same
        // status (its details pruned, say) is no new ending.
        let changed = old.is_none_or(|o| {
            std::mem::discriminant(&o.status) != std::mem::discriminant(&new.status)
        });
        if changed {
            self.ended.count(&new.status);
            if new.status != RunStatus::Running
                && let Some(done) = new.finished_at
            {
                let ms = (done - new.started_at).num_milliseconds();
                self.durations.observe(u64::try_from(ms).unwrap_or(0));
            }
        }
        let zero = (Counts::default(), RateLimited::default());
        let (counts, limited) = old.map_or(zero, |o| (o.counts, o.rate_limited));
        grow(&mut self.deliveries, &counts, &new.counts);
        self.rate_limited.users += new.rate_limited.users.saturating_sub(limited.users);
        self.rate_limited.chat += new.rate_limited.chat.saturating_sub(limited.chat);
        if new.status == RunStatus::Succeeded
            && let Some(at) = new.finished_at
        {
            self.last_success = Some(self.last_success.map_or(at, |t| t.max(at)));
        }
        self.unfinished.retain(|id| *id != new.id);
        if new.status.is_unfinished() {
            let at = self.unfinished.partition_point(|id| *id < new.id);
            self.unfinished.insert(at, new.id);
        }
    }

    /// Accounts for a run record folded away: only `kept` and `folded` change.
    pub fn fold(&mut self, gone: &RunRecord) {
        self.kept = self.kept.saturating_sub(1);
        self.folded += 1;
        self.unfinished.retain(|id| *id != gone.id);
    }
}

/// Adds to `sum` what each count of a run grew by from `old` to `new`. A run's counts only
/// grow (a recipient's outcome is final once recorded); were one to shrink, the sum keeps
/// what it had rather than move backwards.
fn grow(sum: &mut Counts, old: &Counts, new: &Counts) {
    sum.total += new.total.saturating_sub(old.total);
    sum.sent += new.sent.saturating_sub(old.sent);
    sum.failed += new.failed.saturating_sub(old.failed);
    sum.uncertain += new.uncertain.saturating_sub(old.uncertain);
    sum.opted_out += new.opted_out.saturating_sub(old.opted_out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: u64, status: RunStatus, sent: u64) -> RunRecord {
        RunRecord {
            counts: Counts {
                total: sent,
                sent,
                ..Counts::default()
            },
            finished_at: (!status.is_unfinished()).then(Utc::now),
            status,
            ..RunRecord::new(RunId(id), "j", ("default", None), None)
        }
    }

    #[test]
    fn an_aborted_run_resumed_to_success_counts_both_endings_and_its_recipients_once() {
        let mut totals = Totals::default();
        let started = run(1, RunStatus::Running, 0);
        totals.record(None, &started);
        assert_eq!(totals.unfinished, [RunId(1)]);
        let aborted = run(1, RunStatus::Aborted("daily limit".into()), 3);
        totals.record(Some(&started), &aborted);
        let resumed = run(1, RunStatus::Running, 3);
        totals.record(Some(&aborted), &resumed);
        let done = run(1, RunStatus::Succeeded, 5);
        totals.record(Some(&resumed), &done);
        assert_eq!((totals.runs, totals.kept), (1, 1));
        assert_eq!((totals.ended.aborted, totals.ended.succeeded), (1, 1));
        assert_eq!((totals.deliveries.sent, totals.deliveries.total), (5, 5));
        assert!(totals.unfinished.is_empty());
        assert!(totals.last_success.is_some());
        // Marking details pruned rewrites the record: nothing is counted again.
        let before = totals.clone();
        totals.record(Some(&done), &done);
        assert_eq!(totals, before);
        totals.fold(&done);
        assert_eq!((totals.kept, totals.folded), (0, 1));
        assert_eq!(
            totals.deliveries, before.deliveries,
            "folding changes no count"
        );
    }

    #[test]
    fn unfinished_runs_are_listed_oldest_first() {
        let mut totals = Totals::default();
        for id in [3, 1, 2] {
            totals.record(None, &run(id, RunStatus::Running, 0));
        }
        assert_eq!(totals.unfinished, [RunId(1), RunId(2), RunId(3)]);
        totals.fold(&run(2, RunStatus::Running, 0));
        assert_eq!(totals.unfinished, [RunId(1), RunId(3)]);
    }

    #[test]
    fn each_ending_counts_its_duration_in_its_bucket() {
        let mut totals = Totals::default();
        let started = run(1, RunStatus::Running, 0);
        totals.record(None, &started);
        assert_eq!(totals.durations.count, 0, "a start is no ending");
        let done = RunRecord {
            started_at: started.started_at,
            finished_at: Some(started.started_at + chrono::TimeDelta::seconds(42)),
            ..run(1, RunStatus::Succeeded, 1)
        };
        totals.record(Some(&started), &done);
        let d = &totals.durations;
        assert_eq!((d.count, d.sum_ms), (1, 42_000));
        // 42 s: above 15 s, within 60 s.
        assert_eq!(d.buckets[3], 1);
        assert_eq!(d.buckets.iter().sum::<u64>(), 1);
    }
}
