//! What the emulator's two token endpoints share (`/oauth/token`, [`super::oauth`], and the
//! device grant, [`super::device`]): Zoom's error body, the request's parameters, the client's
//! authentication, and a new user grant.

use std::collections::HashMap;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::directory::User;
use super::state::{Emulator, GrantState, Inner, TokenKind};

/// Zoom's answer to a refused token request: status 400, `{"reason", "error"}`.
pub(super) fn oauth_error(error: &str, reason: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "reason": reason, "error": error })),
    )
        .into_response()
}

/// The parameters of a request, from its query and its form body.
pub(super) fn params(query: Option<&str>, body: &[u8]) -> HashMap<String, String> {
    let mut params: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    params.extend(url::form_urlencoded::parse(body).into_owned());
    params
}

/// Whether the request authenticates as the emulated app (HTTP Basic with its client id and
/// secret).
pub(super) fn basic_auth_ok(headers: &HeaderMap, emu: &Emulator) -> bool {
    let knobs = emu.current_knobs();
    let expected = STANDARD.encode(format!("{}:{}", knobs.client_id, knobs.client_secret));
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .is_some_and(|v| v.trim() == expected)
}

/// A new grant of `user`, answered as Zoom answers a code exchange. Authorizing the same app
/// and user again kills the earlier grant (Zoom's 4741).
pub(super) fn new_grant(inner: &mut Inner, knobs: &super::Knobs, user: User) -> Response {
    let earlier: Vec<u64> = inner
        .grants
        .iter()
        .filter(|(_, g)| g.user.id == user.id && !g.revoked)
        .map(|(id, _)| *id)
        .collect();
    for id in earlier {
        inner.revoke(id);
    }
    let grant = inner.next_id();
    let access = inner.issue_access(TokenKind::User { grant }, knobs.access_ttl_secs);
    let refresh = inner.secret("emu_rt_");
    inner.grants.insert(
        grant,
        GrantState {
            user,
            refresh_token: refresh.clone(),
            access_token: access.clone(),
            revoked: false,
        },
    );
    user_token_body(&access, &refresh, knobs.access_ttl_secs)
}

/// The body of a user grant, as Zoom answers a code exchange or a refresh.
pub(super) fn user_token_body(access: &str, refresh: &str, ttl: i64) -> Response {
    Json(json!({
        "access_token": access,
        "token_type": "bearer",
        "refresh_token": refresh,
        "expires_in": ttl,
        "scope": "imchat:bot user:read:user:admin",
        "api_url": "https://api.zoom.us"
    }))
    .into_response()
}
