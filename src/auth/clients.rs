//! [`AppClients`]: what one app talks to Zoom with: the HTTP client at the app's base URLs, the
//! OAuth client with its credentials, the app's bot token, and one token source per installing
//! account, each over that account's stored grant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::bot::BotTokens;
use super::{AppTokens, OAuthClient, TokenError};
use crate::config::AppConfig;
use crate::state::{Grants, UNIDENTIFIED};
use crate::zoom::{Endpoints, ZoomClient};

/// One app's clients.
#[derive(Clone)]
pub struct AppClients {
    /// The Users and Chatbot APIs.
    pub zoom: ZoomClient,
    /// The token endpoint, with the app's client id and secret.
    pub oauth: OAuthClient,
    /// The app's chatbot token, shared by its accounts.
    pub bot: Arc<BotTokens>,
    grants: Grants,
    /// The token source of each account used so far: one per process, so that refreshes of an
    /// account's grant are single-flight.
    accounts: Arc<Mutex<HashMap<String, Arc<AppTokens>>>>,
}

impl AppClients {
    /// The clients of `app`, its grants kept in `grants`.
    pub fn new(app: &AppConfig, grants: Grants) -> anyhow::Result<Self> {
        let (zoom, oauth) = Self::endpoints(app)?;
        let bot = Arc::new(BotTokens::new(&app.name, oauth.clone(), grants.clone()));
        Ok(Self {
            zoom,
            oauth,
            bot,
            grants,
            accounts: Arc::default(),
        })
    }

    /// The API and token-endpoint clients of `app`, which need no state (a login's).
    pub fn endpoints(app: &AppConfig) -> anyhow::Result<(ZoomClient, OAuthClient)> {
        let zoom = ZoomClient::new(Endpoints {
            oauth: app.oauth_url.clone(),
            api: app.api_url.clone(),
        })?;
        let oauth = OAuthClient::new(
            &app.name,
            &app.client_id,
            app.client_secret.clone(),
            zoom.clone(),
        );
        Ok((zoom, oauth))
    }

    /// The app's name.
    pub fn app(&self) -> &str {
        self.bot.app()
    }

    /// The token source of `account` ([`UNIDENTIFIED`] for a login whose account is not
    /// known).
    pub fn tokens(&self, account: &str) -> Arc<AppTokens> {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        accounts
            .entry(account.to_owned())
            .or_insert_with(|| {
                Arc::new(AppTokens::new(
                    account,
                    self.oauth.clone(),
                    self.grants.clone(),
                    self.bot.clone(),
                ))
            })
            .clone()
    }

    /// The token sources of every account holding a grant of the app now.
    pub fn installed(&self) -> Result<Vec<Arc<AppTokens>>, TokenError> {
        let accounts = self.grants.accounts(self.app())?;
        Ok(accounts.iter().map(|a| self.tokens(a)).collect())
    }

    /// The tokens a send uses: `named`'s if an account is named, else the app's home
    /// account's (the first to authorize it, recorded then), so that another account's
    /// install never changes where a job sends. Grants stored by an earlier release have no
    /// home recorded: the one account holding a grant becomes the home; with several, one
    /// must be named.
    pub fn choose(&self, named: Option<&str>) -> Result<Arc<AppTokens>, TokenError> {
        if let Some(account) = named {
            return Ok(self.tokens(account));
        }
        let app = self.app().to_owned();
        let mut accounts = self.grants.accounts(&app)?;
        if accounts.is_empty() {
            return Err(TokenError::NoGrant { app });
        }
        if let Some(home) = self.grants.home(&app)? {
            if !accounts.contains(&home) {
                return Err(TokenError::HomeNotInstalled { app, account: home });
            }
            return Ok(self.tokens(&home));
        }
        // A login whose account was never learned cannot send; an identified grant wins.
        if accounts.len() > 1 {
            accounts.retain(|a| a != UNIDENTIFIED);
        }
        match accounts.as_slice() {
            [one] if one != UNIDENTIFIED => {
                self.grants.adopt_home_now(&app, one)?;
                Ok(self.tokens(one))
            }
            [one] => Ok(self.tokens(one)),
            _ => Err(TokenError::SeveralAccounts { app, accounts }),
        }
    }

    /// The user-token refreshes of this process, over every account: (succeeded, failed).
    pub fn refreshes(&self) -> (u64, u64) {
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        accounts
            .values()
            .map(|tokens| tokens.refreshes())
            .fold((0, 0), |(ok, failed), (o, f)| (ok + o, failed + f))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::config::{Config, DEFAULT_APP};
    use crate::state::{Grant, Store};
    use crate::token::{AccessToken, RefreshToken, UserToken};

    fn grant(account: &str) -> Grant {
        Grant {
            user_id: "u".into(),
            user_email: "admin@example.com".into(),
            user_jid: "u@xmpp.zoom.us".into(),
            account_id: account.into(),
            scopes: String::new(),
            refresh_token: RefreshToken::new(format!("refresh-{account}")),
            access: UserToken::issued(AccessToken::new("a"), 3600, Utc::now()),
            authorized_at: Utc::now(),
            refreshed_at: Utc::now(),
            generation: 1,
            client_id: "id".into(),
            role: "Admin".into(),
            dead: None,
        }
    }

    #[tokio::test]
    async fn a_job_naming_no_account_sends_in_the_home_account_else_in_the_only_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let grants = store.grants().unwrap();
        let mut config = Config::empty();
        config.set(DEFAULT_APP, "client_id", "id");
        config.set(DEFAULT_APP, "client_secret", "secret");
        let clients = AppClients::new(&config.app(DEFAULT_APP).unwrap(), grants.clone()).unwrap();
        assert!(matches!(
            clients.choose(None),
            Err(TokenError::NoGrant { .. })
        ));
        // Grants an earlier release stored, with no home recorded: two accounts are ambiguous.
        grants.put(DEFAULT_APP, &grant("acc-B")).await.unwrap();
        grants.put(DEFAULT_APP, &grant("acc-A")).await.unwrap();
        assert!(matches!(
            clients.choose(None),
            Err(TokenError::SeveralAccounts { accounts, .. }) if accounts == ["acc-A", "acc-B"]
        ));
        assert_eq!(clients.choose(Some("acc-B")).unwrap().account(), "acc-B");
        // With a home recorded, that one; a later home is not recorded over it.
        assert!(grants.adopt_home(DEFAULT_APP, "acc-B").await.unwrap());
        assert!(!grants.adopt_home(DEFAULT_APP, "acc-A").await.unwrap());
        assert_eq!(clients.choose(None).unwrap().account(), "acc-B");
        // One account alone becomes the home the first time it is chosen.
        let other = tempfile::tempdir().unwrap();
        let store = Store::open(other.path()).unwrap();
        let grants = store.grants().unwrap();
        let clients = AppClients::new(&config.app(DEFAULT_APP).unwrap(), grants.clone()).unwrap();
        grants.put(DEFAULT_APP, &grant("acc-A")).await.unwrap();
        assert_eq!(clients.choose(None).unwrap().account(), "acc-A");
        assert_eq!(grants.home(DEFAULT_APP).unwrap().as_deref(), Some("acc-A"));
    }
}
