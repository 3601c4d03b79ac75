//! The reminder loop: every tick, the reminders due for jobs with `[acknowledge]
//! remind_after` are sent ([`crate::delivery::Engine::remind`]). The loop keeps its own copy of
//! those jobs, loaded again when a job file changes (as the scheduler's watch does).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::launcher::EngineLauncher;
use super::watch::fingerprint;
use crate::config::{Config, Job};
use crate::delivery::RunOptions;

/// Sends due reminders every `every` until `stop`.
pub(super) async fn send_reminders(
    launcher: Arc<EngineLauncher>,
    config: Arc<Config>,
    dir: PathBuf,
    every: Duration,
    stop: CancellationToken,
) {
    let (mut seen, mut jobs) = (None, Vec::new());
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let now = fingerprint(&dir);
        if seen.as_ref() != Some(&now) {
            // Loading reads every job's recipients file: off the runtime's workers.
            let (config, dir) = (config.clone(), dir.clone());
            jobs = crate::state::off_workers(move || reminding_jobs(&config, &dir)).await;
            seen = Some(now);
        }
        for job in &jobs {
            let options = RunOptions {
                cancel: stop.clone(),
                ..RunOptions::default()
            };
            match launcher.remind(job, options).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("job `{}`: {n} reminders to acknowledge sent", job.name),
                Err(e) => tracing::warn!("job `{}`: sending reminders failed: {e:#}", job.name),
            }
        }
    }
}

/// The valid jobs of `dir` that send reminders.
fn reminding_jobs(config: &Config, dir: &std::path::Path) -> Vec<Job> {
    match crate::config::jobs_dir::load(config, dir) {
        Ok(set) => set
            .jobs
            .into_iter()
            .filter(|job| {
                job.acknowledge
                    .as_ref()
                    .is_some_and(|a| a.reminders.is_some())
            })
            .collect(),
        Err(e) => {
            tracing::warn!("reading the jobs for their reminders failed: {e:#}");
            Vec::new()
        }
    }
}
