//! [`ChatCtx`]: what every request a run makes to Zoom shares, whether it sends the run's
//! messages ([`RunCtx`](super::pipeline::RunCtx) adds the journal and progress), previews
//! them, recalls or edits them, or reminds their recipients: the job, its sender, the
//! account's limiters, the run's request slots and the run's template variables.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use chrono::{TimeDelta, Utc};

use super::call::{Pace, Tries, User, call};
use super::engine::Engine;
use super::limiter::Limiter;
use super::limiters::Endpoint;
use super::{RunOptions, Sender, Stop};
use crate::config::Job;
use crate::config::recipients::{Address, FileProblem, Recipient};
use crate::state::{CacheTtl, CachedLookup, DeliveryState, RunId};
use crate::user::ZoomUser;
use crate::zoom::channels::Channel;

/// One run's requests to Zoom.
pub(super) struct ChatCtx<'a> {
    pub(super) engine: &'a Engine,
    pub(super) job: &'a Job,
    pub(super) sender: &'a Sender,
    pub(super) options: RunOptions,
    pub(super) run: RunId,
    /// The account's Users API and Chatbot API limiters.
    pub(super) lookup_limiter: Arc<Limiter>,
    pub(super) send_limiter: Arc<Limiter>,
    /// The run's requests in flight, lookups and sends together (`concurrency`).
    pub(super) slots: tokio::sync::Semaphore,
    /// This process's lookups and Chatbot requests Zoom answered 429.
    pub(super) lookups_limited: AtomicU64,
    pub(super) sends_limited: AtomicU64,
    /// How long cached JIDs and misses stay good.
    pub(super) ttl: CacheTtl,
    /// The variables every message of the run has: the job's `[vars]`, `job`, `run_id` and
    /// `now`.
    pub(super) job_vars: BTreeMap<String, String>,
    /// The channels the authorizing user can see, read once a run when a recipient names one
    /// (`#name`), or why they could not be read.
    pub(super) channel_list: tokio::sync::OnceCell<Result<Vec<Channel>, DeliveryState>>,
}

impl Engine {
    /// The requests of run `run` of `job`, sent as `sender`.
    pub(super) fn chat<'a>(
        &'a self,
        job: &'a Job,
        sender: &'a Sender,
        options: RunOptions,
        run: RunId,
        job_vars: BTreeMap<String, String>,
    ) -> ChatCtx<'a> {
        ChatCtx {
            engine: self,
            job,
            sender,
            options,
            run,
            lookup_limiter: self.limiters.get(&sender.account_id, Endpoint::Users),
            send_limiter: self.limiters.get(&sender.account_id, Endpoint::Chat),
            slots: tokio::sync::Semaphore::new(job.delivery.concurrency.get()),
            lookups_limited: AtomicU64::new(0),
            sends_limited: AtomicU64::new(0),
            ttl: cache_ttl(job),
            job_vars,
            channel_list: tokio::sync::OnceCell::new(),
        }
    }
}

impl ChatCtx<'_> {
    /// Who `address` is: a person by email is looked up (JID cache, else the Users API), a
    /// channel by name is found among the user's channels, and a JID is itself (no profile).
    pub(super) async fn recipient(
        &self,
        address: &Address,
        tries: &mut Tries,
    ) -> Result<Result<ZoomUser, DeliveryState>, Stop> {
        match address {
            Address::Email(email) => self.resolve(email, tries).await,
            Address::ChannelName(name) => Ok(self
                .channel(name)
                .await?
                .map(|jid| Address::unprofiled(&jid))),
            Address::User(jid) | Address::Channel(jid) => Ok(Ok(Address::unprofiled(jid))),
        }
    }

    /// The pace of a Users API request (a lookup, a page of channels): the account's lookup
    /// limiter and the run's slots.
    pub(super) fn lookup_pace(&self) -> Pace<'_> {
        Pace {
            shared: &self.lookup_limiter,
            ceiling: None,
            ceiling_taken: false,
            slots: &self.slots,
            rate_limited: &self.lookups_limited,
        }
    }

    /// The pace of a Chatbot API request other than a send (an edit, a delete, a reminder):
    /// the account's send limiter and the run's slots, without the job's send ceiling.
    pub(super) fn chat_pace(&self) -> Pace<'_> {
        Pace {
            shared: &self.send_limiter,
            ceiling: None,
            ceiling_taken: false,
            slots: &self.slots,
            rate_limited: &self.sends_limited,
        }
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
        let pace = self.lookup_pace();
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
        Address::User(_) | Address::Channel(_) | Address::ChannelName(_) => String::new(),
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

/// How long `job`'s cached lookups stay good: found ones and misses.
pub(super) fn cache_ttl(job: &Job) -> CacheTtl {
    CacheTtl {
        hit: TimeDelta::hours(i64::from(job.delivery.jid_cache_hours)),
        miss: TimeDelta::minutes(i64::from(job.delivery.jid_miss_minutes)),
    }
}
