//! `doctor [--app NAME] [--json]`: what is wrong before the first real run. One line per check
//! with the fix: each app's configuration (credentials, the chatbot JID's form), the state
//! directory (it opens, or a scheduler holds it), each grant's scopes and whether Zoom takes it
//! now (asked by the process holding the state: a refresh when due, then `/v2/users/me`; a
//! grant Zoom refuses is recorded dead), the clock against
//! Zoom's (`Date` header; webhook signatures allow five minutes), and that Zoom's OAuth and API
//! base URLs answer. Exit 1 when a check fails.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Context, Outcome, State};
use crate::user::is_user_jid;
use crate::zoom::{Endpoints, ZoomClient};

/// The most the clock may differ from Zoom's before webhooks are at risk (they are refused
/// beyond five minutes).
const MAX_SKEW_SECS: i64 = 60;

/// Scopes one of which lets the user token look people up by email.
const LOOKUP_SCOPES: [&str; 3] = ["user:read:user:admin", "user:read:admin", "user:read:user"];

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Only this app.
    #[arg(long)]
    app: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// One check's outcome.
#[derive(Debug, Serialize)]
struct Finding {
    check: String,
    ok: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Finding {
    fn pass(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    /// Passes, with something worth changing.
    fn warn(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            ok: true,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

pub(super) async fn run(ctx: &Context, args: &Args) -> anyhow::Result<Outcome> {
    let names: Vec<String> = match &args.app {
        Some(app) => vec![app.clone()],
        None => ctx.config.app_names().map(str::to_owned).collect(),
    };
    let mut checks = vec![config_file(ctx)];
    let mut endpoints = Vec::new();
    for name in &names {
        let (check, app) = app_check(ctx, name);
        checks.push(check);
        if let Some(app) = app {
            endpoints.push((name.clone(), app));
        }
    }
    state_check(ctx, &names, &mut checks).await;
    for (name, endpoints) in endpoints {
        checks.extend(zoom_checks(&name, endpoints).await);
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for c in &checks {
            let mark = match (c.ok, &c.fix) {
                (true, None) => "ok  ",
                (true, Some(_)) => "warn",
                (false, _) => "FAIL",
            };
            outln!("{mark} {}: {}", c.check, c.detail);
            if let Some(fix) = &c.fix {
                outln!("     fix: {fix}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} checks failed", checks.len());
    }
    Ok(Outcome::Done)
}

/// Which configuration file was read, if any, and where one is looked for.
fn config_file(ctx: &Context) -> Finding {
    if let Some(path) = ctx.config.source() {
        return Finding::pass("configuration file", format!("read {}", path.display()));
    }
    let env = |k: &str| std::env::var(k).ok();
    let looked: Vec<String> = crate::config::config_candidates(env)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let detail = format!(
        "none found (looked for {}): the environment only",
        looked.join(", ")
    );
    Finding::pass("configuration file", detail)
}

/// An app's configuration: credentials present, the chatbot JID a chat JID.
fn app_check(ctx: &Context, name: &str) -> (Finding, Option<Endpoints>) {
    let check = format!("app `{name}` configuration");
    let app = match ctx.app(name) {
        Ok(app) => app,
        Err(e) => {
            let fix = "set what the error names (environment or zoomcast.toml)";
            return (Finding::fail(check, e.to_string(), fix), None);
        }
    };
    let endpoints = Endpoints {
        oauth: app.oauth_url.clone(),
        api: app.api_url.clone(),
    };
    let jid_ok = app
        .robot_jid
        .as_deref()
        .is_some_and(|jid| is_user_jid(&jid.to_lowercase()));
    let result = if jid_ok {
        Finding::pass(check, "client id, secret and chatbot JID set")
    } else {
        Finding::fail(
            check,
            "no chatbot JID, or one that is not a chat JID",
            crate::config::help::robot_jid(name),
        )
    };
    (result, Some(endpoints))
}

/// The state directory, and each grant's scopes (read from the store, or through a running
/// scheduler).
async fn state_check(ctx: &Context, names: &[String], checks: &mut Vec<Finding>) {
    let dir = ctx.state_dir.display().to_string();
    if !ctx.state_dir.exists() {
        // A new host: nothing to check but that nothing is authorized yet (doctor creates
        // nothing).
        let detail = format!("{dir}: not created yet; the first `zoomcast auth login` creates it");
        checks.push(Finding::pass("state directory", detail));
        for app in names {
            checks.push(not_authorized(app));
        }
        return;
    }
    let state = match ctx.read_state().await {
        Ok(state) => state,
        Err(e) => {
            let fix = "follow the error's advice; `zoomcast` never recreates a database by itself";
            checks.push(Finding::fail(
                "state directory",
                format!("{dir}: {e:#}"),
                fix,
            ));
            return;
        }
    };
    let how = match &state {
        State::Local(_) => "opens, private, not in use",
        State::Daemon(_, holder) => &format!("held by {}, which answers for it", holder.name()),
    };
    checks.push(Finding::pass("state directory", format!("{dir}: {how}")));
    // As the process holding the state stores them: a running scheduler has its own key.
    checks.push(match state.sealed_with().await {
        Ok(Some(id)) => Finding::pass("tokens at rest", format!("encrypted with state key {id}")),
        Ok(None) => Finding::warn(
            "tokens at rest",
            "stored in plain form: anyone who reads the state directory or a backup of it holds \
             the account's refresh tokens",
            "`zoomcast state new-key` into a file only zoomcast reads, ZOOMCAST_STATE_KEY_FILE \
             naming it, then `zoomcast state rekey` (see Operations, Tokens at rest)",
        ),
        Err(e) => Finding::pass("tokens at rest", format!("unknown ({e:#})")),
    });
    match state.grants(names.to_vec()).await {
        Ok(rows) => {
            for row in rows.iter().filter(|r| names.contains(&r.app)) {
                checks.push(grant_check(row));
            }
        }
        Err(e) => checks.push(Finding::fail("grants", format!("{e:#}"), "see the error")),
    }
    match state.check_grants(&ctx.config, names.to_vec()).await {
        Ok(answers) => checks.extend(answers.into_iter().map(zoom_grant_check)),
        Err(e) => checks.push(Finding::fail(
            "grants with Zoom",
            format!("{e:#}"),
            "see the error",
        )),
    }
}

/// An app no account has authorized.
fn not_authorized(app: &str) -> Finding {
    Finding::fail(
        format!("app `{app}` grant"),
        "not authorized",
        format!(
            "run `zoomcast auth login --app {app}` as an account admin, or install it at serve's /install"
        ),
    )
}

/// What Zoom said of a grant, asked now (a refresh when due, then `/v2/users/me`).
fn zoom_grant_check(answer: crate::delivery::GrantCheck) -> Finding {
    let check = format!(
        "app `{}` grant of account {} with Zoom",
        answer.app, answer.account
    );
    if answer.ok {
        Finding::pass(check, answer.detail)
    } else if !answer.answered {
        Finding::fail(
            check,
            answer.detail,
            "see whether this host reaches Zoom (the checks below); the grant itself was not judged",
        )
    } else {
        Finding::fail(
            check,
            answer.detail,
            format!(
                "an owner or admin of the account runs `zoomcast auth login --app {}` (or \
                 installs the app at serve's /install)",
                answer.app
            ),
        )
    }
}

fn grant_check(row: &crate::control::AppGrant) -> Finding {
    let app = &row.app;
    let Some(grant) = &row.grant else {
        return not_authorized(app);
    };
    let check = format!("app `{app}` grant of account {}", grant.account_id);
    if let Some(dead) = &grant.dead {
        return Finding::fail(
            check,
            format!(
                "dead since {}: zoom refused it ({})",
                dead.at.to_rfc3339(),
                crate::output::clean(&dead.reason, 200)
            ),
            format!("an owner or admin of the account runs `zoomcast auth login --app {app}`"),
        );
    }
    let scopes: Vec<&str> = grant.scopes.split_whitespace().collect();
    if LOOKUP_SCOPES.iter().any(|s| scopes.contains(s)) {
        Finding::pass(
            check,
            format!("by {}, scopes {}", grant.user_email, grant.scopes),
        )
    } else {
        Finding::fail(
            check,
            format!("scopes `{}` cannot look people up by email", grant.scopes),
            "add user:read:user:admin to the app's scopes (Marketplace), then authorize again",
        )
    }
}

/// Zoom's OAuth and API base URLs answer, and the clock agrees with Zoom's.
async fn zoom_checks(name: &str, endpoints: Endpoints) -> Vec<Finding> {
    let Ok(zoom) = ZoomClient::new(endpoints.clone()) else {
        return vec![Finding::fail(
            "zoom",
            "the HTTP client could not be built",
            "report this",
        )];
    };
    let mut checks = Vec::new();
    let mut zoom_time = None;
    for (what, url) in [("OAuth", &endpoints.oauth), ("API", &endpoints.api)] {
        let check = format!("app `{name}` reaches Zoom's {what} at {url}");
        match zoom.http.get(url.clone()).send().await {
            Ok(answer) => {
                zoom_time = zoom_time.or_else(|| date_of(&answer));
                checks.push(Finding::pass(
                    check,
                    format!("answered {}", answer.status()),
                ));
            }
            Err(e) => checks.push(Finding::fail(
                check,
                crate::zoom::error::Unreachable::from(e).cause,
                "check the URL, DNS, proxy and firewall (zoomcast needs outbound HTTPS)",
            )),
        }
    }
    if let Some(theirs) = zoom_time {
        let skew = (Utc::now() - theirs).num_seconds();
        let check = format!("app `{name}` clock against Zoom's");
        checks.push(if skew.abs() <= MAX_SKEW_SECS {
            Finding::pass(check, format!("{skew:+} s"))
        } else {
            Finding::fail(
                check,
                format!("{skew:+} s off Zoom's clock"),
                "synchronise the clock (NTP): webhooks more than five minutes off are refused",
            )
        });
    }
    checks
}

/// The `Date` header of an answer.
fn date_of(answer: &reqwest::Response) -> Option<DateTime<Utc>> {
    let date = answer.headers().get(reqwest::header::DATE)?.to_str().ok()?;
    DateTime::parse_from_rfc2822(date).ok().map(|d| d.to_utc())
}
