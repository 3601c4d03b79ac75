//! [`ApiRuns`]: how the HTTP API's runs start ([`RunStarter`]). A run is handed to the
//! scheduler loop, as `zoomcast run` beside the scheduler hands one over the control socket,
//! so a job never runs twice at once; the request is answered as soon as the run is recorded,
//! and the run goes on in the loop.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::daemon::{Event, ManualRun};
use super::handler::{load_job, manual_run};
use super::launcher::EngineLauncher;
use crate::config::vars::run_values;
use crate::config::{Config, Job, JobSet};
use crate::control::Response;
use crate::delivery::{OnStart, RunOptions};
use crate::server::api::{Notice, RunStarter, StartError};
use crate::state::{AlertGroup, RunId, RunRecord, StateError, Store, Suspension, off_workers};

/// Starts the API's runs in the scheduler loop.
pub(super) struct ApiRuns {
    /// The only directory whose jobs it starts.
    pub(super) jobs_dir: PathBuf,
    pub(super) config: Arc<Config>,
    pub(super) store: Arc<Store>,
    pub(super) launcher: Arc<EngineLauncher>,
    pub(super) events: mpsc::Sender<Event>,
    /// One lock per job: a group's notifications are decided one at a time.
    pub(super) alert_locks: Arc<AlertLocks>,
}

/// The per-job locks of alert notifications.
pub(super) type AlertLocks = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

impl RunStarter for ApiRuns {
    fn jobs(&self) -> BoxFuture<'static, Result<JobSet, StartError>> {
        let (jobs_dir, config) = (self.jobs_dir.clone(), self.config.clone());
        Box::pin(async move {
            off_workers(move || crate::config::jobs_dir::load(&config, &jobs_dir))
                .await
                .map_err(|e| StartError::Failed(format!("{e:#}")))
        })
    }

    fn toggle_suspension(
        &self,
        job: String,
        by: String,
    ) -> BoxFuture<'static, Result<bool, StartError>> {
        let job_file = self.job_file(&job);
        let lock = self.alert_lock(&job);
        let (store, events) = (self.store.clone(), self.events.clone());
        Box::pin(async move {
            let job = job_file.await?;
            let _decided = lock.lock().await;
            let failed = |e: StateError| StartError::Failed(e.to_string());
            let console = store.console().map_err(failed)?;
            let now = console
                .suspension(&job.name)
                .map_err(failed)?
                .map_or(job.suspend, |s| s.suspended);
            let record = Suspension {
                suspended: !now,
                by,
                at: chrono::Utc::now(),
            };
            console
                .set_suspension(&job.name, &record)
                .await
                .map_err(failed)?;
            let event = Event::Suspend {
                job: job.name.clone(),
                suspended: record.suspended,
            };
            if events.send(event).await.is_err() {
                return Err(StartError::ShuttingDown);
            }
            Ok(record.suspended)
        })
    }

    fn recall(&self, job: String, run: RunId) -> BoxFuture<'static, Result<(), StartError>> {
        let job_file = self.job_file(&job);
        let (launcher, events) = (self.launcher.clone(), self.events.clone());
        Box::pin(async move {
            let job = job_file.await?;
            let name = job.name.clone();
            let work: ManualRun = Box::new(move |cancel| {
                Box::pin(async move { launcher.recall_run(&job, run, cancel).await })
            });
            let event = Event::Enqueue {
                job: name,
                run: work,
            };
            events
                .send(event)
                .await
                .map_err(|_| StartError::ShuttingDown)
        })
    }

    fn alert(&self, job: String, notice: Notice) -> BoxFuture<'static, Result<RunId, StartError>> {
        let job_file = self.job_file(&job);
        let lock = self.alert_lock(&job);
        let (store, launcher, events) = (
            self.store.clone(),
            self.launcher.clone(),
            self.events.clone(),
        );
        Box::pin(async move {
            let job = job_file.await?;
            let _decided = lock.lock().await;
            let (run, work) = take_notice(&store, &launcher, &job, notice).await?;
            let event = Event::Enqueue {
                job: job.name.clone(),
                run: work,
            };
            if events.send(event).await.is_err() {
                return Err(StartError::ShuttingDown);
            }
            Ok(run)
        })
    }

    fn start(
        &self,
        job: String,
        vars: BTreeMap<String, String>,
    ) -> BoxFuture<'static, Result<RunRecord, StartError>> {
        let job_file = self.job_file(&job);
        let (launcher, events) = (self.launcher.clone(), self.events.clone());
        Box::pin(async move {
            let job = job_file.await?;
            let given = vars.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            let vars = run_values(&job.name, &job.vars, given)?;
            let (started, on_start) = started_hook();
            let options = RunOptions {
                vars,
                on_start: Some(on_start),
                ..RunOptions::default()
            };
            let name = job.name.clone();
            let (done, ended) = oneshot::channel();
            let run = manual_run(&launcher, job, options, done);
            let event = Event::RunNow {
                job: name.clone(),
                run,
            };
            if events.send(event).await.is_err() {
                return Err(StartError::ShuttingDown);
            }
            if let Ok(record) = started.await {
                return Ok(record);
            }
            // It ended without starting, or the loop refused it.
            match ended.await {
                Ok(Ok(report)) => Ok(report.record),
                Ok(Err(e)) if crate::config::diagnostic::is_invalid(&e) => {
                    Err(StartError::Invalid(format!("{e:#}")))
                }
                Ok(Err(e)) => Err(StartError::Failed(format!("{e:#}"))),
                Err(_) => Err(StartError::Busy(name)),
            }
        })
    }
}

impl ApiRuns {
    /// The job file of the jobs directory named `job`, loaded (off the runtime's workers).
    fn job_file(&self, job: &str) -> BoxFuture<'static, Result<Arc<Job>, StartError>> {
        let path = self.jobs_dir.join(format!("{job}.toml"));
        let (jobs_dir, config) = (self.jobs_dir.clone(), self.config.clone());
        let name = job.to_owned();
        Box::pin(async move {
            if name.is_empty()
                || name.contains(['/', '\\'])
                || name.starts_with('.')
                || !path.is_file()
            {
                return Err(StartError::NoJob(crate::output::clean(&name, 80)));
            }
            load_job(&jobs_dir, path, config)
                .await
                .map_err(|answer| match answer {
                    Response::Invalid(why) => StartError::Invalid(why),
                    Response::Failed(why) => StartError::Failed(why),
                    _ => StartError::Failed("loading the job failed".into()),
                })
        })
    }

    /// Queues the alert runs a stop left recorded but not sent (or sent in part), oldest first:
    /// every notification that was answered is sent. Called once at start.
    pub(super) async fn resume_alerts(&self) {
        let recorded = match unsent_alert_runs(&self.store) {
            Ok(recorded) => recorded,
            Err(e) => {
                tracing::error!("the alert runs left unsent could not be read: {e}");
                return;
            }
        };
        for (name, ids) in recorded {
            let job = match self.job_file(&name).await {
                Ok(job) => job,
                Err(e) => {
                    tracing::error!("job `{name}` has alert runs left unsent, but: {e}");
                    continue;
                }
            };
            tracing::info!(
                "job `{name}`: {} alert runs recorded before the last stop are queued to send",
                ids.len()
            );
            for id in ids {
                let options = RunOptions {
                    resume: Some(id),
                    ..RunOptions::default()
                };
                let (done, _) = oneshot::channel();
                let run = manual_run(&self.launcher, job.clone(), options, done);
                let event = Event::Enqueue {
                    job: name.clone(),
                    run,
                };
                if self.events.send(event).await.is_err() {
                    return;
                }
            }
        }
    }

    /// The lock of `job`'s alert notifications.
    fn alert_lock(&self, job: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .alert_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        locks.entry(job.to_owned()).or_default().clone()
    }
}

/// Every job's unfinished runs that an alert notification recorded, oldest first.
fn unsent_alert_runs(store: &Store) -> Result<Vec<(String, Vec<RunId>)>, StateError> {
    let runs = store.runs()?;
    let mut found = Vec::new();
    for (job, totals) in runs.all_totals()? {
        let mut ids = Vec::new();
        for id in totals.unfinished {
            if runs
                .get(id)?
                .is_some_and(|r| r.vars.contains_key("groupKey"))
            {
                ids.push(id);
            }
        }
        if !ids.is_empty() {
            found.push((job, ids));
        }
    }
    Ok(found)
}

/// What one notification does: start a new run for its group, or edit the group's run.
async fn take_notice(
    store: &Store,
    launcher: &Arc<EngineLauncher>,
    job: &Arc<Job>,
    notice: Notice,
) -> Result<(RunId, ManualRun), StartError> {
    let failed = |e: crate::state::StateError| StartError::Failed(e.to_string());
    let groups = store.alert_groups().map_err(failed)?;
    let open = groups
        .get(&job.name, &notice.group_key)
        .map_err(failed)?
        .filter(|g| !g.resolved);
    let (run, work): (RunId, ManualRun) = if let Some(group) = open {
        let (launcher, job, vars) = (launcher.clone(), job.clone(), notice.vars);
        let edit: ManualRun = Box::new(move |cancel| {
            Box::pin(async move { launcher.edit_run(&job, (group.run, vars), cancel).await })
        });
        (group.run, edit)
    } else {
        let record = launcher
            .record_run(job, notice.vars)
            .await
            .map_err(|e| StartError::Failed(format!("{e:#}")))?;
        let options = RunOptions {
            resume: Some(record.id),
            ..RunOptions::default()
        };
        let (done, _) = oneshot::channel();
        (record.id, manual_run(launcher, job.clone(), options, done))
    };
    let group = AlertGroup {
        run,
        resolved: notice.resolved,
        at: chrono::Utc::now(),
    };
    groups
        .set(&job.name, &notice.group_key, &group)
        .await
        .map_err(failed)?;
    Ok((run, work))
}

/// A receiver of the run's record, and the hook that sends it once the run is recorded.
fn started_hook() -> (oneshot::Receiver<RunRecord>, OnStart) {
    let (tx, rx) = oneshot::channel();
    let tx = Mutex::new(Some(tx));
    let hook = OnStart(Arc::new(move |record: &RunRecord| {
        let taken = tx.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(tx) = taken {
            let _ = tx.send(record.clone());
        }
    }));
    (rx, hook)
}
