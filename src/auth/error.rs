//! [`TokenError`]: why no token could be had, shared by the user tokens ([`super::tokens`]),
//! the bot token ([`super::bot`]) and the choice of account ([`super::clients`]).

use chrono::{DateTime, Utc};

use super::oauth::OAuthError;
use crate::state::StateError;

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
    /// The app is authorized, but not by this account.
    #[error(
        "app `{app}` holds no grant of account {account} (`zoomcast auth status` lists the \
         accounts it has); an admin of that account installs it at the app's /install address \
         on `zoomcast serve`, or runs `zoomcast auth login --app {app}`"
    )]
    NotInstalled {
        /// The app.
        app: String,
        /// The account.
        account: String,
    },
    /// The app's home account holds no grant (it removed the app), and the job names none.
    #[error(
        "app `{app}` holds no grant of account {account}, its home account, where jobs that name \
         no account send; an admin of that account installs the app again, or the job names \
         another (`account = \"...\"`), or account_id (ZOOM_ACCOUNT_ID) says which is home"
    )]
    HomeNotInstalled {
        /// The app.
        app: String,
        /// The home account.
        account: String,
    },
    /// Zoom rejected the access token a refresh just produced, before any call succeeded with
    /// it: refreshing again cannot help and would only rotate the grant again.
    #[error("zoom rejected the user token of app `{app}` that a refresh had just produced")]
    RejectedAfterRefresh {
        /// The app.
        app: String,
    },
    /// The app is installed by several accounts and nothing names the one to use.
    #[error(
        "app `{app}` is installed by several accounts ({}); name the one to send in",
        accounts.join(", ")
    )]
    SeveralAccounts {
        /// The app.
        app: String,
        /// The accounts holding a grant.
        accounts: Vec<String>,
    },
    /// Zoom refused the grant earlier (its refresh token is dead): nothing asks Zoom with it
    /// again until a person authorizes anew.
    #[error(
        "the grant of app `{app}` in account {account} is dead since {} (zoom said: {reason}); \
         an owner or admin of the account runs `zoomcast auth login --app {app}` (or installs the \
         app again at serve's /install)",
        since.format("%Y-%m-%d %H:%M UTC")
    )]
    Dead {
        /// The app.
        app: String,
        /// The account.
        account: String,
        /// When zoomcast learned it.
        since: DateTime<Utc>,
        /// What Zoom said.
        reason: String,
    },
    /// The stored grant was issued to another OAuth client than the app is configured with.
    #[error(
        "the grant of app `{app}` in account {account} was issued to client id {grant_client}, \
         but the app is configured with client id {app_client}; run `zoomcast auth login --app \
         {app}` with the app's configuration"
    )]
    OtherClient {
        /// The app.
        app: String,
        /// The account.
        account: String,
        /// The grant's client id.
        grant_client: String,
        /// The configured one.
        app_client: String,
    },
    /// The token endpoint refused or could not be reached.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
}
