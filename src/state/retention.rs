//! Keeping a job's history within its limits after each of its runs: the per-recipient details
//! of its newest `keep_details` finished runs, the records of its newest `keep_runs` runs.
//! Older records are folded into the job's totals ([`super::totals`]), which count everything
//! they counted, so a year of a per-minute job costs what its newest runs do.
//!
//! Every step is safe to interrupt: sled recovers a prefix of its log, and each step is
//! written after the one it depends on. A run loses its details before its record, and an
//! unfinished run is closed for good before its journal goes, so no crash leaves a run that
//! could be resumed without its journal (which would send to every recipient again).

use chrono::Utc;

use super::{Deliveries, RunRecord, RunStatus, Runs, StateError};

/// How much of a job's history to keep.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    /// Run records (`keep_runs`).
    pub runs: usize,
    /// Runs with their per-recipient details (`[delivery] keep_details`).
    pub details: usize,
}

/// What [`trim`] deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// Runs whose per-recipient details were deleted (their records stay).
    pub pruned: usize,
    /// Per-recipient entries deleted.
    pub entries: usize,
    /// Run records folded into the job's totals.
    pub folded: usize,
}

/// Trims `job`'s history to `keep`, durably. Blocks the thread: call it off the runtime's
/// workers.
pub fn trim(
    runs: &Runs,
    deliveries: &Deliveries,
    job: &str,
    keep: Keep,
) -> Result<Trimmed, StateError> {
    let mut trimmed = Trimmed::default();
    let mut pruned = runs.details_to_prune(job, keep.details)?;
    for record in &mut pruned {
        trimmed.entries += deliveries.prune(record.id)?;
        record.details_pruned = true;
    }
    trimmed.pruned = pruned.len();
    runs.write(&pruned)?;
    for record in runs.to_fold(job, keep.runs)? {
        trimmed.entries += fold(runs, deliveries, record, keep.runs)?;
        trimmed.folded += 1;
    }
    if trimmed != Trimmed::default() {
        runs.flush_blocking()?;
    }
    Ok(trimmed)
}

/// Folds one run away; the per-recipient entries it deleted.
fn fold(
    runs: &Runs,
    deliveries: &Deliveries,
    mut record: RunRecord,
    keep: usize,
) -> Result<usize, StateError> {
    if record.status.is_unfinished() {
        // Its recipients so far count in the totals, and it ends here, closed.
        let (counts, _) = deliveries.tally(record.id)?;
        record.counts = counts;
        record.status = RunStatus::Closed(format!(
            "closed unfinished: the job keeps its newest {keep} runs (keep_runs), and this one \
             was folded into its totals"
        ));
        record.finished_at = Some(Utc::now());
        runs.write(std::slice::from_ref(&record))?;
    }
    let entries = if record.details_pruned {
        0
    } else {
        deliveries.prune(record.id)?
    };
    runs.fold(&record)?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Delivery, DeliveryState, Flusher, RunId};

    fn sent(n: usize) -> Vec<Delivery> {
        (0..n)
            .map(|i| {
                let state = DeliveryState::Sent {
                    message_id: format!("m{i}"),
                };
                Delivery::new(&format!("u{i}@example.com"), state, None, 1)
            })
            .collect()
    }

    #[test]
    fn folding_keeps_every_count_and_closes_an_abandoned_run_with_what_it_sent() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let flusher = Flusher::new(&db);
        let (runs, deliveries) = (
            Runs::open(&db, &flusher).unwrap(),
            Deliveries::open(&db, &flusher).unwrap(),
        );
        let record = |id, status: RunStatus, n: u64| RunRecord {
            finished_at: (!status.is_unfinished()).then(Utc::now),
            status,
            counts: crate::state::record::Counts {
                total: n,
                sent: n,
                ..Default::default()
            },
            ..RunRecord::new(RunId(id), "j", ("default", None), None)
        };
        // Run 1 was interrupted with 2 sent and never resumed; runs 2 to 6 sent 3 each.
        runs.write(&[record(1, RunStatus::Running, 0)]).unwrap();
        for d in sent(2) {
            deliveries.set(RunId(1), &d).unwrap();
        }
        for id in 2..=6 {
            runs.write(&[record(id, RunStatus::Succeeded, 3)]).unwrap();
            for d in sent(3) {
                deliveries.set(RunId(id), &d).unwrap();
            }
        }
        // Run 7, newer, is unfinished: the resumable one.
        runs.write(&[record(7, RunStatus::Running, 0)]).unwrap();
        let keep = Keep {
            runs: 3,
            details: 1,
        };
        let trimmed = trim(&runs, &deliveries, "j", keep).unwrap();
        assert_eq!((trimmed.pruned, trimmed.folded), (4, 4), "{trimmed:?}");
        assert_eq!(trimmed.entries, 2 + 4 * 3);
        let totals = runs.totals("j").unwrap().unwrap();
        assert_eq!((totals.runs, totals.kept, totals.folded), (7, 3, 4));
        assert_eq!(totals.deliveries.sent, 2 + 5 * 3, "run 1's two sends count");
        assert_eq!((totals.ended.succeeded, totals.ended.closed), (5, 1));
        assert_eq!(totals.unfinished, [RunId(7)]);
        let kept: Vec<u64> = runs
            .list(Some("j"))
            .unwrap()
            .iter()
            .map(|r| r.id.0)
            .collect();
        assert_eq!(kept, [5, 6, 7]);
        assert!(deliveries.list(RunId(1)).unwrap().is_empty());
        assert!(
            deliveries.list(RunId(5)).unwrap().is_empty(),
            "beyond keep_details"
        );
        assert_eq!(deliveries.list(RunId(6)).unwrap().len(), 3);
        // Nothing more to do: trimming again changes nothing.
        let again = trim(&runs, &deliveries, "j", keep).unwrap();
        assert_eq!(again, Trimmed::default());
    }
}
