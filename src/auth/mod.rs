//! Authorization: the two tokens of one app (their types are in [`crate::token`]) and how each
//! is obtained and kept.
//!
//! - [`oauth`]: the token endpoint (code exchange, refresh, client credentials, revoke).
//! - [`tokens`]: [`AppTokens`], which hands out a valid token of either kind: single-flight
//!   refresh, the rotated refresh token made durable before the new access token is used.
//! - [`clients`]: [`AppClients`], what one app talks to Zoom with.
//! - [`keepalive`]: the scheduler's refresh of grants left idle.
//! - [`login`]: `auth login`'s code flow with `state` and PKCE, by callback or pasted code.

pub mod clients;
pub mod keepalive;
pub mod login;
pub mod oauth;
pub mod tokens;

pub use clients::AppClients;
pub use oauth::{OAuthClient, OAuthError};
pub use tokens::{AppTokens, TokenError};
