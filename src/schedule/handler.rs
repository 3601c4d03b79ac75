//! Answers to the control socket while the scheduler runs: reads from the store, and runs or
//! checks a job of the jobs directory through the scheduler loop (so a job never runs twice at
//! once).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::adhoc::AdHoc;
use crate::config::vars::run_values;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::daemon::{Event, ManualRun};
use super::launcher::EngineLauncher;
use crate::auth::login::InstallError;
use crate::config::{Config, Job};
use crate::control::{self, GrantView, Handler, Request, Response};
use crate::delivery::{RunOptions, RunReport};
use crate::report;
use crate::state::{KeyError, Store};

/// Answers the control socket: reads from the store, runs by hand through the scheduler loop
/// (so a job never runs twice at once).
pub(super) struct ControlHandler {
    /// The only directory whose job files the handler runs or checks.
    pub(super) jobs_dir: PathBuf,
    pub(super) store: Arc<Store>,
    pub(super) config: Arc<Config>,
    pub(super) launcher: Arc<EngineLauncher>,
    pub(super) events: mpsc::Sender<Event>,
    /// What it is: a scheduler, or `serve` (which schedules nothing).
    pub(super) holder: control::Holder,
}

impl Handler for ControlHandler {
    fn handle(&self, request: Request) -> BoxFuture<'static, Response> {
        let (config, launcher, events) = (
            self.config.clone(),
            self.launcher.clone(),
            self.events.clone(),
        );
        let jobs_dir = self.jobs_dir.clone();
        match request {
            Request::RunJob {
                path,
                refresh_cache,
                vars,
            } => Box::pin(async move {
                let job = match load_job(&jobs_dir, path, config).await {
                    Ok(job) => job,
                    Err(invalid) => return invalid,
                };
                run_with(&launcher, &events, job, (refresh_cache, &vars)).await
            }),
            Request::Send(adhoc) => {
                let path = self.store.dir().join("send.toml");
                Box::pin(async move { send_now(&launcher, &events, (adhoc, path), config).await })
            }
            Request::CheckJob {
                path,
                show,
                resolve,
            } => Box::pin(async move {
                let job = match load_job(&jobs_dir, path, config).await {
                    Ok(job) => job,
                    Err(invalid) => return invalid,
                };
                match launcher.check(&job, show, resolve).await {
                    Ok(checked) => Response::Checked(checked),
                    Err(e) => failure(&e),
                }
            }),
            Request::StoreGrant { app, grant } => Box::pin(async move {
                match launcher.store_login(&app, *grant).await {
                    Ok(stored) => Response::Stored(GrantView::from(&stored)),
                    Err(InstallError::NotAllowed(refusal)) => {
                        Response::Refused(refusal.to_string())
                    }
                    Err(e) => Response::Failed(e.to_string()),
                }
            }),
            Request::Holder => Box::pin(std::future::ready(Response::Holder(self.holder))),
            request @ (Request::CreateApiKey { .. }
            | Request::RevokeApiKey { .. }
            | Request::AddConsoleLink { .. }
            | Request::EndConsoleSessions) => self.write_access(request),
            Request::Channels { app, account } => Box::pin(async move {
                match launcher.channels(&app, account.as_deref()).await {
                    Ok(channels) => Response::Channels(channels),
                    Err(e) => failure(&e),
                }
            }),
            Request::CheckGrants { apps } => {
                Box::pin(async move { Response::GrantChecks(launcher.check_grants(&apps).await) })
            }
            read => {
                let answer = control::answer(&self.store, &read)
                    .unwrap_or_else(|e| Response::Failed(e.to_string()));
                Box::pin(std::future::ready(answer))
            }
        }
    }
}

impl ControlHandler {
    /// Stores what gives access to this process over HTTP: API keys and console sign-in links
    /// (their hashes), and the console's signing key.
    fn write_access(&self, request: Request) -> BoxFuture<'static, Response> {
        match request {
            Request::CreateApiKey { key, sha256 } => {
                let keys = self.store.api_keys();
                Box::pin(
                    async move { key_answer(async { keys?.create(&key, &sha256).await }.await) },
                )
            }
            Request::AddConsoleLink { link, sha256 } => {
                let console = self.store.console();
                Box::pin(async move {
                    key_answer(async { Ok(console?.add_link(&link, &sha256).await?) }.await)
                })
            }
            Request::EndConsoleSessions => {
                let console = self.store.console();
                Box::pin(async move {
                    key_answer(async { Ok(console?.new_signing_key().await?) }.await)
                })
            }
            Request::RevokeApiKey { name } => {
                let keys = self.store.api_keys();
                Box::pin(async move { key_answer(async { keys?.revoke(&name).await }.await) })
            }
            _ => Box::pin(std::future::ready(Response::Failed(
                "not a request of API keys or the console".into(),
            ))),
        }
    }
}

/// Sends an ad hoc message now, as a fresh run of the job `send` built from it (as if read
/// from `path`) with this process's configuration.
async fn send_now(
    launcher: &Arc<EngineLauncher>,
    events: &mpsc::Sender<Event>,
    (adhoc, path): (AdHoc, PathBuf),
    config: Arc<Config>,
) -> Response {
    let built = tokio::task::spawn_blocking(move || adhoc.job(&path, &config)).await;
    let (job, vars) = match built {
        Ok(Ok(built)) => built,
        Ok(Err(invalid)) => return Response::Invalid(invalid.to_string()),
        Err(e) => return Response::Failed(format!("building the message failed: {e}")),
    };
    let options = RunOptions {
        vars,
        fresh: true,
        ..RunOptions::default()
    };
    run_now(launcher, events, Arc::new(job), options).await
}

/// Runs `job` now with `vars`, each checked against its `[vars]` (looking every recipient up
/// again with `refresh_cache`).
async fn run_with(
    launcher: &Arc<EngineLauncher>,
    events: &mpsc::Sender<Event>,
    job: Arc<Job>,
    (refresh_cache, vars): (bool, &BTreeMap<String, String>),
) -> Response {
    let given = vars.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let vars = match run_values(&job.name, &job.vars, given) {
        Ok(vars) => vars,
        Err(bad) => return Response::Invalid(format!("--var: {bad}")),
    };
    let options = RunOptions {
        refresh_cache,
        vars,
        ..RunOptions::default()
    };
    run_now(launcher, events, job, options).await
}

/// The answer to a write of an API key: a refused name or a missing key is invalid input.
fn key_answer(done: Result<(), KeyError>) -> Response {
    match done {
        Ok(()) => Response::Done,
        Err(KeyError::State(e)) => Response::Failed(e.to_string()),
        Err(refused) => Response::Invalid(refused.to_string()),
    }
}

/// Loads a job file of the jobs directory off the runtime's workers (it may be large); an
/// invalid one, or a file from anywhere else, is the answer.
pub(super) async fn load_job(
    jobs_dir: &std::path::Path,
    path: PathBuf,
    config: Arc<Config>,
) -> Result<Arc<Job>, Response> {
    let path = in_jobs_dir(jobs_dir, &path).map_err(Response::Invalid)?;
    let load = tokio::task::spawn_blocking(move || Job::load(&path, &config));
    match load.await {
        Ok(Ok(job)) => Ok(Arc::new(job)),
        Ok(Err(invalid)) => Err(Response::Invalid(invalid.to_string())),
        Err(e) => Err(Response::Failed(format!("loading the job failed: {e}"))),
    }
}

/// `path`, if it names a `*.toml` file directly in `jobs_dir` (as the jobs directory's
/// listing would: a link in it is one of its jobs), as that listing names it. A scheduler runs
/// the jobs it was given, never a file a caller points it at: the caller may be able to write
/// where the scheduler's user can read.
fn in_jobs_dir(jobs_dir: &std::path::Path, path: &std::path::Path) -> Result<PathBuf, String> {
    let refuse = || {
        format!(
            "the scheduler runs only job files in its jobs directory {}, and {} is not one; \
             copy the file there, or stop the scheduler and run the file directly",
            jobs_dir.display(),
            path.display()
        )
    };
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(refuse());
    };
    let same_dir = match (
        std::fs::canonicalize(parent),
        std::fs::canonicalize(jobs_dir),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let file = jobs_dir.join(name);
    if same_dir && file.extension().is_some_and(|e| e == "toml") && file.is_file() {
        Ok(file)
    } else {
        Err(refuse())
    }
}

/// Runs `job` by hand through the scheduler loop, and answers with its report.
async fn run_now(
    launcher: &Arc<EngineLauncher>,
    events: &mpsc::Sender<Event>,
    job: Arc<Job>,
    options: RunOptions,
) -> Response {
    let name = job.name.clone();
    let (done, report) = oneshot::channel();
    let run = manual_run(launcher, job, options, done);
    let job = name.clone();
    if events.send(Event::RunNow { job, run }).await.is_err() {
        return Response::Failed(
            "the scheduler is shutting down; run the job again after it stopped".into(),
        );
    }
    match report.await {
        Ok(Ok(report)) => Response::Report(report.record, report.failures),
        Ok(Err(e)) => failure(&e),
        Err(_) => Response::Failed(format!(
            "job `{name}` has a run going in the scheduler (or the scheduler is shutting down); run it again when that run ends"
        )),
    }
}

/// A run of `job` for the scheduler loop to start when the job is free; `done` hears how it
/// ended (and is dropped unanswered when the loop refuses the run).
pub(super) fn manual_run(
    launcher: &Arc<EngineLauncher>,
    job: Arc<Job>,
    options: RunOptions,
    done: oneshot::Sender<anyhow::Result<RunReport>>,
) -> ManualRun {
    let launcher = launcher.clone();
    Box::new(move |cancel| {
        let options = RunOptions { cancel, ..options };
        let run = launcher.run(job, options);
        Box::pin(async move {
            let result = run.await;
            let summary = match &result {
                Ok(report) => {
                    report::log_run(&report.record);
                    Ok(String::new())
                }
                Err(e) => Err(anyhow::anyhow!("{e:#}")),
            };
            let _ = done.send(result);
            summary
        })
    })
}

/// A failed request's answer: `Invalid` (exit 2) when the job or configuration is at fault.
fn failure(e: &anyhow::Error) -> Response {
    if crate::config::diagnostic::is_invalid(e) {
        Response::Invalid(format!("{e:#}"))
    } else {
        Response::Failed(format!("{e:#}"))
    }
}
