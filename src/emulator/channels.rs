//! `GET /v2/chat/users/me/channels`: the channels of the user token's account, `page_size`
//! (at most 50, default 10) at a time; `next_page_token` is opaque to clients (here, the index
//! of the page's first channel). A bot token gets 401 code 124, as for the Users API.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::directory::Directory;
use super::faults::{api_error, bearer, latency_and_faults};
use super::state::{ApiRequest, Emulator, TokenKind};

/// The query of a page.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    page_size: Option<usize>,
    next_page_token: Option<String>,
}

/// `GET /v2/chat/users/me/channels`.
pub async fn list(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let _counted = emu.in_flight(ApiRequest::Lookup);
    if let Some(fault) = latency_and_faults(&emu).await {
        return fault;
    }
    let knobs = emu.current_knobs();
    let mut inner = emu.inner();
    let token = bearer(&headers).unwrap_or("");
    let Some(TokenKind::User { grant }) = inner.live(token).map(|t| t.kind.clone()) else {
        inner.stats.rejected_tokens += 1;
        return api_error(StatusCode::UNAUTHORIZED, 124, "Invalid access token.");
    };
    let Some(account) = inner.grants.get(&grant).map(|g| g.user.account_id.clone()) else {
        return api_error(StatusCode::UNAUTHORIZED, 124, "Invalid access token.");
    };
    let size = query.page_size.unwrap_or(10).clamp(1, 50);
    let start = match query.next_page_token.as_deref() {
        None | Some("") => 0,
        Some(token) => match token.parse::<usize>() {
            Ok(start) => start,
            Err(_) => return api_error(StatusCode::BAD_REQUEST, 300, "Invalid next_page_token."),
        },
    };
    let channels: Vec<_> = Directory::new(&knobs)
        .channels()
        .filter(|c| c.account_id == account)
        .collect();
    let page: Vec<_> = channels
        .iter()
        .skip(start)
        .take(size)
        .map(|c| json!({ "id": c.jid.split('@').next(), "jid": c.jid, "name": c.name, "type": 2 }))
        .collect();
    let end = start + page.len();
    let next = if end < channels.len() {
        end.to_string()
    } else {
        String::new()
    };
    inner.stats.channel_pages += 1;
    Json(json!({
        "channels": page,
        "page_size": size,
        "next_page_token": next,
        "total_records": channels.len(),
    }))
    .into_response()
}
