//! [`RunCtx`]: one run's two-stage pipeline. The first stage takes recipients in order,
//! skips those already settled, resolves each (JID cache, else the Users API) and renders the
//! message; the second marks a batch `sending` in the journal, sends, and records each outcome.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt, stream};
use tokio::sync::mpsc;

use super::call::{Bot, Pace, Tries, call, wait_for_ceiling};
use super::context::{ChatCtx, variables};
use super::journal::Journal;
use super::limiter::Limiter;
use super::progress::Progress;
use crate::config::recipients::{FileProblem, Recipient, dedupe_key};
use crate::config::{OnUncertain, help};
use crate::render::RenderError;
use crate::state::{Delivery, DeliveryState, Rendered};
use crate::zoom::ChatMessage;
use crate::zoom::error::NOT_AUTHORIZED;

use super::Stop;

/// Sends refused with [`NOT_AUTHORIZED`], none accepted, before a run warns.
const REFUSED_WARN_AFTER: u64 = 20;

/// A recipient resolved and rendered, ready to send.
struct Ready {
    email: String,
    jid: String,
    rendered: Rendered,
    attempts: u32,
}

/// What a journal entry from an earlier process decides for its recipient.
enum Earlier {
    /// Nothing more to do.
    Settled,
    /// Send this again, as journaled.
    Resend(Ready),
    /// Resolve and render as if new.
    Afresh,
}

/// Everything one run shares between its stages: its requests to Zoom, and what only a send
/// needs (the journal, the job's ceiling, de-duplication, progress).
pub(super) struct RunCtx<'a> {
    pub(super) chat: ChatCtx<'a>,
    pub(super) journal: Journal,
    /// The job's ceiling on sends (`rate_per_second`).
    pub(super) ceiling: Option<Limiter>,
    /// SHA-256 prefixes of the emails seen, for de-duplication in constant space per email.
    pub(super) seen: Mutex<HashSet<[u8; 16]>>,
    /// What this process has done so far, for progress lines.
    pub(super) progress: Progress,
    /// Sends Zoom refused with [`NOT_AUTHORIZED`] in this process.
    pub(super) refused: AtomicU64,
    /// Whether the run was interrupted before: only then can the journal hold entries.
    pub(super) resumed: bool,
}

impl RunCtx<'_> {
    /// Both stages, concurrently; the first [`Stop`] ends both.
    pub(super) async fn pipeline(&self) -> Result<(), Stop> {
        let width = self.chat.job.delivery.concurrency.get();
        let (ready_tx, ready_rx) = mpsc::channel::<Ready>(2 * width);
        let unreadable = |p: FileProblem| self.chat.unreadable(&p);
        let recipients = self.chat.job.recipients().map_err(unreadable)?;
        // On the first `Stop`, no new recipient is started, but work in flight finishes: a
        // recipient marked `sending` is really sent, so a resumed run's "uncertain" means
        // uncertain. The first `Stop` is the run's outcome.
        let stopped: Mutex<Option<Stop>> = Mutex::new(None);
        let stop = |e: Stop| {
            let mut first = stopped.lock().expect("stop lock");
            if first.is_none() {
                *first = Some(e);
            }
        };
        let stopping = || {
            self.chat.options.cancel.is_cancelled() || stopped.lock().expect("stop lock").is_some()
        };
        // Plain references moved into `move` closures keep the futures' lifetimes tied to
        // this call rather than to each closure call, so the run's future is `Send` (the
        // scheduler spawns it).
        let (this, stop, stopping, unreadable) = (self, &stop, &stopping, &unreadable);
        let prepare = stream::iter(recipients)
            .take_while(move |_| futures::future::ready(!stopping()))
            .map(move |item| {
                let tx = ready_tx.clone();
                async move {
                    let r = match item {
                        Ok(r) if this.first_time(&r) => r,
                        Ok(_) => return,
                        Err(p) => return stop(unreadable(p)),
                    };
                    match this.prepare(r).await {
                        Ok(Some(ready)) => {
                            let _ = tx.send(ready).await;
                        }
                        Ok(None) => {}
                        Err(e) => stop(e),
                    }
                }
            })
            .buffer_unordered(width)
            .collect::<()>();
        let send = tokio_stream_from(ready_rx)
            .map(move |ready| async move {
                if !stopping()
                    && let Err(e) = this.send(ready).await
                {
                    stop(e);
                }
            })
            .buffer_unordered(width)
            .collect::<()>();
        tokio::join!(prepare, send);
        match stopped.into_inner().expect("stop lock") {
            Some(stop) => Err(stop),
            None if self.chat.options.cancel.is_cancelled() => Err(Stop::Shutdown),
            None => Ok(()),
        }
    }

    /// Counts a send refused with [`NOT_AUTHORIZED`], and warns once when the first
    /// [`REFUSED_WARN_AFTER`] of them came with nothing sent: likely a wrong `account_id`, which
    /// would fail every recipient. The run goes on, since the code also fails single recipients.
    fn refused_once_more(&self) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if refused == REFUSED_WARN_AFTER && self.progress.sent() == 0 {
            tracing::warn!(
                "job `{}`: Zoom refused the first {refused} sends with {NOT_AUTHORIZED} and accepted none; {}",
                self.chat.job.name,
                help::account_id(&self.chat.job.app, NOT_AUTHORIZED)
            );
        }
    }

    pub(super) fn first_time(&self, r: &Recipient) -> bool {
        self.seen
            .lock()
            .expect("seen lock")
            .insert(dedupe_key(r.key()))
    }

    fn record(
        &self,
        email: &str,
        state: DeliveryState,
        jid: Option<String>,
        attempts: u32,
    ) -> Result<(), Stop> {
        self.progress.count(&state);
        if let DeliveryState::Failed {
            code: Some(NOT_AUTHORIZED),
            ..
        } = state
        {
            self.refused_once_more();
        }
        let delivery = Delivery::new(email, state, jid, attempts);
        Ok(self.journal.record(self.chat.run, &delivery)?)
    }

    /// What the journal entry an earlier process left for `r` decides: it is settled (skipped,
    /// or, in flight with `on_uncertain = "skip"`, recorded uncertain), it is resent exactly as
    /// journaled (the message that may already have arrived, to the same JID, with no lookup
    /// and no new rendering), or it is resolved and rendered afresh (not started, or an entry
    /// of an older build that carries no message).
    fn after_crash(&self, r: &Recipient, previous: Delivery) -> Result<Earlier, Stop> {
        match previous.state {
            DeliveryState::Sent { .. }
            | DeliveryState::Failed { .. }
            | DeliveryState::Uncertain
            | DeliveryState::OptedOut => {
                self.progress.skip();
                Ok(Earlier::Settled)
            }
            DeliveryState::Sending if self.chat.job.delivery.on_uncertain == OnUncertain::Skip => {
                let state = DeliveryState::Uncertain;
                self.record(r.key(), state, previous.jid, previous.attempts)?;
                Ok(Earlier::Settled)
            }
            DeliveryState::Sending => match (previous.jid, previous.rendered) {
                (Some(jid), Some(rendered)) => Ok(Earlier::Resend(Ready {
                    email: r.key().to_owned(),
                    jid,
                    rendered,
                    attempts: previous.attempts,
                })),
                _ => Ok(Earlier::Afresh),
            },
            DeliveryState::Pending => Ok(Earlier::Afresh),
        }
    }

    /// Stage one: skip what the journal says is done, resend what a crash left in flight,
    /// resolve and render the rest.
    async fn prepare(&self, r: Recipient) -> Result<Option<Ready>, Stop> {
        let r = &r;
        // A fresh run has no journal entries yet: skip the lookup on the hot path.
        let previous = if self.resumed {
            self.chat.engine.deliveries.get(self.chat.run, r.key())?
        } else {
            None
        };
        let mut tries = Tries {
            attempts: previous.as_ref().map_or(0, |d| d.attempts),
            ..Tries::default()
        };
        if let Some(previous) = previous {
            match self.after_crash(r, previous)? {
                Earlier::Settled => return Ok(None),
                Earlier::Resend(ready) => return Ok(Some(ready)),
                Earlier::Afresh => {}
            }
        }
        let user = match self.chat.recipient(&r.address, &mut tries).await? {
            Ok(user) => user,
            Err(failed) => {
                self.record(r.key(), failed, None, tries.attempts)?;
                return Ok(None);
            }
        };
        // A person may have opted out; a channel cannot.
        let person = r.address.is_person();
        if person
            && self.chat.engine.optouts.opted_out(
                &self.chat.job.app,
                &self.chat.sender.account_id,
                &user.jid,
            )?
        {
            let state = DeliveryState::OptedOut;
            self.record(r.key(), state, Some(user.jid), tries.attempts)?;
            return Ok(None);
        }
        let vars = variables(&self.chat.job_vars, r, &user);
        let content = match self.chat.job.template.render_queued(vars).await {
            Ok(content) => content,
            // Not the recipient's failure: the run stops, to be resumed.
            Err(RenderError::Unavailable(why)) => return Err(Stop::Renderer(why)),
            Err(failed) => {
                self.record(
                    r.key(),
                    DeliveryState::Failed {
                        code: None,
                        message: failed.to_string(),
                    },
                    Some(user.jid),
                    tries.attempts,
                )?;
                return Ok(None);
            }
        };
        Ok(Some(Ready {
            email: r.key().to_owned(),
            jid: user.jid,
            rendered: Rendered { content },
            attempts: tries.attempts,
        }))
    }

    /// Stage two: mark `sending` (group commit), send, record the outcome.
    async fn send(&self, ready: Ready) -> Result<(), Stop> {
        let Ready {
            email,
            jid,
            rendered,
            attempts,
        } = ready;
        let sending = Delivery {
            rendered: Some(rendered.clone()),
            ..Delivery::new(&email, DeliveryState::Sending, Some(jid.clone()), attempts)
        };
        // A token failure must stop the run before the mark: `sending` means "will be sent".
        self.chat.sender.tokens.bot_token().await?;
        // So does the wait for the job's ceiling: a mark must not sit waiting for its turn.
        if let Some(ceiling) = &self.ceiling {
            wait_for_ceiling(ceiling, &self.chat.options.cancel).await?;
        }
        self.journal.commit(self.chat.run, sending).await?;
        let zoom = &self.chat.engine.zoom;
        let max = self.chat.job.delivery.max_attempts.get();
        let message = &ChatMessage {
            robot_jid: self.chat.sender.robot_jid.clone(),
            to_jid: jid,
            account_id: self.chat.sender.account_id.clone(),
            user_jid: self.chat.sender.user_jid.clone(),
            content: rendered.content,
            is_markdown_support: self.chat.job.markdown,
            reply_to: None,
        };
        let mut tries = Tries {
            attempts,
            ..Tries::default()
        };
        let pace = Pace {
            shared: &self.chat.send_limiter,
            ceiling: self.ceiling.as_ref(),
            ceiling_taken: true,
            slots: &self.chat.slots,
            rate_limited: &self.chat.sends_limited,
        };
        let answer = call::<Bot, _, _>(
            &self.chat.sender.tokens,
            &pace,
            max,
            &self.chat.options.cancel,
            &mut tries,
            |t| async move { zoom.send_message(&t, message).await },
        )
        .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(stop) => {
                // Stopped before any request could reach Zoom (a daily limit, a shutdown, only
                // 429s): the mark is not an uncertain send, and a resumed run starts it afresh.
                if !tries.maybe_processed {
                    self.journal.forget(self.chat.run, &email)?;
                }
                return Err(stop);
            }
        };
        let state = match answer {
            Ok(sent) => {
                // A press on one of its buttons comes back with this id.
                if crate::card::has_buttons(&message.content) {
                    let (deliveries, run) = (&self.chat.engine.deliveries, self.chat.run);
                    deliveries.index_message(&sent.message_id, run, &email)?;
                }
                DeliveryState::Sent {
                    message_id: sent.message_id,
                }
            }
            Err(e) => DeliveryState::Failed {
                code: e.code(),
                message: e.to_string(),
            },
        };
        self.record(&email, state, Some(message.to_jid.clone()), tries.attempts)
    }
}
/// A receiver as a stream.
fn tokio_stream_from<T>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    stream::poll_fn(move |cx| rx.poll_recv(cx))
}
