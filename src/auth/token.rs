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

use chrono::{DateTime, Utc};
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

/// A user access token (authorization-code grant): accepted by the Users API only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserToken {
    /// The bearer token.
    pub access: AccessToken,
    /// When Zoom stops accepting it.
    pub expires_at: DateTime<Utc>,
}

/// A chatbot access token (client-credentials grant): accepted by the Chatbot API only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotToken {
    /// The bearer token.
    pub access: AccessToken,
    /// When Zoom stops accepting it.
    pub expires_at: DateTime<Utc>,
}

/// How long before its expiry a token is treated as expired, so a request never races it.
pub const EXPIRY_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// True when a token expiring at `expires_at` should be renewed before use at `now`.
pub fn is_stale(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    expires_at - EXPIRY_MARGIN <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let token = RefreshToken::new("very-secret-value");
        let grant_like = UserToken {
            access: AccessToken::new("access-secret"),
            expires_at: Utc::now(),
        };
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
    fn stale_within_the_margin() {
        let now = Utc::now();
        assert!(is_stale(now + chrono::TimeDelta::seconds(30), now));
        assert!(!is_stale(now + chrono::TimeDelta::seconds(600), now));
    }
}
