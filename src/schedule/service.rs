//! The scheduler as a service: the scheduler loop, the reload watcher, the keep-alive of idle
//! grants, the control socket and (with a listener) the HTTP server, all under one task tracker and stopped by one shutdown token
//! (see [`crate::shutdown`]). SIGTERM or SIGINT stops new runs; running ones get the drain
//! time, then stop taking recipients and stay interrupted; the control socket answers until
//! they have, so a `run` waiting on it hears how its run ended.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::daemon::{Scheduler, Settings, SystemClock};
use super::handler::ControlHandler;
use super::launcher::{EngineLauncher, keep_grants_alive};
use super::reminders::send_reminders;
use super::starter::ApiRuns;
use super::watch::watch_jobs;
use crate::config::{Config, JobSet};
use crate::control;
use crate::delivery::Engines;
use crate::server::metrics::ScheduleBoard;
use crate::server::{Limits, Server};
use crate::shutdown::Signals;
use crate::state::Store;

/// Starts the HTTP server with the API's runs started through `runs`; it stops accepting at
/// `shutdown`, as the scheduler stops firing. Where its metrics take the scheduler's jobs.
fn serve_http(
    tasks: &TaskTracker,
    (listener, limits): (TcpListener, Limits),
    (engines, runs): (&Arc<Engines>, ApiRuns),
    shutdown: CancellationToken,
) -> ScheduleBoard {
    let runs = Arc::new(runs);
    let resumed = runs.clone();
    tasks.spawn(async move { resumed.resume_alerts().await });
    let server = Server::new(engines.clone(), limits, Some(runs));
    let board = server.schedule_board();
    tasks.spawn(server.serve(listener, shutdown));
    board
}

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
    /// What it is on the control socket: a scheduler, or `serve` (which schedules nothing).
    fn holder(&self) -> crate::control::Holder {
        if self.watch_every.is_some() {
            crate::control::Holder::Scheduler
        } else {
            crate::control::Holder::Server
        }
    }

    /// Runs until SIGTERM or SIGINT and the drain after it.
    pub async fn run(self) -> anyhow::Result<()> {
        let holder = self.holder();
        let engines = Arc::new(Engines::new(self.config.clone(), self.store.clone())?);
        let launcher = Arc::new(EngineLauncher::new(engines.clone()));
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
        let board = self.http.map(|(listener, limits)| {
            let runs = ApiRuns {
                jobs_dir: self.jobs_dir.clone(),
                config: self.config.clone(),
                store: self.store.clone(),
                launcher: launcher.clone(),
                events: events.clone(),
                alert_locks: Arc::default(),
            };
            serve_http(
                &tasks,
                (listener, limits),
                (&engines, runs),
                shutdown.clone(),
            )
        });
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
            holder,
        });
        tasks.spawn(control::serve(self.listener, handler, done.clone()));
        tasks.spawn(super::systemd::stopping(shutdown.clone(), done.clone()));
        let trees = (
            self.store.fires()?,
            self.store.runs()?,
            self.store.console()?,
        );
        let settings = Settings { drain: self.drain };
        let mut scheduler = Scheduler::new(Arc::new(SystemClock), launcher, trees, settings);
        if let Some(board) = board {
            scheduler = scheduler.posting_to(board);
        }
        // Ready first: the watchdog's first ping must not reach systemd before it.
        super::systemd::ready();
        tasks.spawn(super::systemd::watchdog(self.store.clone(), done.clone()));
        tasks.close();
        let result = scheduler.run(self.initial, events_rx, shutdown).await;
        done.cancel();
        tasks.wait().await;
        let _ = std::fs::remove_file(control::socket_path(self.store.dir()));
        Ok(result?)
    }
}
