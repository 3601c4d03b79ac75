//! `POST /_emulator/events`: Zoom's event notifications, sent on request to the `webhook_url`
//! knob and signed with the `webhook_secret` knob the way Zoom signs them, so that `serve` can
//! be tried and tested with no Zoom account and no hand-made signatures. Not part of Zoom's
//! API.
//!
//! Events: `endpoint.url_validation`, `bot_notification`, `bot_installed`,
//! `interactive_message_actions` and `app_deauthorized` (which also revokes the account's grants, as Zoom does). The request names
//! the event and, for the events a user causes, the user (an email of the directory) and what
//! they wrote: `{"event": "bot_notification", "user": "ana@example.com",
//! "cmd": "stop"}`. The answer is what zoomcast answered: `{"status": 200, "body": "..."}`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::Knobs;
use super::directory::User;
use super::state::Emulator;

/// What to send.
#[derive(Debug, Deserialize)]
pub struct EventRequest {
    /// Zoom's event name.
    event: String,
    /// The user who causes it (an email the directory knows).
    #[serde(default)]
    user: Option<String>,
    /// What the user wrote to the bot (`bot_notification`).
    #[serde(default)]
    cmd: Option<String>,
    /// The token of a URL validation (default: a fixed one).
    #[serde(default)]
    plain_token: Option<String>,
    /// The message whose button was pressed (`interactive_message_actions`).
    #[serde(default)]
    message_id: Option<String>,
    /// The pressed button's value (default `ack`).
    #[serde(default)]
    value: Option<String>,
}

pub async fn send(State(emu): State<Arc<Emulator>>, Json(request): Json<EventRequest>) -> Response {
    let knobs = emu.knobs();
    let Some(url) = knobs.webhook_url.clone() else {
        return bad("set the webhook_url knob to where zoomcast serves /webhooks/zoom");
    };
    let body = match event_body(&emu, &knobs, &request) {
        Ok(body) => serde_json::to_vec(&body).expect("events serialize"),
        Err(why) => return bad(&why),
    };
    let timestamp = chrono::Utc::now().timestamp();
    let answer = reqwest::Client::new()
        .post(url)
        .timeout(Duration::from_secs(10))
        .header("content-type", "application/json")
        .header("x-zm-request-timestamp", timestamp.to_string())
        .header(
            "x-zm-signature",
            signature(&knobs.webhook_secret, timestamp, &body),
        )
        .body(body)
        .send()
        .await;
    match answer {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let text = answer.text().await.unwrap_or_default();
            Json(json!({ "status": status, "body": text })).into_response()
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("sending the event failed: {e}\n"),
        )
            .into_response(),
    }
}

/// Zoom's body for the event asked for.
fn event_body(emu: &Emulator, knobs: &Knobs, request: &EventRequest) -> Result<Value, String> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let user = || -> Result<User, String> {
        let email = request
            .user
            .as_deref()
            .ok_or("name the \"user\" (an email)")?;
        emu.directory()
            .find(email)
            .ok_or_else(|| format!("the emulator has no user {email}"))
    };
    // What every event a user causes carries: who, in which account, to which bot, when.
    let by_user = |extra: Value| -> Result<Value, String> {
        let user = user()?;
        let mut payload = json!({
            "accountId": user.account_id,
            "robotJid": knobs.robot_jid,
            "timestamp": now_ms,
            "userId": user.id,
            "userJid": user.jid,
            "userName": format!("{} {}", user.first_name, user.last_name),
        });
        if let (Value::Object(fields), Value::Object(extra)) = (&mut payload, extra) {
            fields.extend(extra);
        }
        Ok(payload)
    };
    let to_user = || user().map(|u| u.jid);
    let payload = match request.event.as_str() {
        "endpoint.url_validation" => json!({
            "plainToken": request.plain_token.as_deref().unwrap_or("qgg8vlvZRS6UYooatFL8Aw"),
        }),
        "bot_notification" => by_user(json!({
            "channelName": "",
            "cmd": request.cmd.as_deref().unwrap_or("help"),
            "name": "zoomcast",
            "toJid": to_user()?,
        }))?,
        "bot_installed" => by_user(json!({}))?,
        "interactive_message_actions" => {
            let message_id = request
                .message_id
                .as_deref()
                .ok_or("name the \"message_id\" whose button was pressed")?;
            let value = request.value.as_deref().unwrap_or("ack");
            by_user(json!({
                "actionItem": { "text": value, "value": value },
                "channelName": "",
                "messageId": message_id,
                "toJid": to_user()?,
            }))?
        }
        // The account of `user` (default: `login_as`) removed the app: as at Zoom, its grants
        // die with it; other accounts' stay.
        "app_deauthorized" => {
            let admin = match request.user {
                Some(_) => user()?,
                None => emu
                    .directory()
                    .find(&knobs.login_as)
                    .ok_or("login_as names no user")?,
            };
            emu.revoke_account_grants(&admin.account_id);
            json!({
                "account_id": admin.account_id,
                "user_id": admin.id,
                "signature": "",
                "deauthorization_time": chrono::Utc::now().to_rfc3339(),
                "client_id": knobs.client_id,
                "event_ts": now_ms,
            })
        }
        other => return Err(format!("the emulator does not send `{other}` events")),
    };
    Ok(json!({ "event": request.event, "event_ts": now_ms, "payload": payload }))
}

/// `x-zm-signature` as Zoom computes it.
fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn bad(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response()
}
