//! `validate [PATH...]`: check job files, reporting every problem in every file (exit 2).

use std::path::PathBuf;

use chrono::Utc;

use super::{Context, Outcome};
use crate::config::{Invalid, Job};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Job files, job names, or directories (each *.toml in them); default: every *.toml in
    /// the jobs directory.
    paths: Vec<PathBuf>,
}

pub(super) fn run(ctx: &Context, args: &Args) -> anyhow::Result<Outcome> {
    let mut paths = Vec::new();
    if args.paths.is_empty() {
        paths = ctx.job_files()?;
        if paths.is_empty() {
            outln!("no job files in {}", ctx.jobs_dir.display());
        }
    }
    for path in &args.paths {
        if path.is_dir() {
            let files = crate::config::jobs_dir::toml_files(path)?;
            if files.is_empty() {
                outln!("no job files in {}", path.display());
            }
            paths.extend(files);
        } else {
            paths.push(ctx.job_path(&path.to_string_lossy()));
        }
    }
    let mut diagnostics = Vec::new();
    for path in &paths {
        match Job::load(path, &ctx.config) {
            Ok(job) => {
                outln!("ok: {} ({})", path.display(), summary(&job));
                for warning in &job.warnings {
                    errln!("{warning}");
                }
            }
            Err(invalid) => diagnostics.extend(invalid.diagnostics),
        }
    }
    if diagnostics.is_empty() {
        Ok(Outcome::Done)
    } else {
        Err(Invalid { diagnostics }.into())
    }
}

fn summary(job: &Job) -> String {
    let when = match &job.schedule {
        None => "manual only".to_owned(),
        Some(s) => {
            let next = s
                .next_after(&Utc::now().with_timezone(&job.timezone))
                .map_or_else(
                    || "never fires".to_owned(),
                    |t| format!("next {}", t.to_rfc3339()),
                );
            format!("schedule \"{s}\" in {}, {next}", job.timezone)
        }
    };
    format!(
        "{} recipients, app `{}`, {when}",
        job.recipient_count, job.app
    )
}
