//! `jobs [--json] [--next N]`: every job with its schedule, timezone, last run and outcome, and
//! its next fire times in local time and UTC. Needs no grant and no network; while a scheduler
//! holds the state directory, the last runs come from it.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::{Context, InvalidText, Outcome};
use crate::config::Job;
use crate::config::JobSet;
use crate::report;
use crate::state::RunRecord;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// How many fire times to show.
    #[arg(long, default_value_t = 1)]
    next: usize,
}

pub(super) async fn run(ctx: &Context, args: &Args) -> anyhow::Result<Outcome> {
    let now = Utc::now();
    let JobSet { jobs, broken } = crate::config::jobs_dir::load(&ctx.config, &ctx.jobs_dir)?;
    let invalid: Vec<String> = broken.into_iter().map(|(_, why)| why).collect();
    let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
    let listings: Vec<Listing> = jobs
        .iter()
        .zip(last_runs(ctx, names).await)
        .map(|(job, last)| Listing {
            job,
            last,
            next: job.schedule.as_ref().map_or_else(Vec::new, |s| {
                s.upcoming(&now.with_timezone(&job.timezone), args.next)
            }),
        })
        .collect();
    if args.json {
        let rows: Vec<Value> = listings.iter().map(Listing::json).collect();
        outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        listings.iter().for_each(Listing::print);
    }
    if invalid.is_empty() {
        return Ok(Outcome::Done);
    }
    let header = format!(
        "{} job files are invalid and are not scheduled:",
        invalid.len()
    );
    Err(InvalidText(
        std::iter::once(header)
            .chain(invalid)
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .into())
}

/// The newest run of each job, or nothing where the state cannot be read (said on stderr).
async fn last_runs(ctx: &Context, jobs: Vec<String>) -> Vec<Option<RunRecord>> {
    let count = jobs.len();
    if !ctx.state_dir.exists() {
        return vec![None; count];
    }
    let answer = match ctx.read_state().await {
        Ok(state) => state.latest_runs(jobs).await,
        Err(e) => Err(e),
    };
    answer.unwrap_or_else(|e| {
        errln!("the last runs are not shown: {e:#}");
        vec![None; count]
    })
}

/// One job as `jobs` shows it.
struct Listing<'a> {
    job: &'a Job,
    last: Option<RunRecord>,
    next: Vec<DateTime<Tz>>,
}

impl Listing<'_> {
    fn json(&self) -> Value {
        let job = self.job;
        json!({
            "name": job.name,
            "description": job.description,
            "schedule": job.schedule.as_ref().map(ToString::to_string),
            "timezone": job.timezone.name(),
            "app": job.app,
            "recipients": job.recipient_count,
            "suspended": job.suspend,
            "next": self.next.iter().map(DateTime::to_rfc3339).collect::<Vec<_>>(),
            "next_utc": self.next.iter().map(|t| t.to_utc().to_rfc3339()).collect::<Vec<_>>(),
            "last_run": self.last.as_ref().map(report::run_json),
        })
    }

    fn print(&self) {
        let job = self.job;
        let schedule = job
            .schedule
            .as_ref()
            .map_or_else(|| "manual only".to_owned(), |s| format!("\"{s}\""));
        let suspended = if job.suspend { "  suspended" } else { "" };
        outln!(
            "{}  {schedule}  {}  app {}{suspended}",
            job.name,
            job.timezone.name(),
            job.app
        );
        match &self.last {
            Some(last) => outln!(
                "  last run: {} {} at {} ({} sent, {} failed, {} uncertain)",
                last.id,
                last.status,
                last.started_at.to_rfc3339(),
                last.counts.sent,
                last.counts.failed,
                last.counts.uncertain
            ),
            None => outln!("  last run: never"),
        }
        for t in &self.next {
            outln!("  next: {}  ({})", t.to_rfc3339(), t.to_utc().to_rfc3339());
        }
        if job.schedule.is_some() && self.next.is_empty() {
            outln!("  next: never again (the schedule's last time has passed)");
        }
    }
}
