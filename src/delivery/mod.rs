//! The delivery engine: one run of a job. Every recipient is resolved (email to JID with the
//! user token), rendered, and sent (with the bot token), with bounded concurrency; each
//! outcome is recorded in the `deliveries` tree under the run's id.
//!
//! A failed recipient is data, not an error: it ends as `Failed` with Zoom's code and message
//! and the run goes on. Only what stops every recipient (the grant revoked, the state store
//! failing) ends the run early, as an error, with the run recorded as aborted.

pub mod backoff;
pub mod pacer;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use futures::{StreamExt, stream};

use crate::auth::token::{BotToken, UserToken};
use crate::auth::{AppTokens, TokenError};
use crate::config::recipients::Recipient;
use crate::config::{Diagnostic, Invalid, Job};
use crate::state::runs::Counts;
use crate::state::{Deliveries, Delivery, DeliveryState, RunRecord, RunStatus, Runs};
use crate::zoom::chat::Content;
use crate::zoom::{ChatMessage, Disposition, ZoomClient, ZoomError};
use pacer::Pacer;

/// Who a message is from: the bot, in an account, on behalf of the authorizing user.
#[derive(Debug, Clone)]
pub struct Sender {
    /// The bot's JID.
    pub robot_jid: String,
    /// The account the bot posts in.
    pub account_id: String,
    /// The authorizing user's JID.
    pub user_jid: String,
}

/// A finished (or aborted) run: its record and its failed recipients.
#[derive(Debug)]
pub struct RunReport {
    /// The run.
    pub record: RunRecord,
    /// Recipients that failed or are uncertain.
    pub failures: Vec<Delivery>,
}

/// What one run needs.
pub struct Engine {
    /// The Zoom client.
    pub zoom: ZoomClient,
    /// The app's tokens.
    pub tokens: Arc<AppTokens>,
    /// The `runs` tree.
    pub runs: Runs,
    /// The `deliveries` tree.
    pub deliveries: Deliveries,
}

/// What stops a whole run (as opposed to failing one recipient).
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    /// No token could be had (no grant, grant revoked, token endpoint down).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Zoom kept answering 429, 5xx or nothing, for every attempt.
    #[error(
        "zoom kept failing after {attempts} attempts (last: {last}); the run stopped, and \
         running the job again later picks up where it stopped"
    )]
    Unreachable {
        /// Attempts made for the last recipient.
        attempts: u32,
        /// Zoom's last answer.
        last: ZoomError,
    },
    /// A token Zoom rejected was renewed, and Zoom rejected the new one too: the app itself
    /// is set up wrong, and retrying would only burn refresh-token rotations.
    #[error("zoom rejected a freshly renewed {kind} token of app `{app}` (last: {last}); {help}")]
    RejectedAfterRenewal {
        /// `user` or `chatbot`.
        kind: &'static str,
        /// The app.
        app: String,
        /// Zoom's answer.
        last: ZoomError,
        /// What to check.
        help: &'static str,
    },
}

/// Which token a call needs; lets one retry loop serve both APIs.
trait TokenKind {
    type Token;
    /// The token's name in messages.
    const NAME: &'static str;
    /// What to check when Zoom rejects even a fresh token of this kind.
    const HELP: &'static str;
    async fn get(tokens: &AppTokens) -> Result<Self::Token, TokenError>;
    async fn renew(tokens: &AppTokens, rejected: &Self::Token) -> Result<Self::Token, TokenError>;
}

struct User;
struct Bot;

impl TokenKind for User {
    type Token = UserToken;
    const NAME: &'static str = "user";
    const HELP: &'static str = "the app must be an admin-managed (account-level) app with the \
        user:read:user:admin scope, authorized by an account admin; fix the app in the Zoom \
        Marketplace, then run `zoomcast auth login` again";
    async fn get(tokens: &AppTokens) -> Result<UserToken, TokenError> {
        tokens.user_token().await
    }
    async fn renew(tokens: &AppTokens, rejected: &UserToken) -> Result<UserToken, TokenError> {
        tokens.renew_user_token(rejected).await
    }
}

impl TokenKind for Bot {
    type Token = BotToken;
    const NAME: &'static str = "chatbot";
    const HELP: &'static str = "check that the app has the Chatbot feature with the imchat:bot \
        scope and that it is installed (authorized) in this account";
    async fn get(tokens: &AppTokens) -> Result<BotToken, TokenError> {
        tokens.bot_token().await
    }
    async fn renew(tokens: &AppTokens, rejected: &BotToken) -> Result<BotToken, TokenError> {
        tokens.renew_bot_token(rejected).await
    }
}

/// The sender of a job's messages: the configured robot JID, the configured account (or the
/// grant's), and the grant's user JID.
pub async fn sender(
    tokens: &AppTokens,
    robot_jid: Option<&str>,
    account_id: Option<&str>,
    app: &str,
) -> anyhow::Result<Sender> {
    let Some(robot_jid) = robot_jid else {
        let help = if app == crate::config::DEFAULT_APP {
            "set ZOOM_ROBOT_JID (Marketplace: your app, Features, Chatbot, \"Bot JID\")".to_owned()
        } else {
            format!("set robot_jid in the [apps.{app}] table of zoomcast.toml")
        };
        return Err(Invalid::one(
            Diagnostic::whole(
                None,
                format!("app `{app}` has no robot_jid, which sending requires"),
            )
            .help(help),
        )
        .into());
    };
    let grant = tokens.grant().await?;
    if grant.user_jid.is_empty() {
        anyhow::bail!(
            "the grant of app `{app}` does not know who authorized it (the login stopped before \
             GET /v2/users/me answered); run `zoomcast auth login --app {app}` again"
        );
    }
    Ok(Sender {
        robot_jid: robot_jid.to_owned(),
        account_id: account_id.map_or(grant.account_id, str::to_owned),
        user_jid: grant.user_jid,
    })
}

impl Engine {
    /// Runs `job` to the end: every recipient ends sent or failed, or the run aborts.
    pub async fn run(&self, job: &Job, sender: &Sender) -> anyhow::Result<RunReport> {
        let mut record = self.runs.start(&job.name, &job.app).await?;
        let now = Utc::now();
        for r in &job.recipients {
            self.deliveries.set(
                record.id,
                &delivery(&r.email, DeliveryState::Pending, 0, now),
            )?;
        }
        self.deliveries.flush().await?;
        record.counts.total = job.recipients.len() as u64;
        let pacer = job.delivery.rate_per_second.map(Pacer::new);
        let ctx = RunCtx {
            engine: self,
            job,
            sender,
            pacer: pacer.as_ref(),
            run: record.id,
        };
        let mut outcomes = stream::iter(&job.recipients)
            .map(|r| ctx.deliver(r))
            .buffer_unordered(job.delivery.concurrency.get());
        let mut aborted = None;
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                Ok(state) => count(&mut record.counts, &state),
                Err(e) => {
                    aborted = Some(e);
                    break;
                }
            }
        }
        drop(outcomes);
        self.deliveries.flush().await?;
        record.finished_at = Some(Utc::now());
        record.status = match &aborted {
            Some(e) => RunStatus::Aborted(format!("{e:#}")),
            None if record.counts.failed + record.counts.uncertain > 0 => RunStatus::PartlyFailed,
            None => RunStatus::Succeeded,
        };
        self.runs.put(&record).await?;
        if let Some(e) = aborted {
            return Err(e.context(format!("run {} of job `{}` stopped", record.id, job.name)));
        }
        let failures = self
            .deliveries
            .list(record.id)?
            .into_iter()
            .filter(|d| {
                matches!(
                    d.state,
                    DeliveryState::Failed { .. } | DeliveryState::Uncertain
                )
            })
            .collect();
        Ok(RunReport { record, failures })
    }
}

fn delivery(
    email: &str,
    state: DeliveryState,
    attempts: u32,
    at: chrono::DateTime<Utc>,
) -> Delivery {
    Delivery {
        email: email.to_owned(),
        state,
        attempts,
        updated_at: at,
    }
}

fn count(counts: &mut Counts, state: &DeliveryState) {
    match state {
        DeliveryState::Sent { .. } => counts.sent += 1,
        DeliveryState::Failed { .. } => counts.failed += 1,
        DeliveryState::Uncertain => counts.uncertain += 1,
        DeliveryState::Pending | DeliveryState::Sending => {}
    }
}

fn failed(e: &ZoomError) -> DeliveryState {
    DeliveryState::Failed {
        code: e.code(),
        message: e.to_string(),
    }
}

struct RunCtx<'a> {
    engine: &'a Engine,
    job: &'a Job,
    sender: &'a Sender,
    pacer: Option<&'a Pacer>,
    run: crate::state::RunId,
}

impl RunCtx<'_> {
    /// Resolves, renders and sends one recipient, and records the outcome.
    async fn deliver(&self, r: &Recipient) -> anyhow::Result<DeliveryState> {
        let mut attempts = 0;
        let zoom = &self.engine.zoom;
        let state = match self
            .call::<User, _>(&mut attempts, async |t| zoom.get_user(t, &r.email).await)
            .await?
        {
            Err(e) => failed(&e),
            Ok(user) => match self.job.template.render(&variables(r, &user)) {
                Err(message) => DeliveryState::Failed {
                    code: None,
                    message,
                },
                Ok((head, body)) => {
                    let message = ChatMessage {
                        robot_jid: self.sender.robot_jid.clone(),
                        to_jid: user.jid,
                        account_id: self.sender.account_id.clone(),
                        user_jid: self.sender.user_jid.clone(),
                        content: Content::text(head, body),
                        is_markdown_support: self.job.markdown,
                    };
                    self.record(r, DeliveryState::Sending, attempts)?;
                    self.engine.deliveries.flush().await?;
                    if let Some(pacer) = self.pacer {
                        pacer.wait().await;
                    }
                    match self
                        .call::<Bot, _>(&mut attempts, async |t| {
                            zoom.send_message(t, &message).await
                        })
                        .await?
                    {
                        Ok(sent) => DeliveryState::Sent {
                            message_id: sent.message_id,
                        },
                        Err(e) => failed(&e),
                    }
                }
            },
        };
        self.record(r, state.clone(), attempts)?;
        Ok(state)
    }

    fn record(&self, r: &Recipient, state: DeliveryState, attempts: u32) -> anyhow::Result<()> {
        self.engine
            .deliveries
            .set(self.run, &delivery(&r.email, state, attempts, Utc::now()))
            .context("recording a delivery")
    }

    /// One API call with its token: a rejected token is renewed once; 429, 5xx and network
    /// errors are retried with backoff up to `max_attempts`. The outer error stops the run
    /// (see [`Stop`]); the inner one is this recipient's permanent failure.
    async fn call<K: TokenKind, T>(
        &self,
        attempts: &mut u32,
        op: impl AsyncFn(&K::Token) -> Result<T, ZoomError>,
    ) -> Result<Result<T, ZoomError>, Stop> {
        let tokens = &self.engine.tokens;
        let mut token = K::get(tokens).await?;
        let (mut renewed, mut tries) = (false, 0);
        loop {
            *attempts += 1;
            tries += 1;
            let error = match op(&token).await {
                Ok(value) => return Ok(Ok(value)),
                Err(e) => e,
            };
            match error.disposition() {
                Disposition::RenewToken if !renewed => {
                    renewed = true;
                    tries -= 1;
                    token = K::renew(tokens, &token).await?;
                }
                Disposition::RenewToken => {
                    return Err(Stop::RejectedAfterRenewal {
                        kind: K::NAME,
                        app: tokens.app().to_owned(),
                        last: error,
                        help: K::HELP,
                    });
                }
                Disposition::Retry { after } if tries < self.job.delivery.max_attempts.get() => {
                    let wait = backoff::backoff(tries, after, &mut rand::thread_rng());
                    tracing::debug!("retrying in {wait:?} after: {error}");
                    tokio::time::sleep(wait).await;
                }
                Disposition::Retry { .. } => {
                    return Err(Stop::Unreachable {
                        attempts: tries,
                        last: error,
                    });
                }
                Disposition::Permanent => return Ok(Err(error)),
            }
        }
    }
}

/// The template variables of one recipient: CSV columns, then Zoom's fields.
fn variables(r: &Recipient, user: &crate::zoom::ZoomUser) -> BTreeMap<String, String> {
    let mut vars = r.columns.clone();
    vars.insert("email".into(), r.email.clone());
    vars.insert("first_name".into(), user.first_name.clone());
    vars.insert("last_name".into(), user.last_name.clone());
    let display = if user.display_name.is_empty() {
        format!("{} {}", user.first_name, user.last_name)
            .trim()
            .to_owned()
    } else {
        user.display_name.clone()
    };
    vars.insert("display_name".into(), display);
    vars
}
