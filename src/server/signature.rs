//! Zoom's webhook signatures: `x-zm-signature: v0=HEX(HMAC-SHA256(secret,
//! "v0:{x-zm-request-timestamp}:{raw body}"))`, checked in constant time before the body is
//! parsed, with the timestamp within [`MAX_SKEW`] of now and each signature accepted once
//! ([`Replays`]), so a captured request cannot be played again. Also the answer to Zoom's URL
//! validation, an HMAC of the token Zoom sends.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::token::WebhookSecret;

/// How far a request's timestamp may be from now (Zoom documents none; this is the common one).
pub const MAX_SKEW_SECONDS: i64 = 5 * 60;

/// The most signatures remembered against replay: more than Zoom sends an app in the window.
const MAX_REMEMBERED: usize = 100_000;

/// Why a request was refused (answered 401); the reason is logged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No signature or no timestamp.
    #[error("it is not signed (no x-zm-signature or x-zm-request-timestamp)")]
    Unsigned,
    /// The timestamp is not seconds since the epoch, or is too far from now.
    #[error("its timestamp is not within 5 minutes of now (check this machine's clock)")]
    Stale,
    /// The signature does not match the body (or another secret signed it).
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
    /// Its MAC in lower-case hex: the same request however its header spells the hex, so
    /// what [`Replays`] remembers.
    pub mac: String,
}

/// Checks a request's signature over its raw `body`, at `now` (seconds since the epoch).
pub fn verify(
    secret: &WebhookSecret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<Verified, Refused> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(Refused::Unsigned);
    };
    let at: i64 = timestamp.trim().parse().map_err(|_| Refused::Stale)?;
    if at.abs_diff(now) > MAX_SKEW_SECONDS.unsigned_abs() {
        return Err(Refused::Stale);
    }
    let claimed = signature
        .strip_prefix("v0=")
        .and_then(|hex_text| hex::decode(hex_text).ok())
        .ok_or(Refused::Mismatch)?;
    let mut mac = keyed(secret);
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&claimed).map_err(|_| Refused::Mismatch)?;
    Ok(Verified {
        at,
        mac: hex::encode(claimed),
    })
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

/// The signatures accepted within the last [`MAX_SKEW_SECONDS`] (a request older than that is
/// refused as stale anyway), so that each is accepted once.
#[derive(Default)]
pub struct Replays {
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    by_signature: HashMap<String, i64>,
    /// Signatures in the order accepted, with their timestamps, for pruning.
    order: VecDeque<(i64, String)>,
}

impl Replays {
    /// Records `signature` (of a request stamped `timestamp`) as used at `now`; refuses one
    /// already used.
    pub fn first_use(&self, signature: &str, timestamp: i64, now: i64) -> Result<(), Refused> {
        let mut seen = self.seen.lock().expect("replay lock");
        while let Some((at, _)) = seen.order.front()
            && (now - at > MAX_SKEW_SECONDS || seen.order.len() >= MAX_REMEMBERED)
        {
            let (_, old) = seen.order.pop_front().expect("a front entry");
            seen.by_signature.remove(&old);
        }
        if seen.by_signature.contains_key(signature) {
            return Err(Refused::Replayed);
        }
        seen.by_signature.insert(signature.to_owned(), timestamp);
        seen.order.push_back((timestamp, signature.to_owned()));
        Ok(())
    }

    /// Forgets `signature`: the request failed on zoomcast's side, and Zoom may send it again.
    pub fn forget(&self, signature: &str) {
        self.seen
            .lock()
            .expect("replay lock")
            .by_signature
            .remove(signature);
    }
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

    #[test]
    fn a_signature_is_accepted_once_within_the_window() {
        let replays = Replays::default();
        assert_eq!(replays.first_use("v0=aa", NOW, NOW), Ok(()));
        assert_eq!(
            replays.first_use("v0=aa", NOW, NOW + 10),
            Err(Refused::Replayed)
        );
        assert_eq!(replays.first_use("v0=bb", NOW, NOW + 10), Ok(()));
        // Past the window the old entry is pruned; such a request is refused as stale anyway.
        assert_eq!(replays.first_use("v0=cc", NOW + 400, NOW + 400), Ok(()));
        assert_eq!(replays.seen.lock().unwrap().by_signature.len(), 1);
    }
}
