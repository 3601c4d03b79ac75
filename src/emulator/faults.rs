//! What every emulated `/v2` endpoint shares: Zoom's error body, the bearer token of a
//! request, and the latency and injected-5xx knobs.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::state::Emulator;

/// A Zoom API error answer.
pub(super) fn api_error(status: StatusCode, code: i64, message: &str) -> Response {
    (status, Json(json!({ "code": code, "message": message }))).into_response()
}

/// The bearer token of a request, if any.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Sleeps the configured latency, then answers an injected 503 if the dice say so.
pub(super) async fn latency_and_faults(emu: &Emulator) -> Option<Response> {
    let knobs = emu.knobs();
    if knobs.latency_ms > 0 {
        emu.delays
            .sleep(std::time::Duration::from_millis(knobs.latency_ms))
            .await;
    }
    if knobs.fail_5xx > 0.0 && rand::random::<f64>() < knobs.fail_5xx {
        emu.inner().stats.injected_faults += 1;
        return Some(api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            503,
            "Service temporarily unavailable.",
        ));
    }
    None
}
