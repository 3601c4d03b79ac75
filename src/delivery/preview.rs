//! A dry run (`run JOB --dry-run`): everything a run would do up to the send, and nothing
//! after. It asks Zoom for a new bot token (the app's credentials, the token endpoint) and for
//! the authorizing user (the grant, the Users API, a rejected token renewed as a run renews
//! it), looks every
//! recipient up as a run would (JID cache, else the Users API; `--no-resolve` skips it), checks
//! opt-outs, and renders the first few recipients' cards exactly as Zoom would receive them.
//! No run is recorded and nothing is sent; lookups it makes are cached, as a run's are.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};

use super::call::Tries;
use super::context::{ChatCtx, variables};
use super::run::job_variables;
use super::{Engine, RunOptions, Sender, Stop};
use crate::config::Job;
use crate::config::recipients::{Address, Recipient, dedupe_key};
use crate::state::{DeliveryState, RunId};
use crate::user::ZoomUser;

/// The most recipients a preview lists by name among those that would fail.
const MAX_LISTED: usize = 20;

/// What a dry run found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Preview {
    /// Unique recipients.
    pub recipients: usize,
    /// What the lookups found; `None` when they were skipped (`--no-resolve`).
    pub resolved: Option<Resolved>,
    /// The first recipients' cards, as Zoom would receive them.
    pub messages: Vec<PreviewMessage>,
}

/// What looking the recipients up found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Resolved {
    /// Recipients a message would go to.
    pub found: usize,
    /// Recipients who told the bot `stop`.
    pub opted_out: usize,
    /// Recipients that would fail (not found, or their card cannot be made), the first
    /// [`MAX_LISTED`] with why.
    pub failing: Vec<Failing>,
    /// How many would fail in all.
    pub failing_count: usize,
}

/// A recipient a run would fail, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failing {
    /// The recipient (email or JID).
    pub recipient: String,
    /// Zoom's answer, or the render's problem.
    pub reason: String,
}

/// One recipient's card.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviewMessage {
    /// The recipient (email or JID).
    pub recipient: String,
    /// Where it would go; `None` when the recipient was not looked up.
    pub to_jid: Option<String>,
    /// Zoom's `content` object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<serde_json::Value>,
    /// Why no card could be made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What happened to one recipient in a preview.
enum Seen {
    Found(Option<PreviewMessage>),
    OptedOut,
    Failing(Failing, Option<PreviewMessage>),
}

impl Engine {
    /// A dry run of `job` as `sender`: the first `show` cards, and (with `resolve`) every
    /// recipient looked up.
    pub async fn preview(
        &self,
        job: &Job,
        sender: &Sender,
        show: usize,
        resolve: bool,
        options: RunOptions,
    ) -> anyhow::Result<Preview> {
        // Zoom itself answers, whatever is cached: a new bot token (the app's credentials, the
        // token endpoint), and the authorizing user (the grant, the Users API).
        sender.tokens.fresh_bot_token().await?;
        // As a run would ask: a rejected token renewed, a grant Zoom refused said so.
        let me = self
            .authorizing_user(&sender.tokens)
            .await
            .map_err(|e| match e {
                super::NotAnswered::Stopped(stop) => anyhow::Error::from(stop),
                refused @ super::NotAnswered::Refused(_) => anyhow::anyhow!(
                    "the Users API did not answer for the authorizing user: {refused}"
                ),
            })?;
        if me.account_id != sender.account_id {
            anyhow::bail!(
                "the grant's user is now in account {}, not {}; install the app again",
                crate::output::clean(&me.account_id, 80),
                sender.account_id
            );
        }
        let vars = job_variables(job, &options.vars, RunId(0), Utc::now());
        let ctx = self.chat(job, sender, options, RunId(0), vars);
        Ok(ctx.preview(show, resolve).await?)
    }
}

impl ChatCtx<'_> {
    async fn preview(&self, show: usize, resolve: bool) -> Result<Preview, Stop> {
        let unreadable = |p| self.unreadable(&p);
        let recipients = self.job.recipients().map_err(unreadable)?;
        let (mut unique, mut seen) = (Vec::new(), HashSet::new());
        for item in recipients {
            let r = item.map_err(unreadable)?;
            if seen.insert(dedupe_key(r.key())) {
                unique.push(r);
            }
        }
        let width = self.job.delivery.concurrency.get();
        // A plain reference moved into the `move` closure keeps the futures `Send` (a
        // scheduler's control request runs this on its runtime).
        let (this, count) = (self, unique.len());
        let mut seen: Vec<(usize, Seen)> = stream::iter(unique.into_iter().enumerate())
            .map(move |(i, r)| async move {
                Ok::<_, Stop>((i, this.look(&r, i < show, resolve).await?))
            })
            .buffer_unordered(width)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        seen.sort_by_key(|(i, _)| *i);
        let mut preview = Preview {
            recipients: count,
            resolved: resolve.then(Resolved::default),
            messages: Vec::new(),
        };
        for (_, outcome) in seen {
            let resolved = preview.resolved.as_mut();
            let message = match outcome {
                Seen::Found(message) => {
                    if let Some(r) = resolved {
                        r.found += 1;
                    }
                    message
                }
                Seen::OptedOut => {
                    if let Some(r) = resolved {
                        r.opted_out += 1;
                    }
                    None
                }
                Seen::Failing(failing, message) => {
                    if let Some(r) = resolved {
                        r.failing_count += 1;
                        if r.failing.len() < MAX_LISTED {
                            r.failing.push(failing);
                        }
                    }
                    message
                }
            };
            preview.messages.extend(message);
        }
        Ok(preview)
    }

    /// Looks `r` up (if `resolve`, or to show its card) and renders its card (if `show`).
    async fn look(&self, r: &Recipient, show: bool, resolve: bool) -> Result<Seen, Stop> {
        let key = r.key().to_owned();
        let looked_up = matches!(r.address, Address::Email(_) | Address::ChannelName(_));
        if looked_up && !resolve {
            // Not looked up: no JID and no profile, and a card only if one is shown.
            let card = show.then(|| self.card(r, None, &ZoomUser::default()));
            return Ok(Seen::Found(card));
        }
        let user = match self.recipient(&r.address, &mut Tries::default()).await? {
            Ok(user) => user,
            Err(state) => {
                let reason = match state {
                    DeliveryState::Failed { message, .. } => message,
                    other => other.name().to_owned(),
                };
                let failing = Failing {
                    recipient: key,
                    reason,
                };
                return Ok(Seen::Failing(failing, None));
            }
        };
        let person = r.address.is_person();
        let optouts = &self.engine.optouts;
        if resolve
            && person
            && optouts.opted_out(&self.job.app, &self.sender.account_id, &user.jid)?
        {
            return Ok(Seen::OptedOut);
        }
        let message = show.then(|| self.card(r, Some(user.jid.clone()), &user));
        match message {
            Some(m) if m.error.is_some() => {
                let failing = Failing {
                    recipient: key,
                    reason: m.error.clone().unwrap_or_default(),
                };
                Ok(Seen::Failing(failing, Some(m)))
            }
            message => Ok(Seen::Found(message)),
        }
    }

    /// `r`'s card, or why there is none.
    fn card(&self, r: &Recipient, to_jid: Option<String>, user: &ZoomUser) -> PreviewMessage {
        let vars: BTreeMap<String, String> = variables(&self.job_vars, r, user);
        let rendered = super::render_card(&self.job.template, &vars);
        PreviewMessage {
            recipient: r.key().to_owned(),
            to_jid,
            error: rendered.as_ref().err().map(ToString::to_string),
            content: rendered.ok(),
        }
    }
}
