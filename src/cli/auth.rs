//! `auth login`, `auth status`, `auth logout`.

use std::io::BufRead;
use std::time::Duration;

use anyhow::bail;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::state::{Refused, StoredBy};
use super::{Context, InvalidText, Outcome};
use crate::auth::device;
use crate::auth::login::{self, Pkce};
use crate::auth::{AppClients, OAuthClient, TokenError};
use crate::config::DEFAULT_APP;
use crate::control::{AppGrant, GrantView};
use crate::state::{Grant, UNIDENTIFIED};

/// How long `auth login` waits for the redirect (codes live 5 minutes at Zoom).
const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Subcommand)]
pub(super) enum AuthCommand {
    /// Authorize once as a person (authorization code + state + PKCE).
    Login {
        /// The app to authorize.
        #[arg(long, default_value = DEFAULT_APP)]
        app: String,
        /// Do not try to open a browser.
        #[arg(long)]
        no_browser: bool,
        /// Listen on this port (replaces the redirect URI's port; 0 picks a free one).
        #[arg(long)]
        port: Option<u16>,
        /// Authorize from another device instead (Zoom's device authorization grant): print
        /// a URL and a code to approve on any device, and wait; no browser and no redirect
        /// needed here.
        #[arg(long, conflicts_with_all = ["no_browser", "port"])]
        device: bool,
    },
    /// Grants held, expiries, scopes; never prints a secret.
    Status {
        /// Only this app.
        #[arg(long)]
        app: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke at Zoom and delete the stored grant.
    Logout {
        /// The app.
        #[arg(long, default_value = DEFAULT_APP)]
        app: String,
        /// The account whose grant goes (needed when the app is installed by several).
        #[arg(long)]
        account: Option<String>,
    },
}

pub(super) async fn run(ctx: &Context, command: AuthCommand) -> anyhow::Result<Outcome> {
    match command {
        AuthCommand::Login { app, device, .. } if device => device_login(ctx, &app).await,
        AuthCommand::Login {
            app,
            no_browser,
            port,
            ..
        } => login(ctx, &app, no_browser, port).await,
        AuthCommand::Status { app, json } => status(ctx, app.as_deref(), json).await,
        AuthCommand::Logout { app, account } => logout(ctx, &app, account.as_deref()).await,
    }
}

/// Lines typed or pasted on standard input. A plain thread, because a blocking read of
/// stdin cannot be cancelled and would hold up the runtime's shutdown; it ends with the
/// process.
fn pasted_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

async fn login(
    ctx: &Context,
    app_name: &str,
    no_browser: bool,
    port: Option<u16>,
) -> anyhow::Result<Outcome> {
    let app = ctx.app(app_name)?;
    // Opened first: a state held by anything but a scheduler fails before anyone approves.
    let (held, _answering) = ctx.write_state().await?;
    let (zoom, oauth) = AppClients::endpoints(&app)?;
    let mut redirect = app.redirect_uri.clone();
    if let Some(port) = port {
        redirect
            .set_port(Some(port))
            .map_err(|()| anyhow::anyhow!("the redirect URI {redirect} cannot take a port"))?;
    }
    let host = match redirect.host_str() {
        Some("localhost") | None => "127.0.0.1".to_owned(),
        Some(host) => host.trim_matches(['[', ']']).to_owned(),
    };
    let port = redirect.port_or_known_default().unwrap_or(80);
    let listener = match TcpListener::bind((host.as_str(), port)).await {
        Ok(listener) => {
            let bound = listener.local_addr()?.port();
            let _ = redirect.set_port(Some(bound));
            Some(listener)
        }
        Err(e) => {
            errln!(
                "cannot listen for the redirect on {host}:{port} ({e}); paste the redirected URL \
                 here instead (or free the port, or pick another with --port)"
            );
            None
        }
    };

    let pkce = Pkce::new();
    let state = login::new_state();
    let url = oauth.authorize_url(&redirect, &state, &pkce.challenge);
    outln!("{url}");
    errln!(
        "Open the URL above as an account admin and approve the app. zoomcast waits for the redirect to \
         {redirect}.\nIf the browser runs on another machine, paste the URL it was redirected to (or the code) here."
    );
    if !no_browser && !open_browser(url.as_str()) {
        errln!("(could not open a browser; open the URL by hand)");
    }
    let code = tokio::time::timeout(
        LOGIN_TIMEOUT,
        login::wait_for_code(listener, redirect.path(), &state, pasted_lines()),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!(
            "no authorization arrived within 10 minutes; run `zoomcast auth login` again"
        )
    })??;
    let grant =
        login::prepare_login(&oauth, &zoom, &app.name, &code, &redirect, &pkce.verifier).await?;
    let stored = held.store_grant(&app.name, &grant, &ctx.keys).await;
    let (stored, by) = revoked_if_refused(stored, &oauth, &grant).await?;
    say_authorized(ctx, &app.name, &stored, by);
    Ok(Outcome::Done)
}

/// `auth login --device`: shows where to approve, and waits for the approval.
async fn device_login(ctx: &Context, app_name: &str) -> anyhow::Result<Outcome> {
    let app = ctx.app(app_name)?;
    let (state, _answering) = ctx.write_state().await?;
    let (zoom, oauth) = AppClients::endpoints(&app)?;
    let grant = device::authorize(&oauth, &zoom, &app.name, |code| {
        let url = if code.verification_uri_complete.is_empty() {
            &code.verification_uri
        } else {
            &code.verification_uri_complete
        };
        outln!("{url}");
        errln!(
            "On any device, open {} as an account admin, enter the code {} and approve the \
             app (the code expires in {}). zoomcast waits for the approval.",
            code.verification_uri,
            code.user_code,
            humantime::format_duration(Duration::from_secs(
                u64::try_from(code.expires_in).unwrap_or(0)
            ))
        );
    })
    .await?;
    let stored = state.store_grant(&app.name, &grant, &ctx.keys).await;
    let (stored, by) = revoked_if_refused(stored, &oauth, &grant).await?;
    say_authorized(ctx, &app.name, &stored, by);
    Ok(Outcome::Done)
}

/// A grant that was refused ([`Refused`]) is revoked at Zoom at once: nothing will hold it.
async fn revoked_if_refused<T>(
    stored: anyhow::Result<T>,
    oauth: &OAuthClient,
    grant: &Grant,
) -> anyhow::Result<T> {
    if let Err(e) = &stored
        && e.is::<Refused>()
    {
        match oauth.revoke(&grant.access.access).await {
            Ok(()) => errln!("the new grant was not stored, and it is revoked at zoom"),
            Err(revoking) => errln!("the new grant was not stored; revoking it failed: {revoking}"),
        }
    }
    stored
}

fn say_authorized(ctx: &Context, app: &str, grant: &GrantView, by: StoredBy) {
    let by = match by {
        StoredBy::ThisProcess => "",
        StoredBy::Holder(holder) => &format!(" by {}, which uses it from now on", holder.name()),
    };
    errln!(
        "authorized app `{app}` as {} (user {}, account {}); the grant is stored in {}{by}",
        grant.user_email,
        grant.user_id,
        grant.account_id,
        ctx.state_dir.display()
    );
}

async fn status(ctx: &Context, only: Option<&str>, as_json: bool) -> anyhow::Result<Outcome> {
    let apps = ctx.config.app_names().map(str::to_owned).collect();
    let mut held = ctx.read_state().await?.grants(apps).await?;
    if let Some(only) = only {
        held.retain(|row| row.app == only);
        if held.is_empty() {
            bail!("no app called `{only}` is configured or authorized");
        }
    }
    let now = Utc::now();
    if as_json {
        let rows: Vec<_> = held.iter().map(|row| status_json(row, now)).collect();
        outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for row in &held {
            print_status(row, now);
        }
    }
    // A health check reads the exit code: an app without a working grant cannot send.
    let missing: Vec<&str> = held
        .iter()
        .filter(|row| row.grant.is_none())
        .map(|row| row.app.as_str())
        .collect();
    if !missing.is_empty() {
        bail!("not authorized: app {}", missing.join(", "));
    }
    let dead: Vec<String> = held
        .iter()
        .filter_map(|row| {
            let grant = row.grant.as_ref().filter(|g| g.dead.is_some())?;
            Some(format!("app `{}` in account {}", row.app, grant.account_id))
        })
        .collect();
    if !dead.is_empty() {
        bail!(
            "zoom refused the grant of {}; authorize again (`zoomcast auth login`)",
            dead.join(", ")
        );
    }
    Ok(Outcome::Done)
}

/// One app's status as JSON: who, when, expiries; never a secret.
fn status_json(row: &AppGrant, now: DateTime<Utc>) -> serde_json::Value {
    let (app, grant) = (&row.app, row.grant.as_ref());
    json!({
        "app": app,
        "authorized": grant.is_some(),
        "user_email": grant.map(|g| &g.user_email),
        "user_id": grant.map(|g| &g.user_id),
        "user_jid": grant.map(|g| &g.user_jid),
        "account_id": grant.map(|g| &g.account_id),
        "scopes": grant.map(|g| g.scopes.split_whitespace().collect::<Vec<_>>()),
        "authorized_at": grant.map(|g| g.authorized_at.to_rfc3339()),
        "refreshed_at": grant.map(|g| g.refreshed_at.to_rfc3339()),
        "access_token_expires_at": grant.map(|g| g.access_expires_at.to_rfc3339()),
        "access_token_valid": grant.map(|g| g.dead.is_none() && g.access_expires_at > now),
        "bot_token_expires_at": row.bot_expires_at.map(|t| t.to_rfc3339()),
        "home": grant.map(|g| g.home),
        "role": grant.map(|g| &g.role).filter(|r| !r.is_empty()),
        "client_id": grant.map(|g| &g.client_id).filter(|c| !c.is_empty()),
        "dead": grant.and_then(|g| g.dead.as_ref()).map(|d| json!({
            "since": d.at.to_rfc3339(),
            "reason": d.reason,
        })),
    })
}

/// One app's status for a person.
fn print_status(row: &AppGrant, now: DateTime<Utc>) {
    let app = &row.app;
    let Some(g) = &row.grant else {
        outln!("{app}: not authorized (run `zoomcast auth login --app {app}`)");
        return;
    };
    let access = if g.access_expires_at > now {
        "valid"
    } else {
        "expired (refreshed on next use)"
    };
    outln!(
        "{app}: authorized by {} (user {}, account {})",
        g.user_email,
        g.user_id,
        g.account_id
    );
    if g.home {
        outln!("  home account:  yes (jobs that name no account send here)");
    }
    if let Some(dead) = &g.dead {
        outln!(
            "  DEAD since {}: zoom refused the grant ({}); run `zoomcast auth login --app {app}`",
            dead.at.to_rfc3339(),
            crate::output::clean(&dead.reason, 200)
        );
        return;
    }
    outln!("  scopes:        {}", g.scopes);
    outln!("  authorized at: {}", g.authorized_at.to_rfc3339());
    outln!("  refreshed at:  {}", g.refreshed_at.to_rfc3339());
    outln!(
        "  access token:  {access} until {}",
        g.access_expires_at.to_rfc3339()
    );
    if let Some(bot) = row.bot_expires_at {
        outln!("  bot token:     cached until {}", bot.to_rfc3339());
    }
}

async fn logout(ctx: &Context, app_name: &str, account: Option<&str>) -> anyhow::Result<Outcome> {
    let app = ctx.app(app_name)?;
    let store = ctx.own_store(ctx.keys.clone(), "auth logout").await?;
    let grants = store.grants()?;
    let held = grants.accounts(&app.name)?;
    let Some(account) = logout_account(&app.name, &held, account)? else {
        errln!("app `{}` holds no grant; nothing to do", app.name);
        return Ok(Outcome::Done);
    };
    let clients = AppClients::new(&app, grants.clone())?;
    let tokens = clients.tokens(&account);
    let revoked = match tokens.user_token().await {
        Ok(token) => clients
            .oauth
            .revoke(&token.access)
            .await
            .map_err(TokenError::from),
        Err(e) => Err(e),
    };
    let whose = whose(&app.name, &account);
    match revoked {
        Ok(()) => errln!("revoked {whose} at zoom"),
        // Zoom could not be asked: keep the grant, so that logging out can be tried again.
        Err(TokenError::OAuth(e)) if e.is_transient() => {
            bail!(
                "could not reach zoom to revoke {whose} ({e}); it is kept, run `zoomcast auth logout` again"
            )
        }
        Err(e) => errln!("{whose} is already unusable at zoom ({e}); deleting it"),
    }
    tokens.forget().await?;
    // Logged out at the shell, on purpose: jobs that name no account follow the account left.
    grants.forget_home(&app.name, &account).await?;
    errln!("deleted {whose}");
    Ok(Outcome::Done)
}

/// "the grant of app `A`" (in account X, when known).
fn whose(app: &str, account: &str) -> String {
    if account == UNIDENTIFIED {
        format!("the grant of app `{app}`")
    } else {
        format!("the grant of app `{app}` in account {account}")
    }
}

/// Which grant `auth logout` removes: the named account's, or the app's only one. `None` when
/// the app holds none.
fn logout_account(
    app: &str,
    held: &[String],
    named: Option<&str>,
) -> Result<Option<String>, InvalidText> {
    let listed = || {
        held.iter()
            .map(|a| {
                if a == UNIDENTIFIED {
                    "\"\" (an earlier release's grant whose account is unknown: --account \"\")"
                } else {
                    a
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (named, held) {
        (Some(account), _) if held.iter().any(|a| a == account) => Ok(Some(account.to_owned())),
        (Some(account), []) => Err(InvalidText(format!(
            "app `{app}` holds no grant of account {}; it holds none at all",
            crate::output::clean(account, 80)
        ))),
        (Some(account), _) => Err(InvalidText(format!(
            "app `{app}` holds no grant of account {}; it holds grants of: {}",
            crate::output::clean(account, 80),
            listed()
        ))),
        (None, []) => Ok(None),
        (None, [one]) => Ok(Some(one.clone())),
        (None, _) => Err(InvalidText(format!(
            "app `{app}` is installed by several accounts ({}); name one with --account",
            listed()
        ))),
    }
}

/// The variables that hold a secret or name a file of one: a browser started by `auth login`
/// gets none of them.
const SECRET_VARS: [&str; 5] = [
    "ZOOM_CLIENT_SECRET",
    "ZOOM_WEBHOOK_SECRET",
    "ZOOMCAST_STATE_KEY",
    "ZOOMCAST_NEW_STATE_KEY",
    "CREDENTIALS_DIRECTORY",
];

/// Opens `url` with the desktop's opener (the `open` crate's launchers, in its order: the first
/// one found), in an environment without secrets: the secret variables and their `_FILE`
/// forms are removed, and so is any variable whose value holds a configured secret (one a
/// `${VAR}` of zoomcast.toml reads). The opener and the browser it starts are other programs,
/// which have no need of them. Whether one started.
fn open_browser(url: &str) -> bool {
    for mut launcher in open::commands(url) {
        for (name, value) in std::env::vars_os() {
            let name_text = name.to_string_lossy();
            let secret_name = SECRET_VARS
                .iter()
                .any(|var| name_text == *var || name_text == format!("{var}_FILE"));
            if secret_name || crate::output::secret_in(&value.to_string_lossy()).is_some() {
                launcher.env_remove(&name);
            }
        }
        let started = launcher
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Ok(mut child) = started {
            // Reaped when it ends, which may be after zoomcast does.
            std::thread::spawn(move || child.wait());
            return true;
        }
    }
    false
}
