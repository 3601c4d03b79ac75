//! Secret newtypes: the client secret, access tokens and refresh tokens.
//!
//! Every secret wraps a [`secrecy::SecretString`], so its `Debug` prints `[redacted]`, it has no
//! `Display`, and the only way to read it is an explicit `.expose()`. The two access-token kinds
//! are distinct types: the Users API takes a [`UserToken`], the Chatbot API a [`BotToken`], so
//! sending with the wrong token (Zoom's 7010 and 124) does not compile.
//!
//! The `Serialize` implementations exist for the state store only (a 0700 directory); nothing
//! that is printed ever serializes a secret.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! secret {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The secret itself: call only where it goes on the wire or into the store.
            pub fn expose(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.expose() == other.expose()
            }
        }

        impl Eq for $name {}

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.expose())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self::new)
            }
        }
    };
}

secret!(
    /// The app's OAuth client secret.
    ClientSecret
);
secret!(
    /// An OAuth access token of either kind, as Zoom's token endpoint returns it.
    AccessToken
);
secret!(
    /// A user grant's refresh token: rotated on every refresh, the old one dies at once.
    RefreshToken
);
secret!(
    /// The app's webhook secret token (HMAC key for Zoom's event notifications).
    WebhookSecret
);

macro_rules! access_token {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name {
            /// The bearer token.
            pub access: AccessToken,
            /// When Zoom stops accepting it.
            pub expires_at: DateTime<Utc>,
            /// When zoomcast renews it instead of using it: a margin before `expires_at`.
            pub renew_at: DateTime<Utc>,
        }

        impl $name {
            /// A token Zoom issued at `now`, valid for `expires_in` seconds.
            pub fn issued(access: AccessToken, expires_in: i64, now: DateTime<Utc>) -> Self {
                let (expires_at, renew_at) = lifetime(expires_in, now);
                Self { access, expires_at, renew_at }
            }

            /// True while the token may still be used at `now`.
            pub fn is_fresh(&self, now: DateTime<Utc>) -> bool {
                now < self.renew_at
            }
        }
    };
}

access_token!(
    /// A user access token (authorization-code grant): accepted by the Users API only.
    UserToken
);
access_token!(
    /// A chatbot access token (client-credentials grant): accepted by the Chatbot API only.
    BotToken
);

/// How long before its expiry a token is renewed, so a request never races the expiry; at
/// most half the token's lifetime, so a short-lived token is still used before it is renewed.
pub const EXPIRY_MARGIN: TimeDelta = TimeDelta::seconds(60);

/// The longest lifetime zoomcast believes: Zoom's access tokens live an hour, and a server
/// that claims years (or a number no clock can hold) gets its token renewed after a day.
pub const MAX_LIFETIME_SECS: i64 = 24 * 3600;

fn lifetime(expires_in: i64, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let life = TimeDelta::seconds(expires_in.clamp(0, MAX_LIFETIME_SECS));
    let margin = EXPIRY_MARGIN.min(life / 2);
    let expires_at = now.checked_add_signed(life).unwrap_or(now);
    let renew_at = expires_at.checked_sub_signed(margin).unwrap_or(now);
    (expires_at, renew_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let token = RefreshToken::new("very-secret-value");
        let grant_like = UserToken::issued(AccessToken::new("access-secret"), 3600, Utc::now());
        let printed = format!(
            "{token:?} {grant_like:?} {:#?}",
            ClientSecret::new("cs-secret")
        );
        assert!(!printed.contains("very-secret-value"), "{printed}");
        assert!(!printed.contains("access-secret"), "{printed}");
        assert!(!printed.contains("cs-secret"), "{printed}");
        assert!(printed.contains("RefreshToken([redacted])"));
    }

    #[test]
    fn renewed_a_margin_before_expiry() {
        let now = Utc::now();
        let hour = BotToken::issued(AccessToken::new("a"), 3600, now);
        assert_eq!(hour.expires_at - hour.renew_at, EXPIRY_MARGIN);
        assert!(hour.is_fresh(now + TimeDelta::seconds(3539)));
        assert!(!hour.is_fresh(now + TimeDelta::seconds(3540)));
        // A 30-second token is used for 15 seconds, not renewed at once.
        let short = UserToken::issued(AccessToken::new("a"), 30, now);
        assert!(short.is_fresh(now + TimeDelta::seconds(14)));
        assert!(!short.is_fresh(now + TimeDelta::seconds(15)));
    }

    #[test]
    fn an_absurd_lifetime_is_believed_for_a_day_at_most() {
        let now = Utc::now();
        for absurd in [100_000_000_000_000, i64::MAX, i64::MIN, -5] {
            let token = UserToken::issued(AccessToken::new("a"), absurd, now);
            assert!(token.expires_at <= now + TimeDelta::seconds(MAX_LIFETIME_SECS));
            assert!(token.renew_at <= token.expires_at);
        }
    }
}
