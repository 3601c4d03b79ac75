//! `history [JOB] [--json] [--limit N] [--run ID]`: past runs, and one run's per-recipient
//! outcomes.

use anyhow::bail;

use super::{Context, Outcome};
use crate::report;
use crate::state::RunId;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Only this job's runs.
    job: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// One run, with every recipient's outcome.
    #[arg(long, value_name = "ID")]
    run: Option<RunId>,
    /// Only the newest N runs.
    #[arg(long, value_name = "N", conflicts_with = "run")]
    limit: Option<usize>,
}

pub(super) async fn run(ctx: &Context, args: &Args) -> anyhow::Result<Outcome> {
    let state = ctx.read_state().await?;
    if let Some(id) = args.run {
        let Some((record, deliveries)) = state.run(id).await? else {
            bail!("there is no run {id}; `zoomcast history` lists the runs");
        };
        if args.json {
            let mut value = report::run_json(&record);
            let button = record.acknowledge.as_deref();
            value["deliveries"] = deliveries
                .iter()
                .map(|d| report::delivery_json_acknowledged(d, button))
                .collect();
            outln!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            out!("{}", report::runs_text(std::slice::from_ref(&record)));
            if let Some(why) = report::why_stopped(&record) {
                outln!("  {why}");
            }
            if record.details_pruned {
                outln!(
                    "  (per-recipient outcomes deleted: job `{}` keeps them for its newest runs only; \
                     raise [delivery] keep_details in its job file to keep more)",
                    record.job
                );
            }
            out!("{}", report::deliveries_text(&deliveries));
            if let Some(button) = &record.acknowledge {
                out!("{}", report::acknowledgements_text(&deliveries, button));
            }
        }
        return Ok(Outcome::Done);
    }
    let mut list = state.runs(args.job.clone()).await?;
    if let Some(limit) = args.limit {
        // Oldest first: the newest N are the last N.
        list.drain(..list.len().saturating_sub(limit));
    }
    // A job with no runs and no file is a typo, not an empty history.
    if let Some(job) = &args.job
        && list.is_empty()
        && let Some(missing) = ctx.no_such_job(job)
    {
        return Err(missing.into());
    }
    if args.json {
        let values: Vec<_> = list.iter().map(report::run_json).collect();
        outln!("{}", serde_json::to_string_pretty(&values)?);
    } else if list.is_empty() {
        outln!("no runs yet");
    } else {
        out!("{}", report::runs_text(&list));
    }
    Ok(Outcome::Done)
}
