//! `POST /webhooks/zoom`: Zoom's event notifications for one app. The signature headers are
//! checked before any byte of the body is read (401 without them, with a malformed one or a
//! stale timestamp); then the body is read under the server's budget ([`super::body`]) and the
//! signature checked over it (401 otherwise, URL validation included: Zoom signs those too, and
//! answering an unsigned one would sign any text an attacker chose), and a signature already
//! accepted is refused as a replay. Then the body must be JSON with an `event` (400 otherwise),
//! and each event is handled or, when zoomcast has no use for it, acknowledged and counted as
//! ignored.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::BodyError;
use super::commands::{self, BotNotification};
use super::deauthorize::{self, Deauthorized, NotErased};
use super::metrics::Verdict;
use super::signature::{self, Refused, Stamp, Verified};
use super::{AppRoute, MAX_BODY};
use crate::delivery::AppEngine;
use crate::state::Use;
use crate::state::deliveries::Press;
use crate::token::WebhookSecret;

/// An event notification: its name and payload (read per event).
#[derive(Deserialize)]
struct Envelope {
    event: String,
    #[serde(default)]
    payload: Value,
}

/// `endpoint.url_validation`'s payload.
#[derive(Deserialize)]
struct UrlValidation {
    #[serde(rename = "plainToken")]
    plain_token: String,
}

pub(super) async fn receive(State(route): State<AppRoute>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let app = match route.server.engines.app(&route.app) {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("webhook for app `{}`: {e:#}", route.app);
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "this app is not configured here",
            );
        }
    };
    let Some(secret) = app.app.webhook_secret.clone() else {
        tracing::error!(
            "webhook for app `{}`: no webhook secret token is configured; set ZOOM_WEBHOOK_SECRET \
             (or webhook_secret_token) to the one on the app's Features page in the Marketplace",
            route.app
        );
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhooks are not set up for this app",
        );
    };
    let now = chrono::Utc::now().timestamp();
    let stamp = match stamp_of(&parts.headers, now) {
        Ok(stamp) => stamp,
        Err(refused) => return refuse(&route, refused),
    };
    let body = match route
        .server
        .bodies
        .read(&parts.headers, axum::body::Body::new(body), MAX_BODY)
        .await
    {
        Ok(body) => body,
        Err(e) => return unread(&route, &e),
    };
    let verified = match first_use(&route, &secret, &stamp, &body.bytes, now).await {
        Ok(verified) => verified,
        Err(response) => return response,
    };
    let response = handle(&route, &app, &secret, &body.bytes).await;
    if response.status().is_server_error() {
        // Zoom retries a failed event with the same signature: let it through then.
        if let Err(e) = forget(&route, &verified) {
            tracing::error!("app `{}`: {e}", route.app);
        }
    }
    response
}

/// The signature headers of a request, checked before its body is read.
fn stamp_of(headers: &HeaderMap, now: i64) -> Result<Stamp, Refused> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    Stamp::read(
        header("x-zm-request-timestamp"),
        header("x-zm-signature"),
        now,
    )
}

/// Checks the signature over `body` and records it as used: a refusal is the answer.
async fn first_use(
    route: &AppRoute,
    secret: &WebhookSecret,
    stamp: &Stamp,
    body: &[u8],
    now: i64,
) -> Result<Verified, Response> {
    let verified = stamp
        .verify(secret, body)
        .map_err(|refused| refuse(route, refused))?;
    let once = route.server.store.once();
    let first = match once {
        Ok(once) => {
            once.first_use(Use::Webhook, &verified.mac, stamp.window_closes(), now)
                .await
        }
        Err(e) => Err(e),
    };
    match first {
        Ok(true) => Ok(verified),
        Ok(false) => Err(refuse(route, Refused::Replayed)),
        Err(e) => {
            tracing::error!(
                "app `{}`: recording a webhook's signature failed: {e}",
                route.app
            );
            Err(problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "the state database failed",
            ))
        }
    }
}

/// Forgets a signature accepted for a request zoomcast then failed to handle.
fn forget(route: &AppRoute, verified: &Verified) -> Result<(), crate::state::StateError> {
    route
        .server
        .engines
        .store()
        .once()?
        .forget(Use::Webhook, &verified.mac)
}

/// Handles a verified event.
async fn handle(
    route: &AppRoute,
    app: &Arc<AppEngine>,
    secret: &WebhookSecret,
    body: &[u8],
) -> Response {
    let server = &route.server;
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        server
            .metrics
            .webhook(&route.app, "malformed", Verdict::Malformed);
        return problem(StatusCode::BAD_REQUEST, "the body is not a Zoom event");
    };
    let event = envelope.event.as_str();
    let (verdict, response) = match event {
        "endpoint.url_validation" => url_validation(secret, envelope.payload),
        "bot_notification" => bot_notification(route, app, envelope.payload).await,
        "bot_installed" => bot_installed(app),
        "app_deauthorized" => app_deauthorized(route, app, envelope.payload).await,
        "interactive_message_actions" => button_pressed(route, envelope.payload).await,
        _ => answered(Verdict::Ignored),
    };
    server.metrics.webhook(&route.app, event, verdict);
    response
}

/// The answer to a body that was not read: too large (413), no room for it now (503), too
/// slow (408), or broken off (400).
fn unread(route: &AppRoute, e: &BodyError) -> Response {
    tracing::warn!("app `{}`: a webhook's body was not read: {e}", route.app);
    match e {
        BodyError::TooLarge(_) => problem(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string()),
        BodyError::Busy => super::busy(),
        BodyError::Slow => problem(StatusCode::REQUEST_TIMEOUT, &e.to_string()),
        BodyError::Broken(_) => problem(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// Answers Zoom's URL validation: the token and its HMAC.
fn url_validation(secret: &WebhookSecret, payload: Value) -> (Verdict, Response) {
    let Ok(UrlValidation { plain_token }) = serde_json::from_value(payload) else {
        return malformed();
    };
    let encrypted = signature::validation_answer(secret, &plain_token);
    let answer = json!({ "plainToken": plain_token, "encryptedToken": encrypted });
    (Verdict::Accepted, Json(answer).into_response())
}

/// A user wrote to the bot: a command (see [`commands`]).
async fn bot_notification(
    route: &AppRoute,
    app: &Arc<AppEngine>,
    payload: Value,
) -> (Verdict, Response) {
    let Ok(notification) = serde_json::from_value::<BotNotification>(payload) else {
        return malformed();
    };
    match commands::handle(&route.server, app, notification).await {
        Ok(()) => answered(Verdict::Accepted),
        Err(e) => failed(route, "a chat command failed", &e),
    }
}

/// A user installed the bot: the answer is the bot's first message to them (Zoom's dynamic
/// welcome message), a Chatbot Message Object `{"content": card}` of the app's `welcome`
/// text, the `content` wrapper included as Zoom's chatbot authorization page shows it.
fn bot_installed(app: &AppEngine) -> (Verdict, Response) {
    let text = app.app.welcome.as_deref().unwrap_or(commands::HELP);
    let card = crate::card::text("Welcome", text);
    (
        Verdict::Accepted,
        Json(json!({ "content": card })).into_response(),
    )
}

/// An account removed the app: its data is deleted before Zoom gets the answer.
async fn app_deauthorized(
    route: &AppRoute,
    app: &Arc<AppEngine>,
    payload: Value,
) -> (Verdict, Response) {
    let Ok(event) = serde_json::from_value::<Deauthorized>(payload) else {
        return malformed();
    };
    // In a task of its own: Zoom giving up on the request must not cut the deletion short.
    let (server, app) = (route.server.clone(), app.clone());
    let erased = tokio::spawn(async move { deauthorize::handle(&server, &app, event).await })
        .await
        .unwrap_or_else(|e| {
            Err(NotErased::State(anyhow::anyhow!(
                "the deletion failed: {e}"
            )))
        });
    match erased {
        Ok(()) => answered(Verdict::Accepted),
        Err(NotErased::OtherApp) => answered(Verdict::Ignored),
        Err(NotErased::State(e)) => failed(
            route,
            "deleting a removed account's data failed",
            &format!("{e:#}"),
        ),
    }
}

/// `interactive_message_actions`' payload, the fields zoomcast uses.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ButtonPress {
    message_id: String,
    user_jid: String,
    action_item: ActionItem,
}

#[derive(Deserialize)]
struct ActionItem {
    value: String,
}

/// A recipient pressed a button on a message: recorded on its delivery (`history --run ID`).
async fn button_pressed(route: &AppRoute, payload: Value) -> (Verdict, Response) {
    let Ok(pressed) = serde_json::from_value::<ButtonPress>(payload) else {
        return malformed();
    };
    let value = crate::output::clean(&pressed.action_item.value, 200);
    let press = Press {
        value: value.clone(),
        by: crate::output::clean(&pressed.user_jid, 200),
        at: chrono::Utc::now(),
    };
    let recorded = match route.server.store.deliveries() {
        Ok(deliveries) => deliveries.press(&pressed.message_id, press).await,
        Err(e) => Err(e),
    };
    match recorded {
        Ok(Some((run, _))) => {
            tracing::info!(
                "app `{}`: a button press on a message of run {run}",
                route.app
            );
            let record = route.server.store.runs().and_then(|runs| runs.get(run));
            if let Ok(Some(record)) = record
                && record.acknowledge.as_deref() == Some(value.as_str())
            {
                route.server.metrics.acknowledged(&record.job);
            }
            answered(Verdict::Accepted)
        }
        // A message of another sender, or of a run whose details were deleted.
        Ok(None) => answered(Verdict::Ignored),
        Err(e) => failed(route, "a button press was not recorded", &e),
    }
}

/// 200 with no body: what Zoom needs to hear for most events.
fn answered(verdict: Verdict) -> (Verdict, Response) {
    (verdict, StatusCode::OK.into_response())
}

/// 503 for an event zoomcast failed to handle (Zoom sends it again), logged.
fn failed(route: &AppRoute, what: &str, e: &dyn std::fmt::Display) -> (Verdict, Response) {
    tracing::error!("app `{}`: {what}: {e}", route.app);
    let response = problem(StatusCode::SERVICE_UNAVAILABLE, "the state database failed");
    (Verdict::Failed, response)
}

fn malformed() -> (Verdict, Response) {
    let response = problem(StatusCode::BAD_REQUEST, "the payload is malformed");
    (Verdict::Malformed, response)
}

/// 401 for a request whose signature failed, logged (without the body) and counted.
fn refuse(route: &AppRoute, refused: Refused) -> Response {
    tracing::warn!("app `{}`: refused a webhook request: {refused}", route.app);
    route
        .server
        .metrics
        .webhook(&route.app, "unverified", Verdict::Refused(refused));
    problem(
        StatusCode::UNAUTHORIZED,
        "the request is not signed by Zoom for this app",
    )
}

/// A plain-text error answer.
fn problem(status: StatusCode, text: &str) -> Response {
    (status, format!("{text}\n")).into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;
    use serde_json::json;

    use crate::config::{Config, DEFAULT_APP};
    use crate::delivery::Engines;
    use crate::server::Server;
    use crate::server::signature::sign;
    use crate::state::{Delivery, DeliveryState, RunId, Store};
    use crate::token::WebhookSecret;

    /// A press on a message sent with buttons (indexed at send) reaches its delivery, through
    /// the server on a real loopback port.
    #[tokio::test]
    async fn a_press_on_a_message_with_buttons_is_recorded_on_its_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let deliveries = store.deliveries().unwrap();
        let sent = Delivery::new(
            "ana@example.com",
            DeliveryState::Sent {
                message_id: "msg-1".into(),
            },
            Some("ana@xmpp.zoom.us".into()),
            1,
        );
        deliveries.set(RunId(1), &sent).unwrap();
        deliveries
            .index_message("msg-1", RunId(1), "ana@example.com")
            .unwrap();
        let mut config = Config::empty();
        for (key, value) in [
            ("client_id", "id"),
            ("client_secret", "secret"),
            ("webhook_secret_token", "whsec"),
        ] {
            config.set(DEFAULT_APP, key, value);
        }
        let engines = Arc::new(Engines::new(Arc::new(config), store).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhooks/zoom", listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        let served = tokio::spawn(
            Server::new(engines, crate::server::Limits::default(), None)
                .serve(listener, stop.clone()),
        );

        let body = serde_json::to_vec(&json!({
            "event": "interactive_message_actions",
            "payload": {
                "accountId": "acct", "messageId": "msg-1", "userJid": "ana@xmpp.zoom.us",
                "actionItem": {"text": "Acknowledge", "value": "ack"},
            },
        }))
        .unwrap();
        let at = Utc::now().timestamp();
        let answer = reqwest::Client::new()
            .post(&url)
            .header("x-zm-request-timestamp", at.to_string())
            .header(
                "x-zm-signature",
                sign(&WebhookSecret::new("whsec"), at, &body),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        stop.cancel();
        served.await.unwrap();

        let recorded = deliveries
            .get(RunId(1), "ana@example.com")
            .unwrap()
            .unwrap();
        assert_eq!(recorded.presses.len(), 1);
        assert_eq!(recorded.presses[0].value, "ack");
        assert_eq!(recorded.presses[0].by, "ana@xmpp.zoom.us");
    }
}
