//! The console's session: a cookie naming who signed in, signed with the state's console key
//! (HMAC-SHA256), and the CSRF field of its forms, derived from the session's own random id.
//!
//! Nothing of a session is stored on the server: the cookie carries who, whether read-only,
//! until when and a random id, and its signature proves the server issued it. A cookie lives
//! 12 hours ([`SESSION_HOURS`]); a new console key (`console-link --end-sessions`) ends every
//! session.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// The cookie's name.
pub const COOKIE: &str = "zoomcast_console";
/// How long a session lasts.
pub const SESSION_HOURS: i64 = 12;

/// A signed-in session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Who signed in (the link's `--name`).
    #[serde(rename = "n")]
    pub name: String,
    /// Whether it may only look.
    #[serde(rename = "r")]
    pub read_only: bool,
    /// When it ends.
    #[serde(rename = "e")]
    pub expires_at: DateTime<Utc>,
    /// A random id: what its CSRF field is derived from.
    #[serde(rename = "s")]
    id: String,
}

impl Session {
    /// A new session for `name`, from now for [`SESSION_HOURS`].
    pub fn new(name: &str, read_only: bool) -> Self {
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        Self {
            name: name.to_owned(),
            read_only,
            expires_at: Utc::now() + Duration::hours(SESSION_HOURS),
            id: URL_SAFE_NO_PAD.encode(id),
        }
    }

    /// The cookie's value: the session, then its signature.
    pub fn seal(&self, key: &[u8; 32]) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("serializes"));
        let mac = URL_SAFE_NO_PAD.encode(sign(key, body.as_bytes()));
        format!("{body}.{mac}")
    }

    /// The session a cookie's value carries, if its signature is the server's and it has not
    /// ended.
    pub fn open(key: &[u8; 32], value: &str) -> Option<Self> {
        let (body, mac) = value.rsplit_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let mut check = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        check.update(body.as_bytes());
        check.verify_slice(&mac).ok()?;
        let session: Self = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (session.expires_at > Utc::now()).then_some(session)
    }

    /// The CSRF field of this session's forms.
    pub fn csrf(&self, key: &[u8; 32]) -> String {
        URL_SAFE_NO_PAD.encode(sign(key, format!("csrf/{}", self.id).as_bytes()))
    }

    /// Whether `given` is this session's CSRF field (compared in constant time).
    pub fn csrf_matches(&self, key: &[u8; 32], given: &str) -> bool {
        bool::from(self.csrf(key).as_bytes().ct_eq(given.as_bytes()))
    }

    /// The `Set-Cookie` value that starts the (new) session: `HttpOnly`, `SameSite=Lax`, `Secure`
    /// when the console is reached over https, for [`SESSION_HOURS`].
    pub fn set_cookie(&self, key: &[u8; 32], secure: bool) -> String {
        let age = SESSION_HOURS * 3600;
        let secure = if secure { "; Secure" } else { "" };
        format!(
            "{COOKIE}={}; Path=/console; Max-Age={age}; HttpOnly; SameSite=Lax{secure}",
            self.seal(key)
        )
    }
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Lax{secure}")
}

/// The session cookie's value among a request's `Cookie` headers.
pub fn cookie_value<'a>(headers: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    headers
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn sign(key: &[u8; 32], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_session_opens_only_with_its_key_unaltered_and_unexpired() {
        let key = [7u8; 32];
        let session = Session::new("ana", true);
        let value = session.seal(&key);
        assert_eq!(Session::open(&key, &value), Some(session.clone()));
        assert_eq!(Session::open(&[8u8; 32], &value), None, "another key");

        // Another name under the old signature.
        let forged = Session {
            name: "admin".into(),
            read_only: false,
            ..session.clone()
        }
        .seal(&[8u8; 32]);
        let (body, _) = forged.rsplit_once('.').unwrap();
        let (_, mac) = value.rsplit_once('.').unwrap();
        assert_eq!(Session::open(&key, &format!("{body}.{mac}")), None);

        let ended = Session {
            expires_at: Utc::now() - Duration::seconds(1),
            ..session.clone()
        };
        assert_eq!(Session::open(&key, &ended.seal(&key)), None, "expired");
        assert_eq!(Session::open(&key, "garbage"), None);
    }

    #[test]
    fn the_csrf_field_is_the_sessions_own() {
        let key = [7u8; 32];
        let (a, b) = (Session::new("ana", false), Session::new("ana", false));
        assert!(a.csrf_matches(&key, &a.csrf(&key)));
        assert!(!a.csrf_matches(&key, &b.csrf(&key)));
        assert!(!a.csrf_matches(&key, ""));
    }

    #[test]
    fn the_cookie_is_http_only_lax_and_secure_over_https() {
        let key = [7u8; 32];
        let s = Session::new("ana", false);
        let plain = s.set_cookie(&key, false);
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax"));
        assert!(!plain.contains("Secure"));
        assert!(s.set_cookie(&key, true).ends_with("; Secure"));
        let value = cookie_value(["a=b; zoomcast_console=xyz.abc", "c=d"].into_iter());
        assert_eq!(value, Some("xyz.abc"));
    }
}
