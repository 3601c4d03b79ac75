//! `channels [--app NAME] [--account ID] [--json]`: the channels the authorizing user can see,
//! name and JID, as `#name` in a job or `send --to` finds them (design section 9).

use std::sync::Arc;

use super::state::State;
use super::{Context, Outcome};
use crate::config::DEFAULT_APP;
use crate::delivery::Engines;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The app whose grant is asked.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_APP)]
    app: String,
    /// The account (default: the app's home account).
    #[arg(long, value_name = "ID")]
    account: Option<String>,
    /// Print JSON: an array of objects (`name`, `jid`).
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(ctx: &Context, args: &Args) -> anyhow::Result<Outcome> {
    // Nothing to list without a grant: no state directory is created for this.
    if !ctx.state_dir.exists() {
        anyhow::bail!(
            "the state directory {} does not exist: no grant is stored there yet (`zoomcast \
             auth login` starts one), or --state (ZOOMCAST_STATE) should name another",
            ctx.state_dir.display()
        );
    }
    // A listing may refresh the grant's access token: it is the store's holder's to do, so
    // beside a standalone command holding the state this waits for it (up to --wait).
    let (state, _answering) = ctx.write_state().await?;
    let channels = match state {
        State::Local(store) => {
            let engines = Engines::new(Arc::new(ctx.config.clone()), store)?;
            engines.channels(&args.app, args.account.as_deref()).await?
        }
        daemon @ State::Daemon(..) => {
            daemon
                .channels(args.app.clone(), args.account.clone())
                .await?
        }
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&channels)?);
        return Ok(Outcome::Done);
    }
    if channels.is_empty() {
        outln!("the authorizing user sees no channel");
    }
    for c in &channels {
        outln!(
            "#{}  {}",
            crate::output::clean(&c.name, 120),
            crate::output::clean(&c.jid, 120)
        );
    }
    Ok(Outcome::Done)
}
