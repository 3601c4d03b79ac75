//! `POST /v2/im/chat/messages`: bot tokens only (a user token gets 401 code 7010), the body
//! validated like Zoom's published schema, optional per-second and daily limits answered with
//! 429. `PUT` and `DELETE /v2/im/chat/messages/{id}` edit and delete a message sent before
//! (404 code 8001 for one that does not exist, or no longer does), with the send limits.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};

use super::Knobs;
use super::faults::{api_error, bearer, latency_and_faults, per_second_limit, too_many_requests};
use super::state::{ApiRequest, Delivered, Emulator, TokenKind};

const REQUIRED: [&str; 5] = ["robot_jid", "to_jid", "account_id", "user_jid", "content"];

/// `POST /v2/im/chat/messages`.
pub async fn send(State(emu): State<Arc<Emulator>>, headers: HeaderMap, body: Bytes) -> Response {
    let _counted = emu.in_flight(ApiRequest::Send);
    if let Some(fault) = latency_and_faults(&emu).await {
        return fault;
    }
    if let Some(rejection) = check_token(&emu, &headers) {
        return rejection;
    }
    let knobs = emu.current_knobs();
    let Some(message) = well_formed(&body) else {
        return reject(
            &emu,
            StatusCode::BAD_REQUEST,
            7001,
            "Invalid Request Body format.",
        );
    };
    let text = |k: &str| message[k].as_str().unwrap_or_default().to_owned();
    let account = text("account_id");
    let directory = super::Directory::new(&knobs);
    // Limits are counted per emulated account (an unknown one is refused below).
    if directory.has_account(&account) {
        let limited = daily_limit(&emu, &knobs).or_else(|| rate_limit(&emu, &knobs, &account));
        if let Some(limited) = limited {
            return limited;
        }
    }
    if text("robot_jid") != knobs.robot_jid {
        return reject(
            &emu,
            StatusCode::FORBIDDEN,
            7003,
            "No Chatbot can be found with the given robot_jid value.",
        );
    }
    let to_jid = text("to_jid");
    let recipient = match addressee(&directory, &account, &text("user_jid"), &to_jid) {
        Ok(recipient) => recipient,
        Err(why) => return reject(&emu, StatusCode::FORBIDDEN, 7004, why),
    };
    let delivered = deliver(&emu, &message, recipient);
    (
        StatusCode::CREATED,
        Json(json!({
            "message_id": delivered.message_id,
            "robot_jid": delivered.robot_jid,
            "sent_time": delivered.sent_time,
            "to_jid": delivered.to_jid,
            "user_jid": delivered.user_jid
        })),
    )
        .into_response()
}

/// The request's message: a JSON object with every required field and an object `content`.
fn well_formed(body: &[u8]) -> Option<Value> {
    let message: Value = serde_json::from_slice(body).ok().filter(Value::is_object)?;
    let complete = REQUIRED
        .iter()
        .all(|k| message.get(*k).is_some_and(|v| !v.is_null()))
        && message["content"].is_object();
    complete.then_some(message)
}

/// Records an accepted message for `recipient`, and returns it.
fn deliver(emu: &Emulator, message: &Value, recipient: String) -> Delivered {
    let text = |k: &str| message[k].as_str().unwrap_or_default().to_owned();
    let mut inner = emu.inner();
    let message_id = format!(
        "{:08X}-EMU-{}",
        inner.next_id(),
        Utc::now().timestamp_millis()
    );
    inner.stats.sends_accepted += 1;
    let delivered = Delivered {
        message_id,
        to_jid: text("to_jid"),
        to_email: recipient,
        robot_jid: text("robot_jid"),
        account_id: text("account_id"),
        user_jid: text("user_jid"),
        content: message["content"].clone(),
        is_markdown_support: message["is_markdown_support"].as_bool().unwrap_or(false),
        sent_time: Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        reply_to: message["reply_to"].as_str().map(str::to_owned),
        edits: 0,
        deleted: false,
    };
    inner.messages.push(delivered.clone());
    delivered
}

/// Who a message in `account` from `user_jid` to `to_jid` is for (a person's email, or the
/// channel's JID), or Zoom's 7004 message: both must be of that account.
fn addressee(
    directory: &super::Directory,
    account: &str,
    user_jid: &str,
    to_jid: &str,
) -> Result<String, &'static str> {
    if !directory.has_account(account) {
        return Err("Not authorized.");
    }
    let of_account = |jid: &str| directory.find_jid(jid).filter(|u| u.account_id == account);
    if of_account(user_jid).is_none() {
        return Err("Not authorized.");
    }
    of_account(to_jid)
        .map(|user| user.email)
        .or_else(|| {
            let channel = directory.find_channel(to_jid)?;
            (channel.account_id == account).then(|| to_jid.to_owned())
        })
        .ok_or("No channel or user can be found with the given to_jid value.")
}

/// `PUT /v2/im/chat/messages/{id}`: a new card for a message the bot sent.
pub async fn edit(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            7001,
            "Invalid Request Body format.",
        );
    };
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let owner = (text("robot_jid"), text("account_id"));
    if !body.get("content").is_some_and(Value::is_object) {
        return api_error(
            StatusCode::BAD_REQUEST,
            7001,
            "Invalid Request Body format.",
        );
    }
    let content = body["content"].clone();
    change(&emu, &headers, &id, owner, |message, stats| {
        message.content = content;
        message.edits += 1;
        stats.edits += 1;
    })
    .await
}

/// `DELETE /v2/im/chat/messages/{id}?robot_jid=..&account_id=..`.
pub async fn delete(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let param = |k: &str| query.get(k).cloned().unwrap_or_default();
    let owner = (param("robot_jid"), param("account_id"));
    change(&emu, &headers, &id, owner, |message, stats| {
        message.deleted = true;
        stats.deletes += 1;
    })
    .await
}

/// What edit and delete share: faults, the bot token, the send limits, and a message of
/// this bot in this account that still exists.
async fn change(
    emu: &Arc<Emulator>,
    headers: &HeaderMap,
    id: &str,
    (robot_jid, account_id): (String, String),
    apply: impl FnOnce(&mut Delivered, &mut super::Stats),
) -> Response {
    let _counted = emu.in_flight(ApiRequest::Send);
    if let Some(fault) = latency_and_faults(emu).await {
        return fault;
    }
    if let Some(rejection) = check_token(emu, headers) {
        return rejection;
    }
    let knobs = emu.current_knobs();
    if robot_jid != knobs.robot_jid {
        return api_error(
            StatusCode::FORBIDDEN,
            7003,
            "No Chatbot can be found with the given robot_jid value.",
        );
    }
    if emu.directory().has_account(&account_id)
        && let Some(limited) = rate_limit(emu, &knobs, &account_id)
    {
        return limited;
    }
    let mut inner = emu.inner();
    let inner = &mut *inner;
    let found = inner
        .messages
        .iter_mut()
        .find(|m| m.message_id == id && !m.deleted && m.account_id == account_id);
    let Some(message) = found else {
        return api_error(StatusCode::NOT_FOUND, 8001, "Invalid message_id value.");
    };
    apply(message, &mut inner.stats);
    let answer = json!({
        "message_id": message.message_id,
        "robot_jid": message.robot_jid,
        "sent_time": Utc::now().format("%Y-%m-%d %H:%M:%S +0000").to_string(),
        "to_jid": message.to_jid,
        "user_jid": message.user_jid,
    });
    (StatusCode::OK, Json(answer)).into_response()
}

fn reject(emu: &Emulator, status: StatusCode, code: i64, message: &str) -> Response {
    emu.inner().stats.sends_rejected += 1;
    api_error(status, code, message)
}

fn check_token(emu: &Emulator, headers: &HeaderMap) -> Option<Response> {
    let mut inner = emu.inner();
    let Some(token) = bearer(headers) else {
        inner.stats.rejected_tokens += 1;
        return Some(api_error(
            StatusCode::UNAUTHORIZED,
            7010,
            "Missing Authorization header.",
        ));
    };
    match inner.live(token).map(|t| t.kind.clone()) {
        Some(TokenKind::Bot) => None,
        Some(TokenKind::User { .. }) => {
            inner.stats.chat_called_with_user_token += 1;
            Some(api_error(
                StatusCode::UNAUTHORIZED,
                7010,
                "Invalid authorization token.",
            ))
        }
        None => {
            inner.stats.rejected_tokens += 1;
            Some(api_error(
                StatusCode::UNAUTHORIZED,
                7010,
                "Invalid authorization token.",
            ))
        }
    }
}

/// A day from the first send: the first `send_daily_limit` sends pass, the rest are told
/// (ISO-8601 `Retry-After`, Zoom's documented form) to come back when the day ends. A send is
/// counted as it passes, under the same lock as the check, so concurrent sends cannot both
/// take the last one (as with [`rate_limit`], a pass that is then rejected still counts).
fn daily_limit(emu: &Emulator, knobs: &Knobs) -> Option<Response> {
    let limit = knobs.send_daily_limit?;
    let now = Utc::now();
    let mut inner = emu.inner();
    let (began, count) = match inner.daily_window {
        Some((began, count)) if now - began < TimeDelta::days(1) => (began, count),
        _ => (now, 0),
    };
    if count < limit {
        inner.daily_window = Some((began, count + 1));
        return None;
    }
    inner.daily_window = Some((began, count));
    inner.stats.sends_rate_limited += 1;
    let message = "You have reached the maximum daily rate limit for this API. Refer to the \
                   response header for details on when you can make another request.";
    if !knobs.daily_limit_headers {
        return Some(api_error(StatusCode::TOO_MANY_REQUESTS, 429, message));
    }
    let reset = (began + TimeDelta::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut response = too_many_requests("Daily-limit", message, Some(reset));
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
    Some(response)
}

/// A fixed one-second window: the first `send_rate_limit` sends of each second pass.
fn rate_limit(emu: &Emulator, knobs: &Knobs, account: &str) -> Option<Response> {
    let inner = &mut *emu.inner();
    per_second_limit(
        inner.rate_windows.entry(account.to_owned()).or_default(),
        knobs.send_rate_limit,
        &mut inner.stats.sends_rate_limited,
        knobs.retry_after,
    )
}
