//! `send [--app NAME] [--account ID] --to ADDRESS... [--head TEXT] [--json] (TEXT | -)`: one
//! message without a job file, journaled as a run of the job `send` (design section 9), with
//! the exit codes of `run`. Beside a running scheduler or `serve`, that process sends it.

use std::io::Read as _;
use std::sync::Arc;

use anyhow::Context as _;

use super::state::{InvalidText, State};
use super::{Context, Outcome};
use crate::config::DEFAULT_APP;
use crate::config::adhoc::{AdHoc, DEFAULT_HEAD};
use crate::config::vars::MAX_RUN_VALUE;
use crate::delivery::{Engines, RunOptions, RunReport};
use crate::report;
use crate::shutdown::Signals;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The app to send as.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_APP)]
    app: String,
    /// The account to send in (default: the app's home account).
    #[arg(long, value_name = "ID")]
    account: Option<String>,
    /// Who gets it: an email, a user JID, a channel JID or #channel-name (repeatable, or
    /// several separated by commas).
    #[arg(long, value_name = "ADDRESS", required = true, value_delimiter = ',')]
    to: Vec<String>,
    /// The card's first line.
    #[arg(long, value_name = "TEXT", default_value = DEFAULT_HEAD)]
    head: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The message, or `-` to read it from standard input.
    text: String,
}

pub(super) async fn run(ctx: &Context, args: &Args) -> anyhow::Result<Outcome> {
    let adhoc = AdHoc {
        app: args.app.clone(),
        account: args.account.clone(),
        to: args.to.clone(),
        head: args.head.clone(),
        text: message_text(&args.text)?,
    };
    // Checked here first: a mistake is exit 2 before the state is touched.
    let (job, vars) = adhoc.job(&ctx.state_dir.join("send.toml"), &ctx.config)?;
    let (state, _answering) = ctx.write_state().await?;
    let report = match state {
        State::Local(store) => {
            store.announce("sending a message");
            let engines = Engines::new(Arc::new(ctx.config.clone()), store)?;
            let signals = Signals::listen()
                .context("listening for signals")?
                .cancel_on_signal();
            let options = RunOptions {
                vars,
                fresh: true,
                cancel: signals.token(),
                ..RunOptions::default()
            };
            engines.run(&job, options).await?
        }
        daemon @ State::Daemon(..) => {
            errln!(
                "{} holds the state directory: sending through it",
                daemon.holder().name()
            );
            daemon.send(adhoc).await?
        }
    };
    finish(&report, args.json)
}

/// The message: the argument, or standard input for `-` (without its final line break).
fn message_text(arg: &str) -> anyhow::Result<String> {
    let text = if arg == "-" {
        let mut read = String::new();
        std::io::stdin()
            .take(MAX_RUN_VALUE as u64 + 1)
            .read_to_string(&mut read)
            .context("reading the message from standard input")?;
        read.strip_suffix('\n').map(str::to_owned).unwrap_or(read)
    } else {
        arg.to_owned()
    };
    if text.len() > MAX_RUN_VALUE {
        return Err(InvalidText(format!(
            "the message is longer than {MAX_RUN_VALUE} bytes; send a shorter one"
        ))
        .into());
    }
    if text.trim().is_empty() {
        return Err(InvalidText("the message is empty; give TEXT, or - to read it".into()).into());
    }
    Ok(text)
}

/// Prints the report; exit 3 when some recipients failed.
fn finish(report: &RunReport, json: bool) -> anyhow::Result<Outcome> {
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&report::run_report_json(report))?
        );
    } else {
        out!("{}", report::run_report_text(report));
    }
    Ok(if report.failures.is_empty() {
        Outcome::Done
    } else {
        Outcome::SomeRecipientsFailed
    })
}
