//! `run JOB [--dry-run] [--json]`: run one job now.

use super::{Context, Outcome};
use crate::config::Job;
use std::sync::Arc;

use anyhow::Context as _;

use crate::delivery::{Engine, RunOptions, sender};
use crate::report;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// A job name in the jobs directory, or a path to a job file.
    job: String,
    /// Check everything (job, app, grant) and send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Look every recipient up again instead of using the cached JIDs.
    #[arg(long)]
    refresh_cache: bool,
    /// Write the failed and uncertain recipients to this CSV file (columns email, state, code,
    /// message), usable as the `recipients.file` of a follow-up job.
    #[arg(long, value_name = "FILE")]
    failures: Option<std::path::PathBuf>,
}

pub(super) async fn run(ctx: &Context, args: &Args) -> anyhow::Result<Outcome> {
    let job = Job::load(&ctx.job_path(&args.job), &ctx.config)?;
    let app = ctx.app(&job.app)?;
    let store = ctx.open_store()?;
    let (zoom, _, tokens) = Context::clients(&app, &store)?;
    let from = sender(
        &tokens,
        app.robot_jid.as_deref(),
        app.account_id.as_deref(),
        &app.name,
    )
    .await?;
    if args.dry_run {
        println!(
            "dry run: job `{}` is valid and would send to {} recipients as app `{}` (bot {}); nothing was sent",
            job.name, job.recipient_count, app.name, from.robot_jid
        );
        return Ok(Outcome::Done);
    }
    let engine = Engine::new(&store, zoom, tokens, Arc::default())?;
    let options = RunOptions {
        refresh_cache: args.refresh_cache,
        ..RunOptions::default()
    };
    let report = engine.run(&job, &from, options).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::run_report_json(&report))?
        );
    } else {
        print!("{}", report::run_report_text(&report));
    }
    if let Some(path) = &args.failures {
        report::write_failures_csv(path, &report.failures)
            .with_context(|| format!("writing the failures to {}", path.display()))?;
        eprintln!(
            "wrote {} failed or uncertain recipients to {}",
            report.failures.len(),
            path.display()
        );
    }
    Ok(if report.failures.is_empty() {
        Outcome::Done
    } else {
        Outcome::SomeRecipientsFailed
    })
}
