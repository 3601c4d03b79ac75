//! What can go wrong talking to the Zoom API, and what the caller should do about it.
//!
//! Zoom's error bodies (`{"code": 1001, "message": "..."}`) become a [`ZoomError`] carrying the
//! HTTP status, Zoom's code and message, and any `Retry-After` (for a daily limit that says
//! none, the end of Zoom's day, 00:00 UTC). [`ZoomError::disposition`] is the
//! one place that classifies an error as retryable, token-related or permanent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;

use super::retry_after::parse_retry_after;

/// The wait after a 429 that says none: Zoom's per-second 429s may carry no `Retry-After`, and
/// its limits are per second, so a retry within the second would only draw another 429 (with a
/// 25/s emulator limit and no header, a run drew 12 to 26 answers 429 for 250 sends; with
/// this, as many as with `Retry-After: 1`).
const UNSAID_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The most of Zoom's error message zoomcast keeps.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// Zoom's code for an invalid, expired or superseded access token (Users API and others).
pub const INVALID_ACCESS_TOKEN: i64 = 124;
/// Zoom's Users API code for an unknown user.
pub const USER_DOES_NOT_EXIST: i64 = 1001;
/// Zoom's Chatbot API code for a missing or wrong-kind authorization token.
pub const INVALID_AUTHORIZATION_TOKEN: i64 = 7010;
/// Zoom's Chatbot API code (404) for a malformed `robot_jid`.
pub const INVALID_ROBOT_JID: i64 = 7002;
/// Zoom's Chatbot API code (403) for a `robot_jid` that names no chatbot.
pub const NO_SUCH_CHATBOT: i64 = 7003;
/// Zoom's Chatbot API code (403) for "Not authorized." (an `account_id` that is not the bot's)
/// and for a `to_jid` it cannot find or may not write to.
pub const NOT_AUTHORIZED: i64 = 7004;
/// 404: the message id names no message (never sent, or deleted): `PUT`/`DELETE
/// /v2/im/chat/messages/{message_id}`.
pub const INVALID_MESSAGE_ID: i64 = 8001;

/// A request that got no answer: where it went (scheme, host and path; never the query, which
/// may carry a code) and why, down to the innermost cause (refused, timed out, TLS, DNS).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url}: {cause}")]
pub struct Unreachable {
    /// Where the request went.
    pub url: String,
    /// Every cause in the error's chain, outermost first.
    pub cause: String,
}

impl From<reqwest::Error> for Unreachable {
    fn from(e: reqwest::Error) -> Self {
        let url = e.url().map_or_else(String::new, |u| {
            let mut shown = u.clone();
            shown.set_query(None);
            shown.set_fragment(None);
            let _ = shown.set_password(None);
            let _ = shown.set_username("");
            shown.to_string()
        });
        let e = e.without_url();
        let mut causes: Vec<String> = Vec::new();
        let mut next: Option<&dyn std::error::Error> = Some(&e);
        while let Some(error) = next {
            let text = error.to_string();
            if !causes.iter().any(|c| c.contains(&text)) {
                causes.push(text);
            }
            next = error.source();
        }
        Self {
            url,
            cause: crate::output::clean(&causes.join(": "), 300),
        }
    }
}

/// A failed call to the Zoom API.
#[derive(Debug, thiserror::Error)]
pub enum ZoomError {
    /// Zoom answered with an error status.
    #[error("zoom answered {status}{}: {message}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// Zoom's numeric error code, when the body carried one.
        code: Option<i64>,
        /// Zoom's message, or the body's start when it was not JSON.
        message: String,
        /// The wait Zoom asked for with `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The request never got an answer (connect, timeout, broken connection).
    #[error("could not reach zoom: {0}")]
    Network(Unreachable),
    /// Zoom answered success with a body zoomcast cannot read.
    #[error("zoom's answer could not be read: {0}")]
    Decode(String),
}

/// What a caller should do after a [`ZoomError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Try again later (429, 5xx, network), after at least `after` when Zoom said so.
    Retry {
        /// Zoom's `Retry-After`, if any.
        after: Option<Duration>,
    },
    /// The token was rejected: renew it once and retry once.
    RenewToken,
    /// Zoom does not know the bot the message is from (`robot_jid`): no recipient can
    /// succeed until the configuration is fixed, and Zoom processed nothing.
    WrongBot,
    /// Retrying cannot help (unknown user, rejected message, ...).
    Permanent,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<i64>,
    message: Option<String>,
}

impl ZoomError {
    /// Builds the error for a non-success answer from its status, headers and body, with
    /// every `presented` secret (the token the request carried) scrubbed from the message: a
    /// server may echo what it was given.
    pub fn from_response(
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        presented: &[&str],
    ) -> Self {
        Self::answered_at(status, headers, body, presented, Utc::now())
    }

    /// [`ZoomError::from_response`], for an answer received at `now`.
    fn answered_at(
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        presented: &[&str],
        now: DateTime<Utc>,
    ) -> Self {
        let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
        let (code, message) = match parsed {
            Some(ErrorBody { code, message }) => (code, message),
            None => (None, None),
        };
        let message = message.unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("no message").to_owned()
            } else {
                text.to_owned()
            }
        });
        // Stored per recipient and printed: short and free of escape sequences.
        let message =
            crate::output::clean(&super::client::scrub(message, presented), MAX_MESSAGE_CHARS);
        let said = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        let daily = status == StatusCode::TOO_MANY_REQUESTS && is_daily_limit(headers, &message);
        let retry_after = said.or_else(|| daily.then(|| until_the_day_ends(now)));
        Self::Api {
            status,
            code,
            message,
            retry_after,
        }
    }

    /// Zoom's numeric code, if there is one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// True for a 429: Zoom's rate limit, which the shared limiter must hear about.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Self::Api { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS)
    }

    /// Whether the answer says Zoom did not process the request: a 429, or a bot it does not
    /// know. (Any other answer, or none, leaves open that the message went out.)
    pub fn says_unprocessed(&self) -> bool {
        self.is_rate_limited() || self.disposition() == Disposition::WrongBot
    }

    /// Classifies the error; see [`Disposition`].
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Network(_) => Disposition::Retry { after: None },
            Self::Decode(_) => Disposition::Permanent,
            Self::Api {
                status,
                code,
                retry_after,
                ..
            } => {
                if matches!(code, Some(INVALID_ROBOT_JID | NO_SUCH_CHATBOT)) {
                    Disposition::WrongBot
                } else if *status == StatusCode::TOO_MANY_REQUESTS {
                    Disposition::Retry {
                        after: Some(retry_after.unwrap_or(UNSAID_RETRY_AFTER)),
                    }
                } else if status.is_server_error() {
                    Disposition::Retry {
                        after: *retry_after,
                    }
                } else if *status == StatusCode::UNAUTHORIZED
                    || matches!(
                        code,
                        Some(INVALID_ACCESS_TOKEN | INVALID_AUTHORIZATION_TOKEN)
                    )
                {
                    Disposition::RenewToken
                } else {
                    Disposition::Permanent
                }
            }
        }
    }
}

/// Whether a 429 is Zoom's daily limit: said by its `X-RateLimit-Type` header, or, when Zoom
/// sends none (as its forum shows it doing), by its message ("You have reached the maximum
/// daily rate limit for this API").
fn is_daily_limit(headers: &HeaderMap, message: &str) -> bool {
    let said = headers
        .get("x-ratelimit-type")
        .and_then(|v| v.to_str().ok())
        .map(|kind| kind.trim().eq_ignore_ascii_case("Daily-limit"));
    said.unwrap_or_else(|| message.to_ascii_lowercase().contains("daily"))
}

/// How long until Zoom's day ends (00:00 UTC), when its daily limits reset.
fn until_the_day_ends(now: DateTime<Utc>) -> Duration {
    let tomorrow = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    (tomorrow - now).to_std().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(status: u16, body: &str, retry_after: Option<&str>) -> ZoomError {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(RETRY_AFTER, value.parse().unwrap());
        }
        ZoomError::from_response(
            StatusCode::from_u16(status).unwrap(),
            &headers,
            body.as_bytes(),
            &["presented-token"],
        )
    }

    #[test]
    fn a_message_is_short_clean_and_without_the_presented_token() {
        let long = format!(
            r#"{{"code":300,"message":"bad token presented-token \u001b[2J{}"}}"#,
            "x".repeat(5_000_000)
        );
        let ZoomError::Api { message, .. } = error(400, &long, None) else {
            panic!("an API error")
        };
        assert!(
            message.starts_with("bad token [redacted] \u{fffd}[2J"),
            "{message:.60}"
        );
        assert!(message.chars().count() <= MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn classification_table() {
        let cases = [
            (
                404,
                r#"{"code":1001,"message":"User does not exist: x."}"#,
                None,
                Disposition::Permanent,
            ),
            (
                403,
                r#"{"code":7004,"message":"Not authorized."}"#,
                None,
                Disposition::Permanent,
            ),
            (
                400,
                r#"{"code":7001,"message":"Invalid Request Body format."}"#,
                None,
                Disposition::Permanent,
            ),
            (
                403,
                r#"{"code":7003,"message":"No Chatbot can be found with the given robot_jid value."}"#,
                None,
                Disposition::WrongBot,
            ),
            (
                404,
                r#"{"code":7002,"message":"Invalid robot_jid value specified in the Request Body."}"#,
                None,
                Disposition::WrongBot,
            ),
            (
                401,
                r#"{"code":124,"message":"Invalid access token."}"#,
                None,
                Disposition::RenewToken,
            ),
            (
                401,
                r#"{"code":7010,"message":"Invalid authorization token."}"#,
                None,
                Disposition::RenewToken,
            ),
            (
                429,
                r#"{"code":429,"message":"slow down"}"#,
                Some("3"),
                Disposition::Retry {
                    after: Some(Duration::from_secs(3)),
                },
            ),
            (
                429,
                "",
                None,
                Disposition::Retry {
                    after: Some(UNSAID_RETRY_AFTER),
                },
            ),
            (
                503,
                "<html>bad gateway</html>",
                None,
                Disposition::Retry { after: None },
            ),
        ];
        for (status, body, retry_after, expected) in cases {
            assert_eq!(
                error(status, body, retry_after).disposition(),
                expected,
                "{status} {body}"
            );
        }
    }

    #[test]
    fn message_carries_zooms_code_and_text() {
        let e = error(
            404,
            r#"{"code":1001,"message":"User does not exist: x@y.z."}"#,
            None,
        );
        assert_eq!(e.code(), Some(1001));
        assert_eq!(
            e.to_string(),
            "zoom answered 404 Not Found (code 1001): User does not exist: x@y.z."
        );
        let e = error(502, "", None);
        assert_eq!(e.to_string(), "zoom answered 502 Bad Gateway: Bad Gateway");
    }

    #[test]
    fn a_daily_limit_waits_for_the_end_of_zooms_day_said_or_not() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T22:00:00Z")
            .unwrap()
            .to_utc();
        let answer = |headers: &[(&'static str, &str)], message: &str| {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.insert(*name, value.parse().unwrap());
            }
            let body = format!(r#"{{"code":429,"message":"{message}"}}"#);
            let e = ZoomError::answered_at(
                StatusCode::TOO_MANY_REQUESTS,
                &map,
                body.as_bytes(),
                &[],
                now,
            );
            e.disposition()
        };
        let two_hours = Disposition::Retry {
            after: Some(Duration::from_secs(2 * 3600)),
        };
        // No header at all, as in Zoom's forum: the message says it.
        let daily = "You have reached the maximum daily rate limit for this API.";
        assert_eq!(answer(&[], daily), two_hours);
        // The header says it, whatever the message.
        assert_eq!(
            answer(&[("x-ratelimit-type", "Daily-limit")], "slow down"),
            two_hours
        );
        // Zoom's own Retry-After wins.
        assert_eq!(
            answer(&[("retry-after", "2026-12-07T23:00:00Z")], daily),
            Disposition::Retry {
                after: Some(Duration::from_secs(3600)),
            }
        );
        // A per-second limit is not a daily one.
        let per_second = "You have reached the maximum per-second rate limit for this API.";
        assert_eq!(
            answer(&[("x-ratelimit-type", "QPS")], per_second),
            Disposition::Retry {
                after: Some(UNSAID_RETRY_AFTER),
            }
        );
        assert_eq!(
            answer(&[], per_second),
            Disposition::Retry {
                after: Some(UNSAID_RETRY_AFTER),
            }
        );
    }
}
