//! Reminders to acknowledge (`[acknowledge] remind_after`, `max_reminders`): to each person
//! a run's message reached who has not pressed the acknowledging button (and whose message was
//! not recalled), a reply to that message, the k-th due `k × remind_after` after the run
//! started, at most `max_reminders` of them. Never to a channel (nobody can press a button for
//! everyone in it), and never to someone who has opted out, checked when each reminder is due. Each reminder is marked in the delivery's journal
//! before it is sent and settled after, as a send is: after a crash, one left unsettled is sent
//! again or counted as sent, as the job's `on_uncertain` says. The scheduler calls this on
//! every tick of its reminder loop.

use chrono::{DateTime, TimeDelta, Utc};
use futures::{StreamExt, stream};

use super::call::{Bot, Tries, call};
use super::context::ChatCtx;
use super::run::job_variables;
use super::{Engine, RunOptions, Sender, Stop};
use crate::config::recipients::Address;
use crate::config::{Job, OnUncertain};
use crate::state::{Delivery, DeliveryState, Reminder, RunRecord};
use crate::zoom::ChatMessage;

impl Engine {
    /// Sends `job`'s reminders due at `now`; how many went out.
    pub async fn remind(
        &self,
        job: &Job,
        sender: &Sender,
        now: DateTime<Utc>,
        options: RunOptions,
    ) -> anyhow::Result<usize> {
        let Some((after, max)) = job.acknowledge.as_ref().and_then(|a| a.reminders) else {
            return Ok(0);
        };
        let after = TimeDelta::from_std(after)?;
        let button = job.acknowledge.as_ref().map(|a| a.button.as_str());
        let window = after * (i32::try_from(max).unwrap_or(i32::MAX) + 1);
        let open = |run: &RunRecord| {
            // Only runs sent asking for this acknowledgement.
            run.acknowledge.as_deref() == button
                && !run.details_pruned
                && !run.status.is_unfinished()
                && run
                    .account
                    .as_deref()
                    .is_none_or(|a| a == sender.account_id)
        };
        // Newest first, back to the first run whose reminders are all past: ids grow with
        // start times, so older runs are past too, and a year of runs is not read each time.
        let mut within = Vec::new();
        for run in self.runs.newest_first(&job.name) {
            let run = run?;
            if now >= run.started_at + window {
                break;
            }
            if open(&run) {
                within.push(run);
            }
        }
        let mut sent = 0;
        for run in within.into_iter().rev() {
            let vars = job_variables(job, &run.vars, run.id, run.started_at);
            let ctx = self.chat(job, sender, options.clone(), run.id, vars);
            sent += ctx.remind_run(&run, after, max, now).await?;
        }
        Ok(sent)
    }
}

impl ChatCtx<'_> {
    async fn remind_run(
        &self,
        run: &RunRecord,
        after: TimeDelta,
        max: u32,
        now: DateTime<Utc>,
    ) -> Result<usize, Stop> {
        let button = self
            .job
            .acknowledge
            .as_ref()
            .map_or("", |a| a.button.as_str());
        let mut due = Vec::new();
        for d in self.engine.deliveries.list(run.id)? {
            if is_reminded(&d, button)
                && is_due(&d, run.started_at, after, max, now)
                && !self.opted_out(&d)?
            {
                due.push(d);
            }
        }
        let width = self.job.delivery.concurrency.get();
        let this = self;
        let outcomes: Vec<Result<bool, Stop>> = stream::iter(due)
            .map(move |d| async move { this.remind_one(d, now).await })
            .buffer_unordered(width)
            .collect()
            .await;
        self.engine.deliveries.flush().await?;
        let mut sent = 0;
        for outcome in outcomes {
            sent += usize::from(outcome?);
        }
        Ok(sent)
    }

    /// Whether the person `d` was sent to has told the bot `stop` since.
    fn opted_out(&self, d: &Delivery) -> Result<bool, Stop> {
        let Some(jid) = &d.jid else {
            return Ok(false);
        };
        let (app, account) = (&self.job.app, &self.sender.account_id);
        Ok(self.engine.optouts.opted_out(app, account, jid)?)
    }

    /// Marks, sends and settles one reminder; whether Zoom accepted it. Each step changes
    /// only the stored delivery's reminders, so a press recorded meanwhile is kept.
    async fn remind_one(&self, d: Delivery, now: DateTime<Utc>) -> Result<bool, Stop> {
        let (DeliveryState::Sent { message_id }, Some(jid)) = (d.state.clone(), d.jid.clone())
        else {
            return Ok(false);
        };
        let deliveries = &self.engine.deliveries;
        let settle = |error: Option<String>| {
            deliveries.modify(self.run, &d.email, |stored| {
                if let Some(last) = stored.reminders.last_mut() {
                    last.done = true;
                    last.error.clone_from(&error);
                }
            })
        };
        let unsettled = d.reminders.last().is_some_and(|r| !r.done);
        if unsettled && self.job.delivery.on_uncertain == OnUncertain::Skip {
            // Unsettled by a crash: counted as sent.
            settle(None)?;
            return Ok(false);
        }
        deliveries.modify(self.run, &d.email, |stored| {
            match stored.reminders.last_mut() {
                Some(last) if !last.done => last.at = now,
                _ => stored.reminders.push(Reminder {
                    at: now,
                    done: false,
                    error: None,
                }),
            }
        })?;
        deliveries.flush().await?;
        let message = ChatMessage {
            robot_jid: self.sender.robot_jid.clone(),
            to_jid: jid,
            account_id: self.sender.account_id.clone(),
            user_jid: self.sender.user_jid.clone(),
            content: crate::card::text("Reminder", &self.reminder_text()),
            is_markdown_support: false,
            reply_to: Some(message_id),
        };
        let pace = self.chat_pace();
        let (zoom, message) = (&self.engine.zoom, &message);
        let mut tries = Tries::default();
        let answer = call::<Bot, _, _>(
            &self.sender.tokens,
            &pace,
            self.job.delivery.max_attempts.get(),
            &self.options.cancel,
            &mut tries,
            |t| async move { zoom.send_message(&t, message).await },
        )
        .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(stop) => {
                // Nothing reached Zoom (a shutdown, a token failure): not a reminder sent.
                if !tries.maybe_processed {
                    deliveries.modify(self.run, &d.email, |stored| {
                        if stored.reminders.last().is_some_and(|r| !r.done) {
                            stored.reminders.pop();
                        }
                    })?;
                }
                return Err(stop);
            }
        };
        settle(answer.as_ref().err().map(ToString::to_string))?;
        Ok(answer.is_ok())
    }

    /// What a reminder says: which button to press.
    fn reminder_text(&self) -> String {
        let button = self
            .job
            .acknowledge
            .as_ref()
            .map_or("", |a| a.button.as_str());
        let label = self
            .job
            .template
            .button_text(button)
            .unwrap_or(button)
            .to_owned();
        format!("Please acknowledge the message above: press “{label}”.")
    }
}

/// Whether `d` asks someone to acknowledge: a message delivered to a person (a channel cannot
/// press a button for everyone in it) and not recalled. "Acknowledged N of M" counts these.
pub fn asks_to_acknowledge(d: &Delivery) -> bool {
    Address::from_key(&d.email).is_person()
        && matches!(d.state, DeliveryState::Sent { .. })
        && d.recalled_at.is_none()
}

/// Whether a reminder may go to `d`: it asks to acknowledge, and `button` was not pressed.
fn is_reminded(d: &Delivery, button: &str) -> bool {
    asks_to_acknowledge(d) && d.acknowledgement(button).is_none()
}

/// Whether `d`'s next reminder is due at `now`: an unsettled one at once, else the k-th
/// `k × after` after the run started and at least `after` after the one before (so a
/// scheduler that was down does not send the missed ones back to back), while fewer than
/// `max` were sent.
fn is_due(
    d: &Delivery,
    started: DateTime<Utc>,
    after: TimeDelta,
    max: u32,
    now: DateTime<Utc>,
) -> bool {
    let last = d.reminders.last();
    if last.is_some_and(|r| !r.done) {
        return true;
    }
    let count = u32::try_from(d.reminders.len()).unwrap_or(u32::MAX);
    let scheduled = started + after * i32::try_from(count + 1).unwrap_or(i32::MAX);
    let spaced = last.is_none_or(|r| r.at + after <= now);
    count < max && scheduled <= now && spaced
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::DeliveryState;

    fn delivery(reminders: &[(i64, bool)], started: DateTime<Utc>) -> Delivery {
        Delivery {
            updated_at: started,
            reminders: reminders
                .iter()
                .map(|&(minutes, done)| Reminder {
                    at: started + TimeDelta::minutes(minutes),
                    done,
                    error: None,
                })
                .collect(),
            ..Delivery::new(
                "ana@example.com",
                DeliveryState::Sent {
                    message_id: "m1".into(),
                },
                Some("ana@xmpp.zoom.us".into()),
                1,
            )
        }
    }

    #[test]
    fn the_kth_reminder_is_due_k_periods_after_the_start_and_never_more_than_max() {
        let started = DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z")
            .unwrap()
            .to_utc();
        let after = TimeDelta::minutes(30);
        let at = |minutes| started + TimeDelta::minutes(minutes);
        let none = delivery(&[], started);
        assert!(!is_due(&none, started, after, 2, at(29)));
        assert!(is_due(&none, started, after, 2, at(30)));
        let one = delivery(&[(30, true)], started);
        assert!(!is_due(&one, started, after, 2, at(59)));
        assert!(is_due(&one, started, after, 2, at(60)));
        // After downtime, the second is not sent right behind the late first.
        let late = delivery(&[(90, true)], started);
        assert!(!is_due(&late, started, after, 2, at(100)));
        assert!(is_due(&late, started, after, 2, at(120)));
        let two = delivery(&[(30, true), (60, true)], started);
        assert!(!is_due(&two, started, after, 2, at(600)), "two is the most");
        // Marked, then a crash before Zoom answered: due again at once.
        let unsettled = delivery(&[(30, false)], started);
        assert!(is_due(&unsettled, started, after, 2, at(31)));
    }
}
