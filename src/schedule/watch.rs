//! Reloading the jobs directory: polled for changed job files (polling works on every
//! filesystem, network and container mounts included) and on SIGHUP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::daemon::Event;
use crate::config::Config;

/// What identifies the jobs directory's contents: each job file's name, size and mtime.
pub(super) type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

pub(super) fn fingerprint(dir: &std::path::Path) -> Fingerprint {
    crate::config::jobs_dir::toml_files(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
            let modified = meta.and_then(|m| m.modified().ok());
            (path, len, modified)
        })
        .collect()
}

/// Loads the jobs directory again when a job file changes (checked every `every`; polling
/// works on every filesystem, network and container mounts included) or on SIGHUP.
pub(super) async fn watch_jobs(
    config: Arc<Config>,
    dir: PathBuf,
    every: Duration,
    reload: Arc<Notify>,
    events: mpsc::Sender<Event>,
    stop: CancellationToken,
) {
    let mut seen = fingerprint(&dir);
    loop {
        let asked = tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => false,
            () = reload.notified() => true,
        };
        let now = fingerprint(&dir);
        if !asked && now == seen {
            continue;
        }
        seen = now;
        // Every job file and recipients file read, each message test-rendered: off the
        // runtime's workers, as the reminder loop loads them.
        let (config, dir_now) = (config.clone(), dir.clone());
        let loaded =
            crate::state::off_workers(move || crate::config::jobs_dir::load(&config, &dir_now))
                .await;
        match loaded {
            Ok(set) => {
                tracing::info!(
                    "jobs directory reloaded: {} jobs, {} invalid",
                    set.jobs.len(),
                    set.broken.len()
                );
                if events.send(Event::Reload(set)).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::error!(
                "reloading the jobs directory failed: {e:#}; keeping the jobs as they were"
            ),
        }
    }
}
