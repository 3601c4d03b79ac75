//! Authorization: the two tokens of one app (their types are in [`crate::token`]) and how each
//! is obtained and kept.
//!
//! - [`oauth`]: the token endpoint (code exchange, refresh, client credentials, revoke).
//! - [`tokens`]: [`AppTokens`], which hands out a valid token of either kind for one account:
//!   single-flight refresh, the rotated refresh token made durable before the new access token
//!   is used; [`bot`]: the app's chatbot token, shared by its accounts.
//! - [`error`]: [`TokenError`], why no token could be had.
//! - [`clients`]: [`AppClients`], what one app talks to Zoom with, and which account's grant
//!   a send uses.
//! - [`keepalive`]: the scheduler's refresh of grants left idle.
//! - [`login`]: `auth login`'s code flow with `state` and PKCE, by callback or pasted code;
//!   [`device`]: `auth login --device`, Zoom's device authorization grant.

pub mod bot;
pub mod clients;
pub mod device;
pub mod error;
pub mod keepalive;
pub mod login;
pub mod oauth;
pub mod tokens;

pub use clients::AppClients;
pub use error::TokenError;
pub use oauth::{OAuthClient, OAuthError};
pub use tokens::AppTokens;
