//! `schedule`: the daemon. Runs every job in the jobs directory on its schedule with the real
//! delivery engine until SIGTERM or SIGINT, then drains and exits 0. The jobs directory is
//! loaded again on SIGHUP and when a job file changes; idle grants are refreshed (keep-alive);
//! the control socket answers `run`, `jobs`, `history` and `auth status` from other shells.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use anyhow::Context as _;

use super::{Context, Outcome};
use crate::auth::keepalive::{KeepAlive, refresh_if_idle};
use crate::config::{Config, Job};
use crate::control::{self, Checked, Handler, Request, Response};
use crate::delivery::{Engines, RunOptions, RunReport, Sender};
use crate::report;
use crate::schedule::daemon::{Event, Launcher, ManualRun, Scheduler, Settings, SystemClock};
use crate::state::{StateError, Store};

/// How long `schedule` waits for another process to release the state directory.
const LOCK_PATIENCE: Duration = Duration::from_secs(10);
/// How often grants are checked for keep-alive.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// After SIGTERM or SIGINT, how long running jobs get to finish before they are stopped
    /// (a stopped run resumes at the next start).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// How often the jobs directory is checked for changed files.
    #[arg(long, default_value = "2s", value_parser = super::positive_duration)]
    watch_every: Duration,
}

pub(super) async fn run(ctx: &Context, args: &Args) -> anyhow::Result<Outcome> {
    // Listening before anything announces the scheduler: a SIGTERM right after start must
    // drain it, not kill it.
    let signals = Signals::listen()?;
    let store = Arc::new(open_store_patiently(ctx).await?);
    // Bound first: commands finding the state locked look for the socket.
    let listener = control::bind(store.dir())
        .with_context(|| format!("opening the control socket in {}", store.dir().display()))?;
    let config = Arc::new(ctx.config.clone());
    let jobs_dir = ctx.jobs_dir.clone();
    let initial = super::load_jobs(&config, &jobs_dir)?;
    tracing::info!(
        "scheduler started (pid {}): {} jobs from {}, {} invalid",
        std::process::id(),
        initial.jobs.len(),
        jobs_dir.display(),
        initial.broken.len()
    );
    let launcher = Arc::new(EngineLauncher {
        engines: Arc::new(Engines::new(config.clone(), store.clone())?),
    });
    let shutdown = CancellationToken::new();
    let reload = Arc::new(Notify::new());
    let (events, events_rx) = mpsc::channel(4);
    let signals = tokio::spawn(signals.handle(shutdown.clone(), reload.clone()));
    let watcher = tokio::spawn(watch_jobs(
        config.clone(),
        jobs_dir,
        args.watch_every,
        reload,
        events.clone(),
    ));
    let keepalive = tokio::spawn(keep_grants_alive(launcher.clone()));
    let handler = Arc::new(ControlHandler {
        jobs_dir: ctx.jobs_dir.clone(),
        store: store.clone(),
        config: config.clone(),
        launcher: launcher.clone(),
        events: events.clone(),
    });
    let stop_serving = CancellationToken::new();
    let control = tokio::spawn(control::serve(listener, handler, stop_serving.clone()));
    let scheduler = Scheduler::new(
        Arc::new(SystemClock),
        launcher,
        store.fires()?,
        store.runs()?,
        Settings { drain: args.drain },
    );
    let result = scheduler.run(initial, events_rx, shutdown).await;
    signals.abort();
    watcher.abort();
    keepalive.abort();
    stop_serving.cancel();
    let _ = control.await;
    let _ = std::fs::remove_file(control::socket_path(store.dir()));
    result?;
    Ok(Outcome::Done)
}

/// Opens the store, waiting up to [`LOCK_PATIENCE`] for a short-lived command (`history`,
/// `run`) that holds it to finish.
async fn open_store_patiently(ctx: &Context) -> anyhow::Result<Store> {
    let start = tokio::time::Instant::now();
    let mut said = false;
    loop {
        match Store::open(&ctx.state_dir) {
            Err(StateError::Locked { pid, .. }) if start.elapsed() < LOCK_PATIENCE => {
                if !std::mem::replace(&mut said, true) {
                    tracing::info!(
                        "waiting for the process holding the state directory to finish (pid {})",
                        pid.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// The signals the scheduler handles.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts listening (from here on, these signals no longer end the process).
    fn listen() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// SIGTERM and SIGINT shut down (a second one is left to the default: the runtime is
    /// already draining); SIGHUP asks for a reload. Each acts before it is logged.
    async fn handle(mut self, shutdown: CancellationToken, reload: Arc<Notify>) {
        loop {
            tokio::select! {
                _ = self.term.recv() => {
                    shutdown.cancel();
                    tracing::info!("SIGTERM: shutting down");
                }
                _ = self.int.recv() => {
                    shutdown.cancel();
                    tracing::info!("SIGINT: shutting down");
                }
                _ = self.hup.recv() => {
                    reload.notify_one();
                    tracing::info!("SIGHUP: reloading the jobs directory");
                }
            }
        }
    }
}

/// What identifies the jobs directory's contents: each job file's name, size and mtime.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(dir: &std::path::Path) -> Fingerprint {
    super::toml_files(dir)
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
async fn watch_jobs(
    config: Arc<Config>,
    dir: PathBuf,
    every: Duration,
    reload: Arc<Notify>,
    events: mpsc::Sender<Event>,
) {
    let mut seen = fingerprint(&dir);
    loop {
        let asked = tokio::select! {
            () = tokio::time::sleep(every) => false,
            () = reload.notified() => true,
        };
        let now = fingerprint(&dir);
        if !asked && now == seen {
            continue;
        }
        seen = now;
        match super::load_jobs(&config, &dir) {
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

/// Every hour, refreshes each app's grant that has not been refreshed for `keepalive_days`.
async fn keep_grants_alive(launcher: Arc<EngineLauncher>) {
    let mut tick = tokio::time::interval(KEEPALIVE_EVERY);
    loop {
        tick.tick().await;
        for name in launcher.engines.config().app_names() {
            launcher.keep_alive(name).await;
        }
    }
}

/// Starts runs with the apps' engines, shared by every run of the process (so are the
/// per-account rate limiters).
struct EngineLauncher {
    engines: Arc<Engines>,
}

impl EngineLauncher {
    async fn keep_alive(&self, name: &str) {
        let Ok(app) = self.engines.app(name) else {
            return; // an app without client credentials has no grant to keep
        };
        let days = app.app.keepalive_days;
        if days == 0 {
            return;
        }
        let max_idle = TimeDelta::days(i64::from(days));
        match refresh_if_idle(&app.engine.tokens, max_idle, Utc::now()).await {
            Ok(KeepAlive::Refreshed(idle)) => tracing::info!(
                "app `{name}`: grant refreshed to keep it alive (last refreshed {} days ago; keepalive_days = {days})",
                idle.num_days()
            ),
            Ok(KeepAlive::Fresh | KeepAlive::NoGrant) => {}
            Err(e) => tracing::error!(
                "app `{name}`: keep-alive refresh failed: {e}; run `zoomcast auth login --app {name}` if it persists"
            ),
        }
    }

    /// Checks that `job`'s app can send, with this scheduler's configuration and grant:
    /// what a run would send as.
    async fn check(&self, job: &Job) -> anyhow::Result<Sender> {
        self.engines.app(&job.app)?.sender().await
    }

    /// One run of `job` with the app's engine.
    fn run(
        &self,
        job: Arc<Job>,
        options: RunOptions,
    ) -> BoxFuture<'static, anyhow::Result<RunReport>> {
        let engines = self.engines.clone();
        Box::pin(async move { engines.run(&job, options).await })
    }
}

impl Launcher for EngineLauncher {
    fn launch(
        &self,
        job: Arc<Job>,
        tick: Option<DateTime<Utc>>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, anyhow::Result<String>> {
        let options = RunOptions {
            scheduled_for: tick,
            cancel,
            ..RunOptions::default()
        };
        let run = self.run(job, options);
        Box::pin(async move { Ok(report::run_summary(&run.await?.record)) })
    }
}

/// Answers the control socket: reads from the store, runs by hand through the scheduler loop
/// (so a job never runs twice at once).
struct ControlHandler {
    /// The only directory whose job files the handler runs or checks.
    jobs_dir: PathBuf,
    store: Arc<Store>,
    config: Arc<Config>,
    launcher: Arc<EngineLauncher>,
    events: mpsc::Sender<Event>,
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
            } => Box::pin(async move {
                match load_job(&jobs_dir, path, config).await {
                    Ok(job) => run_now(&launcher, &events, job, refresh_cache).await,
                    Err(invalid) => invalid,
                }
            }),
            Request::CheckJob { path } => Box::pin(async move {
                let job = match load_job(&jobs_dir, path, config).await {
                    Ok(job) => job,
                    Err(invalid) => return invalid,
                };
                match launcher.check(&job).await {
                    Ok(from) => Response::Checked(Checked {
                        app: job.app.clone(),
                        robot_jid: from.robot_jid,
                        recipients: job.recipient_count,
                    }),
                    Err(e) => failure(&e),
                }
            }),
            read => {
                let answer = control::answer(&self.store, &read)
                    .unwrap_or_else(|e| Response::Failed(e.to_string()));
                Box::pin(std::future::ready(answer))
            }
        }
    }
}

/// Loads a job file of the jobs directory off the runtime's workers (it may be large); an
/// invalid one, or a file from anywhere else, is the answer.
async fn load_job(
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
    refresh_cache: bool,
) -> Response {
    let name = job.name.clone();
    let (done, report) = oneshot::channel();
    let launcher = launcher.clone();
    let run: ManualRun = Box::new(move |cancel| {
        let options = RunOptions {
            refresh_cache,
            cancel,
            ..RunOptions::default()
        };
        let run = launcher.run(job, options);
        Box::pin(async move {
            let result = run.await;
            let summary = match &result {
                Ok(report) => Ok(report::run_summary(&report.record)),
                Err(e) => Err(anyhow::anyhow!("{e:#}")),
            };
            let _ = done.send(result);
            summary
        })
    });
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

/// A failed request's answer: `Invalid` (exit 2) when the job or configuration is at fault.
fn failure(e: &anyhow::Error) -> Response {
    if super::invalid_cause(e).is_some() {
        Response::Invalid(format!("{e:#}"))
    } else {
        Response::Failed(format!("{e:#}"))
    }
}
