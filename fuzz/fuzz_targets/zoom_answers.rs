//! Zoom's answers: token responses, API error bodies with their status and `Retry-After`, user
//! objects and send answers. Input: two bytes of status, a `Retry-After` value up to the first
//! newline, then the body. Whatever Zoom (or something posing as it) answers, zoomcast reads it
//! or refuses it, never panics, and a token's lifetime never overflows the clock.

#![no_main]

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use zoomcast::auth::oauth::parse_token_response;
use zoomcast::token::{AccessToken, UserToken};
use zoomcast::zoom::retry_after::parse_retry_after;
use zoomcast::zoom::{SentMessage, ZoomError, ZoomUser};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = StatusCode::from_u16(100 + u16::from_le_bytes([data[0], data[1]]) % 500)
        .expect("100 to 599 is a status");
    let rest = &data[2..];
    let (retry_after, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let now = DateTime::from_timestamp(1_790_000_000, 0).expect("a valid time");

    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(retry_after) {
        if let Ok(text) = value.to_str() {
            let _ = parse_retry_after(text, now);
        }
        headers.insert(RETRY_AFTER, value);
    }
    let error = ZoomError::from_response(status, &headers, body, &["presented-token"]);
    let _ = (
        error.disposition(),
        error.to_string(),
        error.says_unprocessed(),
    );

    if let Ok(answer) = parse_token_response(body) {
        let token = UserToken::issued(AccessToken::new("a"), answer.expires_in, now);
        assert!(token.renew_at <= token.expires_at);
    }
    let _ = serde_json::from_slice::<ZoomUser>(body);
    let _ = serde_json::from_slice::<SentMessage>(body);
});
