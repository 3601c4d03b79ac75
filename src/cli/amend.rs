//! `recall JOB [--run ID] [--json]` and `edit JOB [--run ID] [--json]`: delete, or replace with
//! the job's card as it renders now, every message a run sent.

use std::sync::Arc;

use super::{Context, Outcome, State};
use crate::config::Job;
use crate::delivery::amend::{Amend, AmendReport};
use crate::delivery::{Engines, RunOptions};
use crate::state::RunId;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// A job name in the jobs directory, or a path to a job file.
    job: String,
    /// The run (default: the job's newest).
    #[arg(long, value_name = "ID")]
    run: Option<u64>,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(ctx: &Context, args: &Args, what: Amend) -> anyhow::Result<Outcome> {
    if let Some(missing) = ctx.no_such_job(&args.job) {
        return Err(missing.into());
    }
    let job = Job::load(&ctx.job_path(&args.job), &ctx.config)?;
    let (state, _answering) = ctx.write_state().await?;
    let store = match state {
        State::Local(store) => store,
        State::Daemon(_, holder) => anyhow::bail!(
            "{} holds the state directory; stop it (SIGTERM), then run `zoomcast {} {}` again (a \
             recall or an edit needs the state to itself)",
            holder.name(),
            verb(what),
            args.job
        ),
    };
    let engines = Engines::new(Arc::new(ctx.config.clone()), store)?;
    let app = engines.app(&job.app)?;
    let from = app.sender_for(&job).await?;
    let signals = crate::shutdown::Signals::listen()?.cancel_on_signal();
    let options = RunOptions {
        cancel: signals.token(),
        ..RunOptions::default()
    };
    let report = app
        .engine
        .amend(&job, &from, args.run.map(RunId), what, options)
        .await?;
    print(&job, &report, what, args.json)?;
    Ok(if report.failed.is_empty() {
        Outcome::Done
    } else {
        Outcome::SomeRecipientsFailed
    })
}

fn verb(what: Amend) -> &'static str {
    match what {
        Amend::Recall => "recall",
        Amend::Edit => "edit",
    }
}

fn print(job: &Job, report: &AmendReport, what: Amend, json: bool) -> anyhow::Result<()> {
    if json {
        let mut value = serde_json::to_value(report)?;
        value["job"] = job.name.clone().into();
        value["action"] = verb(what).into();
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let (done, already) = match what {
        Amend::Recall => ("recalled", "already recalled"),
        Amend::Edit => ("edited", "already as the job renders it"),
    };
    outln!(
        "run {} of job `{}`: {} messages {done}, {} {already}, {} without a message to change, {} failed",
        report.run,
        job.name,
        report.changed,
        report.unchanged,
        report.skipped,
        report.failed.len()
    );
    for f in &report.failed {
        outln!(
            "  {}  {}",
            crate::output::clean(&f.recipient, 320),
            crate::output::clean(&f.reason, 300)
        );
    }
    Ok(())
}
