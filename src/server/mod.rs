//! `serve` and `schedule --listen`: the HTTP server for what Zoom sends back. Per app (the
//! default app at `/`, others under `/apps/NAME`): `POST /webhooks/zoom` (signed event
//! notifications, see [`webhooks`]), `GET /install` and `GET /oauth/callback` (installs from a
//! browser, see [`install`]), `GET /healthz` and `GET /metrics`.
//!
//! It faces the internet (behind a TLS-terminating proxy), so what any client can take of it is
//! bounded ([`Limits`]):
//! - a connection takes nothing but a socket until its request head arrives, within the header
//!   deadline; at most `max_open` are open, and at the limit the oldest one still waiting for
//!   its head is closed to make room ([`connections`]);
//! - a request then takes a serving slot (one request per connection, no keep-alive): at most
//!   `max_connections` of Zoom's and browsers' requests at once, and a pool of its own for
//!   `/healthz` and `/metrics`, so that neither a flood nor idle clients delay a probe; a
//!   request that finds no slot within [`SLOT_PATIENCE`] is answered 503;
//! - a request is answered within `client_timeout` of its head (408 otherwise), and its body is
//!   read only once its headers passed their checks, within 3 s, under a budget of bytes shared
//!   by every connection, small bodies (Zoom's) apart from large ones ([`body`]), up to
//!   [`MAX_BODY`].
//!
//! On shutdown it stops accepting, lets the requests in flight and the chat replies they
//! started finish (for at most [`DRAIN`]), and returns.

mod alerts;
pub mod api;
pub mod body;
mod commands;
mod connections;
pub mod console;
mod deauthorize;
pub mod install;
pub mod metrics;
pub mod signature;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::config::{Config, DEFAULT_APP};
use crate::delivery::Engines;
use crate::state::{Store, off_workers};
use body::Budget;
use connections::Connections;
use metrics::Metrics;

/// Where `serve` listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4199";
/// The largest request body read; a larger one is answered 413.
pub const MAX_BODY: usize = 1024 * 1024;
/// How long a request waits for a serving slot before it is answered 503.
pub const SLOT_PATIENCE: Duration = Duration::from_secs(1);
/// The serving slots of `/healthz` and `/metrics`, apart from everyone else's.
const OPERATIONS_SLOTS: usize = 16;
/// File descriptors kept for everything but connections (the state database, the control
/// socket, the render worker's pipes, outgoing requests to Zoom).
const OTHER_FILES: usize = 256;

/// What one client may take of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most requests of Zoom and browsers served at once (each connection carries one).
    pub max_connections: usize,
    /// The most connections open at once, served or waiting for their request head.
    pub max_open: usize,
    /// How long a client has to send its request head (at most `client_timeout`).
    pub header_timeout: Duration,
    /// How long a request may take from its head to its answer, body included (Zoom itself
    /// waits 3 s for an answer).
    pub client_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_open: 1024,
            header_timeout: Duration::from_secs(5),
            client_timeout: Duration::from_secs(10),
        }
    }
}

/// How long shutdown waits for requests in flight and the chat replies they started.
pub const DRAIN: Duration = Duration::from_secs(10);

/// What every request of the server shares: the configuration (apps, their secrets), the
/// store (grants, deliveries, opt-outs, the once-only record of events) and the apps' engines
/// (their clients and tokens, for replies in chat and installs), with the server's own limits
/// and counters.
pub struct Server {
    config: Arc<Config>,
    store: Arc<Store>,
    engines: Arc<Engines>,
    /// What starts the HTTP API's runs; `None` where no scheduler loop runs (the API answers
    /// 503).
    runs: Option<Arc<dyn api::RunStarter>>,
    limits: Limits,
    metrics: Metrics,
    /// The bytes of request bodies held at once.
    bodies: Budget,
    /// Serving slots of Zoom's and browsers' requests, and of `/healthz` and `/metrics`.
    slots: Arc<Semaphore>,
    operations_slots: Arc<Semaphore>,
    /// Work a request started that outlives it (a reply in chat).
    tasks: TaskTracker,
}

impl Server {
    /// A server over the process's engines and the configuration and store they were built
    /// from.
    pub fn new(
        engines: Arc<Engines>,
        limits: Limits,
        runs: Option<Arc<dyn api::RunStarter>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            config: engines.config().clone(),
            store: engines.store().clone(),
            engines,
            runs,
            limits,
            metrics: Metrics::default(),
            bodies: Budget::default(),
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            operations_slots: Arc::new(Semaphore::new(OPERATIONS_SLOTS)),
            tasks: TaskTracker::new(),
        })
    }

    /// Where a scheduler in this process posts its jobs' next ticks for `/metrics`.
    pub fn schedule_board(&self) -> metrics::ScheduleBoard {
        self.metrics.schedules.clone()
    }

    /// The routes of every configured app.
    pub fn router(self: &Arc<Self>) -> Router {
        let mut router = self.operations().merge(self.api()).merge(self.console());
        for name in self.config.app_names() {
            let app = self.app_routes(name);
            router = if name == DEFAULT_APP {
                router.merge(app)
            } else {
                router.nest(&format!("/apps/{name}"), app.merge(self.operations()))
            };
        }
        router.layer(DefaultBodyLimit::max(MAX_BODY)).layer(
            tower_http::timeout::TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                self.limits.client_timeout,
            ),
        )
    }

    /// An app's own routes, served from the shared pool of slots.
    fn app_routes(self: &Arc<Self>, name: &str) -> Router {
        let app = AppRoute {
            server: self.clone(),
            app: name.into(),
        };
        Router::new()
            .route("/webhooks/zoom", post(webhooks::receive))
            .route("/install", get(install::install))
            .route("/oauth/callback", get(install::callback))
            .with_state(app)
            .layer(middleware::from_fn_with_state(
                self.slots.clone(),
                in_a_slot,
            ))
    }

    /// `/v1`, the HTTP API ([`api`]): every route behind a key, served from the shared pool of
    /// slots.
    fn api(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/jobs/{job}/runs", post(api::start_run))
            .route("/v1/runs/{id}", get(api::get_run))
            .route("/v1/alertmanager/{job}", post(alerts::notify))
            .route_layer(middleware::from_fn_with_state(self.clone(), api::authorize))
            .with_state(self.clone())
            .layer(middleware::from_fn_with_state(
                self.slots.clone(),
                in_a_slot,
            ))
    }

    /// `/console`, the web console ([`console`]), served from the shared pool of slots.
    fn console(self: &Arc<Self>) -> Router {
        console::routes(self).layer(middleware::from_fn_with_state(
            self.slots.clone(),
            in_a_slot,
        ))
    }

    /// Says at start, once per app, when an app's webhooks cannot be verified (each request
    /// would be answered 503).
    fn warn_of_missing_secrets(&self) {
        let config = &self.config;
        for name in config.app_names() {
            if let Ok(app) = config.app(name)
                && app.webhook_secret.is_none()
            {
                let route = if name == DEFAULT_APP {
                    String::new()
                } else {
                    format!("/apps/{name}")
                };
                tracing::warn!(
                    "app `{name}` has no webhook secret token: {route}/webhooks/zoom answers 503 \
                     until ZOOM_WEBHOOK_SECRET (or webhook_secret_token) is set"
                );
            }
        }
    }

    /// `/healthz` and `/metrics`, the same for every app, served from their own slots.
    fn operations(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics::scrape))
            .with_state(self.clone())
            .layer(middleware::from_fn_with_state(
                self.operations_slots.clone(),
                in_a_slot,
            ))
    }

    /// Serves `listener` until `shutdown`, then drains (see the module doc).
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        self.warn_of_missing_secrets();
        let router = self.router();
        let max_open = self.limits.max_open.min(open_files_for_connections());
        let connections = Arc::new(Connections::default());
        let graceful = GracefulShutdown::new();
        let header_timeout = self.limits.header_timeout.min(self.limits.client_timeout);
        loop {
            let stream = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, or a connection reset before it was taken.
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Some(admitted) = connections.admit(max_open) else {
                continue; // every open connection is being served: this one is closed
            };
            let admitted = Arc::new(admitted);
            let (router, served) = (router.clone(), admitted.clone());
            let service = tower::service_fn(move |request: Request<hyper::body::Incoming>| {
                // The connection goes with its request, to be marked served once in a slot.
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(served.clone());
                router.clone().oneshot(request)
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(false);
            let connection = graceful.watch(
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)),
            );
            tokio::spawn(async move {
                // A client that goes away or times out is no error of the server's.
                tokio::select! {
                    _ = connection => {}
                    () = admitted.evicted.cancelled() => {}
                }
            });
        }
        drop(listener);
        self.tasks.close();
        let drained = async {
            graceful.shutdown().await;
            self.tasks.wait().await;
        };
        if tokio::time::timeout(DRAIN, drained).await.is_err() {
            tracing::warn!(
                "requests or chat replies still running {DRAIN:?} after shutdown: left unfinished"
            );
        }
    }
}

/// Runs the request once it has one of `slots`; 503 when none frees within [`SLOT_PATIENCE`].
/// Until then its connection may still be closed to make room for a new one.
async fn in_a_slot(State(slots): State<Arc<Semaphore>>, request: Request, next: Next) -> Response {
    let Ok(Ok(_slot)) = tokio::time::timeout(SLOT_PATIENCE, slots.acquire_owned()).await else {
        return busy();
    };
    if let Some(connection) = request.extensions().get::<Arc<connections::Admitted>>() {
        connection.being_served();
    }
    next.run(request).await
}

/// 503 for a request the server has no room for now, with when to try again.
pub(crate) fn busy() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        "the server is busy; try again\n",
    )
        .into_response()
}

/// How many connections the process's open-file limit leaves room for, after raising its soft
/// limit to the hard one (a service started with the common soft limit of 1024 would otherwise
/// run out of descriptors before it reached its own limit).
fn open_files_for_connections() -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    let files = limit
        .current
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    files.saturating_sub(OTHER_FILES).max(1)
}

/// The state of one app's routes.
#[derive(Clone)]
struct AppRoute {
    server: Arc<Server>,
    app: Arc<str>,
}

/// 200 while the state database reads and writes, else 503.
async fn healthz(State(server): State<Arc<Server>>) -> Response {
    let store = server.store.clone();
    match off_workers(move || store.check_usable()).await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!("health check: the state database is not usable: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the state database is not usable\n",
            )
                .into_response()
        }
    }
}
