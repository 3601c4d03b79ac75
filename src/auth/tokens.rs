//! [`AppTokens`]: valid user and bot tokens for one app in one installing account, shared by
//! every task of a process. The user token is the account's grant; the bot token is the app's
//! ([`BotTokens`], shared by its accounts).
//!
//! Invariants:
//! - refreshes are single-flight: the grant sits behind one async mutex, held across the
//!   refresh, so concurrent callers wait and then use the one new token;
//! - a rotated refresh token is written to the grant file and sled, and flushed, before the
//!   new access token is handed out; the refresh and that write run in their own task, so a
//!   caller dropped half-way (its run aborted) cannot cancel them in between;
//! - if that write fails, the rotated grant is kept in memory, marked unsaved, and written
//!   before anything else uses it: the old refresh token is never presented again;
//! - a rejected token is renewed only if no newer one exists already (another task may have
//!   renewed it meanwhile), so one 401 storm costs one refresh.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::bot::BotTokens;
use super::error::TokenError;
use super::oauth::{OAuthClient, OAuthError, TokenResponse};
use crate::state::{Dead, Grant, Grants};
use crate::token::{BotToken, UserToken};

/// The held grant, and whether it is on disk yet.
struct Held {
    grant: Grant,
    saved: bool,
}

/// What a caller of the user token needs.
enum Need {
    /// A token that has not expired.
    Fresh,
    /// Any token but this rejected one.
    Replace(UserToken),
}

/// The tokens of one app in one account.
pub struct AppTokens {
    app: String,
    account: String,
    oauth: OAuthClient,
    grants: Grants,
    user: Arc<Mutex<Option<Held>>>,
    /// The access token the last refresh produced, until a call succeeds with it.
    unproven: Arc<std::sync::Mutex<Option<UserToken>>>,
    bot: Arc<BotTokens>,
    /// Refreshes of this process that rotated the grant, and that failed.
    refreshed: std::sync::atomic::AtomicU64,
    refresh_failed: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for AppTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppTokens")
            .field("app", &self.app)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl AppTokens {
    /// Token source for `app` in `account` (its grant kept in `grants`), with the app's bot
    /// tokens.
    pub fn new(account: &str, oauth: OAuthClient, grants: Grants, bot: Arc<BotTokens>) -> Self {
        Self {
            app: bot.app().to_owned(),
            account: account.to_owned(),
            oauth,
            grants,
            user: Arc::new(Mutex::new(None)),
            unproven: Arc::default(),
            bot,
            refreshed: std::sync::atomic::AtomicU64::new(0),
            refresh_failed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The app's name.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The account whose grant this is.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The current grant (who authorized, their JID and account), unless Zoom refused it.
    pub async fn grant(&self) -> Result<Grant, TokenError> {
        let mut slot = self.user.clone().lock_owned().await;
        Ok(self.load_alive(&mut slot)?.grant.clone())
    }

    /// Deletes the account's grant, from the store and from memory: the account removed the
    /// app, or logged out. Whether there was one. The grant's lock is held throughout, so no
    /// refresh can store the grant again.
    pub async fn forget(&self) -> Result<bool, TokenError> {
        let mut slot = self.user.clone().lock_owned().await;
        if self.grants.get(&self.app, &self.account)?.is_none() {
            return Ok(false);
        }
        self.grants.delete(&self.app, &self.account).await?;
        *slot = None;
        *self.unproven.lock().expect("unproven lock") = None;
        Ok(true)
    }

    /// Runs `store`, which stores a new grant for the account (an install), holding the grant's
    /// lock, then drops the grant held in memory: no refresh can run meanwhile with the
    /// refresh token the new authorization revoked, and the next call reads the new grant.
    pub async fn replace_grant<T>(&self, store: impl Future<Output = T>) -> T {
        let mut slot = self.user.clone().lock_owned().await;
        let stored = store.await;
        *slot = None;
        *self.unproven.lock().expect("unproven lock") = None;
        stored
    }

    /// A user token that has not expired, refreshing the grant if needed.
    pub async fn user_token(&self) -> Result<UserToken, TokenError> {
        self.user(Need::Fresh).await
    }

    /// A replacement for a user token Zoom rejected: the newer one if another task already
    /// renewed it, else a refresh.
    pub async fn renew_user_token(&self, rejected: &UserToken) -> Result<UserToken, TokenError> {
        self.user(Need::Replace(rejected.clone())).await
    }

    /// Refreshes the grant if its last refresh was before `since` (the keep-alive), and
    /// returns when that last refresh was. The check and the refresh hold the same lock, so a
    /// refresh another task made meanwhile is not repeated.
    pub async fn refresh_if_before(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, TokenError> {
        let mut slot = self.user.clone().lock_owned().await;
        let held = self.load_alive(&mut slot)?;
        let last = held.grant.refreshed_at;
        if last >= since {
            return Ok(None);
        }
        self.refresh(slot).await?;
        Ok(Some(last))
    }

    fn load<'a>(&self, slot: &'a mut Option<Held>) -> Result<&'a mut Held, TokenError> {
        if slot.is_none() {
            *slot = self
                .grants
                .get(&self.app, &self.account)?
                .map(|grant| Held { grant, saved: true });
        }
        let held = slot.as_mut().ok_or_else(|| TokenError::NotInstalled {
            app: self.app.clone(),
            account: self.account.clone(),
        })?;
        let issued_to = &held.grant.client_id;
        if !issued_to.is_empty() && issued_to != self.oauth.client_id() {
            return Err(TokenError::OtherClient {
                app: self.app.clone(),
                account: self.account.clone(),
                grant_client: issued_to.clone(),
                app_client: self.oauth.client_id().to_owned(),
            });
        }
        Ok(held)
    }

    /// The held grant, unless Zoom refused it earlier.
    fn load_alive<'a>(&self, slot: &'a mut Option<Held>) -> Result<&'a mut Held, TokenError> {
        let held = self.load(slot)?;
        match &held.grant.dead {
            Some(dead) => Err(TokenError::Dead {
                app: self.app.clone(),
                account: self.account.clone(),
                since: dead.at,
                reason: dead.reason.clone(),
            }),
            None => Ok(held),
        }
    }

    async fn user(&self, need: Need) -> Result<UserToken, TokenError> {
        let mut slot = self.user.clone().lock_owned().await;
        let held = self.load_alive(&mut slot)?;
        let current = &held.grant.access;
        if let Need::Replace(rejected) = &need
            && current == rejected
            && self.unproven.lock().expect("unproven lock").as_ref() == Some(rejected)
        {
            return Err(TokenError::RejectedAfterRefresh {
                app: self.app.clone(),
            });
        }
        let usable = held.saved
            && match &need {
                Need::Fresh => current.is_fresh(Utc::now()),
                Need::Replace(rejected) => current != rejected,
            };
        if usable {
            return Ok(current.clone());
        }
        self.refresh(slot).await
    }

    /// Refreshes the grant in `slot`, in a task of its own: a caller that gives up waiting
    /// cannot cut a rotation in half.
    async fn refresh(&self, slot: OwnedMutexGuard<Option<Held>>) -> Result<UserToken, TokenError> {
        let refresher = Refresher {
            app: self.app.clone(),
            oauth: self.oauth.clone(),
            grants: self.grants.clone(),
            unproven: self.unproven.clone(),
        };
        let result = tokio::spawn(refresher.run(slot))
            .await
            .expect("the refresh task does not panic");
        let counter = if result.is_ok() {
            &self.refreshed
        } else {
            &self.refresh_failed
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        result
    }

    /// How many refreshes this process made: (succeeded, failed).
    pub fn refreshes(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.refreshed.load(Relaxed),
            self.refresh_failed.load(Relaxed),
        )
    }

    /// A call succeeded with `token`: Zoom accepts what the last refresh produced.
    pub fn user_token_worked(&self, token: &UserToken) {
        let mut unproven = self.unproven.lock().expect("unproven lock");
        if unproven.as_ref() == Some(token) {
            *unproven = None;
        }
    }

    /// A chatbot token that has not expired (the app's, good in every account).
    pub async fn bot_token(&self) -> Result<BotToken, TokenError> {
        self.bot.token().await
    }

    /// A new chatbot token from Zoom, whatever is cached.
    pub async fn fresh_bot_token(&self) -> Result<BotToken, TokenError> {
        self.bot.fresh().await
    }

    /// A replacement for a bot token Zoom rejected.
    pub async fn renew_bot_token(&self, rejected: &BotToken) -> Result<BotToken, TokenError> {
        self.bot.renew(rejected).await
    }
}

/// What the refresh task owns: everything it needs, so it can outlive its caller.
struct Refresher {
    app: String,
    oauth: OAuthClient,
    grants: Grants,
    unproven: Arc<std::sync::Mutex<Option<UserToken>>>,
}

impl Refresher {
    async fn run(self, mut slot: OwnedMutexGuard<Option<Held>>) -> Result<UserToken, TokenError> {
        let held = slot.as_mut().expect("loaded before refreshing");
        if !held.saved {
            // Rotated earlier, but the write failed: store it before anything uses it.
            self.grants.put(&self.app, &held.grant).await?;
            held.saved = true;
            return Ok(held.grant.access.clone());
        }
        tracing::debug!(app = %self.app, account = %held.grant.account_id, generation = held.grant.generation, "refreshing the user grant");
        let response = match self.oauth.refresh(&held.grant.refresh_token).await {
            Ok(response) => response,
            Err(OAuthError::GrantRevoked { app, reason }) => {
                self.record_dead(held, &reason).await;
                return Err(OAuthError::GrantRevoked { app, reason }.into());
            }
            Err(e) => return Err(e.into()),
        };
        let old = &held.grant;
        held.grant = Grant {
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
            refreshed_at: Utc::now(),
            generation: old.generation + 1,
            ..old.clone()
        };
        held.saved = false;
        if let Err(e) = self.grants.put(&self.app, &held.grant).await {
            tracing::error!(app = %self.app, account = %held.grant.account_id, "zoom rotated the refresh token and it could not be stored yet (kept in memory, retried on next use): {e}");
            return Err(e.into());
        }
        held.saved = true;
        *self.unproven.lock().expect("unproven lock") = Some(held.grant.access.clone());
        Ok(held.grant.access.clone())
    }
}

impl Refresher {
    /// Records, the moment Zoom says so, that the grant is dead: `auth status` and `doctor`
    /// say it, and nothing presents its refresh token again. Best effort: a failure to store
    /// it is logged, and the next use learns it anew.
    async fn record_dead(&self, held: &mut Held, reason: &str) {
        held.grant.dead = Some(Dead {
            at: Utc::now(),
            reason: reason.to_owned(),
        });
        let account = held.grant.account_id.clone();
        match self.grants.put(&self.app, &held.grant).await {
            Ok(()) => {
                tracing::error!(app = %self.app, account = %account, "zoom refused the grant: it is recorded as dead, and a person must authorize again");
            }
            Err(e) => {
                tracing::error!(app = %self.app, account = %account, "zoom refused the grant, and recording that failed: {e}");
            }
        }
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
