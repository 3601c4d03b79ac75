//! The delivery engine: one run of a job, as a two-stage stream.
//!
//! ```text
//! recipients ─▶ prepare (≤ concurrency in flight) ─▶ channel ─▶ send (≤ concurrency in flight)
//!               journal check, JID cache or Users API,           group-commit `sending`, Chatbot
//!               render the template                              API, record the outcome
//! ```
//!
//! Resolution overlaps sending, memory does not grow with the recipient count, and every
//! recipient ends `sent`, `failed` (with Zoom's code and message) or `uncertain`. A failed
//! recipient is data, not an error. Only what stops every recipient ([`Stop`]) ends the run
//! early; the run then stays unfinished, and the next run of the job resumes it: delivered
//! recipients are skipped, and sends whose outcome a crash hid follow `on_uncertain`.

mod call;
pub mod engines;
pub mod journal;
pub mod limiter;
mod pacer;
mod progress;

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use futures::{StreamExt, stream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::auth::AppTokens;
use crate::config::recipients::{FileProblem, Recipient, dedupe_key};
use crate::config::{Diagnostic, Invalid, Job, OnUncertain, help};
use crate::state::runs::Counts;
use crate::state::{
    CacheTtl, CachedLookup, Deliveries, Delivery, DeliveryState, Jids, Rendered, RunId, RunRecord,
    RunStatus, Runs, StateError,
};
use crate::user::ZoomUser;
use crate::zoom::chat::Content;
use crate::zoom::error::NOT_AUTHORIZED;
use crate::zoom::{ChatMessage, ZoomClient};
pub use call::Stop;
use call::{Bot, Tries, User, call};
pub use engines::{AppEngine, Engines};
use journal::Journal;
use limiter::{Endpoint, Limiter, Limiters};
use pacer::Pacer;
use progress::Progress;
pub use progress::{LogWriter, ProgressMode};

/// How long a cached lookup is kept at least, whatever a job's time-to-live: another job may
/// keep its answers longer than the one that sweeps.
pub const JID_CACHE_KEEP: TimeDelta = TimeDelta::days(30);

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
}

/// What runs need; one per process, shared by every run (the limiters are per account).
pub struct Engine {
    /// The Zoom client.
    pub zoom: ZoomClient,
    /// The app's tokens.
    pub tokens: Arc<AppTokens>,
    /// The `runs` tree.
    pub runs: Runs,
    /// The `deliveries` tree.
    pub deliveries: Deliveries,
    /// The `jids` tree.
    pub jids: Jids,
    /// The rate limiters of every app and endpoint.
    pub limiters: Arc<Limiters>,
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
        return Err(Invalid::one(
            Diagnostic::whole(
                None,
                format!("app `{app}` has no robot_jid, which sending requires"),
            )
            .help(help::robot_jid(app)),
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

/// Sends refused with [`NOT_AUTHORIZED`], none accepted, before a run warns.
const REFUSED_WARN_AFTER: u64 = 20;

/// A recipient resolved and rendered, ready to send.
struct Ready {
    email: String,
    jid: String,
    rendered: Rendered,
    attempts: u32,
}

impl Engine {
    /// An engine over the state store's trees.
    pub fn new(
        store: &crate::state::Store,
        zoom: ZoomClient,
        tokens: Arc<AppTokens>,
        limiters: Arc<Limiters>,
    ) -> Result<Self, StateError> {
        Ok(Self {
            zoom,
            tokens,
            runs: store.runs()?,
            deliveries: store.deliveries()?,
            jids: store.jids()?,
            limiters,
        })
    }

    /// Runs `job` to the end, resuming its interrupted run if there is one.
    pub async fn run(
        &self,
        job: &Job,
        sender: &Sender,
        options: RunOptions,
    ) -> anyhow::Result<RunReport> {
        let mut record = match self.begin(job, options.scheduled_for).await? {
            Begin::Work(record) => record,
            Begin::AlreadyRan(record) => {
                let (_, failures) = self.tally(record.id).await?;
                return Ok(RunReport { record, failures });
            }
        };
        let resumed = record.resumes > 0;
        let journal = Journal::new(self.deliveries.clone());
        let ctx = RunCtx {
            engine: self,
            job,
            sender,
            options,
            run: record.id,
            journal,
            users: self.limiters.get(&job.app, Endpoint::Users),
            chat: self.limiters.get(&job.app, Endpoint::Chat),
            pacer: job.delivery.rate_per_second.map(Pacer::new),
            seen: Mutex::new(HashSet::new()),
            refused: AtomicU64::new(0),
            progress: Progress::new(job.recipient_count),
            resumed,
            ttl: cache_ttl(job),
        };
        let outcome = tokio::select! {
            outcome = ctx.pipeline() => outcome,
            never = ctx.progress.show(ctx.options.progress, &job.name) => match never {},
        };
        drop(ctx);
        self.limiters.remember(&job.app);
        // Only a resumed run can hold `sending` entries from an earlier process.
        if outcome.is_ok() && resumed {
            let (deliveries, run) = (self.deliveries.clone(), record.id);
            let settled = off_workers(move || deliveries.settle_sending(run)).await?;
            if settled > 0 {
                tracing::warn!(
                    "{settled} recipients were being sent at an earlier crash and are no longer in the job: reported as uncertain"
                );
            }
        }
        self.deliveries.flush().await?;
        let (counts, failures) = self.tally(record.id).await?;
        record.counts = counts;
        record.finished_at = Some(Utc::now());
        record.status = match &outcome {
            // Interrupted on purpose: the next start resumes it.
            Err(Stop::Shutdown) => {
                record.finished_at = None;
                RunStatus::Running
            }
            Err(stop) => RunStatus::Aborted(stop.to_string()),
            Ok(()) if counts.failed + counts.uncertain > 0 => RunStatus::PartlyFailed,
            Ok(()) => RunStatus::Succeeded,
        };
        self.runs.put(&record).await?;
        if !record.status.is_unfinished() {
            if let Err(e) = self.prune_details(job).await {
                tracing::warn!(
                    "job `{}`: old runs' per-recipient outcomes could not be pruned: {e}",
                    job.name
                );
            }
            self.sweep_jid_cache(job).await;
        }
        if let Err(stop) = outcome {
            return Err(anyhow::Error::new(stop)
                .context(format!("run {} of job `{}` stopped", record.id, job.name)));
        }
        Ok(RunReport { record, failures })
    }

    /// Deletes cached lookups older than the job's time-to-live or [`JID_CACHE_KEEP`],
    /// whichever is longer, at most once a day (see [`Jids::sweep_if_due`]). A failure is
    /// only logged: the cache is an optimisation.
    async fn sweep_jid_cache(&self, job: &Job) {
        let horizon = cache_ttl(job).hit.max(JID_CACHE_KEEP);
        let jids = self.jids.clone();
        match off_workers(move || jids.sweep_if_due(Utc::now(), horizon)).await {
            Ok(Some(deleted)) if deleted > 0 => tracing::info!(
                "deleted {deleted} cached lookups fetched more than {} days ago",
                horizon.num_days()
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("the JID cache could not be swept: {e}"),
        }
    }

    /// Deletes the per-recipient outcomes of the job's finished runs older than its newest
    /// `keep_details`; their summaries stay. Unfinished runs keep everything: the next run
    /// resumes them. Each run's mark is stored after its entries are deleted, and all are
    /// flushed once: sled recovers a prefix of its log, so a crash leaves no run marked pruned
    /// that still has entries, only work for the next prune.
    async fn prune_details(&self, job: &Job) -> Result<(), StateError> {
        let keep = usize::try_from(job.delivery.keep_details.get()).unwrap_or(usize::MAX);
        let (runs, deliveries, name) =
            (self.runs.clone(), self.deliveries.clone(), job.name.clone());
        // A scan of the job's runs and thousands of deletions: off the runtime's workers.
        let (pruned, entries) = off_workers(move || {
            let mut pruned = runs.details_to_prune(&name, keep)?;
            let mut entries = 0;
            for record in &mut pruned {
                entries += deliveries.prune(record.id)?;
                record.details_pruned = true;
            }
            Ok::<_, StateError>((pruned, entries))
        })
        .await?;
        if pruned.is_empty() {
            return Ok(());
        }
        self.runs.put_all(&pruned).await?;
        tracing::info!(
            "job `{}`: deleted the per-recipient outcomes of {} older runs ({entries} entries); \
             it keeps them for its newest {keep} runs ([delivery] keep_details)",
            job.name,
            pruned.len()
        );
        Ok(())
    }

    /// A run's counts, and its failed or uncertain recipients: a scan of all its recipients.
    async fn tally(&self, run: RunId) -> Result<(Counts, Vec<Delivery>), StateError> {
        let deliveries = self.deliveries.clone();
        off_workers(move || deliveries.tally(run)).await
    }

    /// The run to work on. For a schedule tick: the tick's run if it has one (to resume, or
    /// already finished), else a new one. By hand: the job's newest unfinished run, else a new
    /// one.
    async fn begin(
        &self,
        job: &Job,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> anyhow::Result<Begin> {
        let existing = match scheduled_for {
            Some(tick) => self.runs.for_tick(&job.name, tick)?,
            None => self.runs.unfinished(&job.name)?,
        };
        let file = std::path::absolute(&job.path).unwrap_or_else(|_| job.path.clone());
        let Some(mut record) = existing else {
            let record = (self.runs)
                .start(&job.name, &job.app, Some(file), scheduled_for)
                .await?;
            return Ok(Begin::Work(record));
        };
        if let Some(theirs) = record
            .job_file
            .as_ref()
            .filter(|t| !same_job_file(t, &file))
        {
            return Err(Invalid::one(
                Diagnostic::whole(
                    Some(&job.path),
                    format!(
                        "run {} of job `{}` belongs to another file of that name, {}",
                        record.id,
                        job.name,
                        theirs.display()
                    ),
                )
                .help(format!(
                    "a job's name is its file name, and its runs resume only for the file \
                     that started them: run {} to finish run {}, or give this file another name",
                    theirs.display(),
                    record.id
                )),
            )
            .into());
        }
        record.job_file = Some(file);
        if !record.status.is_unfinished() {
            tracing::info!(
                "job `{}`: tick {} already ran as run {} ({}); not running it again",
                job.name,
                scheduled_for.map(|t| t.to_rfc3339()).unwrap_or_default(),
                record.id,
                record.status
            );
            return Ok(Begin::AlreadyRan(record));
        }
        tracing::info!(
            "resuming run {} of job `{}`, started {} and interrupted before it finished",
            record.id,
            job.name,
            record.started_at.to_rfc3339()
        );
        record.status = RunStatus::Running;
        record.finished_at = None;
        record.resumes += 1;
        self.runs.put(&record).await?;
        Ok(Begin::Work(record))
    }
}

/// Whether a run recorded for the job file `theirs` belongs to `ours` (both absolute, links
/// not resolved, so `current/jobs/x.toml` stays itself from one release directory to the
/// next): the same path, the same file reached another way, or a recorded file that no longer
/// exists (the job was moved).
fn same_job_file(theirs: &std::path::Path, ours: &std::path::Path) -> bool {
    if theirs == ours {
        return true;
    }
    match (std::fs::canonicalize(theirs), std::fs::canonicalize(ours)) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), _) => true,
        (Ok(_), Err(_)) => false,
    }
}

/// What [`Engine::begin`] found.
enum Begin {
    /// A run to work on (new or resumed).
    Work(RunRecord),
    /// The tick's run already finished.
    AlreadyRan(RunRecord),
}

/// Everything one run shares between its stages.
struct RunCtx<'a> {
    engine: &'a Engine,
    job: &'a Job,
    sender: &'a Sender,
    options: RunOptions,
    run: RunId,
    journal: Journal,
    users: Arc<Limiter>,
    chat: Arc<Limiter>,
    pacer: Option<Pacer>,
    /// SHA-256 prefixes of the emails seen, for de-duplication in constant space per email.
    seen: Mutex<HashSet<[u8; 16]>>,
    /// What this process has done so far, for progress lines.
    progress: Progress,
    /// Sends Zoom refused with [`NOT_AUTHORIZED`] in this process.
    refused: AtomicU64,
    /// Whether the run was interrupted before: only then can the journal hold entries.
    resumed: bool,
    /// How long cached JIDs and misses stay good.
    ttl: CacheTtl,
}

impl RunCtx<'_> {
    /// Both stages, concurrently; the first [`Stop`] ends both.
    async fn pipeline(&self) -> Result<(), Stop> {
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

    fn first_time(&self, r: &Recipient) -> bool {
        self.seen
            .lock()
            .expect("seen lock")
            .insert(dedupe_key(&r.email))
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
        let delivery = Delivery {
            email: email.to_owned(),
            state,
            jid,
            rendered: None,
            attempts,
            updated_at: Utc::now(),
        };
        Ok(self.journal.record(self.run, &delivery)?)
    }

    /// Stage one: skip what the journal says is done, resend what a crash left in flight,
    /// resolve and render the rest.
    async fn prepare(&self, r: Recipient) -> Result<Option<Ready>, Stop> {
        let r = &r;
        // A fresh run has no journal entries yet: skip the lookup on the hot path.
        let previous = if self.resumed {
            self.engine.deliveries.get(self.run, &r.email)?
        } else {
            None
        };
        let mut tries = Tries {
            attempts: previous.as_ref().map_or(0, |d| d.attempts),
            ..Tries::default()
        };
        if let Some(previous) = previous {
            match previous.state {
                DeliveryState::Sent { .. }
                | DeliveryState::Failed { .. }
                | DeliveryState::Uncertain => {
                    self.progress.skip();
                    return Ok(None);
                }
                DeliveryState::Sending if self.job.delivery.on_uncertain == OnUncertain::Skip => {
                    self.record(
                        &r.email,
                        DeliveryState::Uncertain,
                        previous.jid,
                        tries.attempts,
                    )?;
                    return Ok(None);
                }
                // Resent exactly as journaled: the message that may already have arrived, to
                // the same JID, with no lookup and no new rendering. (Entries of older builds
                // carry no message: they are resolved and rendered again below.)
                DeliveryState::Sending => {
                    if let (Some(jid), Some(rendered)) = (previous.jid, previous.rendered) {
                        return Ok(Some(Ready {
                            email: r.email.clone(),
                            jid,
                            rendered,
                            attempts: tries.attempts,
                        }));
                    }
                }
                DeliveryState::Pending => {}
            }
        }
        let user = match self.resolve(&r.email, &mut tries).await? {
            Ok(user) => user,
            Err(failed) => {
                self.record(&r.email, failed, None, tries.attempts)?;
                return Ok(None);
            }
        };
        let (head, body) = match self.job.template.render(&variables(r, &user)) {
            Ok(rendered) => rendered,
            Err(message) => {
                self.record(
                    &r.email,
                    DeliveryState::Failed {
                        code: None,
                        message,
                    },
                    Some(user.jid),
                    tries.attempts,
                )?;
                return Ok(None);
            }
        };
        Ok(Some(Ready {
            email: r.email.clone(),
            jid: user.jid,
            rendered: Rendered { head, body },
            attempts: tries.attempts,
        }))
    }

    /// The JID cache, else the Users API (whose answer is cached, misses too).
    async fn resolve(
        &self,
        email: &str,
        tries: &mut Tries,
    ) -> Result<Result<ZoomUser, DeliveryState>, Stop> {
        let jids = &self.engine.jids;
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
        let answer = call::<User, _, _>(
            &self.engine.tokens,
            &self.users,
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
            email: email.clone(),
            state: DeliveryState::Sending,
            jid: Some(jid.clone()),
            rendered: Some(rendered.clone()),
            attempts,
            updated_at: Utc::now(),
        };
        // A token failure must stop the run before the mark: `sending` means "will be sent".
        self.engine.tokens.bot_token().await?;
        self.journal.commit(self.run, sending).await?;
        if let Some(pacer) = &self.pacer {
            pacer.wait().await;
        }
        let zoom = &self.engine.zoom;
        let max = self.job.delivery.max_attempts.get();
        let message = &ChatMessage {
            robot_jid: self.sender.robot_jid.clone(),
            to_jid: jid,
            account_id: self.sender.account_id.clone(),
            user_jid: self.sender.user_jid.clone(),
            content: Content::text(rendered.head, rendered.body),
            is_markdown_support: self.job.markdown,
        };
        let mut tries = Tries {
            attempts,
            ..Tries::default()
        };
        let answer = call::<Bot, _, _>(
            &self.engine.tokens,
            &self.chat,
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
            Ok(sent) => DeliveryState::Sent {
                message_id: sent.message_id,
            },
            Err(e) => DeliveryState::Failed {
                code: e.code(),
                message: e.to_string(),
            },
        };
        self.record(&email, state, Some(message.to_jid.clone()), tries.attempts)
    }

    /// A recipients file that cannot be read, as the run's stop.
    fn unreadable(&self, p: &FileProblem) -> Stop {
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

/// Runs `f`, a scan or a batch of writes over the state, on tokio's blocking pool: in the
/// scheduler, other jobs' runs share the runtime's workers.
async fn off_workers<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f)
        .await
        .expect("work on the state does not panic")
}

/// How long `job` trusts a cached lookup.
fn cache_ttl(job: &Job) -> CacheTtl {
    CacheTtl {
        hit: TimeDelta::hours(i64::from(job.delivery.jid_cache_hours)),
        miss: TimeDelta::minutes(i64::from(job.delivery.jid_miss_minutes)),
    }
}

/// A receiver as a stream.
fn tokio_stream_from<T>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The template variables of one recipient: CSV columns, then Zoom's fields.
fn variables(r: &Recipient, user: &ZoomUser) -> BTreeMap<String, String> {
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
