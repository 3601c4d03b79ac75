//! `run JOB [--dry-run] [--json] [--refresh-cache] [--failures FILE] [--progress MODE]`: run one
//! job now.

use super::{Context, Outcome, State};
use crate::config::Job;
use std::sync::Arc;

use anyhow::Context as _;

use crate::delivery::{Engines, ProgressMode, RunOptions, RunReport, Stop};
use crate::report;
use crate::shutdown::Signals;

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
    /// How to show progress on stderr: a bar when stderr is a terminal and log lines otherwise
    /// (auto), a bar (drawn only on a terminal), always lines, or nothing until the report.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
    /// How often progress lines are logged.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = super::positive_duration)]
    progress_every: std::time::Duration,
}

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Progress {
    Auto,
    Bar,
    Lines,
    None,
}

impl Args {
    fn progress(&self) -> ProgressMode {
        use std::io::IsTerminal as _;
        match self.progress {
            Progress::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            Progress::Auto | Progress::Lines => ProgressMode::Lines(self.progress_every),
            Progress::Bar => ProgressMode::Bar,
            Progress::None => ProgressMode::Off,
        }
    }
}

pub(super) async fn run(ctx: &Context, args: &Args) -> anyhow::Result<Outcome> {
    let path = ctx.job_path(&args.job);
    let job = Job::load(&path, &ctx.config)?;
    let store = match ctx.state().await? {
        State::Local(store) => store,
        // The scheduler uses its own configuration for the app, not this shell's.
        daemon @ State::Daemon(_) => return through_scheduler(&daemon, &job, &path, args).await,
    };
    let engines = Engines::new(Arc::new(ctx.config.clone()), Arc::new(store))?;
    let app = engines.app(&job.app)?;
    let from = app.sender_for(&job).await?;
    if args.dry_run {
        outln!(
            "dry run: job `{}` is valid and would send to {} recipients as app `{}` (bot {}); nothing was sent",
            job.name,
            job.recipient_count,
            app.app.name,
            from.robot_jid
        );
        return Ok(Outcome::Done);
    }
    // Ctrl-C, SIGTERM or SIGHUP: the run stops taking recipients, finishes and records the
    // sends in flight, and stays interrupted.
    let signals = Signals::listen()
        .context("listening for signals")?
        .cancel_on_signal();
    let options = RunOptions {
        refresh_cache: args.refresh_cache,
        progress: args.progress(),
        cancel: signals.token(),
        ..RunOptions::default()
    };
    let report = app
        .engine
        .run(&job, &from, options)
        .await
        .map_err(|e| interrupted(e, &args.job))?;
    finish(&report, args)
}

/// A run stopped by a signal says how to go on.
fn interrupted(e: anyhow::Error, job: &str) -> anyhow::Error {
    if e.chain()
        .any(|c| matches!(c.downcast_ref(), Some(Stop::Shutdown)))
    {
        e.context(format!(
            "interrupted by a signal: the sends in flight finished and were recorded; run \
             `zoomcast run {job}` again to resume"
        ))
    } else {
        e
    }
}

/// Runs the job in the scheduler that holds the state directory.
async fn through_scheduler(
    state: &State,
    job: &Job,
    path: &std::path::Path,
    args: &Args,
) -> anyhow::Result<Outcome> {
    let path = std::path::absolute(path)
        .with_context(|| format!("resolving the job file {}", path.display()))?;
    if args.dry_run {
        let checked = state.check_job(path).await?;
        outln!(
            "dry run: job `{}` is valid and would send to {} recipients as app `{}` (bot {}, \
             through the running scheduler); nothing was sent",
            job.name,
            checked.recipients,
            checked.app,
            checked.robot_jid
        );
        return Ok(Outcome::Done);
    }
    errln!(
        "a scheduler holds the state directory: running job `{}` in it",
        job.name
    );
    let report = state.run_job(path, args.refresh_cache).await?;
    finish(&report, args)
}

/// Prints the report, writes the failures file, and says how the run ended.
fn finish(report: &RunReport, args: &Args) -> anyhow::Result<Outcome> {
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&report::run_report_json(report))?
        );
    } else {
        out!("{}", report::run_report_text(report));
    }
    if let Some(path) = &args.failures {
        report::write_failures_csv(path, &report.failures)
            .with_context(|| format!("writing the failures to {}", path.display()))?;
        errln!(
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
