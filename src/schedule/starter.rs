//! [`ApiRuns`]: how the HTTP API's runs start ([`RunStarter`]). A run is handed to the
//! scheduler loop, as `zoomcast run` beside the scheduler hands one over the control socket,
//! so a job never runs twice at once; the request is answered as soon as the run is recorded,
//! and the run goes on in the loop.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::daemon::Event;
use super::handler::{load_job, manual_run};
use super::launcher::EngineLauncher;
use crate::config::Config;
use crate::config::vars::run_values;
use crate::control::Response;
use crate::delivery::{OnStart, RunOptions};
use crate::server::api::{RunStarter, StartError};
use crate::state::RunRecord;

/// Starts the API's runs in the scheduler loop.
pub(super) struct ApiRuns {
    /// The only directory whose jobs it starts.
    pub(super) jobs_dir: PathBuf,
    pub(super) config: Arc<Config>,
    pub(super) launcher: Arc<EngineLauncher>,
    pub(super) events: mpsc::Sender<Event>,
}

impl RunStarter for ApiRuns {
    fn start(
        &self,
        job: String,
        vars: BTreeMap<String, String>,
    ) -> BoxFuture<'static, Result<RunRecord, StartError>> {
        let path = self.jobs_dir.join(format!("{job}.toml"));
        let (jobs_dir, config) = (self.jobs_dir.clone(), self.config.clone());
        let (launcher, events) = (self.launcher.clone(), self.events.clone());
        Box::pin(async move {
            if job.is_empty()
                || job.contains(['/', '\\'])
                || job.starts_with('.')
                || !path.is_file()
            {
                return Err(StartError::NoJob(crate::output::clean(&job, 80)));
            }
            let job = load_job(&jobs_dir, path, config)
                .await
                .map_err(|answer| match answer {
                    Response::Invalid(why) => StartError::Invalid(why),
                    Response::Failed(why) => StartError::Failed(why),
                    _ => StartError::Failed("loading the job failed".into()),
                })?;
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
