//! [`Engine`]: the lifecycle of a run. It begins a run (new, resumed, or a tick's run that
//! already ran), drives the pipeline, records how the run ended, and keeps the state small
//! afterwards: older runs' per-recipient details pruned, the JID cache swept.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use super::journal::Journal;
use super::limiter::Limiter;
use super::progress::Progress;
use crate::config::vars::run_variables;
use crate::config::{Diagnostic, Invalid, Job};
use crate::state::record::Counts;
use crate::state::retention::{self, Keep};
use crate::state::{Delivery, RunId, RunRecord, RunStatus, StateError};

use super::context::cache_ttl;
use super::engine::Engine;
use super::pipeline::RunCtx;
use super::{JID_CACHE_KEEP, RunOptions, RunReport, Sender, Stop};
use crate::state::off_workers;

impl Engine {
    /// The shared state of one run (`run`, and whether it resumes) of `job`.
    pub(super) fn context<'a>(
        &'a self,
        job: &'a Job,
        sender: &'a Sender,
        options: RunOptions,
        (run, resumed): (RunId, bool),
        job_vars: BTreeMap<String, String>,
    ) -> RunCtx<'a> {
        RunCtx {
            chat: self.chat(job, sender, options, run, job_vars),
            journal: Journal::new(self.deliveries.clone()),
            ceiling: job.delivery.rate_per_second.map(Limiter::ceiling),
            seen: Mutex::new(HashSet::new()),
            refused: AtomicU64::new(0),
            progress: Progress::new(job.recipient_count),
            resumed,
        }
    }

    /// Runs `job` to the end, resuming its interrupted run if there is one.
    pub async fn run(
        &self,
        job: &Job,
        sender: &Sender,
        options: RunOptions,
    ) -> anyhow::Result<RunReport> {
        let mut record = match self.begin(job, &sender.account_id, &options).await? {
            Begin::Work(record) => record,
            Begin::AlreadyRan(record) => {
                let (_, failures) = self.tally(record.id).await?;
                return Ok(RunReport { record, failures });
            }
        };
        if let Some(on_start) = &options.on_start {
            (on_start.0)(&record);
        }
        let resumed = record.resumes > 0;
        record.acknowledge = job.acknowledge.as_ref().map(|a| a.button.clone());
        let vars = job_variables(job, &record.vars, record.id, record.started_at);
        let ctx = self.context(job, sender, options, (record.id, resumed), vars);
        let outcome = tokio::select! {
            outcome = ctx.pipeline() => outcome,
            never = ctx.progress.show(ctx.chat.options.progress, &job.name) => match never {},
            never = ctx.progress.announce(ctx.chat.options.announce.as_ref(), record.id.0) => match never {},
        };
        record.rate_limited.users += ctx.chat.lookups_limited.load(Ordering::Relaxed);
        record.rate_limited.chat += ctx.chat.sends_limited.load(Ordering::Relaxed);
        drop(ctx);
        self.limiters.remember(&sender.account_id);
        // Only a resumed run can hold `sending` entries from an earlier process.
        if outcome.is_ok() && resumed {
            let (deliveries, run) = (self.deliveries.clone(), record.id);
            let settled = off_workers(move || deliveries.settle_sending(run)).await?;
            if settled > 0 {
                tracing::warn!(
                    "{settled} recipients were being sent at an earlier crash and are no longer in the job: reported as uncertain"
                );
            }
        }
        self.deliveries.flush().await?;
        let (counts, failures) = self.tally(record.id).await?;
        record.counts = counts;
        record.finished_at = Some(Utc::now());
        record.status = match &outcome {
            // Interrupted on purpose: the next start resumes it.
            Err(Stop::Shutdown) => {
                record.finished_at = None;
                RunStatus::Running
            }
            Err(stop) => RunStatus::Aborted(stop.to_string()),
            Ok(()) if counts.failed + counts.uncertain > 0 => RunStatus::PartlyFailed,
            Ok(()) => RunStatus::Succeeded,
        };
        self.keep_closed(&mut record).await?;
        self.runs.put(&record).await?;
        if record.status != RunStatus::Running {
            if let Err(e) = self.trim_history(job).await {
                tracing::warn!(
                    "job `{}`: older runs could not be pruned or folded: {e}",
                    job.name
                );
            }
            self.sweep_jid_cache(job).await;
        }
        if let Err(stop) = outcome {
            return Err(anyhow::Error::new(stop)
                .context(format!("run {} of job `{}` stopped", record.id, job.name)));
        }
        Ok(RunReport { record, failures })
    }

    /// If the account removed the app while this run went on, the run was closed and its
    /// details deleted (see `server::deauthorize`): it stays closed, and what it recorded
    /// since is deleted too.
    async fn keep_closed(&self, record: &mut RunRecord) -> Result<(), StateError> {
        let stored = self.runs.get(record.id)?;
        let Some(stored) = stored.filter(|r| matches!(r.status, RunStatus::Closed(_))) else {
            return Ok(());
        };
        let (deliveries, run) = (self.deliveries.clone(), record.id);
        off_workers(move || deliveries.prune(run)).await?;
        self.deliveries.flush().await?;
        record.status = stored.status;
        record.finished_at = stored.finished_at;
        record.details_pruned = true;
        Ok(())
    }

    /// Deletes cached lookups older than the job's time-to-live or [`JID_CACHE_KEEP`],
    /// whichever is longer, at most once a day (see [`Jids::sweep_if_due`]). A failure is
    /// only logged: the cache is an optimisation.
    async fn sweep_jid_cache(&self, job: &Job) {
        let horizon = cache_ttl(job).hit.max(JID_CACHE_KEEP);
        let jids = self.jids.clone();
        match off_workers(move || jids.sweep_if_due(Utc::now(), horizon)).await {
            Ok(Some(deleted)) if deleted > 0 => tracing::debug!(
                "deleted {deleted} cached lookups fetched more than {} days ago",
                horizon.num_days()
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("the JID cache could not be swept: {e}"),
        }
    }

    /// Keeps the job's history within its limits: the per-recipient outcomes of its newest
    /// `keep_details` finished runs, the records of its newest `keep_runs` runs (older ones
    /// folded into its totals). See [`crate::state::retention`].
    async fn trim_history(&self, job: &Job) -> Result<(), StateError> {
        let keep = Keep {
            runs: usize::try_from(job.keep_runs.get()).unwrap_or(usize::MAX),
            details: usize::try_from(job.delivery.keep_details.get()).unwrap_or(usize::MAX),
        };
        let (runs, deliveries, name) =
            (self.runs.clone(), self.deliveries.clone(), job.name.clone());
        let trimmed = off_workers(move || retention::trim(&runs, &deliveries, &name, keep)).await?;
        if trimmed.pruned + trimmed.folded > 0 {
            tracing::debug!(
                "job `{}`: deleted the per-recipient outcomes of {} runs ({} entries) and folded \
                 {} runs into its totals; it keeps outcomes for its newest {} runs \
                 ([delivery] keep_details) and records for its newest {} (keep_runs)",
                job.name,
                trimmed.pruned,
                trimmed.entries,
                trimmed.folded,
                keep.details,
                keep.runs
            );
        }
        Ok(())
    }

    /// A run's counts, and its failed or uncertain recipients: a scan of all its recipients.
    async fn tally(&self, run: RunId) -> Result<(Counts, Vec<Delivery>), StateError> {
        let deliveries = self.deliveries.clone();
        off_workers(move || deliveries.tally(run)).await
    }

    /// The run to work on. For a schedule tick: the tick's run if it has one (to resume, or
    /// already finished), else a new one. By hand: the job's newest unfinished run, else a new
    /// one.
    async fn begin(&self, job: &Job, account: &str, options: &RunOptions) -> anyhow::Result<Begin> {
        let scheduled_for = options.scheduled_for;
        let existing = self.existing(job, options)?;
        let file = std::path::absolute(&job.path).unwrap_or_else(|_| job.path.clone());
        let Some(mut record) = existing else {
            let record = RunRecord {
                scheduled_for,
                vars: options.vars.clone(),
                ..RunRecord::new(RunId(0), &job.name, (&job.app, Some(account)), Some(file))
            };
            return Ok(Begin::Work(self.runs.start_as(record).await?));
        };
        if let Some(theirs) = record
            .job_file
            .as_ref()
            .filter(|t| !same_job_file(t, &file))
        {
            return Err(Invalid::one(
                Diagnostic::whole(
                    Some(&job.path),
                    format!(
                        "run {} of job `{}` belongs to another file of that name, {}",
                        record.id,
                        job.name,
                        theirs.display()
                    ),
                )
                .help(format!(
                    "a job's name is its file name, and its runs resume only for the file \
                     that started them: run {} to finish run {}, or give this file another name",
                    theirs.display(),
                    record.id
                )),
            )
            .into());
        }
        if !record.status.is_unfinished() {
            tracing::info!(
                "job `{}`: tick {} already ran as run {} ({}); not running it again",
                job.name,
                scheduled_for.map(|t| t.to_rfc3339()).unwrap_or_default(),
                record.id,
                record.status
            );
            return Ok(Begin::AlreadyRan(record));
        }
        if options.resume.is_some()
            && record.resumes == 0
            && self.tally(record.id).await?.0.total == 0
        {
            // Recorded when its notification arrived, and started for the first time now.
            let (name, run_id) = (job.name.as_str(), record.id.0);
            tracing::info!(job = name, run_id, "starting run {run_id} of job `{name}`");
            return Ok(Begin::Work(record));
        }
        tracing::info!(
            job = job.name.as_str(),
            run_id = record.id.0,
            "resuming run {} of job `{}`, started {} and interrupted before it finished",
            record.id,
            job.name,
            record.started_at.to_rfc3339()
        );
        if !options.vars.is_empty() && options.vars != record.vars {
            tracing::warn!(
                "run {} of job `{}` resumes with the variables it started with; the ones given \
                 now apply to the job's next run",
                record.id,
                job.name
            );
        }
        record.status = RunStatus::Running;
        record.finished_at = None;
        record.resumes += 1;
        record.job_file = Some(file);
        self.runs.put(&record).await?;
        Ok(Begin::Work(record))
    }
}

impl Engine {
    /// The recorded run a new start would work on: the tick's, the one asked for, or (by hand)
    /// the job's newest unfinished one; `None` for a new run.
    fn existing(&self, job: &Job, options: &RunOptions) -> anyhow::Result<Option<RunRecord>> {
        Ok(match (options.scheduled_for, options.resume) {
            (Some(tick), _) => self.runs.for_tick(&job.name, tick)?,
            (None, Some(id)) => {
                let record = self.runs.get(id)?.filter(|r| r.job == job.name);
                Some(record.ok_or_else(|| {
                    anyhow::anyhow!("run {id} of job `{}` is not recorded", job.name)
                })?)
            }
            (None, None) if options.fresh => None,
            (None, None) => self.runs.unfinished(&job.name)?,
        })
    }
}

/// Whether a run recorded for the job file `theirs` belongs to `ours` (both absolute, links
/// not resolved, so `current/jobs/x.toml` stays itself from one release directory to the
/// next): the same path, the same file reached another way, or a recorded file that no longer
/// exists (the job was moved).
fn same_job_file(theirs: &std::path::Path, ours: &std::path::Path) -> bool {
    if theirs == ours {
        return true;
    }
    match (std::fs::canonicalize(theirs), std::fs::canonicalize(ours)) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), _) => true,
        (Ok(_), Err(_)) => false,
    }
}

/// What [`Engine::begin`] found.
enum Begin {
    /// A run to work on (new or resumed).
    Work(RunRecord),
    /// The tick's run already finished.
    AlreadyRan(RunRecord),
}

/// How long `job` trusts a cached lookup.
/// The variables every message of the run has: the job's `[vars]`, and `job`, `run_id` and
/// `now` (the run's first start, also when it resumes).
/// The variables every message of run `run` has: the job's `[vars]` with the run's own values
/// (`overrides`) over them, then `job`, `run_id` and `now`.
pub(super) fn job_variables(
    job: &Job,
    overrides: &BTreeMap<String, String>,
    run: RunId,
    started_at: DateTime<Utc>,
) -> BTreeMap<String, String> {
    let mut vars = job.vars.clone();
    vars.extend(crate::config::vars::alert_defaults());
    vars.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    vars.extend(run_variables(&job.name, run.0, started_at, job.timezone));
    vars
}
