//! Listing runs a page at a time (`history`): which runs a listing shows ([`RunFilter`]), where
//! the newest N of them start, and pages from there on, so that a listing of every run kept
//! streams out in constant memory, from this process or through the control socket.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StateError;
use super::record::{RunId, RunRecord};
use super::runs::{Runs, record};

/// Which runs a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFilter {
    /// Only this job's runs.
    pub job: Option<String>,
    /// Only runs started at or after this.
    pub since: Option<DateTime<Utc>>,
}

impl RunFilter {
    fn shows(&self, record: &RunRecord) -> bool {
        self.job.as_ref().is_none_or(|job| *job == record.job)
            && self.since.is_none_or(|since| record.started_at >= since)
    }
}

/// Where a listing of the newest runs starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewStart {
    /// The oldest run shown; `None`: no run is.
    pub from: Option<RunId>,
    /// Whether older runs the filter shows are left out.
    pub more: bool,
}

impl Runs {
    /// Where the newest `limit` runs `filter` shows start (every one when `None`). Reads
    /// back from the newest run only as far as the limit (and, with `since`, to the first run
    /// started before it: ids grow with start times).
    pub fn view_start(
        &self,
        filter: &RunFilter,
        limit: Option<usize>,
    ) -> Result<ViewStart, StateError> {
        let Some(limit) = limit else {
            let first = self.page(filter, RunId(0), 1)?;
            return Ok(ViewStart {
                from: first.first().map(|r| r.id),
                more: false,
            });
        };
        let mut from = None;
        let newest_first = self.records_from(filter.job.as_deref(), RunId(0)).rev();
        for (shown, entry) in newest_first.enumerate() {
            let record = entry?;
            if filter.since.is_some_and(|since| record.started_at < since) {
                break;
            }
            if shown == limit {
                return Ok(ViewStart { from, more: true });
            }
            from = Some(record.id);
        }
        Ok(ViewStart { from, more: false })
    }

    /// Up to `max` runs `filter` shows, oldest first, from run `from` on.
    pub fn page(
        &self,
        filter: &RunFilter,
        from: RunId,
        max: usize,
    ) -> Result<Vec<RunRecord>, StateError> {
        let mut page = Vec::new();
        for entry in self.records_from(filter.job.as_deref(), from) {
            if page.len() == max {
                break;
            }
            let record = entry?;
            if filter.shows(&record) {
                page.push(record);
            }
        }
        Ok(page)
    }

    /// Up to `max` runs of `job` (or of every job) started before run `before`, newest first:
    /// a page of the console's runs, whose cost does not grow with the runs kept.
    pub fn newest_before(
        &self,
        job: Option<&str>,
        before: RunId,
        max: usize,
    ) -> Result<Vec<RunRecord>, StateError> {
        let records: Box<dyn Iterator<Item = Result<RunRecord, StateError>> + '_> = match job {
            Some(job) => Box::new(
                self.ids_of(job, RunId(0))
                    .rev()
                    .skip_while(move |entry| entry.as_ref().is_ok_and(|(id, _)| *id >= before))
                    .filter_map(|entry| entry.and_then(|(id, _)| self.get(id)).transpose()),
            ),
            None => Box::new(self.tree.range(..before.key()).rev().map(record)),
        };
        records.take(max).collect()
    }

    /// The runs from `from` on, of `job` (through its index) or of every job, read one at a
    /// time in either direction.
    fn records_from<'a>(
        &'a self,
        job: Option<&str>,
        from: RunId,
    ) -> Box<dyn DoubleEndedIterator<Item = Result<RunRecord, StateError>> + 'a> {
        match job {
            Some(job) => Box::new(
                self.ids_of(job, from)
                    .filter_map(|entry| entry.and_then(|(id, _)| self.get(id)).transpose()),
            ),
            None => Box::new(self.tree.range(from.key()..).map(record)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Flusher, RunStatus};

    fn runs_of(jobs: &[&str]) -> Runs {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let runs = Runs::open(&db, &Flusher::new(&db)).unwrap();
        let start = Utc::now() - chrono::TimeDelta::hours(1);
        for (i, job) in jobs.iter().enumerate() {
            let id = u64::try_from(i).unwrap() + 1;
            let record = RunRecord {
                started_at: start + chrono::TimeDelta::minutes(i64::try_from(i).unwrap()),
                status: RunStatus::Succeeded,
                ..RunRecord::new(RunId(id), job, ("default", None), None)
            };
            runs.write(&[record]).unwrap();
        }
        runs
    }

    #[test]
    fn newest_before_pages_back_from_a_run_of_one_job_or_all() {
        let runs = runs_of(&["a", "b", "a", "a", "b"]);
        let ids = |v: Vec<RunRecord>| v.iter().map(|r| r.id.0).collect::<Vec<_>>();
        let all = runs.newest_before(None, RunId(u64::MAX), 2).unwrap();
        assert_eq!(ids(all), [5, 4]);
        assert_eq!(ids(runs.newest_before(None, RunId(4), 2).unwrap()), [3, 2]);
        assert_eq!(
            ids(runs.newest_before(Some("a"), RunId(u64::MAX), 2).unwrap()),
            [4, 3]
        );
        assert_eq!(
            ids(runs.newest_before(Some("a"), RunId(3), 5).unwrap()),
            [1]
        );
        assert!(
            runs.newest_before(Some("c"), RunId(9), 5)
                .unwrap()
                .is_empty()
        );
    }

    fn listed(runs: &Runs, filter: &RunFilter, limit: Option<usize>) -> (Vec<u64>, bool) {
        let start = runs.view_start(filter, limit).unwrap();
        let mut ids = Vec::new();
        let Some(mut from) = start.from else {
            return (ids, start.more);
        };
        // Pages of two, as `history` reads them (in larger pages).
        loop {
            let page = runs.page(filter, from, 2).unwrap();
            let Some(last) = page.last() else { break };
            from = RunId(last.id.0 + 1);
            ids.extend(page.iter().map(|r| r.id.0));
        }
        (ids, start.more)
    }

    #[test]
    fn the_newest_runs_of_a_job_list_oldest_first_a_page_at_a_time() {
        let runs = runs_of(&["a", "b", "a", "a", "b", "a", "a"]);
        let a = RunFilter {
            job: Some("a".into()),
            ..RunFilter::default()
        };
        assert_eq!(listed(&runs, &a, Some(3)), (vec![4, 6, 7], true));
        assert_eq!(listed(&runs, &a, None), (vec![1, 3, 4, 6, 7], false));
        assert_eq!(listed(&runs, &a, Some(9)), (vec![1, 3, 4, 6, 7], false));
        let every = RunFilter::default();
        assert_eq!(listed(&runs, &every, Some(2)), (vec![6, 7], true));
        let none = RunFilter {
            job: Some("c".into()),
            ..RunFilter::default()
        };
        assert_eq!(listed(&runs, &none, Some(20)), (vec![], false));
    }

    #[test]
    fn since_shows_the_runs_started_from_then() {
        let runs = runs_of(&["a", "b", "a", "a", "b", "a", "a"]);
        let since = Utc::now() - chrono::TimeDelta::hours(1) + chrono::TimeDelta::seconds(150);
        let a = RunFilter {
            job: Some("a".into()),
            since: Some(since),
        };
        assert_eq!(listed(&runs, &a, None), (vec![4, 6, 7], false));
        assert_eq!(listed(&runs, &a, Some(2)), (vec![6, 7], true));
        let every = RunFilter {
            since: Some(since),
            ..RunFilter::default()
        };
        assert_eq!(listed(&runs, &every, Some(20)), (vec![4, 5, 6, 7], false));
    }
}
