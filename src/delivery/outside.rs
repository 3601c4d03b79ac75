//! Calls to Zoom outside any run: the bot's answer in chat to `stop`, `start` or `help`,
//! who authorized a grant (a dry run, `doctor`), and the channels a grant can see (`channels`). Each takes the path every call of a run takes
//! ([`call`]): the account's shared limiter, the token renewed once if Zoom rejects it (a
//! user token through a refresh, which records the grant dead if Zoom refuses that), and 429,
//! 5xx and network failures retried with backoff. So a reply neither bursts past Zoom's limit
//! beside a run nor is lost to one refusal, and a check says what a run would.

use std::sync::atomic::AtomicU64;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::call::{Bot, Pace, TokenKind, Tries, User, call};
use super::limiters::Endpoint;
use super::{Engine, Stop};
use crate::auth::AppTokens;
use crate::user::ZoomUser;
use crate::zoom::channels::{Channel, MAX_PAGES};
use crate::zoom::{ChatMessage, ZoomError};

/// How many requests one call outside a run may take.
const ATTEMPTS: u32 = 4;

/// Why a call outside a run got no answer.
#[derive(Debug, thiserror::Error)]
pub enum NotAnswered {
    /// What would stop a run stopped it (no token, a dead grant, Zoom unreachable after
    /// retries).
    #[error(transparent)]
    Stopped(#[from] Stop),
    /// Zoom refused it for good.
    #[error(transparent)]
    Refused(#[from] ZoomError),
}

impl NotAnswered {
    /// Whether Zoom gave no answer that says anything of the call (unreachable, 5xx or 429
    /// after every retry): asking again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Stopped(Stop::Unreachable { .. } | Stop::RateLimitedFor { .. }) => true,
            Self::Stopped(Stop::Token(crate::auth::TokenError::OAuth(e))) => e.is_transient(),
            _ => false,
        }
    }
}

impl Engine {
    /// Sends `message` as the bot of `tokens`' app, in the message's account.
    pub async fn reply(
        &self,
        tokens: &AppTokens,
        message: &ChatMessage,
    ) -> Result<(), NotAnswered> {
        let zoom = &self.zoom;
        self.call_once::<Bot, _, _>(
            tokens,
            &message.account_id,
            Endpoint::Chat,
            |token| async move { zoom.send_message(&token, message).await },
        )
        .await
        .map(drop)
    }

    /// Who authorized the grant `tokens` hold (`GET /v2/users/me`), asked of Zoom now.
    pub async fn authorizing_user(&self, tokens: &AppTokens) -> Result<ZoomUser, NotAnswered> {
        let zoom = &self.zoom;
        self.call_once::<User, _, _>(
            tokens,
            tokens.account(),
            Endpoint::Users,
            |token| async move { zoom.get_user(&token, "me").await },
        )
        .await
    }

    /// Every channel the grant `tokens` hold can see (`GET /v2/chat/users/me/channels`, every
    /// page), by name.
    pub async fn channels(&self, tokens: &AppTokens) -> Result<Vec<Channel>, NotAnswered> {
        let zoom = &self.zoom;
        let mut all = Vec::new();
        let mut next = String::new();
        for _ in 0..MAX_PAGES {
            let page_token = next.as_str();
            let page = self
                .call_once::<User, _, _>(
                    tokens,
                    tokens.account(),
                    Endpoint::Users,
                    |token| async move { zoom.list_channels(&token, page_token).await },
                )
                .await?;
            all.extend(page.channels);
            if page.next_page_token.is_empty() {
                all.sort_by_key(|c: &Channel| c.name.to_lowercase());
                return Ok(all);
            }
            next = page.next_page_token;
        }
        Err(NotAnswered::Refused(ZoomError::Decode(format!(
            "the channel list did not end after {MAX_PAGES} pages"
        ))))
    }

    /// One call with `K`'s token, paced by `account`'s limiter of `endpoint`.
    async fn call_once<K, T, F>(
        &self,
        tokens: &AppTokens,
        account: &str,
        endpoint: Endpoint,
        op: impl Fn(K::Token) -> F,
    ) -> Result<T, NotAnswered>
    where
        K: TokenKind,
        K::Token: Clone,
        F: Future<Output = Result<T, ZoomError>>,
    {
        let limiter = self.limiters.get(account, endpoint);
        let (one_slot, refused_429) = (Semaphore::new(1), AtomicU64::new(0));
        let pace = Pace {
            shared: &limiter,
            ceiling: None,
            ceiling_taken: false,
            slots: &one_slot,
            rate_limited: &refused_429,
        };
        let cancel = CancellationToken::new();
        let answer =
            call::<K, T, F>(tokens, &pace, ATTEMPTS, &cancel, &mut Tries::default(), op).await?;
        Ok(answer?)
    }
}
