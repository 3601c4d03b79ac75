//! `/oauth/authorize`, `/oauth/token` and `/oauth/revoke`, as Zoom answers them: single-use
//! codes bound to client and redirect URI, PKCE, strict refresh rotation, bot tokens only from
//! `client_credentials`, and `{"reason", "error"}` bodies with status 400.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::grants::{basic_auth_ok, new_grant, oauth_error, params, user_token_body};
use super::state::{Emulator, PendingCode, TokenKind};

/// `GET /oauth/authorize`: auto-approves as `login_as` and redirects with code and state.
pub async fn authorize(State(emu): State<Arc<Emulator>>, RawQuery(query): RawQuery) -> Response {
    let p = params(query.as_deref(), b"");
    let knobs = emu.current_knobs();
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    if get("response_type") != "code" {
        return (StatusCode::BAD_REQUEST, "Invalid response_type: use code").into_response();
    }
    if get("client_id") != knobs.client_id {
        return (StatusCode::BAD_REQUEST, "Invalid client_id").into_response();
    }
    let redirect_uri = get("redirect_uri");
    let Ok(mut target) = url::Url::parse(&redirect_uri) else {
        return (
            StatusCode::BAD_REQUEST,
            "Invalid redirect: redirect_uri must be an absolute URL",
        )
            .into_response();
    };
    let challenge = p.get("code_challenge").map(|c| {
        (
            c.clone(),
            p.get("code_challenge_method")
                .cloned()
                .unwrap_or_else(|| "plain".into()),
        )
    });
    if challenge
        .as_ref()
        .is_some_and(|(_, m)| m != "S256" && m != "plain")
    {
        return (
            StatusCode::BAD_REQUEST,
            "Invalid code_challenge_method: use S256 or plain",
        )
            .into_response();
    }
    let Some(user) = emu.directory().find(&knobs.login_as) else {
        return (StatusCode::BAD_REQUEST, "login_as names no user").into_response();
    };
    let code = {
        let mut inner = emu.inner();
        let code = inner.secret("emu_code_");
        inner.codes.insert(
            code.clone(),
            PendingCode {
                client_id: knobs.client_id.clone(),
                redirect_uri,
                challenge,
                user,
                expires_at: Utc::now() + chrono::TimeDelta::minutes(5),
            },
        );
        code
    };
    {
        let mut pairs = target.query_pairs_mut();
        pairs.append_pair("code", &code);
        if let Some(state) = p.get("state") {
            pairs.append_pair("state", state);
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

/// `POST /oauth/token`: the three grants.
pub async fn token(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if !basic_auth_ok(&headers, &emu) {
        return oauth_error("invalid_client", "Invalid client_id or client_secret");
    }
    let p = params(query.as_deref(), &body);
    match p.get("grant_type").map(String::as_str) {
        Some("authorization_code") => exchange_code(&emu, &p),
        Some("refresh_token") => refresh(&emu, &p),
        Some("client_credentials") => client_credentials(&emu),
        Some(super::device::GRANT_TYPE) => super::device::poll(&emu, &p),
        _ => oauth_error("unsupported_grant_type", "unsupported grant type"),
    }
}

fn pkce_ok(challenge: Option<&(String, String)>, verifier: Option<&String>) -> bool {
    match (challenge, verifier) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some((c, method)), Some(v)) if method == "S256" => {
            URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())) == *c
        }
        (Some((c, _)), Some(v)) => c == v,
    }
}

fn exchange_code(emu: &Emulator, p: &HashMap<String, String>) -> Response {
    let knobs = emu.current_knobs();
    let mut inner = emu.inner();
    let code = p.get("code").cloned().unwrap_or_default();
    // Single use: the code is gone whatever happens next.
    let refused = match inner.codes.remove(&code) {
        None => Err(("invalid_grant", "Invalid authorization code")),
        Some(pending) if pending.expires_at < Utc::now() => {
            Err(("invalid_grant", "Code is expired"))
        }
        Some(pending) if pending.client_id != knobs.client_id => {
            Err(("invalid_grant", "Invalid authorization code"))
        }
        Some(pending) if p.get("redirect_uri") != Some(&pending.redirect_uri) => {
            Err(("invalid_request", "Redirect URI mismatch."))
        }
        Some(pending) if !pkce_ok(pending.challenge.as_ref(), p.get("code_verifier")) => {
            Err(("invalid_request", "Invalid code_verifier"))
        }
        Some(pending) => Ok(pending),
    };
    match refused {
        Ok(pending) => {
            inner.stats.code_exchanges += 1;
            new_grant(&mut inner, &knobs, pending.user)
        }
        Err((error, reason)) => {
            inner.stats.code_exchanges_refused += 1;
            oauth_error(error, reason)
        }
    }
}

fn refresh(emu: &Emulator, p: &HashMap<String, String>) -> Response {
    let knobs = emu.current_knobs();
    let mut inner = emu.inner();
    let presented = p.get("refresh_token").cloned().unwrap_or_default();
    let found = inner
        .grants
        .iter()
        .find(|(_, g)| g.refresh_token == presented && !g.revoked)
        .map(|(id, _)| *id);
    let Some(grant) = found else {
        if inner.dead_refresh.contains(&presented) {
            inner.stats.dead_refresh_presentations += 1;
        }
        return oauth_error("invalid_grant", "Invalid Token!");
    };
    inner.stats.refreshes += 1;
    inner.dead_refresh.insert(presented);
    let access = inner.issue_access(TokenKind::User { grant }, knobs.access_ttl_secs);
    let refresh = inner.secret("emu_rt_");
    let previous = {
        let g = inner.grants.get_mut(&grant).expect("found above");
        g.refresh_token.clone_from(&refresh);
        std::mem::replace(&mut g.access_token, access.clone())
    };
    if knobs.new_access_kills_previous
        && let Some(old) = inner.tokens.get_mut(&previous)
    {
        old.dead = true;
    }
    user_token_body(&access, &refresh, knobs.access_ttl_secs)
}

fn client_credentials(emu: &Emulator) -> Response {
    let ttl = emu.current_knobs().bot_ttl_secs;
    let mut inner = emu.inner();
    inner.stats.bot_tokens_issued += 1;
    let access = inner.issue_access(TokenKind::Bot, ttl);
    Json(json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": ttl,
        "scope": "imchat:bot",
        "api_url": "https://api.zoom.us"
    }))
    .into_response()
}

/// `POST /oauth/revoke`: revokes the grant behind a user access token.
pub async fn revoke(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if !basic_auth_ok(&headers, &emu) {
        return oauth_error("invalid_client", "Invalid client_id or client_secret");
    }
    let p = params(query.as_deref(), &body);
    let mut inner = emu.inner();
    let kind = p
        .get("token")
        .and_then(|t| inner.tokens.get(t))
        .map(|t| t.kind.clone());
    match kind {
        Some(TokenKind::User { grant }) => {
            inner.revoke(grant);
            inner.stats.revocations += 1;
            Json(json!({ "status": "success" })).into_response()
        }
        _ => oauth_error("invalid_request", "Invalid Token!"),
    }
}
