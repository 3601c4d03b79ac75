//! `console-link [--name WHO] [--ttl DURATION] [--read-only] [--end-sessions]`: a one-time
//! sign-in link to the web console (design section 10). Whoever can run zoomcast on the host is
//! trusted already, so sign-in starts here; the state keeps only the token's hash, and its first
//! use burns it. `--end-sessions` first ends every session signed in so far.

use secrecy::ExposeSecret as _;

use super::state::InvalidText;
use super::{Context, Outcome};
use crate::state::console;

/// The longest a link may wait for its first use.
const MAX_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Who signs in with the link: every action of the session is logged with this name
    /// (default: $USER).
    #[arg(long, value_name = "WHO")]
    name: Option<String>,
    /// How long the link works if unused (at most 24h).
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = super::positive_duration)]
    ttl: std::time::Duration,
    /// The session may look but not act (run, suspend, recall).
    #[arg(long)]
    read_only: bool,
    /// First end every console session signed in so far (a stolen cookie, someone who left),
    /// then print the new link.
    #[arg(long)]
    end_sessions: bool,
}

pub(super) async fn run(ctx: &Context, args: &Args) -> anyhow::Result<Outcome> {
    let name = who(args.name.as_deref())?;
    if args.ttl > MAX_TTL {
        return Err(InvalidText(format!(
            "--ttl {} is longer than a sign-in link may wait; give 24h or less and make a new \
             link when it lapses",
            humantime::format_duration(args.ttl)
        ))
        .into());
    }
    let base = ctx.config.public_url()?;
    let ttl = chrono::Duration::from_std(args.ttl).expect("at most a day");
    let new = console::generate(&name, ttl, args.read_only);
    let (state, _answering) = ctx.write_state().await?;
    if args.end_sessions {
        state.end_console_sessions().await?;
        errln!("every console session signed in so far has ended");
    }
    state.add_console_link(new.link, new.sha256).await?;
    let path = format!("/console/login?token={}", new.token.expose_secret());
    let kind = if args.read_only { "read-only " } else { "" };
    let whole = base.is_some();
    match base {
        Some(base) => outln!("{}{path}", base.as_str().trim_end_matches('/')),
        None => outln!("{path}"),
    }
    errln!(
        "a {kind}sign-in link for `{name}`, working once within {}{}",
        humantime::format_duration(args.ttl),
        if whole {
            String::new()
        } else {
            format!(
                "; open it on the address `zoomcast serve` listens on (http://{} by default), \
                 or set public_url in zoomcast.toml to print the whole link",
                crate::server::DEFAULT_LISTEN
            )
        }
    );
    Ok(Outcome::Done)
}

/// The name the session goes by: `--name`, else `$USER`; printable, at most 64 characters.
fn who(given: Option<&str>) -> Result<String, InvalidText> {
    let name = match given {
        Some(name) => name.trim().to_owned(),
        None => std::env::var("USER").unwrap_or_else(|_| "operator".into()),
    };
    let printable = !name.is_empty() && !name.chars().any(char::is_control);
    if printable && name.chars().count() <= 64 {
        Ok(name)
    } else {
        Err(InvalidText(format!(
            "--name `{}` cannot name a console session: give 1 to 64 printable characters, \
             such as an email address",
            crate::output::clean(&name, 80)
        )))
    }
}
