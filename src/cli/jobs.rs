//! `jobs [--json] [--next N]`: every job with its schedule, timezone and next fire times.
//! Needs no grant and no network.

use chrono::Utc;
use serde_json::json;

use super::{Context, Outcome};
use crate::config::Job;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// How many fire times to show.
    #[arg(long, default_value_t = 1)]
    next: usize,
}

pub(super) fn run(ctx: &Context, args: &Args) -> anyhow::Result<Outcome> {
    let now = Utc::now();
    let mut rows = Vec::new();
    for path in ctx.job_files()? {
        let job = match Job::load(&path, &ctx.config) {
            Ok(job) => job,
            Err(invalid) => {
                eprintln!(
                    "skipping an invalid job file (run `zoomcast validate` for details):\n{invalid}"
                );
                continue;
            }
        };
        let next: Vec<String> = job.schedule.as_ref().map_or_else(Vec::new, |s| {
            s.upcoming(&now.with_timezone(&job.timezone), args.next)
                .iter()
                .map(chrono::DateTime::to_rfc3339)
                .collect()
        });
        rows.push(json!({
            "name": job.name,
            "description": job.description,
            "schedule": job.schedule.as_ref().map(ToString::to_string),
            "timezone": job.timezone.name(),
            "app": job.app,
            "recipients": job.recipient_count,
            "next": next,
        }));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Outcome::Done);
    }
    for row in &rows {
        let schedule = row["schedule"].as_str().unwrap_or("manual only");
        println!(
            "{}  \"{schedule}\"  {}",
            row["name"].as_str().unwrap_or(""),
            row["timezone"].as_str().unwrap_or("")
        );
        for t in row["next"].as_array().into_iter().flatten() {
            println!("  next: {}", t.as_str().unwrap_or(""));
        }
    }
    Ok(Outcome::Done)
}
