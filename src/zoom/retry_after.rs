//! Parsing Zoom's `Retry-After` header, which comes in three shapes: a number of seconds, an
//! HTTP date (RFC 7231), or an ISO 8601 date-time on daily-limit 429s. Pure; no clock inside.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How long to wait according to a `Retry-After` value, as seen at `now`.
///
/// Returns `None` for a value in none of the three forms. A date in the past means "now".
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .or_else(|_| DateTime::parse_from_rfc3339(value))
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_three_forms_and_garbage() {
        let cases = [
            ("7", Some(7)),
            (" 0 ", Some(0)),
            ("Mon, 23 Nov 2026 10:00:30 GMT", Some(30)),
            ("2026-11-24T00:00:00Z", Some(14 * 3600)),
            ("2026-11-23T09:00:00Z", Some(0)),
            ("soon", None),
            ("-3", None),
        ];
        for (header, expected) in cases {
            assert_eq!(
                parse_retry_after(header, now()),
                expected.map(Duration::from_secs),
                "{header}"
            );
        }
    }
}
