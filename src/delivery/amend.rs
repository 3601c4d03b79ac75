//! `recall` and `edit`: change what a run already sent. `recall` deletes each message the run
//! sent (`DELETE /v2/im/chat/messages/{id}`); `edit` replaces each with the job's card as it
//! renders now (`PUT`). Each change is recorded on the recipient's delivery as it is made
//! (`recalled_at`, `edited`), so an interrupted recall or edit is finished by running it again,
//! and running either twice changes nothing the second time: a recalled message is not deleted
//! again, and an edit whose card is the one last sent (same digest) is not sent again. Requests
//! are paced by the account's send limiter, as sends are.

use std::collections::HashMap;

use chrono::Utc;
use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::call::{Bot, Tries, call};
use super::context::{ChatCtx, variables};
use super::preview::Failing;
use super::run::job_variables;
use super::{Engine, RunOptions, Sender, Stop};
use crate::config::Job;
use crate::config::recipients::{Address, Recipient};
use crate::state::{Delivery, DeliveryState, Edited, RunId, RunRecord};
use crate::zoom::chat::MessageOwner;
use crate::zoom::error::INVALID_MESSAGE_ID;

/// What to do to a run's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amend {
    /// Delete them.
    Recall,
    /// Replace their cards with the job's as it renders now.
    Edit,
}

/// What a recall or an edit did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AmendReport {
    /// The run.
    pub run: u64,
    /// Messages changed now.
    pub changed: usize,
    /// Messages already as asked (recalled before, or edited to this card before).
    pub unchanged: usize,
    /// Recipients with no message to change (not sent, or, for an edit, recalled).
    pub skipped: usize,
    /// Messages that could not be changed, and why.
    pub failed: Vec<Failing>,
}

/// Why a run cannot be recalled or edited.
#[derive(Debug, thiserror::Error)]
pub enum NotAmendable {
    /// No such run.
    #[error("there is no run {0}; `zoomcast history JOB` lists the job's runs")]
    NoRun(u64),
    /// The job has never run.
    #[error("job `{0}` has no runs yet")]
    NoRuns(String),
    /// The run is another job's.
    #[error("run {run} is of job `{of}`, not `{job}`")]
    OtherJob {
        /// The run.
        run: u64,
        /// Its job.
        of: String,
        /// The job asked for.
        job: String,
    },
    /// The run's per-recipient details were pruned or deleted.
    #[error(
        "run {0} no longer keeps its per-recipient details (`keep_details`, or the account \
         removed the app), so zoomcast does not know which messages it sent; nothing was changed"
    )]
    NoDetails(u64),
    /// The run has not finished: a later run of the job would resume it.
    #[error(
        "run {0} has not finished (running, interrupted or stopped); run the job to finish it, \
         then recall or edit it"
    )]
    Unfinished(u64),
    /// The run sent in another account than the job's sender now.
    #[error("run {run} sent in account {sent}, but the job now sends in account {now}")]
    OtherAccount {
        /// The run.
        run: u64,
        /// Its account.
        sent: String,
        /// The sender's.
        now: String,
    },
}

/// One message's outcome.
enum Outcome {
    Changed,
    Unchanged,
    Skipped,
    Failed(Failing),
}

impl Engine {
    /// Recalls or edits the messages of run `run` of `job` (its newest run if `None`).
    pub async fn amend(
        &self,
        job: &Job,
        sender: &Sender,
        run: Option<RunId>,
        what: Amend,
        options: RunOptions,
    ) -> anyhow::Result<AmendReport> {
        let record = self.amendable(job, sender, run)?;
        let deliveries = self.deliveries.list(record.id)?;
        let recipients = match what {
            Amend::Edit => recipients_of(job, &deliveries)?,
            Amend::Recall => HashMap::new(),
        };
        let vars = job_variables(job, &record.vars, record.id, record.started_at);
        let ctx = self.chat(job, sender, options, record.id, vars);
        let width = job.delivery.concurrency.get();
        let (this, recipients) = (&ctx, &recipients);
        let outcomes: Vec<Result<Outcome, Stop>> = stream::iter(deliveries)
            .map(move |d| async move {
                let recipient = recipients.get(&d.email);
                this.amend_one(d, what, recipient).await
            })
            .buffer_unordered(width)
            .collect()
            .await;
        self.deliveries.flush().await?;
        let mut report = AmendReport {
            run: record.id.0,
            ..AmendReport::default()
        };
        for outcome in outcomes {
            match outcome? {
                Outcome::Changed => report.changed += 1,
                Outcome::Unchanged => report.unchanged += 1,
                Outcome::Skipped => report.skipped += 1,
                Outcome::Failed(f) => report.failed.push(f),
            }
        }
        Ok(report)
    }

    /// The run to change, if it can be.
    fn amendable(
        &self,
        job: &Job,
        sender: &Sender,
        run: Option<RunId>,
    ) -> Result<RunRecord, NotAmendable> {
        let record = match run {
            Some(id) => self
                .runs
                .get(id)
                .ok()
                .flatten()
                .ok_or(NotAmendable::NoRun(id.0))?,
            None => self
                .runs
                .latest_of(std::slice::from_ref(&job.name))
                .ok()
                .and_then(|mut latest| latest.pop().flatten())
                .ok_or_else(|| NotAmendable::NoRuns(job.name.clone()))?,
        };
        if record.job != job.name {
            return Err(NotAmendable::OtherJob {
                run: record.id.0,
                of: record.job,
                job: job.name.clone(),
            });
        }
        if record.details_pruned {
            return Err(NotAmendable::NoDetails(record.id.0));
        }
        if record.status.is_unfinished() {
            return Err(NotAmendable::Unfinished(record.id.0));
        }
        if let Some(sent) = record.account.as_ref().filter(|a| **a != sender.account_id) {
            return Err(NotAmendable::OtherAccount {
                run: record.id.0,
                sent: sent.clone(),
                now: sender.account_id.clone(),
            });
        }
        Ok(record)
    }
}

/// The job's recipients (for their CSV columns) that the run has deliveries for.
fn recipients_of(job: &Job, deliveries: &[Delivery]) -> anyhow::Result<HashMap<String, Recipient>> {
    let wanted: std::collections::HashSet<&str> =
        deliveries.iter().map(|d| d.email.as_str()).collect();
    let mut found = HashMap::new();
    let problem = |p: crate::config::recipients::FileProblem| {
        anyhow::anyhow!(
            "reading the job's recipients: line {}: {}",
            p.line,
            p.message
        )
    };
    for r in job.recipients().map_err(problem)? {
        let r = r.map_err(problem)?;
        if wanted.contains(r.key()) {
            found.insert(r.key().to_owned(), r);
        }
    }
    Ok(found)
}

impl ChatCtx<'_> {
    async fn amend_one(
        &self,
        d: Delivery,
        what: Amend,
        recipient: Option<&Recipient>,
    ) -> Result<Outcome, Stop> {
        let DeliveryState::Sent { message_id } = d.state.clone() else {
            return Ok(Outcome::Skipped);
        };
        let content = match what {
            Amend::Recall if d.recalled_at.is_some() => return Ok(Outcome::Unchanged),
            Amend::Recall => None,
            Amend::Edit if d.recalled_at.is_some() => return Ok(Outcome::Skipped),
            Amend::Edit => match self.card_now(&d, recipient).await? {
                Ok(content) => Some(content),
                Err(reason) => return Ok(failed(&d, reason)),
            },
        };
        let digest = content.as_ref().map(digest);
        if digest.is_some() && d.edited.as_ref().map(|e| &e.digest) == digest.as_ref() {
            return Ok(Outcome::Unchanged);
        }
        let owner = MessageOwner {
            robot_jid: self.sender.robot_jid.clone(),
            account_id: self.sender.account_id.clone(),
            user_jid: self.sender.user_jid.clone(),
        };
        let pace = self.chat_pace();
        let (zoom, max) = (&self.engine.zoom, self.job.delivery.max_attempts.get());
        let (owner, id, markdown) = (&owner, message_id.as_str(), self.job.markdown);
        let content_ref = content.as_ref();
        let answer = call::<Bot, _, _>(
            &self.sender.tokens,
            &pace,
            max,
            &self.options.cancel,
            &mut Tries::default(),
            |t| async move {
                match content_ref {
                    Some(content) => zoom.edit_message(&t, id, owner, content, markdown).await,
                    None => zoom.delete_message(&t, id, owner).await,
                }
            },
        )
        .await?;
        let gone = matches!(&answer, Err(e) if e.code() == Some(INVALID_MESSAGE_ID));
        let deliveries = &self.engine.deliveries;
        let recalled = || {
            let now = Some(Utc::now());
            deliveries.modify(self.run, &d.email, |stored| stored.recalled_at = now)
        };
        match (what, answer) {
            (Amend::Recall, Ok(())) => {
                recalled()?;
            }
            // Deleted already (by an earlier recall cut short, or in Zoom): recalled.
            (Amend::Recall, Err(_)) if gone => {
                recalled()?;
            }
            (Amend::Edit, Ok(())) => {
                let edited = digest.map(|digest| Edited {
                    at: Utc::now(),
                    digest,
                });
                deliveries.modify(self.run, &d.email, |stored| {
                    stored.edited.clone_from(&edited);
                })?;
                // Presses on buttons the new card has come back with the same id.
                if content.as_ref().is_some_and(crate::card::has_buttons) {
                    deliveries.index_message(&message_id, self.run, &d.email)?;
                }
            }
            (Amend::Edit, Err(_)) if gone => {
                return Ok(failed(&d, "the message no longer exists in Zoom".into()));
            }
            (_, Err(e)) => return Ok(failed(&d, e.to_string())),
        }
        Ok(Outcome::Changed)
    }

    /// The job's card for `d`'s recipient as it renders now.
    async fn card_now(
        &self,
        d: &Delivery,
        recipient: Option<&Recipient>,
    ) -> Result<Result<serde_json::Value, String>, Stop> {
        let r = recipient
            .cloned()
            .unwrap_or_else(|| Recipient::at(Address::from_key(&d.email)));
        let user = match self.recipient(&r.address, &mut Tries::default()).await? {
            Ok(user) => user,
            // Without the profile the card would greet nobody: not edited.
            Err(state) => {
                let why = match state {
                    DeliveryState::Failed { message, .. } => message,
                    other => other.name().to_owned(),
                };
                return Ok(Err(format!("looking the recipient up again failed: {why}")));
            }
        };
        let vars = variables(&self.job_vars, &r, &user);
        Ok(super::render_card(&self.job.template, &vars).map_err(|e| e.to_string()))
    }
}

fn failed(d: &Delivery, reason: String) -> Outcome {
    Outcome::Failed(Failing {
        recipient: d.email.clone(),
        reason,
    })
}

/// SHA-256 of a card's JSON, hex.
fn digest(content: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(content.to_string().as_bytes()))
}
