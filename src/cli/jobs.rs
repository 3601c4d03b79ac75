//! `jobs [--json] [--next N]`: every job with its schedule, timezone, last run and outcome, and
//! its next fire times in local time and UTC. Needs no grant and no network; while a scheduler
//! holds the state directory, the last runs come from it.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Context, Outcome, RemoteInvalid};
use crate::config::{Job, job_name};
use crate::control::{Request, Response};
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
    let mut jobs = Vec::new();
    let mut invalid = Vec::new();
    for path in ctx.job_files()? {
        match Job::load(&path, &ctx.config) {
            Ok(job) => jobs.push(job),
            Err(problems) => invalid.push((job_name(&path), problems.to_string())),
        }
    }
    let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
    let last_runs = last_runs(ctx, names).await;
    let rows: Vec<Value> = jobs
        .iter()
        .zip(last_runs)
        .map(|(job, last)| row(job, last.as_ref(), now, args.next))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for (job, row) in jobs.iter().zip(&rows) {
            print_row(job, row);
        }
    }
    if invalid.is_empty() {
        return Ok(Outcome::Done);
    }
    let mut message = format!(
        "{} job files are invalid and are not scheduled:",
        invalid.len()
    );
    for (_, why) in &invalid {
        message.push('\n');
        message.push_str(why);
    }
    Err(RemoteInvalid(message).into())
}

/// The newest run of each job, or nothing where the state cannot be read (said on stderr).
async fn last_runs(ctx: &Context, jobs: Vec<String>) -> Vec<Option<RunRecord>> {
    let count = jobs.len();
    if !ctx.state_dir.exists() {
        return vec![None; count];
    }
    let answer = match ctx.state() {
        Ok(state) => state.ask(&Request::LatestRuns { jobs }).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(Response::LatestRuns(runs)) if runs.len() == count => runs,
        Ok(_) => vec![None; count],
        Err(e) => {
            eprintln!("the last runs are not shown: {e:#}");
            vec![None; count]
        }
    }
}

fn row(job: &Job, last: Option<&RunRecord>, now: DateTime<Utc>, n: usize) -> Value {
    let next = job.schedule.as_ref().map_or_else(Vec::new, |s| {
        s.upcoming(&now.with_timezone(&job.timezone), n)
    });
    json!({
        "name": job.name,
        "description": job.description,
        "schedule": job.schedule.as_ref().map(ToString::to_string),
        "timezone": job.timezone.name(),
        "app": job.app,
        "recipients": job.recipient_count,
        "next": next.iter().map(DateTime::to_rfc3339).collect::<Vec<_>>(),
        "next_utc": next.iter().map(|t| t.with_timezone(&Utc).to_rfc3339()).collect::<Vec<_>>(),
        "last_run": last.map(report::run_json),
    })
}

fn print_row(job: &Job, row: &Value) {
    let schedule = job
        .schedule
        .as_ref()
        .map_or_else(|| "manual only".to_owned(), |s| format!("\"{s}\""));
    println!(
        "{}  {schedule}  {}  app {}",
        job.name,
        job.timezone.name(),
        job.app
    );
    match row["last_run"].as_object() {
        Some(last) => println!(
            "  last run: {} {} at {} ({} sent, {} failed, {} uncertain)",
            last["run_id"],
            last["status"].as_str().unwrap_or(""),
            last["started_at"].as_str().unwrap_or(""),
            last["counts"]["sent"],
            last["counts"]["failed"],
            last["counts"]["uncertain"]
        ),
        None => println!("  last run: never"),
    }
    let local = row["next"].as_array().into_iter().flatten();
    let utc = row["next_utc"].as_array().into_iter().flatten();
    for (t, u) in local.zip(utc) {
        println!(
            "  next: {}  ({})",
            t.as_str().unwrap_or(""),
            u.as_str().unwrap_or("")
        );
    }
    if job.schedule.is_some() && row["next"].as_array().is_some_and(Vec::is_empty) {
        println!("  next: never again (the schedule's last time has passed)");
    }
}
