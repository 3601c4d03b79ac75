//! `GET /v2/users/{id}`: user tokens only (a bot token gets 401 code 124), `me` for the
//! authorizing user, 404 code 1001 for unknown users and those of another account, an optional per-second limit answered
//! with 429.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::directory::Directory;
use super::faults::{api_error, bearer, latency_and_faults, per_second_limit};
use super::state::{ApiRequest, Emulator, TokenKind};

/// `GET /v2/users/{id}`.
pub async fn get_user(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let _counted = emu.in_flight(ApiRequest::Lookup);
    if let Some(fault) = latency_and_faults(&emu).await {
        return fault;
    }
    let knobs = emu.current_knobs();
    let mut inner = emu.inner();
    let token = bearer(&headers).unwrap_or("");
    let grant = match inner.live(token).map(|t| t.kind.clone()) {
        Some(TokenKind::User { grant }) => grant,
        Some(TokenKind::Bot) => {
            inner.stats.users_called_with_bot_token += 1;
            return api_error(StatusCode::UNAUTHORIZED, 124, "Invalid access token.");
        }
        None => {
            inner.stats.rejected_tokens += 1;
            return api_error(StatusCode::UNAUTHORIZED, 124, "Invalid access token.");
        }
    };
    let state = &mut *inner;
    if let Some(limited) = per_second_limit(
        &mut state.lookup_window,
        knobs.lookup_rate_limit,
        &mut state.stats.lookups_rate_limited,
        knobs.retry_after,
    ) {
        return limited;
    }
    if knobs.user_managed && id != "me" {
        inner.stats.rejected_tokens += 1;
        return api_error(StatusCode::UNAUTHORIZED, 124, "Invalid access token.");
    }
    let Some(me) = inner.grants.get(&grant).map(|g| g.user.clone()) else {
        return api_error(StatusCode::UNAUTHORIZED, 124, "Invalid access token.");
    };
    // An admin sees the users of their own account only, as at Zoom.
    let user = if id == "me" {
        Some(me)
    } else {
        Directory::new(&knobs)
            .find(&id)
            .filter(|user| user.account_id == me.account_id)
    };
    if let Some(user) = user {
        inner.stats.user_lookups += 1;
        Json(Directory::to_json(&user)).into_response()
    } else {
        inner.stats.unknown_users += 1;
        api_error(
            StatusCode::NOT_FOUND,
            1001,
            &format!("User does not exist: {id}."),
        )
    }
}
