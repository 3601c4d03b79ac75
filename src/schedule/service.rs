//! The scheduler as a service: the scheduler loop, the reload watcher, the keep-alive of idle
//! grants, the control socket and (with a listener) the HTTP server, all under one task tracker and stopped by one shutdown token
//! (see [`crate::shutdown`]). SIGTERM or SIGINT stops new runs; running ones get the drain
//! time, then stop taking recipients and stay interrupted; the control socket answers until
//! they have, so a `run` waiting on it hears how its run ended.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::daemon::{Launcher, Scheduler, Settings, SystemClock};
use super::handler::ControlHandler;
use super::reminders::send_reminders;
use super::watch::watch_jobs;
use crate::auth::keepalive::{KeepAlive, refresh_if_idle};
use crate::auth::login;
use crate::config::{Config, Job, JobSet};
use crate::control::{self, Checked};
use crate::delivery::{Engines, GrantCheck, RunOptions, RunReport};
use crate::report;
use crate::server::{Limits, Server};
use crate::shutdown::Signals;
use crate::state::{Grant, Store};

/// How often grants are checked for keep-alive.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(3600);

/// What the service runs with.
pub struct Service {
    /// The apps' identities.
    pub config: Arc<Config>,
    /// The open state directory.
    pub store: Arc<Store>,
    /// The jobs directory.
    pub jobs_dir: PathBuf,
    /// The jobs as loaded at start.
    pub initial: JobSet,
    /// The control socket, bound.
    pub listener: UnixListener,
    /// The signals, listened for since before the service announced itself.
    pub signals: Signals,
    /// How long running jobs get to finish after a shutdown signal.
    pub drain: Duration,
    /// How often the jobs directory is checked for changed files; `None` schedules nothing
    /// (`serve`: jobs run only when `run` asks through the control socket).
    pub watch_every: Option<Duration>,
    /// The HTTP server's listener and limits (`serve`, `schedule --listen`).
    pub http: Option<(TcpListener, Limits)>,
}

impl Service {
    /// Runs until SIGTERM or SIGINT and the drain after it.
    pub async fn run(self) -> anyhow::Result<()> {
        let engines = Arc::new(Engines::new(self.config.clone(), self.store.clone())?);
        let launcher = Arc::new(EngineLauncher {
            engines: engines.clone(),
        });
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        // Cancelled once the scheduler has drained: the helpers' cue to stop.
        let done = CancellationToken::new();
        let reload = Arc::new(Notify::new());
        let (events, events_rx) = mpsc::channel(4);
        let reloads = self.watch_every.map(|_| reload.clone());
        tasks.spawn(self.signals.handle(shutdown.clone(), reloads, done.clone()));
        if let Some(every) = self.watch_every {
            tasks.spawn(watch_jobs(
                self.config.clone(),
                self.jobs_dir.clone(),
                every,
                reload.clone(),
                events.clone(),
                shutdown.clone(),
            ));
        }
        if let Some((listener, limits)) = self.http {
            // The server stops accepting at the signal, like the scheduler stops firing.
            let server = Server::new(engines.clone(), limits);
            tasks.spawn(server.serve(listener, shutdown.clone()));
        }
        tasks.spawn(keep_grants_alive(launcher.clone(), shutdown.clone()));
        if let Some(every) = self.watch_every {
            tasks.spawn(send_reminders(
                launcher.clone(),
                self.config.clone(),
                self.jobs_dir.clone(),
                every,
                shutdown.clone(),
            ));
        }
        let handler = Arc::new(ControlHandler {
            jobs_dir: self.jobs_dir.clone(),
            store: self.store.clone(),
            config: self.config.clone(),
            launcher: launcher.clone(),
            events,
            holder: if self.watch_every.is_some() {
                crate::control::Holder::Scheduler
            } else {
                crate::control::Holder::Server
            },
        });
        tasks.spawn(control::serve(self.listener, handler, done.clone()));
        tasks.spawn(super::systemd::watchdog(self.store.clone(), done.clone()));
        tasks.spawn(super::systemd::stopping(shutdown.clone(), done.clone()));
        tasks.close();
        let scheduler = Scheduler::new(
            Arc::new(SystemClock),
            launcher,
            self.store.fires()?,
            self.store.runs()?,
            Settings { drain: self.drain },
        );
        super::systemd::ready();
        let result = scheduler.run(self.initial, events_rx, shutdown).await;
        done.cancel();
        tasks.wait().await;
        let _ = std::fs::remove_file(control::socket_path(self.store.dir()));
        Ok(result?)
    }
}

/// Every hour, refreshes each grant (every app, every account) that has not been refreshed for
/// `keepalive_days`.
async fn keep_grants_alive(launcher: Arc<EngineLauncher>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(KEEPALIVE_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for name in launcher.engines.config().app_names() {
            launcher.keep_alive(name).await;
        }
    }
}

/// Starts runs with the apps' engines, shared by every run of the process (so are the
/// per-account rate limiters).
pub(super) struct EngineLauncher {
    engines: Arc<Engines>,
}

impl EngineLauncher {
    /// Stores the grant of an `auth login` run beside the scheduler, as an install through
    /// `serve` is stored: under the grant's lock, so no refresh uses the revoked one.
    /// An app the scheduler's configuration lacks holds no grant in memory: it is only stored.
    pub(super) async fn store_login(
        &self,
        app: &str,
        grant: Grant,
    ) -> Result<Grant, login::InstallError> {
        let grants = self.engines.store().grants()?;
        let Ok(engine) = self.engines.app(app) else {
            let admission = login::Admission {
                client_id: &grant.client_id,
                accounts: None,
            };
            return login::store_install(&grants, app, &grant, &admission).await;
        };
        // A login run with another configuration than this scheduler's is refused.
        let admission = login::Admission {
            client_id: &engine.app.client_id,
            accounts: None,
        };
        engine
            .clients
            .tokens(&grant.account_id)
            .replace_grant(login::store_install(&grants, app, &grant, &admission))
            .await
    }

    async fn keep_alive(&self, name: &str) {
        let Ok(app) = self.engines.app(name) else {
            return; // an app without client credentials has no grant to keep
        };
        let days = app.app.keepalive_days;
        if days == 0 {
            return;
        }
        let max_idle = TimeDelta::days(i64::from(days));
        let installed = match app.clients.installed() {
            Ok(installed) => installed,
            Err(e) => return tracing::error!("app `{name}`: reading its grants failed: {e}"),
        };
        for tokens in installed {
            let account = tokens.account();
            match refresh_if_idle(&tokens, max_idle, Utc::now()).await {
                Ok(KeepAlive::Refreshed(idle)) => tracing::info!(
                    "app `{name}`: the grant of account {account} refreshed to keep it alive (last refreshed {} days ago; keepalive_days = {days})",
                    idle.num_days()
                ),
                Ok(KeepAlive::Fresh | KeepAlive::NoGrant) => {}
                Err(e) => tracing::error!(
                    "app `{name}`: keep-alive refresh of account {account}'s grant failed: {e}; install the app again for that account if it persists"
                ),
            }
        }
    }

    /// Checks that `job`'s app can send, with this scheduler's configuration and grant:
    /// what a run would send as.
    pub(super) async fn check(
        &self,
        job: &Job,
        show: usize,
        resolve: bool,
    ) -> anyhow::Result<Checked> {
        let (from, preview) = self.engines.dry_run(job, show, resolve).await?;
        Ok(Checked::new(job, &from, preview))
    }

    /// Checks the grants of `apps` with Zoom, as this process holds them.
    pub(super) async fn check_grants(&self, apps: &[String]) -> Vec<GrantCheck> {
        self.engines.check_grants(apps).await
    }

    /// Sends `job`'s reminders that are due now; how many.
    pub(super) async fn remind(&self, job: &Job, options: RunOptions) -> anyhow::Result<usize> {
        let app = self.engines.app(&job.app)?;
        let from = app.sender_for(job).await?;
        app.engine.remind(job, &from, Utc::now(), options).await
    }

    /// One run of `job` with the app's engine.
    pub(super) fn run(
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
