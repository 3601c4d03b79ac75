//! The delivery engine: one run of a job, as a two-stage stream.
//!
//! ```text
//! recipients ─▶ prepare ─────────────────────────────▶ channel ─▶ send
//!               journal check, JID cache or Users API,           group-commit `sending`, Chatbot
//!               render the template                              API, record the outcome
//! ```
//!
//! The two stages share `concurrency` request slots: at most that many requests to Zoom are in
//! flight for the run, lookups and sends together.
//!
//! Resolution overlaps sending, memory does not grow with the recipient count, and every
//! recipient ends `sent`, `failed` (with Zoom's code and message) or `uncertain`. A failed
//! recipient is data, not an error. Only what stops every recipient ([`Stop`]) ends the run
//! early; the run then stays unfinished, and the next run of the job resumes it: delivered
//! recipients are skipped, and sends whose outcome a crash hid follow `on_uncertain`.
//!
//! - [`engines`]: [`Engines`], the one place that builds each app's engine.
//! - [`run`](Engine): a run's lifecycle (begin or resume, record the end, prune, sweep);
//!   [`preview`]: a dry run, everything up to the send; [`amend`]: `recall` and `edit` of a
//!   sent run; `remind`: reminders to acknowledge; `outside`: calls outside any run (the bot's
//!   answers in chat, who authorized a grant).
//! - `context`: what a run's requests to Zoom share (job, sender, limiters, slots), built
//!   alone by a preview, an amend and reminders; `pipeline`: the two stages of a send, over
//!   that context and the journal; `call`: one request with its slot, pace, retries and token
//!   renewal; [`journal`]: the group commit; [`limiter`]: Zoom's limits as learned (and a
//!   job's own ceiling), [`limiters`] one per account and endpoint; `progress`: the bar and log
//!   lines.

pub mod amend;
mod call;
mod channels;
mod context;
mod engine;
pub mod engines;
pub mod journal;
pub mod limiter;
pub mod limiters;
mod notice;
mod outside;
mod pipeline;
pub mod preview;
mod progress;
mod remind;
mod run;
mod stop;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use crate::auth::AppTokens;
use crate::config::{Diagnostic, Invalid, help};
use crate::state::{Delivery, RunRecord};
pub use engine::Engine;
pub use engines::{AppEngine, Engines, GrantCheck};
pub use outside::NotAnswered;
pub use preview::Preview;
pub use progress::{LogWriter, ProgressMode};
pub use remind::asks_to_acknowledge;
pub use stop::Stop;

/// How long a cached lookup is kept at least, whatever a job's time-to-live: another job may
/// keep its answers longer than the one that sweeps.
pub const JID_CACHE_KEEP: TimeDelta = TimeDelta::days(30);

/// Who a message is from: the bot, in an account, on behalf of the authorizing user, whose
/// grant's tokens the run uses.
#[derive(Debug, Clone)]
pub struct Sender {
    /// The tokens of that account's grant (and the app's bot token).
    pub tokens: Arc<AppTokens>,
    /// The bot's JID.
    pub robot_jid: String,
    /// The account the bot posts in.
    pub account_id: String,
    /// The authorizing user's JID.
    pub user_jid: String,
}

/// A finished run: its record and its failed or uncertain recipients.
#[derive(Debug)]
pub struct RunReport {
    /// The run.
    pub record: RunRecord,
    /// Recipients that failed or are uncertain.
    pub failures: Vec<Delivery>,
}

/// What a run is for and how it treats the JID cache.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Look every recipient up again, ignoring (and refreshing) the cache.
    pub refresh_cache: bool,
    /// The schedule tick the run is for: a tick has at most one run, so a tick whose run
    /// finished is not run again and one whose run was interrupted resumes it. `None` (a run by
    /// hand) resumes the job's newest unfinished run.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Cancelled when the process shuts down: no new recipient starts, work in flight ends, the
    /// journal is flushed and the run stays interrupted, to be resumed.
    pub cancel: CancellationToken,
    /// How the run shows its progress.
    pub progress: ProgressMode,
    /// Told, every few seconds, how far the run is ("run 7: 300 sent, ..."): `run` puts it in
    /// the lock file, for the commands that find the state directory in use.
    pub announce: Option<Announce>,
    /// The run's own values of `[vars]` names the job declares (checked by
    /// [`Job::run_vars`](crate::config::Job::run_vars)). A new run keeps them; a resumed run
    /// renders with the values it started with.
    pub vars: BTreeMap<String, String>,
    /// Told the run's record once the run is recorded as started (new or resumed), before
    /// its first recipient: the HTTP API answers with its id then.
    pub on_start: Option<OnStart>,
    /// A new run even when the job has an unfinished one (`send`: each message is its own).
    pub fresh: bool,
    /// This recorded run of the job, not the job's newest unfinished one (an alert's run,
    /// recorded when its notification arrived).
    pub resume: Option<crate::state::RunId>,
}

/// Who is told a run's record when it starts ([`RunOptions::on_start`]).
#[derive(Clone)]
pub struct OnStart(pub Arc<dyn Fn(&RunRecord) + Send + Sync>);

impl std::fmt::Debug for OnStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnStart")
    }
}

/// Where a run says how far it is.
#[derive(Clone)]
pub struct Announce(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for Announce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Announce")
    }
}

/// The sender of a job's messages: the configured robot JID, and the account and user JID of
/// the grant `tokens` hold.
pub async fn sender(
    tokens: Arc<AppTokens>,
    robot_jid: Option<&str>,
    app: &str,
) -> anyhow::Result<Sender> {
    let Some(robot_jid) = robot_jid else {
        return Err(Invalid::one(
            Diagnostic::whole(
                None,
                format!("app `{app}` has no robot_jid, which sending requires"),
            )
            .help(help::robot_jid(app)),
        )
        .into());
    };
    // Zoom's Bot JIDs are chat JIDs (`v1...@xmpp.zoom.us`); anything else fails every send.
    if !crate::user::is_user_jid(&robot_jid.to_lowercase()) {
        return Err(Invalid::one(
            Diagnostic::whole(
                None,
                format!(
                    "the robot_jid of app `{app}`, `{}`, is not a chatbot's JID",
                    crate::output::clean(robot_jid, 80)
                ),
            )
            .help(help::robot_jid(app)),
        )
        .into());
    }
    let grant = tokens.grant().await?;
    if grant.user_jid.is_empty() {
        anyhow::bail!(
            "the grant of app `{app}` does not know who authorized it (the login stopped before \
             GET /v2/users/me answered); run `zoomcast auth login --app {app}` again"
        );
    }
    Ok(Sender {
        tokens,
        robot_jid: robot_jid.to_owned(),
        account_id: grant.account_id,
        user_jid: grant.user_jid,
    })
}

/// `template`'s card for `vars`. A render in a child process (see
/// [`crate::render::sandbox`]) blocks this thread until the child answers; on a multi-threaded
/// runtime the runtime is told, so that its other tasks go on meanwhile (the caller's own task
/// waits, sends included).
pub(crate) fn render_card(
    template: &crate::render::MessageTemplate,
    vars: &std::collections::BTreeMap<String, String>,
) -> Result<serde_json::Value, crate::render::RenderError> {
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if template.renders_in_child() && multi_threaded {
        tokio::task::block_in_place(|| template.render(vars))
    } else {
        template.render(vars)
    }
}
