//! `optouts [--app NAME] [--json]`: the users who told an app's bot `stop`, per account. Runs
//! of that account skip them (reported as `opted_out`) until they write `start`.

use super::{Context, Outcome};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Only this app's opt-outs.
    #[arg(long, value_name = "NAME")]
    app: Option<String>,
    /// Print JSON: an array of objects (`app`, `account`, `user_jid`, `user_name`, `at`).
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(ctx: &Context, args: &Args) -> anyhow::Result<Outcome> {
    let optouts = ctx.read_state().await?.optouts(args.app.clone()).await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&optouts)?);
    } else if optouts.is_empty() {
        outln!("nobody has opted out");
    } else {
        for o in &optouts {
            outln!(
                "{}  account {}  {} ({})  since {}",
                o.app,
                crate::output::clean(&o.account, 64),
                crate::output::clean(&o.user_jid, 128),
                crate::output::clean(&o.user_name, 128),
                o.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
        }
    }
    Ok(Outcome::Done)
}
