//! `jobs [--json] [--next N]`: every job with its schedule, timezone, last run and outcome, and
//! its next fire times in local time and UTC. Needs no grant and no network; while a scheduler
//! holds the state directory, the last runs come from it.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::{Context, InvalidText, Outcome};
use crate::config::Job;
use crate::config::JobSet;
use crate::output::clean;
use crate::report;
use crate::state::{RunRecord, Suspension};

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
    let (last_runs, suspensions) = from_state(ctx, names).await;
    let listings: Vec<Listing> = jobs
        .iter()
        .zip(last_runs.into_iter().zip(suspensions))
        .map(|(job, (last, console))| Listing {
            job,
            last,
            console,
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

/// The newest run of each job and how the console suspended or resumed it, or nothing where
/// the state cannot be read (said on stderr).
async fn from_state(
    ctx: &Context,
    jobs: Vec<String>,
) -> (Vec<Option<RunRecord>>, Vec<Option<Suspension>>) {
    let count = jobs.len();
    if !ctx.state_dir.exists() {
        return (vec![None; count], vec![None; count]);
    }
    let answer = async {
        let state = ctx.read_state().await?;
        let suspensions = state.suspensions(jobs.clone()).await?;
        anyhow::Ok((state.latest_runs(jobs).await?, suspensions))
    };
    answer.await.unwrap_or_else(|e| {
        errln!("the last runs and the console's suspensions are not shown: {e:#}");
        (vec![None; count], vec![None; count])
    })
}

/// One job as `jobs` shows it.
struct Listing<'a> {
    job: &'a Job,
    last: Option<RunRecord>,
    /// The console's suspension, which holds over the file's `suspend`.
    console: Option<Suspension>,
    next: Vec<DateTime<Tz>>,
}

impl Listing<'_> {
    fn suspended(&self) -> bool {
        self.console
            .as_ref()
            .map_or(self.job.suspend, |s| s.suspended)
    }

    fn json(&self) -> Value {
        let job = self.job;
        json!({
            "name": job.name,
            "description": job.description,
            "schedule": job.schedule.as_ref().map(ToString::to_string),
            "timezone": job.timezone.name(),
            "app": job.app,
            "recipients": job.recipient_count,
            "suspended": self.suspended(),
            "console": self.console.as_ref().map(|s| json!({
                "suspended": s.suspended, "by": s.by, "at": s.at.to_rfc3339(),
            })),
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
        let suspended = match &self.console {
            Some(s) if s.suspended => format!("  suspended (console: {})", clean(&s.by, 64)),
            Some(s) if job.suspend => format!("  resumed (console: {})", clean(&s.by, 64)),
            _ if job.suspend => "  suspended".to_owned(),
            _ => String::new(),
        };
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
