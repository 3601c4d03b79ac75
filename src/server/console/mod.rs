//! `/console`: the web console (design section 10), rendered on the server and usable without
//! JavaScript.
//!
//! - Sign-in starts on the host: `zoomcast console-link` stores a one-time token's hash, and
//!   `GET /console/login?token=...` burns it and sets the session cookie ([`session`]).
//! - Pages ([`pages`]): jobs, runs (paged), a run (recipients, acknowledgements as an SVG chart
//!   ([`chart`]), the failures CSV), opt-outs, grants. Without a session every page redirects
//!   to `/console/login`.
//! - Actions ([`actions`]) are forms posting the session's `csrf` field: run now,
//!   suspend/resume, recall a run. A read-only session's, or one without the field, is 403;
//!   each is logged with who did it.
//!
//! Every answer forbids framing (`frame-ancestors 'none'`), scripts and every origin but its
//! own in its content security policy, and is never cached.

mod actions;
mod chart;
mod pages;
pub mod session;
mod templates;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::Value;

use super::Server;
use crate::state::{RunId, RunRecord, StateError, off_workers};
use session::Session;

/// The console's content security policy: its own styles and forms only, no script, no frame.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// The console's routes.
pub(super) fn routes(server: &Arc<Server>) -> Router {
    Router::new()
        .route("/console", get(pages::jobs))
        .route("/console/runs", get(pages::runs))
        .route("/console/runs/{id}", get(pages::run))
        .route("/console/runs/{id}/failures.csv", get(pages::failures_csv))
        .route("/console/optouts", get(pages::optouts))
        .route("/console/grants", get(pages::grants))
        .route("/console/style.css", get(style))
        .route("/console/login", get(actions::login))
        .route("/console/logout", post(actions::logout))
        .route("/console/jobs/{job}/run", post(actions::run_now))
        .route(
            "/console/jobs/{job}/suspend",
            post(actions::toggle_suspension),
        )
        .route("/console/runs/{id}/recall", post(actions::recall))
        .layer(middleware::from_fn(guarded))
        .with_state(server.clone())
}

/// Adds the console's security headers to every answer.
async fn guarded(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        templates::STYLE,
    )
        .into_response()
}

/// The signed-in session of a request, and the key its cookie is signed with.
pub(super) struct Signed {
    session: Session,
    key: [u8; 32],
}

impl Signed {
    /// What every page's frame shows: who, read-only, the CSRF field.
    fn frame(&self) -> Value {
        serde_json::json!({
            "who": self.session.name,
            "read_only": self.session.read_only,
            "csrf": self.session.csrf(&self.key),
        })
    }
}

/// The console's signing key, from the state.
async fn signing_key(server: &Server) -> Result<[u8; 32], Response> {
    let store = server.store.clone();
    off_workers(move || store.console()?.signing_key())
        .await
        .map_err(|e| state_failed(&e))
}

/// The page to answer when the state cannot be read or written (logged).
fn state_failed(e: &StateError) -> Response {
    tracing::error!("console: the state database failed: {e}");
    failure(
        StatusCode::SERVICE_UNAVAILABLE,
        "the state database is not usable now; try again",
    )
}

fn no_such_run() -> Response {
    failure(StatusCode::NOT_FOUND, "there is no such run")
}

/// The run whose id is `id` (as a path gives it), or the page to answer instead.
async fn run_record(server: &Server, id: &str) -> Result<RunRecord, Response> {
    let id: RunId = id.parse().map_err(|_| no_such_run())?;
    let store = server.store.clone();
    off_workers(move || store.runs()?.get(id))
        .await
        .map_err(|e| state_failed(&e))?
        .ok_or_else(no_such_run)
}

/// The request's session, or the answer to give without one: a redirect to the sign-in page.
async fn signed_in(server: &Server, headers: &HeaderMap) -> Result<Signed, Response> {
    let key = signing_key(server).await?;
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    match session::cookie_value(cookies).and_then(|value| Session::open(&key, value)) {
        Some(session) => Ok(Signed { session, key }),
        None => Err(Redirect::to("/console/login").into_response()),
    }
}

/// Whether the browser reaches the console over https: `public_url` says so, or the
/// TLS-terminating proxy does (`X-Forwarded-Proto`). The session cookie is then `Secure`.
fn over_https(server: &Server, headers: &HeaderMap) -> bool {
    let public = server
        .config
        .public_url()
        .ok()
        .flatten()
        .is_some_and(|url| url.scheme() == "https");
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    public || forwarded
}

/// A page of `template` with `context` laid over the frame of `signed` (or none).
fn page(template: &str, signed: Option<&Signed>, context: Value) -> Response {
    let mut all = signed.map_or_else(|| serde_json::json!({}), Signed::frame);
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), context) {
        all.extend(more);
    }
    match templates::render(template, &all) {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!("console: page `{template}` did not render: {e:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page did not render\n",
            )
                .into_response()
        }
    }
}

/// A page saying `message` with `status`.
fn failure(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let mut response = page(
        "message.html",
        None,
        serde_json::json!({ "title": title, "message": message }),
    );
    *response.status_mut() = status;
    response
}

/// A time as the console shows it.
fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
