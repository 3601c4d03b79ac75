//! A message the bot sends outside any run: its answer in chat to `stop`, `start` or `help`.
//! It takes the path every send takes ([`call`]): the account's shared chat limiter, the
//! app's bot token renewed once if Zoom rejects it, and 429, 5xx and network failures retried
//! with backoff, so a reply neither bursts past Zoom's limit beside a run nor is lost to one
//! refusal.

use std::sync::atomic::AtomicU64;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::call::{Bot, Pace, Tries, call};
use super::limiters::Endpoint;
use super::{Engine, Stop};
use crate::auth::AppTokens;
use crate::zoom::{ChatMessage, ZoomError};

/// How many requests one reply may take.
const REPLY_ATTEMPTS: u32 = 4;

/// Why a reply was not sent.
#[derive(Debug, thiserror::Error)]
pub enum NotReplied {
    /// What would stop a run stopped it (no bot token, Zoom unreachable after retries).
    #[error(transparent)]
    Stopped(#[from] Stop),
    /// Zoom refused it for good.
    #[error(transparent)]
    Refused(#[from] ZoomError),
}

impl Engine {
    /// Sends `message` as the bot of `tokens`' app, in its account.
    pub async fn reply(&self, tokens: &AppTokens, message: &ChatMessage) -> Result<(), NotReplied> {
        let chat = self.limiters.get(&message.account_id, Endpoint::Chat);
        let (one_slot, limited) = (Semaphore::new(1), AtomicU64::new(0));
        let pace = Pace {
            shared: &chat,
            ceiling: None,
            ceiling_taken: false,
            slots: &one_slot,
            rate_limited: &limited,
        };
        let zoom = &self.zoom;
        let answer = call::<Bot, _, _>(
            tokens,
            &pace,
            REPLY_ATTEMPTS,
            &CancellationToken::new(),
            &mut Tries::default(),
            |token| async move { zoom.send_message(&token, message).await },
        )
        .await?;
        answer?;
        Ok(())
    }
}
