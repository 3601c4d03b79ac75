//! One Zoom API call with its token, as the engine makes it. Every request of it, retries
//! included, takes one of the run's `concurrency` slots, then waits for the job's ceiling
//! (`rate_per_second`, for sends) and for the endpoint's shared limiter, which paces every run
//! of the process below Zoom's limit ([`Pace`]). A rejected token is renewed once; 429, 5xx
//! and network errors are retried with jittered backoff up to `max_attempts`. What cannot be
//! retried away stops the run ([`Stop`]); what is this recipient's own problem is returned as
//! its failure.

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

use crate::auth::{AppTokens, TokenError};
use crate::token::{BotToken, UserToken};
use crate::zoom::backoff::backoff;
use crate::zoom::{Disposition, ZoomError};

use super::limiter::{Limiter, Turn};
use super::stop::Stop;

/// The longest `Retry-After` a run waits out; a longer one (Zoom's daily limit) stops it.
const MAX_PATIENCE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Which token a call needs; lets one retry loop serve both APIs.
pub(super) trait TokenKind {
    type Token;
    /// The token's name in messages.
    const NAME: &'static str;
    /// What to check when Zoom rejects even a fresh token of this kind.
    const HELP: &'static str;
    async fn get(tokens: &AppTokens) -> Result<Self::Token, TokenError>;
    async fn renew(tokens: &AppTokens, rejected: &Self::Token) -> Result<Self::Token, TokenError>;
    /// A call succeeded with `token`.
    fn worked(_tokens: &AppTokens, _token: &Self::Token) {}
}

/// The Users API's token.
pub(super) struct User;
/// The Chatbot API's token.
pub(super) struct Bot;

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
    fn worked(tokens: &AppTokens, token: &UserToken) {
        tokens.user_token_worked(token);
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

/// What a call's requests did so far.
#[derive(Debug, Default)]
pub(super) struct Tries {
    /// Every request made for the recipient (across calls and runs).
    pub attempts: u32,
    /// Whether a request of this call may have been processed by Zoom: it got an answer other
    /// than one saying it was not (a 429, an unknown bot), or no answer at all.
    pub maybe_processed: bool,
}

/// What paces one call's requests.
pub(super) struct Pace<'a> {
    /// Zoom's limit for the endpoint, as learned; shared by every run of the process.
    pub shared: &'a Limiter,
    /// The job's own ceiling (`rate_per_second`), for sends.
    pub ceiling: Option<&'a Limiter>,
    /// Whether the caller already waited for the first request's ceiling turn (before it
    /// marked the recipient `sending`, so that a mark is never left waiting).
    pub ceiling_taken: bool,
    /// The run's requests in flight, lookups and sends together (`concurrency`).
    pub slots: &'a Semaphore,
    /// Where the run counts this endpoint's requests Zoom answered 429.
    pub rate_limited: &'a std::sync::atomic::AtomicU64,
}

impl Pace<'_> {
    /// Waits for a request slot, then for the ceiling's and the shared limiter's turns, and
    /// gives the slot with the turn. `None` when the shared limiter voided the turn while this
    /// caller waited (Zoom pushed back): the caller takes a new one at the new pace.
    async fn turn(
        &self,
        cancel: &CancellationToken,
        ceiling_taken: &mut bool,
    ) -> Result<Option<(SemaphorePermit<'_>, Turn)>, Stop> {
        let slot = tokio::select! {
            slot = self.slots.acquire() => slot.map_err(|_| Stop::Shutdown)?,
            () = cancel.cancelled() => return Err(Stop::Shutdown),
        };
        if let Some(ceiling) = self.ceiling
            && !std::mem::replace(ceiling_taken, false)
        {
            wait_for_ceiling(ceiling, cancel).await?;
        }
        let turn = self
            .shared
            .reserve(MAX_PATIENCE)
            .map_err(|wait| Stop::RateLimitedFor {
                wait,
                last: "every request is paused by an earlier 429".to_owned(),
            })?;
        wait_until(turn.at, cancel).await?;
        Ok(self.shared.stands(turn).then_some((slot, turn)))
    }
}

/// Waits for the job's ceiling to allow a request.
pub(super) async fn wait_for_ceiling(
    ceiling: &Limiter,
    cancel: &CancellationToken,
) -> Result<(), Stop> {
    // A ceiling is never paused, so a turn is always given.
    if let Ok(turn) = ceiling.reserve(std::time::Duration::MAX) {
        wait_until(turn.at, cancel).await?;
    }
    Ok(())
}

/// Makes one call, counting its requests in `tries`.
pub(super) async fn call<K: TokenKind, T, F>(
    tokens: &AppTokens,
    pace: &Pace<'_>,
    max_attempts: u32,
    cancel: &CancellationToken,
    tries_so_far: &mut Tries,
    op: impl Fn(K::Token) -> F,
) -> Result<Result<T, ZoomError>, Stop>
where
    K::Token: Clone,
    F: Future<Output = Result<T, ZoomError>>,
{
    let (mut renewed, mut tries) = (false, 0);
    let mut replacement: Option<K::Token> = None;
    let mut ceiling_taken = pace.ceiling_taken;
    let limiter = pace.shared;
    loop {
        let Some((slot, turn)) = pace.turn(cancel, &mut ceiling_taken).await? else {
            continue; // Zoom pushed back while this caller waited: a new turn at the new pace
        };
        // The token is fetched for every attempt (it is cached): a wait may outlive it.
        let token = match replacement.take() {
            Some(token) => token,
            None => K::get(tokens).await?,
        };
        tries_so_far.attempts += 1;
        tries += 1;
        // The operation owns its copy of the token: a future that borrowed it for any
        // lifetime would not be provably `Send`, and the scheduler spawns runs.
        let answer = op(token.clone()).await;
        drop(slot); // the request is over: waits below are not requests in flight
        tries_so_far.maybe_processed |= !matches!(&answer, Err(e) if e.says_unprocessed());
        let error = match answer {
            Ok(value) => {
                limiter.accepted();
                K::worked(tokens, &token);
                return Ok(Ok(value));
            }
            Err(e) => e,
        };
        if error.is_rate_limited() {
            pace.rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            limiter.accepted(); // Zoom answered; it is not pushing back
        }
        match step::<K>(
            error,
            (tries, max_attempts),
            renewed,
            tokens.app(),
            (limiter, turn),
        ) {
            Step::Renew(error) => {
                renewed = true;
                tries -= 1;
                replacement = Some(renew::<K>(tokens, &token, error).await?);
            }
            Step::Retry(wait) => {
                renewed = false;
                wait_until(tokio::time::Instant::now() + wait, cancel).await?;
            }
            Step::Stop(stop) => return Err(stop),
            Step::Fail(error) => return Ok(Err(error)),
        }
    }
}

/// What a call does after an answer that is an error.
enum Step {
    /// Renew the token Zoom rejected, and ask again at once.
    Renew(ZoomError),
    /// Ask again after this wait.
    Retry(std::time::Duration),
    /// Stop the run.
    Stop(Stop),
    /// The recipient's own failure.
    Fail(ZoomError),
}

/// What follows `error`, the answer to attempt `tries` of at most `max_attempts`, the token
/// renewed since the last accepted request or not (`renewed`). A 429 slows the endpoint's
/// `limiter` from the request's `turn` on.
fn step<K: TokenKind>(
    error: ZoomError,
    (tries, max_attempts): (u32, u32),
    renewed: bool,
    app: &str,
    (limiter, turn): (&Limiter, Turn),
) -> Step {
    match error.disposition() {
        Disposition::RenewToken if !renewed => Step::Renew(error),
        Disposition::RenewToken => Step::Stop(Stop::RejectedAfterRenewal {
            kind: K::NAME,
            app: app.to_owned(),
            last: error,
            help: K::HELP,
        }),
        Disposition::Retry { after: Some(after) } if after > MAX_PATIENCE => {
            limiter.throttled(turn, Some(after));
            Step::Stop(Stop::RateLimitedFor {
                wait: after,
                last: error.to_string(),
            })
        }
        Disposition::Retry { after } if tries < max_attempts => {
            if error.is_rate_limited() {
                limiter.throttled(turn, after);
            }
            let wait = backoff(tries, after, &mut rand::thread_rng());
            tracing::debug!("retrying in {wait:?} after: {error}");
            Step::Retry(wait)
        }
        Disposition::Retry { .. } => Step::Stop(Stop::Unreachable {
            attempts: tries,
            last: error,
        }),
        Disposition::WrongBot => Step::Stop(Stop::WrongBot {
            app: app.to_owned(),
            last: error,
        }),
        Disposition::Permanent => Step::Fail(error),
    }
}

/// A new token in place of `rejected`, which Zoom answered with `error`; a stop when another
/// task's refresh already produced a token Zoom rejects too.
async fn renew<K: TokenKind>(
    tokens: &AppTokens,
    rejected: &K::Token,
    error: ZoomError,
) -> Result<K::Token, Stop> {
    match K::renew(tokens, rejected).await {
        Err(TokenError::RejectedAfterRefresh { app }) => Err(Stop::RejectedAfterRenewal {
            kind: K::NAME,
            app,
            last: error,
            help: K::HELP,
        }),
        renewed => Ok(renewed?),
    }
}

/// Waits until `deadline`, or stops for shutdown. A deadline already due goes ahead without a
/// timer (which would round up to the timer wheel's next millisecond).
async fn wait_until(
    deadline: tokio::time::Instant,
    cancel: &CancellationToken,
) -> Result<(), Stop> {
    if deadline > tokio::time::Instant::now() {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            () = cancel.cancelled() => return Err(Stop::Shutdown),
        }
    }
    Ok(())
}
