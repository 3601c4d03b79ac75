//! Zoom's device authorization grant (RFC 8628): `POST /oauth/devicecode` issues a device code
//! and a user code; `GET /oauth_device?user_code=...` is where the person approves (as
//! `login_as`) or, with `&deny=1`, denies; the token endpoint's device-code grant answers
//! `authorization_pending`, `slow_down` (a poll sooner than the interval, or one of the first
//! `device_slow_downs`; either adds five seconds to the interval), `expired_token`,
//! `access_denied`, or the grant.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rand::Rng;
use serde_json::json;

use super::grants::{basic_auth_ok, new_grant, oauth_error, params};
use super::state::{Decision, Emulator, PendingDevice};

/// The device-code grant's `grant_type`.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `POST /oauth/devicecode?client_id=...` (with the app's Basic credentials).
pub async fn device_code(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let knobs = emu.current_knobs();
    let p = params(query.as_deref(), b"");
    if !basic_auth_ok(&headers, &emu) || p.get("client_id") != Some(&knobs.client_id) {
        return oauth_error("invalid_client", "Invalid client_id or client_secret");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let user_code = user_code();
    let mut inner = emu.inner();
    let device_code = inner.secret("emu_dc_");
    inner.devices.insert(
        device_code.clone(),
        PendingDevice {
            user_code: user_code.clone(),
            expires_at: chrono::TimeDelta::try_seconds(knobs.device_expires_secs)
                .and_then(|ttl| Utc::now().checked_add_signed(ttl))
                .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC),
            interval: knobs.device_interval_secs,
            last_poll: None,
            forced_slow_downs: knobs.device_slow_downs,
            decision: Decision::Pending,
        },
    );
    let uri = format!("http://{host}/oauth_device");
    Json(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": uri,
        "verification_uri_complete": format!("{uri}?user_code={user_code}"),
        "expires_in": knobs.device_expires_secs,
        "interval": knobs.device_interval_secs,
    }))
    .into_response()
}

/// Eight letters, as `ABCD-EFGH`.
fn user_code() -> String {
    let mut rng = rand::thread_rng();
    let mut letter = || char::from(b'A' + rng.gen_range(0..26));
    let half = |letter: &mut dyn FnMut() -> char| (0..4).map(|_| letter()).collect::<String>();
    format!("{}-{}", half(&mut letter), half(&mut letter))
}

/// `GET /oauth_device?user_code=...[&deny=1]`: the person's decision.
pub async fn decide(State(emu): State<Arc<Emulator>>, RawQuery(query): RawQuery) -> Response {
    let p = params(query.as_deref(), b"");
    let knobs = emu.current_knobs();
    let deny = p.get("deny").is_some_and(|d| d == "1");
    let user = emu.directory().find(&knobs.login_as);
    let mut inner = emu.inner();
    let code = p.get("user_code").map(|c| c.trim().to_uppercase());
    let Some(pending) = inner
        .devices
        .values_mut()
        .find(|d| Some(&d.user_code) == code.as_ref())
    else {
        return (StatusCode::NOT_FOUND, "Invalid or expired user code").into_response();
    };
    if deny {
        pending.decision = Decision::Denied;
        return (StatusCode::OK, "Access denied: you may close this page").into_response();
    }
    let Some(user) = user else {
        return (StatusCode::BAD_REQUEST, "login_as names no user").into_response();
    };
    pending.decision = Decision::Approved(user);
    (StatusCode::OK, "Device approved: you may close this page").into_response()
}

/// The token endpoint's device-code grant.
pub fn poll(emu: &Emulator, p: &HashMap<String, String>) -> Response {
    let knobs = emu.current_knobs();
    let mut inner = emu.inner();
    inner.stats.device_polls += 1;
    let code = p.get("device_code").cloned().unwrap_or_default();
    let Some(pending) = inner.devices.get_mut(&code) else {
        return oauth_error("invalid_grant", "Invalid device code");
    };
    if pending.expires_at < Utc::now() {
        inner.devices.remove(&code);
        return oauth_error("expired_token", "The device code has expired");
    }
    let now = Instant::now();
    let early = pending
        .last_poll
        .is_some_and(|last| now.duration_since(last) < Duration::from_secs(pending.interval));
    pending.last_poll = Some(now);
    if early || pending.forced_slow_downs > 0 {
        pending.forced_slow_downs = pending.forced_slow_downs.saturating_sub(1);
        pending.interval = pending.interval.saturating_add(5);
        inner.stats.device_slow_downs += 1;
        return oauth_error("slow_down", "Polling too frequently");
    }
    match pending.decision.clone() {
        Decision::Pending => {
            oauth_error("authorization_pending", "The user has not yet authorized")
        }
        Decision::Denied => {
            inner.devices.remove(&code);
            oauth_error("access_denied", "The user denied the authorization")
        }
        Decision::Approved(user) => {
            inner.devices.remove(&code);
            inner.stats.code_exchanges += 1;
            new_grant(&mut inner, &knobs, user)
        }
    }
}
