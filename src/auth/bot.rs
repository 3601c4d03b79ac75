//! [`BotTokens`]: the chatbot token of one app. Zoom issues it to the app by the
//! client-credentials grant, with no account in it, and a send names its account in its body;
//! so every installing account of the app shares it.

use chrono::Utc;
use tokio::sync::Mutex;

use super::error::TokenError;
use super::oauth::OAuthClient;
use crate::state::Grants;
use crate::token::BotToken;
use crate::zoom::backoff::backoff;

/// Attempts at the client-credentials grant before a transient failure stops the run.
const BOT_TOKEN_ATTEMPTS: u32 = 4;

/// The bot token of one app, cached in memory and in the `bot_tokens` tree.
pub struct BotTokens {
    app: String,
    oauth: OAuthClient,
    grants: Grants,
    bot: Mutex<Option<BotToken>>,
}

impl BotTokens {
    /// The bot tokens of `app`, cached in `grants`.
    pub fn new(app: &str, oauth: OAuthClient, grants: Grants) -> Self {
        Self {
            app: app.to_owned(),
            oauth,
            grants,
            bot: Mutex::new(None),
        }
    }

    /// The app's name.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// A chatbot token that has not expired.
    pub async fn token(&self) -> Result<BotToken, TokenError> {
        let mut slot = self.bot.lock().await;
        if slot.is_none() {
            *slot = self.grants.bot_token(&self.app)?;
        }
        match &*slot {
            Some(token) if token.is_fresh(Utc::now()) => Ok(token.clone()),
            _ => self.fetch(&mut slot).await,
        }
    }

    /// A new chatbot token from Zoom, whatever is cached: proof that the app's credentials
    /// work and the token endpoint answers.
    pub async fn fresh(&self) -> Result<BotToken, TokenError> {
        let mut slot = self.bot.lock().await;
        self.fetch(&mut slot).await
    }

    /// A replacement for a bot token Zoom rejected.
    pub async fn renew(&self, rejected: &BotToken) -> Result<BotToken, TokenError> {
        let mut slot = self.bot.lock().await;
        match &*slot {
            Some(token) if token != rejected && token.is_fresh(Utc::now()) => Ok(token.clone()),
            _ => self.fetch(&mut slot).await,
        }
    }

    /// The client-credentials grant is safe to repeat, so transient failures are retried.
    async fn fetch(&self, slot: &mut Option<BotToken>) -> Result<BotToken, TokenError> {
        let mut attempt = 1;
        let response = loop {
            tracing::debug!(app = %self.app, attempt, "requesting a chatbot token");
            match self.oauth.client_credentials().await {
                Ok(response) => break response,
                Err(e) if e.is_transient() && attempt < BOT_TOKEN_ATTEMPTS => {
                    tracing::warn!(app = %self.app, "asking for a chatbot token failed, retrying: {e}");
                    let wait = backoff(attempt, None, &mut rand::thread_rng());
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let token = BotToken::issued(response.access_token, response.expires_in, Utc::now());
        self.grants.put_bot_token(&self.app, &token)?;
        *slot = Some(token.clone());
        Ok(token)
    }
}
