//! `serve` and `schedule --listen`: the HTTP server for what Zoom sends back. Per app (the
//! default app at `/`, others under `/apps/NAME`): `POST /webhooks/zoom` (signed event
//! notifications, see [`webhooks`]), `GET /install` and `GET /oauth/callback` (installs from a
//! browser, see [`install`]), `GET /healthz` and `GET /metrics`.
//!
//! It faces the internet (behind a TLS-terminating proxy), so every connection is bounded
//! ([`Limits`]): a number of connections at once (one request each, no keep-alive), a time
//! for the headers and again for the whole request, bodies up to [`MAX_BODY`]. On shutdown it
//! stops accepting, lets the requests in flight and the chat replies they started finish (for
//! at most [`DRAIN`]), and returns.

mod commands;
mod deauthorize;
pub mod install;
pub mod metrics;
pub mod signature;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
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

use crate::config::DEFAULT_APP;
use crate::delivery::{Engines, off_workers};
use metrics::Metrics;
use signature::Replays;

/// Where `serve` listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4199";
/// The largest request body read; a larger one is answered 413.
pub const MAX_BODY: usize = 1024 * 1024;

/// What one client may take of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long a client has to send its request headers, and then to be answered (body
    /// included; Zoom itself waits 3 s for an answer).
    pub client_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            client_timeout: Duration::from_secs(10),
        }
    }
}

/// How long shutdown waits for requests in flight and the chat replies they started.
pub const DRAIN: Duration = Duration::from_secs(10);

/// What every request of the server shares.
pub struct Server {
    engines: Arc<Engines>,
    limits: Limits,
    replays: Replays,
    metrics: Metrics,
    /// Work a request started that outlives it (a reply in chat).
    tasks: TaskTracker,
}

impl Server {
    /// A server over the process's engines (and so its configuration and store).
    pub fn new(engines: Arc<Engines>, limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            engines,
            limits,
            replays: Replays::default(),
            metrics: Metrics::default(),
            tasks: TaskTracker::new(),
        })
    }

    /// The routes of every configured app.
    pub fn router(self: &Arc<Self>) -> Router {
        let mut router = self.operations();
        for name in self.engines.config().app_names() {
            let app = self.app_routes(name);
            router = if name == DEFAULT_APP {
                router.merge(app)
            } else {
                router.nest(&format!("/apps/{name}"), app)
            };
        }
        router.layer(DefaultBodyLimit::max(MAX_BODY)).layer(
            tower_http::timeout::TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                self.limits.client_timeout,
            ),
        )
    }

    fn app_routes(self: &Arc<Self>, name: &str) -> Router {
        let app = AppRoute {
            server: self.clone(),
            app: name.into(),
        };
        let mut routes = Router::new()
            .route("/webhooks/zoom", post(webhooks::receive))
            .route("/install", get(install::install))
            .route("/oauth/callback", get(install::callback))
            .with_state(app);
        if name != DEFAULT_APP {
            routes = routes.merge(self.operations());
        }
        routes
    }

    /// Says at start, once per app, when an app's webhooks cannot be verified (each request
    /// would be answered 503).
    fn warn_of_missing_secrets(&self) {
        let config = self.engines.config();
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

    /// `/healthz` and `/metrics`, the same for every app.
    fn operations(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics::scrape))
            .with_state(self.clone())
    }

    /// Serves `listener` until `shutdown`, then drains (see the module doc).
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        self.warn_of_missing_secrets();
        let router = self.router();
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        let graceful = GracefulShutdown::new();
        loop {
            let permit = tokio::select! {
                () = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => permit.expect("the semaphore stays open"),
            };
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
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(self.limits.client_timeout)
                .keep_alive(false);
            let connection = graceful.watch(builder.serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(router.clone()),
            ));
            tokio::spawn(async move {
                // A client that goes away or times out is no error of the server's.
                let _ = connection.await;
                drop(permit);
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

/// The state of one app's routes.
#[derive(Clone)]
struct AppRoute {
    server: Arc<Server>,
    app: Arc<str>,
}

/// 200 while the state database reads and writes, else 503.
async fn healthz(State(server): State<Arc<Server>>) -> Response {
    let store = server.engines.store().clone();
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
