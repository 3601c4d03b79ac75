//! A local Zoom emulator: OAuth (authorize, token, revoke), the Users API and the Chatbot API,
//! answering with Zoom's status codes and bodies and enforcing which token each endpoint
//! accepts, plus knobs (token lifetimes, latency, a send rate limit, injected 5xx) and
//! inspection endpoints under `/_emulator/`, where it also sends signed event notifications
//! (`/_emulator/events`) to the `webhook_url` knob.
//!
//! It is what `demo`, the tests and the benchmarks run against. It is deliberately strict:
//! a mock that accepts anything would hide exactly the bugs zoomcast exists to prevent.
//! Its answers are hand-written JSON from Zoom's docs, never zoomcast's own client types.

mod channels;
mod chat;
mod delay;
mod device;
mod directory;
mod events;
mod faults;
mod grants;
mod inspect;
mod oauth;
mod state;
mod users;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

pub use directory::Directory;
pub use state::{Emulator, Stats};

/// How `Retry-After` is sent on a 429.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryAfterStyle {
    /// A number of seconds.
    #[default]
    Seconds,
    /// An HTTP date.
    HttpDate,
    /// An ISO 8601 date-time (Zoom's daily-limit form).
    Iso,
    /// No header at all.
    Absent,
}

/// The emulator's behaviour; every field can be changed at run time with
/// `POST /_emulator/knobs` and a JSON object of the fields to change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// The one app's client id.
    pub client_id: String,
    /// The one app's client secret.
    pub client_secret: String,
    /// The bot's JID.
    pub robot_jid: String,
    /// The first account: the named users at `example.com` and the synthetic ones.
    pub account_id: String,
    /// The second account: the users at `second.example` (`admin@second.example` installs).
    pub second_account_id: String,
    /// Who approves `/oauth/authorize` (the admin who installs the app).
    pub login_as: String,
    /// Lifetime of user access tokens, seconds.
    pub access_ttl_secs: i64,
    /// Lifetime of bot tokens, seconds.
    pub bot_ttl_secs: i64,
    /// Whether issuing a new user access token kills the previous one (Zoom's "tolerance").
    pub new_access_kills_previous: bool,
    /// Delay before answering each `/v2` call, milliseconds.
    pub latency_ms: u64,
    /// Sends accepted per second in each account; more are answered 429.
    pub send_rate_limit: Option<u32>,
    /// Users API calls accepted per second; more are answered 429. Counted apart from the
    /// sends, as Zoom counts each API's rate class apart.
    pub lookup_rate_limit: Option<u32>,
    /// The `Retry-After` form on per-second 429s.
    pub retry_after: RetryAfterStyle,
    /// Sends accepted per day; more are answered 429 `Daily-limit` with an ISO date-time
    /// `Retry-After`, as Zoom documents. The emulator's day starts at its first counted send
    /// (not at 00:00 UTC), so what a test sees does not depend on the time of day.
    pub send_daily_limit: Option<u32>,
    /// Whether the daily limit's 429 carries its headers (`X-RateLimit-Type: Daily-limit`,
    /// `Retry-After`, ...); without them it says so only in its message, as Zoom's forum shows
    /// real answers doing.
    pub daily_limit_headers: bool,
    /// Fraction (0.0-1.0) of `/v2` calls answered with an injected 503.
    pub fail_5xx: f64,
    /// Every address at this domain exists (synthetic users for bulk runs).
    pub synthetic_domain: Option<String>,
    /// Behave as if the app were user-managed: the Users API answers 124 ("invalid token")
    /// for anyone but `me`, as Zoom does for such apps.
    pub user_managed: bool,
    /// Where `/_emulator/events` sends Zoom's event notifications (zoomcast's
    /// `/webhooks/zoom`).
    pub webhook_url: Option<String>,
    /// The app's webhook secret token, which signs those notifications.
    pub webhook_secret: String,
    /// The polling interval `/oauth/devicecode` asks for, seconds (Zoom: 5).
    pub device_interval_secs: u64,
    /// How long a device code lives, seconds (Zoom: 900).
    pub device_expires_secs: i64,
    /// Polls answered `slow_down` even when they came in time, per device code (a busy
    /// Zoom); each adds five seconds to the interval, as a late one does.
    pub device_slow_downs: u32,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            client_id: "zoomcast-emulator".into(),
            client_secret: "emulator-client-secret".into(),
            robot_jid: "v1robotzoomcast@xmpp.zoom.us".into(),
            account_id: "emulated-account-1".into(),
            second_account_id: "emulated-account-2".into(),
            login_as: "admin@example.com".into(),
            access_ttl_secs: 3600,
            bot_ttl_secs: 3600,
            new_access_kills_previous: true,
            latency_ms: 0,
            send_rate_limit: None,
            lookup_rate_limit: None,
            retry_after: RetryAfterStyle::Seconds,
            send_daily_limit: None,
            daily_limit_headers: true,
            fail_5xx: 0.0,
            synthetic_domain: Some("bulk.example.com".into()),
            user_managed: false,
            webhook_url: None,
            webhook_secret: "emulator-webhook-secret".into(),
            device_interval_secs: 5,
            device_expires_secs: 900,
            device_slow_downs: 0,
        }
    }
}

/// The emulator's routes.
pub fn router(emulator: Arc<Emulator>) -> Router {
    Router::new()
        .route("/oauth/authorize", get(oauth::authorize))
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/revoke", post(oauth::revoke))
        .route("/oauth/devicecode", post(device::device_code))
        .route("/oauth_device", get(device::decide))
        .route("/v2/users/{id}", get(users::get_user))
        .route("/v2/chat/users/me/channels", get(channels::list))
        .route("/v2/im/chat/messages", post(chat::send))
        .route(
            "/v2/im/chat/messages/{id}",
            axum::routing::put(chat::edit).delete(chat::delete),
        )
        .route("/_emulator/messages", get(inspect::messages))
        .route("/_emulator/stats", get(inspect::stats))
        .route(
            "/_emulator/knobs",
            get(inspect::knobs).post(inspect::set_knobs),
        )
        .route("/_emulator/revoke-grants", post(inspect::revoke_grants))
        .route("/_emulator/issued-secrets", get(inspect::issued_secrets))
        .route("/_emulator/events", post(events::send))
        .with_state(emulator)
}

/// Serves the emulator on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    emulator: Arc<Emulator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(emulator))
        .with_graceful_shutdown(shutdown)
        .await
}

/// An emulator on its own thread and runtime, on a free loopback port; it stops when dropped.
/// Its own runtime means a test that blocks on a child process cannot starve it.
pub struct EmulatorHandle {
    addr: SocketAddr,
    emulator: Arc<Emulator>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EmulatorHandle {
    /// Binds `127.0.0.1:0` (before returning, so no wait is needed) and starts serving.
    pub fn start(knobs: Knobs) -> std::io::Result<Self> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let emulator = Arc::new(Emulator::new(knobs));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = emulator.clone();
        let thread = std::thread::Builder::new()
            .name("zoom-emulator".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("the emulator's runtime starts");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("a bound listener");
                    let shutdown = async move {
                        let _ = stopped.await;
                    };
                    if let Err(e) = serve(listener, served, shutdown).await {
                        tracing::error!("emulator stopped: {e}");
                    }
                });
            })?;
        Ok(Self {
            addr,
            emulator,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`: the value for both `ZOOM_OAUTH_URL` and `ZOOM_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The emulator itself, for inspection in-process.
    pub fn emulator(&self) -> &Arc<Emulator> {
        &self.emulator
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
