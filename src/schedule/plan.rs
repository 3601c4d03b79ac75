//! The scheduler's pure decisions: which missed ticks to run after downtime (`catch_up`,
//! `catch_up_within`) and each job's stable jitter. No clock, no I/O: the daemon feeds them.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use crate::config::{CatchUp, SchedulePolicy};
use crate::cron::Schedule;

/// Skipped ticks listed one by one before the rest are summed up.
const LISTED: usize = 10;

/// Why a tick does not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Missed while down, and the job says `catch_up = "none"`.
    CatchUpNone,
    /// Missed while down; a newer missed tick runs instead (`catch_up = "latest"`).
    Superseded,
    /// Missed longer ago than `catch_up_within`.
    TooOld(Duration),
    /// The job's previous run was still going (`overlap = "skip"`).
    Overlap,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CatchUpNone => f.write_str("missed while the scheduler was down (catch_up = \"none\")"),
            Self::Superseded => f.write_str(
                "missed while the scheduler was down; only the newest missed tick runs (catch_up = \"latest\")",
            ),
            Self::TooOld(within) => write!(
                f,
                "missed while the scheduler was down, longer ago than catch_up_within = \"{}\"",
                humantime::format_duration(*within)
            ),
            Self::Overlap => f.write_str("the previous run is still going (overlap = \"skip\")"),
        }
    }
}

/// What to do with the ticks a job missed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Missed {
    /// Ticks to run, oldest first.
    pub run: Vec<DateTime<Utc>>,
    /// The first skipped ticks, with why.
    pub skipped: Vec<(DateTime<Utc>, SkipReason)>,
    /// Skipped ticks beyond those listed.
    pub more_skipped: u64,
    /// The newest missed tick, if any was missed.
    pub newest: Option<DateTime<Utc>>,
}

impl Missed {
    fn skip(&mut self, tick: DateTime<Utc>, reason: SkipReason) {
        if self.skipped.len() < LISTED {
            self.skipped.push((tick, reason));
        } else {
            self.more_skipped += 1;
        }
    }
}

/// The ticks of `schedule` (read in `tz`) after `after` and up to `until`, oldest first.
pub fn ticks_between(
    schedule: &Schedule,
    tz: Tz,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> impl Iterator<Item = DateTime<Utc>> + '_ {
    schedule
        .times_after(&after.with_timezone(&tz))
        .map(|t| t.with_timezone(&Utc))
        .take_while(move |t| *t <= until)
}

/// Decides what happens to missed `ticks` (oldest first) at `now` under `policy`.
pub fn plan_missed(
    ticks: impl IntoIterator<Item = DateTime<Utc>>,
    now: DateTime<Utc>,
    policy: &SchedulePolicy,
) -> Missed {
    let too_old = |tick: DateTime<Utc>| {
        policy
            .catch_up_within
            .filter(|within| (now - tick).to_std().is_ok_and(|age| age > *within))
    };
    let mut missed = Missed::default();
    let mut latest = None;
    for tick in ticks {
        missed.newest = Some(tick);
        if let Some(within) = too_old(tick) {
            missed.skip(tick, SkipReason::TooOld(within));
            continue;
        }
        match policy.catch_up {
            CatchUp::None => missed.skip(tick, SkipReason::CatchUpNone),
            CatchUp::All => missed.run.push(tick),
            CatchUp::Latest => {
                if let Some(older) = latest.replace(tick) {
                    missed.skip(older, SkipReason::Superseded);
                }
            }
        }
    }
    missed.run.extend(latest);
    missed
}

/// The job's own delay below `max`: stable across restarts and releases (a hash of the name),
/// so a job's ticks keep their rhythm and jobs with the same schedule spread out.
pub fn jitter(job: &str, max: Duration) -> Duration {
    let Ok(max_ms) = u64::try_from(max.as_millis()) else {
        return Duration::ZERO;
    };
    if max_ms == 0 {
        return Duration::ZERO;
    }
    let digest = Sha256::digest(job.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    Duration::from_millis(u64::from_be_bytes(bytes) % max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overlap;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn policy(catch_up: CatchUp, within: Option<u64>) -> SchedulePolicy {
        SchedulePolicy {
            catch_up,
            catch_up_within: within.map(Duration::from_secs),
            overlap: Overlap::Skip,
            jitter: Duration::ZERO,
        }
    }

    /// Every 10 minutes from 10:00 to 11:00: the ticks missed by a scheduler down from 09:55 to
    /// 11:05.
    fn missed_ticks() -> Vec<DateTime<Utc>> {
        let s: Schedule = "*/10 * * * *".parse().unwrap();
        ticks_between(
            &s,
            Tz::UTC,
            at("2026-11-23T09:55:00Z"),
            at("2026-11-23T11:05:00Z"),
        )
        .collect()
    }

    #[test]
    fn ticks_between_is_exclusive_then_inclusive() {
        let ticks = missed_ticks();
        assert_eq!(ticks.len(), 7);
        assert_eq!(ticks[0], at("2026-11-23T10:00:00Z"));
        assert_eq!(ticks[6], at("2026-11-23T11:00:00Z"));
        let s: Schedule = "*/10 * * * *".parse().unwrap();
        let ticks: Vec<_> = ticks_between(
            &s,
            Tz::UTC,
            at("2026-11-23T10:00:00Z"),
            at("2026-11-23T10:20:00Z"),
        )
        .collect();
        assert_eq!(
            ticks,
            [at("2026-11-23T10:10:00Z"), at("2026-11-23T10:20:00Z")]
        );
    }

    #[test]
    fn catch_up_latest_runs_only_the_newest() {
        let now = at("2026-11-23T11:05:00Z");
        let plan = plan_missed(missed_ticks(), now, &policy(CatchUp::Latest, None));
        assert_eq!(plan.run, [at("2026-11-23T11:00:00Z")]);
        assert_eq!(plan.skipped.len(), 6);
        assert!(
            plan.skipped
                .iter()
                .all(|(_, r)| *r == SkipReason::Superseded)
        );
        assert_eq!(plan.newest, Some(at("2026-11-23T11:00:00Z")));
    }

    #[test]
    fn catch_up_all_runs_every_missed_tick_in_order() {
        let now = at("2026-11-23T11:05:00Z");
        let plan = plan_missed(missed_ticks(), now, &policy(CatchUp::All, None));
        assert_eq!(plan.run, missed_ticks());
        assert!(plan.skipped.is_empty());
    }

    #[test]
    fn catch_up_none_skips_everything_with_its_reason() {
        let now = at("2026-11-23T11:05:00Z");
        let plan = plan_missed(missed_ticks(), now, &policy(CatchUp::None, None));
        assert!(plan.run.is_empty());
        assert_eq!(plan.skipped.len(), 7);
        assert!(
            plan.skipped
                .iter()
                .all(|(_, r)| *r == SkipReason::CatchUpNone)
        );
    }

    #[test]
    fn catch_up_within_drops_old_ticks() {
        let now = at("2026-11-23T11:05:00Z");
        // Within 25 minutes: 10:40, 10:50 and 11:00.
        let plan = plan_missed(missed_ticks(), now, &policy(CatchUp::All, Some(25 * 60)));
        assert_eq!(
            plan.run,
            [
                at("2026-11-23T10:40:00Z"),
                at("2026-11-23T10:50:00Z"),
                at("2026-11-23T11:00:00Z")
            ]
        );
        assert_eq!(plan.skipped.len(), 4);
        assert!(
            plan.skipped[0]
                .1
                .to_string()
                .contains("catch_up_within = \"25m\"")
        );
        // With latest, even the newest can be too old.
        let plan = plan_missed(missed_ticks(), now, &policy(CatchUp::Latest, Some(60)));
        assert!(plan.run.is_empty());
        assert_eq!(plan.skipped.len(), 7);
    }

    #[test]
    fn long_downtime_lists_a_few_and_counts_the_rest() {
        let s: Schedule = "* * * * * *".parse().unwrap();
        let ticks = ticks_between(
            &s,
            Tz::UTC,
            at("2026-11-23T00:00:00Z"),
            at("2026-11-23T01:00:00Z"),
        );
        let plan = plan_missed(
            ticks,
            at("2026-11-23T01:00:00Z"),
            &policy(CatchUp::Latest, None),
        );
        assert_eq!(plan.run, [at("2026-11-23T01:00:00Z")]);
        assert_eq!(plan.skipped.len() as u64 + plan.more_skipped, 3599);
    }

    #[test]
    fn jitter_is_stable_bounded_and_spreads_jobs() {
        let max = Duration::from_secs(60);
        assert_eq!(jitter("standup", max), jitter("standup", max));
        assert!(jitter("standup", max) < max);
        assert_eq!(jitter("standup", Duration::ZERO), Duration::ZERO);
        let spread: std::collections::HashSet<_> =
            (0..20).map(|i| jitter(&format!("job{i}"), max)).collect();
        assert!(spread.len() > 15, "{spread:?}");
    }
}
