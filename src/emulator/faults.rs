//! What every emulated `/v2` endpoint shares: Zoom's error body, the bearer token of a
//! request, the latency and injected-5xx knobs, and per-second limits with Zoom's 429.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Timelike, Utc};
use serde_json::json;

use super::RetryAfterStyle;
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
    let knobs = emu.current_knobs();
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

/// A per-second limit: the first `limit` calls of each second pass (`None`: no limit). `window`
/// holds the current second and the calls counted in it. A call beyond the limit is counted in
/// `limited` and answered with Zoom's per-second 429, its `Retry-After` in `style`.
pub(super) fn per_second_limit(
    window: &mut (i64, u32),
    limit: Option<u32>,
    limited: &mut u64,
    style: RetryAfterStyle,
) -> Option<Response> {
    let limit = limit?;
    let now = Utc::now();
    let second = now.timestamp();
    if window.0 != second {
        *window = (second, 0);
    }
    if window.1 < limit {
        window.1 += 1;
        return None;
    }
    *limited += 1;
    Some(per_second_429(now, style))
}

/// Zoom's per-second 429 (`QPS`), with a `Retry-After` for the next second in `style`.
fn per_second_429(now: DateTime<Utc>, style: RetryAfterStyle) -> Response {
    let next_second =
        now.with_nanosecond(0).expect("0 is a valid nanosecond") + TimeDelta::seconds(1);
    let retry_after = match style {
        RetryAfterStyle::Seconds => Some("1".to_owned()),
        RetryAfterStyle::HttpDate => {
            Some(next_second.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        }
        RetryAfterStyle::Iso => {
            Some(next_second.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        }
        RetryAfterStyle::Absent => None,
    };
    too_many_requests(
        "QPS",
        "You have reached the maximum per-second rate limit for this API. Try again later.",
        retry_after,
    )
}

/// Zoom's 429 for the "Medium" rate class, of limit type `kind` (`QPS`, `Daily-limit`).
pub(super) fn too_many_requests(
    kind: &'static str,
    message: &str,
    retry_after: Option<String>,
) -> Response {
    let mut response = api_error(StatusCode::TOO_MANY_REQUESTS, 429, message);
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-category", HeaderValue::from_static("Medium"));
    headers.insert("x-ratelimit-type", HeaderValue::from_static(kind));
    if let Some(value) = retry_after {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&value).expect("ascii"),
        );
    }
    response
}
