//! `GET /install` and `GET /oauth/callback`: an account admin installs the app from a browser.
//!
//! `/install` makes a `state` and a PKCE pair, keeps them in a cookie the browser carries back
//! (`HttpOnly`, `SameSite=Lax`, ten minutes, signed with a key derived from the app's client
//! secret, so that no one else can make one and no server memory is needed), and redirects to
//! Zoom's authorize URL. `/oauth/callback` checks the cookie's signature and age and the
//! returned `state` (in constant time), uses that `state` up (a second callback of one install
//! exchanges nothing), exchanges the code, learns the account and stores its grant, then sends the browser to `install_redirect` (default: the chatbot in Zoom). Any
//! failure is a plain-text page with status 400 and what to do, and stores nothing.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{AppRoute, Server};
use crate::auth::login::{self, InstallError, Pkce};
use crate::delivery::AppEngine;
use crate::state::{Grant, Grants, Use};
use crate::token::ClientSecret;

/// How long an install may take between `/install` and the callback.
const INSTALL_SECONDS: i64 = 10 * 60;

/// What the install cookie holds.
#[derive(PartialEq, Eq)]
pub struct Pending {
    /// The `state` sent to Zoom.
    pub state: String,
    /// The PKCE verifier of the challenge sent to Zoom.
    pub verifier: String,
    /// Seconds since the epoch after which the cookie is refused.
    pub expires: i64,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The verifier turns a stolen code into a grant: never printed.
        f.debug_struct("Pending")
            .field("state", &self.state)
            .field("verifier", &"[redacted]")
            .field("expires", &self.expires)
            .finish()
    }
}

/// The cookie's name for `app`: one per app, so installs of two apps in one browser do not
/// clash (app names may hold anything, so the name is derived from a hash of it).
pub fn cookie_name(app: &str) -> String {
    let digest = Sha256::digest(app.as_bytes());
    format!("zoomcast_install_{}", hex::encode(&digest[..6]))
}

/// The cookie's value: state, verifier and expiry, then their MAC (all URL-safe, `.`-joined).
pub fn cookie_value(secret: &ClientSecret, app: &str, pending: &Pending) -> String {
    let body = format!("{}.{}.{}", pending.state, pending.verifier, pending.expires);
    let mac = hex::encode(mac(secret, app, &body).finalize().into_bytes());
    format!("{body}.{mac}")
}

/// The pending install in a cookie value, if its MAC is the app's and it has not expired.
fn read_cookie(secret: &ClientSecret, app: &str, value: &str, now: i64) -> Option<Pending> {
    let (body, claimed) = value.rsplit_once('.')?;
    mac(secret, app, body)
        .verify_slice(&hex::decode(claimed).ok()?)
        .ok()?;
    let mut parts = body.split('.');
    let (state, verifier, expires) = (parts.next()?, parts.next()?, parts.next()?);
    let expires: i64 = expires.parse().ok()?;
    (parts.next().is_none() && now <= expires).then(|| Pending {
        state: state.to_owned(),
        verifier: verifier.to_owned(),
        expires,
    })
}

/// The cookie's MAC: HMAC-SHA256 keyed by the client secret, over the app and the body.
fn mac(secret: &ClientSecret, app: &str, body: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes keys of any size");
    mac.update(b"zoomcast install cookie\0");
    mac.update(app.as_bytes());
    mac.update(b"\0");
    mac.update(body.as_bytes());
    mac
}

/// `GET /install`.
pub(super) async fn install(State(route): State<AppRoute>) -> Response {
    let app = match route.server.engines.app(&route.app) {
        Ok(app) => app,
        Err(e) => return not_configured(&route, &e),
    };
    let pkce = Pkce::new();
    let pending = Pending {
        state: login::new_state(),
        verifier: pkce.verifier,
        expires: chrono::Utc::now().timestamp() + INSTALL_SECONDS,
    };
    let authorize =
        app.clients
            .oauth
            .authorize_url(&app.app.redirect_uri, &pending.state, &pkce.challenge);
    let secure = if app.app.redirect_uri.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={}; Path=/; Max-Age={INSTALL_SECONDS}; HttpOnly; SameSite=Lax{secure}",
        cookie_name(&app.app.name),
        cookie_value(&app.app.client_secret, &app.app.name, &pending)
    );
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, authorize.to_string()),
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

/// The redirect's query: a code and the state, or Zoom's error. (No `Debug`: the code is a
/// secret until it is used.)
#[derive(Deserialize)]
pub(super) struct Redirect {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /oauth/callback`.
pub(super) async fn callback(
    State(route): State<AppRoute>,
    headers: HeaderMap,
    Query(redirect): Query<Redirect>,
) -> Response {
    let app = match route.server.engines.app(&route.app) {
        Ok(app) => app,
        Err(e) => return not_configured(&route, &e),
    };
    let now = chrono::Utc::now().timestamp();
    let pending = cookie(&headers, &cookie_name(&app.app.name))
        .and_then(|value| read_cookie(&app.app.client_secret, &app.app.name, &value, now));
    let Some(pending) = pending else {
        return page(
            "This install link has expired, or was not started in this browser. Start again at \
             the install address (/install).",
        );
    };
    if let Some(error) = redirect.error {
        let error = crate::output::clean(&error, 100);
        return page(&format!(
            "Zoom did not authorize the app ({error}). Start again at the install address."
        ));
    }
    let (Some(code), Some(state)) = (redirect.code, redirect.state) else {
        return page(
            "Zoom's redirect had no authorization code. Start again at the install address.",
        );
    };
    if !same(&state, &pending.state) {
        return page(
            "This redirect does not belong to the install started in this browser. Start again \
             at the install address.",
        );
    }
    match first_callback(&route, &pending, now).await {
        Ok(true) => {}
        Ok(false) => {
            return page(
                "This install was already finished or tried once; an authorization code works \
                 once. Start again at the install address.",
            );
        }
        Err(e) => {
            tracing::error!("app `{}`: an install could not be recorded: {e}", route.app);
            return page("The install could not be stored here. Try again later.");
        }
    }
    finish(&route.server, app, code, pending.verifier).await
}

/// Records the install's `state` as used: one callback per `/install`, so one code exchange
/// at Zoom, whatever its outcome.
async fn first_callback(
    route: &AppRoute,
    pending: &Pending,
    now: i64,
) -> Result<bool, crate::state::StateError> {
    let id = Sha256::digest(pending.state.as_bytes());
    route
        .server
        .engines
        .store()
        .once()?
        .first_use(Use::Install, &id, pending.expires, now)
        .await
}

/// Exchanges the code and stores the grant; the browser goes on to the chatbot. The work runs
/// in a task of its own: a client that goes away (or the request's timeout) cannot cut it
/// between the exchange, which uses the code up, and the store.
async fn finish(server: &Server, app: Arc<AppEngine>, code: String, verifier: String) -> Response {
    let name = app.app.name.clone();
    let grants = match server.store.grants() {
        Ok(grants) => grants,
        Err(e) => {
            tracing::error!("app `{name}`: an install could not be stored: {e}");
            return page("The install could not be stored here. Try again later.");
        }
    };
    let installed = tokio::spawn(install_grant(app.clone(), grants, code, verifier)).await;
    let Ok(installed) = installed else {
        return page("The install failed here. Start again at the install address.");
    };
    match installed {
        Ok(grant) => {
            tracing::info!(
                "app `{name}`: installed for account {} (authorized by its {})",
                grant.account_id,
                if grant.role.is_empty() {
                    "user of unknown role"
                } else {
                    &grant.role
                }
            );
            let clear = format!(
                "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax",
                cookie_name(&name)
            );
            (
                StatusCode::FOUND,
                [
                    (header::LOCATION, destination(&app)),
                    (header::SET_COOKIE, clear),
                ],
            )
                .into_response()
        }
        Err(InstallError::NotAllowed(refusal)) => {
            tracing::warn!(
                "app `{name}`: an install was refused: {}",
                refusal.summary()
            );
            refused(&format!(
                "{refusal}. Nothing was stored, and this authorization is revoked."
            ))
        }
        Err(e) => {
            tracing::warn!("app `{name}`: an install failed: {e}");
            let what = match e {
                InstallError::State(_) => "The install could not be stored here",
                _ => "Zoom refused this authorization",
            };
            page(&format!(
                "{what}. Nothing was stored. Start again at the install address."
            ))
        }
    }
}

/// Exchanges `code` (with its PKCE `verifier`), learns who authorized, and stores the grant
/// if the app takes it; a refused grant's tokens are revoked.
async fn install_grant(
    app: Arc<AppEngine>,
    grants: Grants,
    code: String,
    verifier: String,
) -> Result<Grant, InstallError> {
    let (clients, uri) = (&app.clients, &app.app.redirect_uri);
    let grant =
        login::prepare_install(&clients.oauth, &clients.zoom, &code, uri, &verifier).await?;
    let admission = login::Admission {
        client_id: &app.app.client_id,
        accounts: Some(&app.app.install_accounts),
    };
    let stored = clients
        .tokens(&grant.account_id)
        .replace_grant(login::store_install(
            &grants,
            &app.app.name,
            &grant,
            &admission,
        ))
        .await;
    if let Err(InstallError::NotAllowed(_)) = &stored
        && let Err(e) = clients.oauth.revoke(&grant.access.access).await
    {
        tracing::warn!("revoking the tokens of a refused install failed: {e}");
    }
    stored
}

/// Where the browser goes after an install.
fn destination(app: &AppEngine) -> String {
    if let Some(url) = &app.app.install_redirect {
        return url.to_string();
    }
    match &app.app.robot_jid {
        // Zoom's deep link to a chatbot's conversation.
        Some(jid) => format!("https://zoom.us/launch/chat?jid=robot_{jid}"),
        None => "https://zoom.us/".to_owned(),
    }
}

/// The value of cookie `name` in the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// Equal texts, compared in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0, |diff, (x, y)| diff | (x ^ y))
            == 0
}

/// A plain-text page with status 400.
fn page(text: &str) -> Response {
    plain(StatusCode::BAD_REQUEST, text)
}

/// A plain-text page with status 403: the install is not one this app takes.
fn refused(text: &str) -> Response {
    plain(StatusCode::FORBIDDEN, text)
}

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

fn not_configured(route: &AppRoute, e: &anyhow::Error) -> Response {
    tracing::error!("install for app `{}`: {e:#}", route.app);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "this app is not configured here\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_read_back_only_unaltered_for_its_app_and_in_time() {
        let secret = ClientSecret::new("client-secret");
        let pending = Pending {
            state: "st4te".into(),
            verifier: "ver1fier".into(),
            expires: 1_000,
        };
        let value = cookie_value(&secret, "default", &pending);
        assert_eq!(read_cookie(&secret, "default", &value, 999), Some(pending));
        assert_eq!(
            read_cookie(&secret, "default", &value, 1_001),
            None,
            "expired"
        );
        assert_eq!(
            read_cookie(&secret, "other", &value, 999),
            None,
            "another app's"
        );
        let other = ClientSecret::new("another secret");
        assert_eq!(read_cookie(&other, "default", &value, 999), None);
        let tampered = value.replacen("st4te", "stat3", 1);
        assert_eq!(read_cookie(&secret, "default", &tampered, 999), None);
        let later = value.replacen(".1000.", ".9999.", 1);
        assert_eq!(
            read_cookie(&secret, "default", &later, 999),
            None,
            "expiry is signed"
        );
        assert_eq!(read_cookie(&secret, "default", "garbage", 999), None);
    }

    #[test]
    fn states_are_compared_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }

    #[test]
    fn a_pending_install_never_prints_its_verifier() {
        let pending = Pending {
            state: "st4te".into(),
            verifier: "the-secret-verifier".into(),
            expires: 1,
        };
        let printed = format!("{pending:?}");
        assert!(printed.contains("st4te") && !printed.contains("the-secret-verifier"));
    }
}
