//! [`RunCtx`]: one run's two-stage pipeline. The first stage takes recipients in order,
//! skips those already settled, resolves each (JID cache, else the Users API) and renders the
//! message; the second marks a batch `sending` in the journal, sends, and records each outcome.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures::{StreamExt, stream};
use tokio::sync::mpsc;

use super::call::{Bot, Pace, Tries, User, call, wait_for_ceiling};
use super::journal::Journal;
use super::limiter::Limiter;
use super::progress::Progress;
use crate::config::recipients::{Address, FileProblem, Recipient, dedupe_key};
use crate::config::{Job, OnUncertain, help};
use crate::render::RenderError;
use crate::state::{CacheTtl, CachedLookup, Delivery, DeliveryState, Rendered, RunId};
use crate::user::ZoomUser;
use crate::zoom::ChatMessage;
use crate::zoom::error::NOT_AUTHORIZED;

use super::{Engine, RunOptions, Sender, Stop};

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

/// Everything one run shares between its stages.
pub(super) struct RunCtx<'a> {
    pub(super) engine: &'a Engine,
    pub(super) job: &'a Job,
    pub(super) sender: &'a Sender,
    pub(super) options: RunOptions,
    pub(super) run: RunId,
    pub(super) journal: Journal,
    pub(super) users: Arc<Limiter>,
    pub(super) chat: Arc<Limiter>,
    /// The job's ceiling on sends (`rate_per_second`).
    pub(super) ceiling: Option<Limiter>,
    /// The run's requests in flight, lookups and sends together (`concurrency`).
    pub(super) slots: tokio::sync::Semaphore,
    /// SHA-256 prefixes of the emails seen, for de-duplication in constant space per email.
    pub(super) seen: Mutex<HashSet<[u8; 16]>>,
    /// What this process has done so far, for progress lines.
    pub(super) progress: Progress,
    /// Sends Zoom refused with [`NOT_AUTHORIZED`] in this process.
    pub(super) refused: AtomicU64,
    /// This process's lookups and sends Zoom answered 429.
    pub(super) lookups_limited: AtomicU64,
    pub(super) sends_limited: AtomicU64,
    /// Whether the run was interrupted before: only then can the journal hold entries.
    pub(super) resumed: bool,
    /// How long cached JIDs and misses stay good.
    pub(super) ttl: CacheTtl,
    /// The variables every message of the run has: the job's `[vars]`, `job`, `run_id` and
    /// `now`.
    pub(super) job_vars: BTreeMap<String, String>,
}

impl RunCtx<'_> {
    /// Both stages, concurrently; the first [`Stop`] ends both.
    pub(super) async fn pipeline(&self) -> Result<(), Stop> {
        let width = self.job.delivery.concurrency.get();
        let (ready_tx, ready_rx) = mpsc::channel::<Ready>(2 * width);
        let unreadable = |p: FileProblem| self.unreadable(&p);
        let recipients = self.job.recipients().map_err(unreadable)?;
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
        let stopping =
            || self.options.cancel.is_cancelled() || stopped.lock().expect("stop lock").is_some();
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
            None if self.options.cancel.is_cancelled() => Err(Stop::Shutdown),
            None => Ok(()),
        }
    }

    /// The pace of a Chatbot API request other than a send (an edit, a delete, a reminder):
    /// the account's send limiter and the run's slots, without the job's send ceiling.
    pub(super) fn chat_pace(&self) -> Pace<'_> {
        Pace {
            shared: &self.chat,
            ceiling: None,
            ceiling_taken: false,
            slots: &self.slots,
            rate_limited: &self.sends_limited,
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
                self.job.name,
                help::account_id(&self.job.app, NOT_AUTHORIZED)
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
        Ok(self.journal.record(self.run, &delivery)?)
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
            DeliveryState::Sending if self.job.delivery.on_uncertain == OnUncertain::Skip => {
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
            self.engine.deliveries.get(self.run, r.key())?
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
        let user = match &r.address {
            Address::Email(email) => match self.resolve(email, &mut tries).await? {
                Ok(user) => user,
                Err(failed) => {
                    self.record(r.key(), failed, None, tries.attempts)?;
                    return Ok(None);
                }
            },
            // Addressed by JID: no lookup, and no profile.
            Address::User(jid) | Address::Channel(jid) => Address::unprofiled(jid),
        };
        // A person may have opted out; a channel cannot.
        let person = r.address.is_person();
        if person
            && self
                .engine
                .optouts
                .opted_out(&self.job.app, &self.sender.account_id, &user.jid)?
        {
            let state = DeliveryState::OptedOut;
            self.record(r.key(), state, Some(user.jid), tries.attempts)?;
            return Ok(None);
        }
        let vars = variables(&self.job_vars, r, &user);
        let content = match self.job.template.render_queued(vars).await {
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

    /// The JID cache, else the Users API (whose answer is cached, misses too).
    pub(super) async fn resolve(
        &self,
        email: &str,
        tries: &mut Tries,
    ) -> Result<Result<ZoomUser, DeliveryState>, Stop> {
        let jids = self.engine.jids.of(&self.sender.account_id);
        if !self.options.refresh_cache
            && let Some(cached) = jids.get(email, self.ttl, Utc::now())?
        {
            return Ok(match cached.user {
                Some(user) => Ok(user),
                None => Err(DeliveryState::Failed {
                    code: cached.code,
                    message: cached.message,
                }),
            });
        }
        let zoom = &self.engine.zoom;
        let max = self.job.delivery.max_attempts.get();
        let pace = Pace {
            shared: &self.users,
            ceiling: None,
            ceiling_taken: false,
            slots: &self.slots,
            rate_limited: &self.lookups_limited,
        };
        let answer = call::<User, _, _>(
            &self.sender.tokens,
            &pace,
            max,
            &self.options.cancel,
            tries,
            |t| async move { zoom.get_user(&t, email).await },
        )
        .await?;
        let fetched_at = Utc::now();
        Ok(match answer {
            Ok(user) => {
                let cached = CachedLookup {
                    user: Some(user.clone()),
                    code: None,
                    message: String::new(),
                    fetched_at,
                };
                jids.put(email, &cached)?;
                Ok(user)
            }
            Err(e) => {
                let (code, message) = (e.code(), e.to_string());
                if code == Some(crate::zoom::error::USER_DOES_NOT_EXIST) {
                    let cached = CachedLookup {
                        user: None,
                        code,
                        message: message.clone(),
                        fetched_at,
                    };
                    jids.put(email, &cached)?;
                }
                Err(DeliveryState::Failed { code, message })
            }
        })
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
        self.sender.tokens.bot_token().await?;
        // So does the wait for the job's ceiling: a mark must not sit waiting for its turn.
        if let Some(ceiling) = &self.ceiling {
            wait_for_ceiling(ceiling, &self.options.cancel).await?;
        }
        self.journal.commit(self.run, sending).await?;
        let zoom = &self.engine.zoom;
        let max = self.job.delivery.max_attempts.get();
        let message = &ChatMessage {
            robot_jid: self.sender.robot_jid.clone(),
            to_jid: jid,
            account_id: self.sender.account_id.clone(),
            user_jid: self.sender.user_jid.clone(),
            content: rendered.content,
            is_markdown_support: self.job.markdown,
            reply_to: None,
        };
        let mut tries = Tries {
            attempts,
            ..Tries::default()
        };
        let pace = Pace {
            shared: &self.chat,
            ceiling: self.ceiling.as_ref(),
            ceiling_taken: true,
            slots: &self.slots,
            rate_limited: &self.sends_limited,
        };
        let answer = call::<Bot, _, _>(
            &self.sender.tokens,
            &pace,
            max,
            &self.options.cancel,
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
                    self.journal.forget(self.run, &email)?;
                }
                return Err(stop);
            }
        };
        let state = match answer {
            Ok(sent) => {
                // A press on one of its buttons comes back with this id.
                if crate::card::has_buttons(&message.content) {
                    let (deliveries, run) = (&self.engine.deliveries, self.run);
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

    /// A recipients file that cannot be read, as the run's stop.
    pub(super) fn unreadable(&self, p: &FileProblem) -> Stop {
        let path = self
            .job
            .recipients_file
            .as_deref()
            .unwrap_or(std::path::Path::new("-"))
            .display()
            .to_string();
        Stop::Recipients(format!("{path}:{}: {}", p.line, p.message))
    }
}
/// A receiver as a stream.
fn tokio_stream_from<T>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The template variables of one recipient: the run's, CSV columns, then Zoom's fields (empty
/// for one addressed by JID). `validate` refuses `[vars]` that a column or field would hide.
pub(super) fn variables(
    job_vars: &BTreeMap<String, String>,
    r: &Recipient,
    user: &ZoomUser,
) -> BTreeMap<String, String> {
    let mut vars = job_vars.clone();
    vars.extend(r.columns.clone());
    let email = match &r.address {
        Address::Email(email) => email.clone(),
        Address::User(_) | Address::Channel(_) => String::new(),
    };
    vars.insert("email".into(), email);
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
