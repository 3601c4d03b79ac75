//! `/_emulator/...`: what was delivered, the counters, the knobs, and test-only controls.
//! Not part of Zoom's API.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::Knobs;
use super::state::Emulator;

/// `GET /_emulator/messages`: every accepted message.
pub async fn messages(State(emu): State<Arc<Emulator>>) -> Response {
    Json(emu.messages()).into_response()
}

/// `GET /_emulator/stats`: the counters.
pub async fn stats(State(emu): State<Arc<Emulator>>) -> Response {
    Json(emu.stats()).into_response()
}

/// `GET /_emulator/knobs`.
pub async fn knobs(State(emu): State<Arc<Emulator>>) -> Response {
    Json(emu.knobs()).into_response()
}

/// `POST /_emulator/knobs` with a JSON object of the fields to change.
pub async fn set_knobs(State(emu): State<Arc<Emulator>>, Json(changes): Json<Value>) -> Response {
    let mut merged = serde_json::to_value(emu.knobs()).expect("knobs serialize");
    let (Value::Object(target), Value::Object(changes)) = (&mut merged, changes) else {
        return (StatusCode::BAD_REQUEST, "send a JSON object of knob fields").into_response();
    };
    target.extend(changes);
    match serde_json::from_value::<Knobs>(merged) {
        Ok(knobs) => {
            emu.set_knobs(knobs.clone());
            Json(knobs).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("bad knobs: {e}")).into_response(),
    }
}

/// `POST /_emulator/revoke-grants`: every grant dies, as when an admin removes the app.
pub async fn revoke_grants(State(emu): State<Arc<Emulator>>) -> Response {
    emu.revoke_all_grants();
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /_emulator/issued-secrets`: every token and code issued, so tests can prove none of
/// them appears in zoomcast's output.
pub async fn issued_secrets(State(emu): State<Arc<Emulator>>) -> Response {
    Json(emu.issued_secrets()).into_response()
}
