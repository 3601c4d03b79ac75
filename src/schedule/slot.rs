//! One job as the scheduler tracks it ([`Slot`]): its next tick with the job's jitter, and the
//! runs queued behind the current one: ticks caught up after downtime, `overlap = "queue"`
//! ticks, and interrupted runs resumed at start-up.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::plan::{self, SkipReason};
use crate::config::Job;
use crate::state::{Fires, RunRecord, RunStatus};

/// One job as the scheduler tracks it.
pub(super) struct Slot {
    pub(super) job: Arc<Job>,
    /// The next tick, if the job has a schedule that fires again.
    pub(super) next: Option<Tick>,
    /// Runs waiting for the current one to end: ticks (catch-up, `overlap = "queue"`) or a
    /// resumption of a run started by hand (`None`).
    pub(super) queue: VecDeque<Option<DateTime<Utc>>>,
    /// Whether its ticks are passed over: the console's suspension, else the file's
    /// `suspend`.
    pub(super) suspended: bool,
}

/// A tick and when it is due (the tick plus the job's jitter).
#[derive(Debug, Clone, Copy)]
pub(super) struct Tick {
    pub(super) at: DateTime<Utc>,
    pub(super) due: DateTime<Utc>,
}

/// Deals with ticks a job missed (while the scheduler was down, or asleep): logs the skipped
/// ones with their reasons and queues the ones `catch_up` runs.
pub(super) fn catch_up(
    fires: &Fires,
    job: &Job,
    missed: impl Iterator<Item = DateTime<Utc>>,
    now: DateTime<Utc>,
    slot: &mut Slot,
) {
    let missed = plan::plan_missed(missed, now, &job.policy);
    for (tick, reason) in &missed.skipped {
        log_skip(&job.name, *tick, *reason);
    }
    if missed.more_skipped > 0 {
        tracing::warn!(
            "job `{}`: {} more missed ticks skipped for the same reasons",
            job.name,
            missed.more_skipped
        );
    }
    if missed.run.is_empty()
        && let Some(newest) = missed.newest
    {
        record_tick(fires, &job.name, newest);
    }
    for tick in missed.run {
        tracing::info!(
            "job `{}`: tick {} was missed; running it now",
            job.name,
            tick.to_rfc3339()
        );
        slot.queue.push_back(Some(tick));
    }
}

/// Records that a job's ticks up to `tick` are dealt with. A failure is logged, and the
/// scheduler goes on: the record only keeps a restart from taking these ticks for missed ones,
/// and a tick's run is never repeated anyway (the runs tree knows the run of each tick).
pub(super) fn record_tick(fires: &Fires, job: &str, tick: DateTime<Utc>) {
    if let Err(e) = fires.set(job, tick) {
        tracing::error!(
            "job `{job}`: recording tick {} as dealt with failed: {e}; if zoomcast restarts \
             before a later tick is recorded, the ticks since the last one recorded count as \
             missed (the job's `catch_up` decides)",
            tick.to_rfc3339()
        );
    }
}

/// Queues the resumption of a job's interrupted run, unless a later tick has come since.
pub(super) fn resume(job: &Job, run: &RunRecord, now: DateTime<Utc>, slot: &mut Slot) {
    match (run.scheduled_for, &job.schedule) {
        (Some(tick), Some(schedule))
            if schedule
                .next_after(&tick.with_timezone(&job.timezone))
                .is_some_and(|later| later <= now) =>
        {
            tracing::warn!(
                "run {} of job `{}` (tick {}) did not finish, and a later tick has come since: \
                 not resumed; `zoomcast run {}` finishes it",
                run.id,
                job.name,
                tick.to_rfc3339(),
                job.name
            );
        }
        (Some(tick), _) => {
            tracing::info!(
                "resuming run {} of job `{}` (tick {})",
                run.id,
                job.name,
                tick.to_rfc3339()
            );
            slot.queue.push_back(Some(tick));
        }
        (None, _) if run.status == RunStatus::Running => {
            tracing::info!(
                "resuming run {} of job `{}`, started by hand",
                run.id,
                job.name
            );
            slot.queue.push_back(None);
        }
        (None, _) => {}
    }
}

/// The first tick of `job` after `after`, with its due time.
pub(super) fn next_tick(job: &Job, after: DateTime<Utc>) -> Option<Tick> {
    let at = job
        .schedule
        .as_ref()?
        .next_after(&after.with_timezone(&job.timezone))?
        .with_timezone(&Utc);
    let jitter = plan::jitter(&job.name, job.policy.jitter);
    let due = TimeDelta::from_std(jitter)
        .ok()
        .and_then(|jitter| at.checked_add_signed(jitter))
        .unwrap_or(at);
    Some(Tick { at, due })
}

pub(super) fn describe_next(next: Option<Tick>) -> String {
    next.map_or_else(
        || "none (manual-only, or the schedule never fires again)".to_owned(),
        |t| t.due.to_rfc3339(),
    )
}

pub(super) fn log_skip(job: &str, tick: DateTime<Utc>, reason: SkipReason) {
    tracing::warn!("job `{job}`: tick {} skipped: {reason}", tick.to_rfc3339());
}
