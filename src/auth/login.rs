//! `auth login`: the authorization-code flow with a verified `state` and S256 PKCE.
//!
//! The code arrives either at a local listener on the redirect URI's host and port, or pasted
//! on standard input (the whole redirected URL, or the bare code) for machines where the
//! browser runs elsewhere. After the exchange, `GET /v2/users/me` records who authorized, their
//! JID and their account with the grant: every send needs them.

use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Html;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use url::Url;

use super::oauth::{OAuthClient, TokenResponse};
use super::tokens::user_token;
use crate::config::InstallAccounts;
use crate::state::{Grant, Grants, StateError};
use crate::user::is_account_id;
use crate::zoom::ZoomClient;
use crate::zoom::backoff::backoff;
use crate::zoom::error::Disposition;

/// The PKCE pair: the verifier stays here, the challenge goes in the authorize URL.
pub struct Pkce {
    /// 43 URL-safe characters of randomness.
    pub verifier: String,
    /// `BASE64URL(SHA256(verifier))`.
    pub challenge: String,
}

/// URL-safe random text of `bytes` bytes of entropy.
fn random(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

impl Pkce {
    /// A fresh verifier and its S256 challenge.
    pub fn new() -> Self {
        let verifier = random(32);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// A fresh, URL-safe `state` value (never JSON: Zoom mangles that).
pub fn new_state() -> String {
    random(24)
}

/// What a pasted line holds: a redirected URL (code and state) or a bare code.
pub fn parse_pasted(line: &str) -> Option<(String, Option<String>)> {
    let line = line.trim();
    if let Ok(url) = Url::parse(line) {
        let find = |key: &str| {
            url.query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        return find("code").map(|code| (code, find("state")));
    }
    let bare = !line.is_empty()
        && line
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c));
    bare.then(|| (line.to_owned(), None))
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

struct Listener {
    state: String,
    codes: mpsc::Sender<anyhow::Result<String>>,
}

async fn callback(
    State(l): State<Arc<Listener>>,
    Query(q): Query<Callback>,
) -> (axum::http::StatusCode, Html<&'static str>) {
    use axum::http::StatusCode;
    // Only the browser of this login knows `state`: nothing else may end the login, with a
    // code or with an error.
    if q.state.as_deref() != Some(l.state.as_str()) {
        tracing::warn!("ignored a callback whose state does not match this login");
        return (
            StatusCode::BAD_REQUEST,
            Html("<p>zoomcast: this link is not from the current login (state mismatch).</p>"),
        );
    }
    if let Some(error) = q.error {
        let error = crate::output::clean(&error, 200);
        let _ = l
            .codes
            .send(Err(anyhow::anyhow!(
                "zoom refused the authorization: {error}"
            )))
            .await;
        return (
            StatusCode::BAD_REQUEST,
            Html("<p>zoomcast: the authorization was refused. See the terminal.</p>"),
        );
    }
    match q.code {
        Some(code) => {
            let _ = l.codes.send(Ok(code)).await;
            (
                StatusCode::OK,
                Html("<p>zoomcast is authorized. You can close this tab.</p>"),
            )
        }
        None => (
            StatusCode::BAD_REQUEST,
            Html("<p>zoomcast: the callback carries no code.</p>"),
        ),
    }
}

/// Serves the redirect URI's path on `listener` and reads pasted lines from `pasted`, until a
/// code with the right `state` (or a bare pasted code) arrives.
pub async fn wait_for_code(
    listener: Option<TcpListener>,
    path: &str,
    state: &str,
    mut pasted: mpsc::Receiver<String>,
) -> anyhow::Result<String> {
    let (tx, mut codes) = mpsc::channel(4);
    let app = Router::new()
        .route(path, axum::routing::get(callback))
        .with_state(Arc::new(Listener {
            state: state.to_owned(),
            codes: tx,
        }));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = listener.map(|listener| {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        })
    });
    let code = loop {
        tokio::select! {
            Some(code) = codes.recv() => break code,
            Some(line) = pasted.recv() => match parse_pasted(&line) {
                Some((_, Some(s))) if s != state => {
                    errln!("that URL is from another login (its state does not match); paste the newest one");
                }
                Some((_, None)) if line.contains("://") => {
                    errln!("that URL carries no state, so it cannot be checked; paste the whole redirected URL, or just the code");
                }
                Some((code, _)) => break Ok(code),
                None if line.trim().is_empty() => {}
                None => errln!("that is neither the redirected URL nor a code; paste the whole URL from the browser's address bar"),
            },
        }
    };
    shutdown.cancel();
    if let Some(server) = server {
        let _ = server.await;
    }
    code
}

/// Exchanges `code` and looks up who authorized (`/v2/users/me`): the grant `auth login`
/// stores (see [`store_install`]).
pub async fn prepare_login(
    oauth: &OAuthClient,
    zoom: &ZoomClient,
    app: &str,
    code: &str,
    redirect_uri: &Url,
    verifier: &str,
) -> anyhow::Result<Grant> {
    match prepare_install(oauth, zoom, code, redirect_uri, verifier).await {
        Err(InstallError::Identify(e)) => Err(e.context(format!(
            "looking up the authorizing user (GET /v2/users/me) failed, so nothing was \
             stored and the new tokens were revoked; check the app's user:read:user:admin \
             scope and run `zoomcast auth login --app {app}` again"
        ))),
        other => Ok(other?),
    }
}

/// The generation a new grant of `app` in `account` gets: above the one it replaces (which
/// Zoom revoked when the admin authorized again).
fn next_generation(grants: &Grants, app: &str, account: &str) -> Result<u64, StateError> {
    Ok(grants.get(app, account)?.map_or(0, |g| g.generation) + 1)
}

/// Why an install through `serve` stored no grant.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Zoom refused the code (reused, expired, or for another redirect URI).
    #[error("zoom refused the authorization code: {0:#}")]
    Refused(anyhow::Error),
    /// Who authorized could not be learned, so the grant's account is unknown.
    #[error("looking up who authorized (GET /v2/users/me) failed: {0:#}")]
    Identify(anyhow::Error),
    /// The grant may not be stored (see [`Refusal`]); its tokens are the caller's to revoke.
    #[error(transparent)]
    NotAllowed(#[from] Refusal),
    /// The grant could not be stored.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// Why a new grant may not be stored (design section 3).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    /// It was issued to another OAuth client than the app's (another app, another Zoom).
    #[error(
        "the new grant was issued to client id {got}, but app `{app}` is configured with client \
         id {expected}; log in with the app's own configuration (the one the scheduler runs with)"
    )]
    OtherClient {
        /// The app.
        app: String,
        /// The client id the app is configured with.
        expected: String,
        /// The grant's.
        got: String,
    },
    /// The account is not one `install_accounts` lets install the app.
    #[error(
        "account {account} may not install app `{app}`: its install_accounts in zoomcast.toml \
         does not list it"
    )]
    AccountNotAllowed {
        /// The app.
        app: String,
        /// The account.
        account: String,
    },
    /// Someone who is not an owner or admin would replace an admin's working grant.
    #[error(
        "{user} is not an owner or admin of account {account} (their role: {role}), so their \
         authorization does not replace the account's working grant, which an owner or admin \
         made; an owner or admin of the account can authorize the app again"
    )]
    NotAdmin {
        /// Who authorized now.
        user: String,
        /// Their role.
        role: String,
        /// The account.
        account: String,
    },
}

impl Refusal {
    /// The refusal without names of people, for a log line: why, and the account.
    pub fn summary(&self) -> String {
        match self {
            Self::OtherClient { got, .. } => format!("issued to another client id ({got})"),
            Self::AccountNotAllowed { account, .. } => {
                format!("account {account} is not in install_accounts")
            }
            Self::NotAdmin { account, role, .. } => format!(
                "by a user of account {account} who is not an owner or admin (role {role}), over \
                 the account's working grant"
            ),
        }
    }
}

/// What a new grant is checked against before it is stored.
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    /// The app's client id: a grant issued to another is refused.
    pub client_id: &'a str,
    /// The accounts that may install the app, for an install through `/install`; `None` for a
    /// login at the shell (whoever runs zoomcast on its host is trusted already).
    pub accounts: Option<&'a InstallAccounts>,
}

/// Whether `grant` may be stored as the grant of `app` in its account: issued to the app's
/// client, by an account allowed to install, and not by someone who is not an owner or admin
/// over a working grant an admin (or an earlier release) made.
pub fn admit(
    grants: &Grants,
    app: &str,
    grant: &Grant,
    admission: &Admission<'_>,
) -> Result<(), InstallError> {
    // A grant of an earlier release's login names no client: it cannot be checked.
    if !grant.client_id.is_empty() && grant.client_id != admission.client_id {
        return Err(Refusal::OtherClient {
            app: app.to_owned(),
            expected: admission.client_id.to_owned(),
            got: grant.client_id.clone(),
        }
        .into());
    }
    if admission
        .accounts
        .is_some_and(|accounts| !accounts.allows(&grant.account_id))
    {
        return Err(Refusal::AccountNotAllowed {
            app: app.to_owned(),
            account: grant.account_id.clone(),
        }
        .into());
    }
    // The same person authorizing again replaces their own grant (Zoom revoked it), whatever
    // their role now.
    if grant.by_admin() == Some(false)
        && let Some(held) = grants.get(app, &grant.account_id)?
        && held.dead.is_none()
        && held.by_admin() != Some(false)
        && held.user_id != grant.user_id
    {
        return Err(Refusal::NotAdmin {
            user: grant.user_email.clone(),
            role: grant.role.clone(),
            account: grant.account_id.clone(),
        }
        .into());
    }
    Ok(())
}

/// The first half of an install (from `serve`'s redirect, or `auth login`): exchanges `code`
/// and learns who authorized. Nothing is stored yet (see [`store_install`]): a grant is kept
/// under its account, so one whose account cannot be learned is not kept, and its tokens are
/// revoked, since nothing will hold them. (Zoom has revoked the user's earlier grant by now,
/// but a grant without its account could not send either.)
pub async fn prepare_install(
    oauth: &OAuthClient,
    zoom: &ZoomClient,
    code: &str,
    redirect_uri: &Url,
    verifier: &str,
) -> Result<Grant, InstallError> {
    let grant = exchange(oauth, code, redirect_uri, verifier)
        .await
        .map_err(InstallError::Refused)?;
    identified(oauth, zoom, grant).await
}

/// `grant` with who authorized it filled in (`GET /v2/users/me`); when that fails, its tokens
/// are revoked, since nothing will store them.
pub async fn identified(
    oauth: &OAuthClient,
    zoom: &ZoomClient,
    mut grant: Grant,
) -> Result<Grant, InstallError> {
    if let Err(e) = identify(zoom, &mut grant).await {
        // Nothing will be stored, so nothing will use or revoke these tokens later.
        if let Err(revoking) = oauth.revoke(&grant.access.access).await {
            tracing::warn!("revoking the tokens of an install that failed failed too: {revoking}");
        }
        return Err(InstallError::Identify(e));
    }
    Ok(grant)
}

/// The second half: stores `grant` as the grant of `app` in its account, if [`admit`] lets it,
/// replacing that account's earlier grant (Zoom revoked it when the admin authorized again);
/// other accounts' grants are untouched. The first account to authorize an app becomes its
/// home account. A refused grant's tokens are the caller's to revoke.
pub async fn store_install(
    grants: &Grants,
    app: &str,
    grant: &Grant,
    admission: &Admission<'_>,
) -> Result<Grant, InstallError> {
    admit(grants, app, grant, admission)?;
    let mut grant = grant.clone();
    grant.generation = next_generation(grants, app, &grant.account_id)?;
    // The accounts that authorized before this one: the first of them is the home.
    let before: Vec<String> = grants
        .accounts(app)?
        .into_iter()
        .filter(|a| *a != grant.account_id && a != crate::state::UNIDENTIFIED)
        .collect();
    grants.put(app, &grant).await?;
    match before.as_slice() {
        [] => drop(grants.adopt_home(app, &grant.account_id).await?),
        // A grant stored before homes were recorded: it came first.
        [earlier] => drop(grants.adopt_home(app, earlier).await?),
        // Several, none recorded: which came first is not known.
        _ => {}
    }
    Ok(grant)
}

/// Exchanges `code` for a grant whose person is not known yet.
async fn exchange(
    oauth: &OAuthClient,
    code: &str,
    redirect_uri: &Url,
    verifier: &str,
) -> anyhow::Result<Grant> {
    let response = oauth
        .exchange_code(code, redirect_uri, verifier)
        .await
        .context("exchanging the authorization code")?;
    new_grant(oauth, &response)
}

/// The grant a token answer to a person's authorization makes (issued to `oauth`'s client),
/// its person not known yet.
pub fn new_grant(oauth: &OAuthClient, response: &TokenResponse) -> anyhow::Result<Grant> {
    let Some(refresh_token) = response.refresh_token.clone() else {
        bail!(
            "zoom issued no refresh token; the app must be an OAuth (General) app, not server-to-server"
        );
    };
    let now = Utc::now();
    Ok(Grant {
        user_id: String::new(),
        user_email: String::new(),
        user_jid: String::new(),
        account_id: String::new(),
        scopes: response.scope.clone(),
        refresh_token,
        access: user_token(response),
        authorized_at: now,
        refreshed_at: now,
        generation: 0,
        client_id: oauth.client_id().to_owned(),
        role: String::new(),
        dead: None,
    })
}

/// Attempts at `GET /v2/users/me` after a code exchange, while Zoom answers 429, 5xx or not
/// at all.
const IDENTIFY_ATTEMPTS: u32 = 4;

/// Fills in who authorized `grant`, from `GET /v2/users/me` with its access token.
async fn identify(zoom: &ZoomClient, grant: &mut Grant) -> anyhow::Result<()> {
    let mut attempt = 1;
    let me = loop {
        match zoom.get_user(&grant.access, "me").await {
            Ok(me) => break me,
            Err(e) if attempt < IDENTIFY_ATTEMPTS => {
                let Disposition::Retry { after } = e.disposition() else {
                    return Err(e.into());
                };
                let wait = backoff(attempt, after, &mut rand::thread_rng());
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    };
    if !is_account_id(&me.account_id) {
        bail!(
            "zoom answered an account id zoomcast cannot use: `{}`",
            crate::output::clean(&me.account_id, 80)
        );
    }
    grant.role = me.role();
    grant.user_id = me.id;
    grant.user_email = me.email;
    grant.user_jid = me.jid;
    grant.account_id = me.account_id;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_s256_of_the_verifier() {
        // RFC 7636 appendix B.
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(
            b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        ));
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let p = Pkce::new();
        assert_eq!(p.verifier.len(), 43);
        assert_eq!(
            p.challenge,
            URL_SAFE_NO_PAD.encode(Sha256::digest(p.verifier.as_bytes()))
        );
        assert!(
            new_state()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn pasted_forms() {
        assert_eq!(
            parse_pasted("http://localhost:4199/oauth/callback?code=abc&state=xyz\n"),
            Some(("abc".into(), Some("xyz".into())))
        );
        assert_eq!(
            parse_pasted("  abc_DEF-123 "),
            Some(("abc_DEF-123".into(), None))
        );
        assert_eq!(
            parse_pasted("http://localhost:4199/oauth/callback?error=denied"),
            None
        );
        assert_eq!(parse_pasted("not a code"), None);
    }

    fn grant_by(user: &str, role: &str) -> Grant {
        Grant {
            user_id: user.into(),
            user_email: format!("{user}@example.com"),
            user_jid: format!("{user}@xmpp.zoom.us"),
            account_id: "acct".into(),
            scopes: String::new(),
            refresh_token: crate::token::RefreshToken::new(format!("refresh-{user}")),
            access: crate::token::UserToken::issued(
                crate::token::AccessToken::new("a"),
                3600,
                Utc::now(),
            ),
            authorized_at: Utc::now(),
            refreshed_at: Utc::now(),
            generation: 1,
            client_id: "id".into(),
            role: role.into(),
            dead: None,
        }
    }

    #[tokio::test]
    async fn a_member_never_replaces_an_admins_working_grant_but_its_own_author_may() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::state::Store::open(dir.path()).unwrap();
        let grants = store.grants().unwrap();
        let admission = Admission {
            client_id: "id",
            accounts: None,
        };
        grants
            .put("default", &grant_by("admin", "Admin"))
            .await
            .unwrap();
        let member = admit(&grants, "default", &grant_by("ana", "Member"), &admission);
        assert!(matches!(
            member,
            Err(InstallError::NotAllowed(Refusal::NotAdmin { .. }))
        ));
        // The admin, now a member, authorizing again replaces their own grant.
        assert!(admit(&grants, "default", &grant_by("admin", "Member"), &admission).is_ok());
        // Another client's grant is refused whoever authorized.
        let mut other = grant_by("admin", "Admin");
        other.client_id = "another".into();
        assert!(matches!(
            admit(&grants, "default", &other, &admission),
            Err(InstallError::NotAllowed(Refusal::OtherClient { .. }))
        ));
    }
}
