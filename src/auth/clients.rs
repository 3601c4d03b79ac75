//! [`AppClients`]: what one app talks to Zoom with: the HTTP client at the app's base URLs, the
//! OAuth client with its credentials, and the token source over its stored grant.

use std::sync::Arc;

use super::{AppTokens, OAuthClient};
use crate::config::AppConfig;
use crate::state::Grants;
use crate::zoom::{Endpoints, ZoomClient};

/// One app's clients.
#[derive(Clone)]
pub struct AppClients {
    /// The Users and Chatbot APIs.
    pub zoom: ZoomClient,
    /// The token endpoint, with the app's client id and secret.
    pub oauth: OAuthClient,
    /// Valid tokens of both kinds, from the grant kept in `grants`.
    pub tokens: Arc<AppTokens>,
}

impl AppClients {
    /// The clients of `app`, its grant kept in `grants`.
    pub fn new(app: &AppConfig, grants: Grants) -> anyhow::Result<Self> {
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
        let tokens = Arc::new(AppTokens::new(app, oauth.clone(), grants));
        Ok(Self {
            zoom,
            oauth,
            tokens,
        })
    }
}
