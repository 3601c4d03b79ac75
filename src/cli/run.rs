//! `run JOB [--dry-run [--show N] [--no-resolve]] [--json] [--var NAME=VALUE]... [--refresh-cache]
//! [--failures FILE] [--progress MODE]`: run one job now, or see what a run would do.

use super::state::InvalidText;
use super::{Context, Outcome, State};
use crate::config::Job;
use crate::config::vars::{BadVar, run_values, split_assignment};
use crate::control::Checked;
use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;

use crate::delivery::{Announce, Engines, ProgressMode, RunOptions, RunReport, Stop};
use crate::report;
use crate::shutdown::Signals;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// A job name in the jobs directory, or a path to a job file.
    job: String,
    #[command(flatten)]
    dry: PreviewArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// This run's value of a variable the job declares in `[vars]` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
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

/// `--dry-run` and what it takes.
#[derive(Debug, clap::Args)]
struct PreviewArgs {
    /// Check everything (job, app, grant, bot token), look the recipients up, show the first
    /// cards, and send nothing.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: how many recipients' cards to show, as Zoom would receive them.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "dry_run")]
    show: usize,
    /// With --dry-run: do not look the recipients up (no Users API calls for them).
    #[arg(long, requires = "dry_run")]
    no_resolve: bool,
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
    if let Some(missing) = ctx.no_such_job(&args.job) {
        return Err(missing.into());
    }
    let path = ctx.job_path(&args.job);
    let job = Job::load(&path, &ctx.config)?;
    let vars = run_vars(&job, &args.vars)?;
    let (state, _answering) = ctx.write_state().await?;
    let store = match state {
        State::Local(store) => store,
        // The scheduler uses its own configuration for the app, not this shell's.
        daemon @ State::Daemon(..) => {
            return through_scheduler(&daemon, (&job, vars), &path, args).await;
        }
    };
    let doing = if args.dry.dry_run {
        "checking"
    } else {
        "running"
    };
    store.announce(&format!("{doing} job `{}`", job.name));
    let engines = Engines::new(Arc::new(ctx.config.clone()), store)?;
    if args.dry.dry_run {
        let (from, preview) = engines
            .dry_run(&job, args.dry.show, !args.dry.no_resolve, vars)
            .await?;
        return dry_run_report(&job, &Checked::new(&job, &from, preview), args, None);
    }
    let app = engines.app(&job.app)?;
    let from = app.sender_for(&job).await?;
    // Ctrl-C, SIGTERM or SIGHUP: the run stops taking recipients, finishes and records the
    // sends in flight, and stays interrupted.
    let signals = Signals::listen()
        .context("listening for signals")?
        .cancel_on_signal();
    // Commands finding the state directory in use say how far this run is.
    let (store, name) = (engines.store().clone(), job.name.clone());
    let announce = Announce(Arc::new(move |progress: &str| {
        store.announce(&format!("running job `{name}`, {progress}"));
    }));
    let options = RunOptions {
        refresh_cache: args.refresh_cache,
        progress: args.progress(),
        cancel: signals.token(),
        announce: Some(announce),
        vars,
        ..RunOptions::default()
    };
    let result = app.engine.run(&job, &from, options).await;
    engines.notify_failure(&job, (&app, &from), &result).await;
    let report = result.map_err(|e| interrupted(e, &args.job))?;
    finish(&report, args)
}

/// The `--var NAME=VALUE` values, each a name `job` declares (exit 2 otherwise).
fn run_vars(job: &Job, given: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let invalid = |bad: BadVar| InvalidText(format!("--var: {bad}"));
    let pairs = given
        .iter()
        .map(|text| split_assignment(text))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    Ok(run_values(&job.name, &job.vars, pairs).map_err(invalid)?)
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

/// Runs the job in the scheduler (or `serve`) that holds the state directory.
async fn through_scheduler(
    state: &State,
    (job, vars): (&Job, BTreeMap<String, String>),
    path: &std::path::Path,
    args: &Args,
) -> anyhow::Result<Outcome> {
    let path = std::path::absolute(path)
        .with_context(|| format!("resolving the job file {}", path.display()))?;
    if args.dry.dry_run {
        let checked = state
            .check_job(path, args.dry.show, !args.dry.no_resolve)
            .await?;
        return dry_run_report(job, &checked, args, Some(state.holder()));
    }
    errln!(
        "{} holds the state directory: running job `{}` in it",
        state.holder().name(),
        job.name
    );
    let report = state.run_job(path, args.refresh_cache, vars).await?;
    finish(&report, args)
}

/// Prints what a dry run found; exit 3 if some recipients would fail.
fn dry_run_report(
    job: &Job,
    checked: &Checked,
    args: &Args,
    in_scheduler: Option<crate::control::Holder>,
) -> anyhow::Result<Outcome> {
    let preview = &checked.preview;
    let failing = preview.resolved.as_ref().map_or(0, |r| r.failing_count);
    if args.json {
        let mut value = serde_json::to_value(checked)?;
        value["job"] = job.name.clone().into();
        value["sent"] = 0.into();
        outln!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let place =
            in_scheduler.map_or_else(String::new, |holder| format!(", through {}", holder.name()));
        outln!("dry run of job `{}`{place}: nothing was sent", job.name);
        outln!(
            "  sends as app `{}` in account {}, bot {}; the bot token was obtained",
            checked.app,
            checked.account,
            checked.robot_jid
        );
        match &preview.resolved {
            Some(r) => outln!(
                "  {} recipients: {} found, {} opted out, {} would fail",
                preview.recipients,
                r.found,
                r.opted_out,
                r.failing_count
            ),
            None => outln!(
                "  {} recipients, not looked up (--no-resolve)",
                preview.recipients
            ),
        }
        for f in preview.resolved.iter().flat_map(|r| &r.failing) {
            outln!(
                "    {}  {}",
                crate::output::clean(&f.recipient, 320),
                crate::output::clean(&f.reason, 300)
            );
        }
        for m in &preview.messages {
            let to = m.to_jid.as_deref().unwrap_or("not looked up");
            outln!(
                "  card for {} (to {to}):",
                crate::output::clean(&m.recipient, 320)
            );
            match (&m.content, &m.error) {
                (Some(content), _) => {
                    for line in serde_json::to_string_pretty(content)?.lines() {
                        outln!("    {line}");
                    }
                }
                (None, Some(error)) => outln!("    cannot be made: {error}"),
                (None, None) => {}
            }
        }
    }
    Ok(if failing > 0 {
        Outcome::SomeRecipientsFailed
    } else {
        Outcome::Done
    })
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
