//! Zoom's webhook signatures: `x-zm-signature: v0=HEX(HMAC-SHA256(secret,
//! "v0:{x-zm-request-timestamp}:{raw body}"))`. The headers are checked first ([`Stamp`]:
//! both present, the timestamp within [`MAX_SKEW_SECONDS`] of now, the signature well formed),
//! before any byte of the body is read; then the MAC over the raw body, in constant time. Each
//! signature is accepted once (the `once` tree of the state, [`crate::state::Once`]), so a
//! captured request cannot be played again, not even after a restart. Also the answer to Zoom's
//! URL validation, an HMAC of the token Zoom sends.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::token::WebhookSecret;

/// How far a request's timestamp may be from now (Zoom documents none; this is the common one).
pub const MAX_SKEW_SECONDS: i64 = 5 * 60;

/// Why a request was refused (answered 401); the reason is logged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No signature or no timestamp.
    #[error("it is not signed (no x-zm-signature or x-zm-request-timestamp)")]
    Unsigned,
    /// The timestamp is not seconds since the epoch, or is too far from now.
    #[error("its timestamp is not within 5 minutes of now (check this machine's clock)")]
    Stale,
    /// The signature is not `v0=` and a SHA-256 MAC in hex, or does not match the body (or
    /// another secret signed it).
    #[error("its signature does not match (check the app's webhook secret token)")]
    Mismatch,
    /// This signature was already accepted.
    #[error("its signature was already used (a replayed request)")]
    Replayed,
}

impl Refused {
    /// The verdict's label in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::Stale => "stale",
            Self::Mismatch => "bad_signature",
            Self::Replayed => "replayed",
        }
    }
}

/// A request whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Its timestamp, seconds since the epoch.
    pub at: i64,
    /// Its MAC: the same request however its header spells the hex, so what is remembered
    /// against replays.
    pub mac: [u8; 32],
}

/// A request's signature headers, checked before its body is read.
#[derive(Debug, Clone)]
pub struct Stamp {
    timestamp: String,
    at: i64,
    claimed: [u8; 32],
}

impl Stamp {
    /// Reads the `x-zm-request-timestamp` and `x-zm-signature` values, at `now` (seconds since
    /// the epoch): both present, the timestamp fresh, the signature `v0=` and 64 hex digits.
    pub fn read(
        timestamp: Option<&str>,
        signature: Option<&str>,
        now: i64,
    ) -> Result<Self, Refused> {
        let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
            return Err(Refused::Unsigned);
        };
        let at: i64 = timestamp.trim().parse().map_err(|_| Refused::Stale)?;
        if at.abs_diff(now) > MAX_SKEW_SECONDS.unsigned_abs() {
            return Err(Refused::Stale);
        }
        let mut claimed = [0; 32];
        signature
            .strip_prefix("v0=")
            .and_then(|hex_text| hex::decode_to_slice(hex_text, &mut claimed).ok())
            .ok_or(Refused::Mismatch)?;
        Ok(Self {
            timestamp: timestamp.to_owned(),
            at,
            claimed,
        })
    }

    /// Checks the signature over the raw `body`, in constant time.
    pub fn verify(&self, secret: &WebhookSecret, body: &[u8]) -> Result<Verified, Refused> {
        let mut mac = keyed(secret);
        mac.update(b"v0:");
        mac.update(self.timestamp.as_bytes());
        mac.update(b":");
        mac.update(body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&self.claimed)
            .map_err(|_| Refused::Mismatch)?;
        Ok(Verified {
            at: self.at,
            mac: self.claimed,
        })
    }

    /// Until when a request of this timestamp could be accepted: how long its signature is
    /// remembered.
    pub fn window_closes(&self) -> i64 {
        self.at.saturating_add(MAX_SKEW_SECONDS)
    }
}

/// Checks a request's signature over its raw `body`, at `now` (seconds since the epoch).
pub fn verify(
    secret: &WebhookSecret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<Verified, Refused> {
    Stamp::read(timestamp, signature, now)?.verify(secret, body)
}

/// The `encryptedToken` of Zoom's URL validation: hex HMAC-SHA256 of `plain_token`.
pub fn validation_answer(secret: &WebhookSecret, plain_token: &str) -> String {
    let mut mac = keyed(secret);
    mac.update(plain_token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The signature header Zoom would send for `body` at `timestamp` (the emulator signs with it).
pub fn sign(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = keyed(secret);
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn keyed(secret: &WebhookSecret) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes keys of any size")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn secret() -> WebhookSecret {
        WebhookSecret::new("whsec-test")
    }

    #[test]
    fn a_signature_zoom_would_send_is_accepted_and_anything_else_refused() {
        let body = br#"{"event":"bot_notification","payload":{"cmd":"stop"}}"#;
        let signature = sign(&secret(), NOW, body);
        let ts = NOW.to_string();
        let check = |secret: &WebhookSecret, ts: Option<&str>, sig: Option<&str>, body: &[u8]| {
            verify(secret, ts, sig, body, NOW)
        };
        let verified = check(&secret(), Some(&ts), Some(&signature), body).unwrap();
        assert_eq!(verified.at, NOW);
        let shouting = format!("v0={}", signature[3..].to_uppercase());
        assert_eq!(
            check(&secret(), Some(&ts), Some(&shouting), body).map(|v| v.mac),
            Ok(verified.mac),
            "the same MAC in upper case is the same request (for replays)"
        );
        let tampered = br#"{"event":"bot_notification","payload":{"cmd":"start"}}"#;
        assert_eq!(
            check(&secret(), Some(&ts), Some(&signature), tampered),
            Err(Refused::Mismatch)
        );
        let other = WebhookSecret::new("another");
        assert_eq!(
            check(&other, Some(&ts), Some(&signature), body),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            check(&secret(), None, Some(&signature), body),
            Err(Refused::Unsigned)
        );
        assert_eq!(
            check(&secret(), Some(&ts), None, body),
            Err(Refused::Unsigned)
        );
        assert_eq!(
            check(&secret(), Some(&ts), Some("v0=zz"), body),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            check(&secret(), Some(&ts), Some(&signature[3..]), body),
            Err(Refused::Mismatch),
            "the v0= prefix is part of the format"
        );
    }

    #[test]
    fn a_timestamp_more_than_five_minutes_away_is_stale_whatever_the_signature() {
        let signed_at = |at: i64| {
            let body = b"{}";
            let signature = sign(&secret(), at, body);
            verify(
                &secret(),
                Some(&at.to_string()),
                Some(&signature),
                body,
                NOW,
            )
        };
        assert_eq!(signed_at(NOW - 301), Err(Refused::Stale));
        assert_eq!(signed_at(NOW + 301), Err(Refused::Stale));
        assert!(signed_at(NOW - 299).is_ok());
        let signature = sign(&secret(), NOW, b"{}");
        assert_eq!(
            verify(&secret(), Some("soon"), Some(&signature), b"{}", NOW),
            Err(Refused::Stale)
        );
    }

    #[test]
    fn the_url_validation_answer_is_zooms_documented_hmac() {
        // HMAC-SHA256("whsec-test", "qgg8vlvZRS6UYooatFL8Aw"), computed independently with
        // `openssl dgst -sha256 -hmac whsec-test`.
        assert_eq!(
            validation_answer(&secret(), "qgg8vlvZRS6UYooatFL8Aw"),
            OPENSSL_ANSWER
        );
    }

    const OPENSSL_ANSWER: &str = "98f761f5b6cab14b031182f6c5fd8e663f4d92b356a14765ebb485339514f4cf";
}
