//! [`AppTokens`]: valid user and bot tokens for one app, shared by every task of a process.
//!
//! Invariants:
//! - refreshes are single-flight: the grant sits behind one async mutex, held across the
//!   refresh, so concurrent callers wait and then use the one new token;
//! - a rotated refresh token is written to the grant file and sled, and flushed, before the
//!   new access token is handed out;
//! - a rejected token is renewed only if no newer one exists already (another task may have
//!   renewed it meanwhile), so one 401 storm costs one refresh.

use chrono::Utc;
use tokio::sync::Mutex;

use super::oauth::{OAuthClient, OAuthError, TokenResponse};
use super::token::{BotToken, UserToken};
use crate::config::AppConfig;
use crate::state::{Grant, Grants, StateError};

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Nobody has authorized this app yet.
    #[error(
        "app `{app}` is not authorized yet; run `zoomcast auth login --app {app}` once, as an account admin"
    )]
    NoGrant {
        /// The app.
        app: String,
    },
    /// The token endpoint refused or could not be reached.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// The tokens of one app.
pub struct AppTokens {
    app: String,
    oauth: OAuthClient,
    grants: Grants,
    user: Mutex<Option<Grant>>,
    bot: Mutex<Option<BotToken>>,
}

impl AppTokens {
    /// Token source for `app`, keeping its grant in `grants`.
    pub fn new(app: &AppConfig, oauth: OAuthClient, grants: Grants) -> Self {
        Self {
            app: app.name.clone(),
            oauth,
            grants,
            user: Mutex::new(None),
            bot: Mutex::new(None),
        }
    }

    /// The current grant (who authorized, their JID and account).
    pub async fn grant(&self) -> Result<Grant, TokenError> {
        let mut slot = self.user.lock().await;
        Ok(self.loaded(&mut slot)?.clone())
    }

    /// A user token that has not expired, refreshing the grant if needed.
    pub async fn user_token(&self) -> Result<UserToken, TokenError> {
        let mut slot = self.user.lock().await;
        let grant = self.loaded(&mut slot)?;
        if grant.access.is_fresh(Utc::now()) {
            return Ok(grant.access.clone());
        }
        self.refresh(&mut slot).await
    }

    /// A replacement for a user token Zoom rejected: the newer one if another task already
    /// renewed it, else a refresh.
    pub async fn renew_user_token(&self, rejected: &UserToken) -> Result<UserToken, TokenError> {
        let mut slot = self.user.lock().await;
        let grant = self.loaded(&mut slot)?;
        if grant.access != *rejected {
            return Ok(grant.access.clone());
        }
        self.refresh(&mut slot).await
    }

    /// Refreshes the grant now, whatever its access token's age (the keep-alive).
    pub async fn refresh_now(&self) -> Result<UserToken, TokenError> {
        let mut slot = self.user.lock().await;
        self.loaded(&mut slot)?;
        self.refresh(&mut slot).await
    }

    /// A chatbot token that has not expired.
    pub async fn bot_token(&self) -> Result<BotToken, TokenError> {
        let mut slot = self.bot.lock().await;
        if slot.is_none() {
            *slot = self.grants.bot_token(&self.app)?;
        }
        match &*slot {
            Some(token) if token.is_fresh(Utc::now()) => Ok(token.clone()),
            _ => self.fetch_bot_token(&mut slot).await,
        }
    }

    /// A replacement for a bot token Zoom rejected.
    pub async fn renew_bot_token(&self, rejected: &BotToken) -> Result<BotToken, TokenError> {
        let mut slot = self.bot.lock().await;
        match &*slot {
            Some(token) if token != rejected && token.is_fresh(Utc::now()) => Ok(token.clone()),
            _ => self.fetch_bot_token(&mut slot).await,
        }
    }

    fn loaded<'a>(&self, slot: &'a mut Option<Grant>) -> Result<&'a Grant, TokenError> {
        if slot.is_none() {
            *slot = self.grants.get(&self.app)?;
        }
        slot.as_ref().ok_or_else(|| TokenError::NoGrant {
            app: self.app.clone(),
        })
    }

    async fn refresh(&self, slot: &mut Option<Grant>) -> Result<UserToken, TokenError> {
        let old = slot.as_ref().expect("loaded before refresh");
        tracing::debug!(app = %self.app, generation = old.generation, "refreshing the user grant");
        let response = self.oauth.refresh(&old.refresh_token).await?;
        let now = Utc::now();
        let grant = Grant {
            refresh_token: response
                .refresh_token
                .clone()
                .unwrap_or_else(|| old.refresh_token.clone()),
            access: user_token(&response),
            scopes: if response.scope.is_empty() {
                old.scopes.clone()
            } else {
                response.scope.clone()
            },
            refreshed_at: now,
            generation: old.generation + 1,
            ..old.clone()
        };
        if let Err(e) = self.grants.put(&self.app, &grant).await {
            tracing::error!(app = %self.app, "zoom rotated the refresh token but it could not be stored: {e}");
            return Err(e.into());
        }
        let token = grant.access.clone();
        *slot = Some(grant);
        Ok(token)
    }

    async fn fetch_bot_token(&self, slot: &mut Option<BotToken>) -> Result<BotToken, TokenError> {
        tracing::debug!(app = %self.app, "requesting a chatbot token");
        let response = self.oauth.client_credentials().await?;
        let token = BotToken::issued(response.access_token, response.expires_in, Utc::now());
        self.grants.put_bot_token(&self.app, &token)?;
        *slot = Some(token.clone());
        Ok(token)
    }
}

/// The user token in a token-endpoint answer.
pub fn user_token(response: &TokenResponse) -> UserToken {
    UserToken::issued(
        response.access_token.clone(),
        response.expires_in,
        Utc::now(),
    )
}
