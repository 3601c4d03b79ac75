//! Parsing Zoom's `Retry-After` header, which comes in three shapes: a number of seconds, an
//! HTTP date (RFC 7231), or an ISO 8601 date-time on daily-limit 429s. Pure; no clock inside.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How long to wait according to a `Retry-After` value, as seen at `now`.
///
/// Returns `None` for a value in none of the three forms. A date in the past means "now"; a
/// wait longer than [`MAX_RETRY_AFTER`] (Zoom's daily limits reset within a day) is cut to it,
/// so no caller's clock arithmetic can overflow on a hostile value.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = DateTime::parse_from_rfc2822(value)
            .or_else(|_| DateTime::parse_from_rfc3339(value))
            .ok()?
            .with_timezone(&Utc);
        (at - now).to_std().unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The longest wait a `Retry-After` is believed for: two days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(2 * 24 * 3600);

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
            ("18446744073709551615", Some(2 * 24 * 3600)),
            ("9999-12-31T23:59:59Z", Some(2 * 24 * 3600)),
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
