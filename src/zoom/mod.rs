//! The Zoom API client: look users up with a [`UserToken`](crate::token::UserToken), send
//! chatbot messages with a [`BotToken`](crate::token::BotToken).
//!
//! This module knows HTTP and Zoom's wire formats, and nothing of sled, jobs or retries: callers
//! decide what to do with a [`ZoomError`] through its [`Disposition`], and [`backoff`] says how
//! long to wait before a retry.

pub mod backoff;
pub mod channels;
pub mod chat;
pub mod client;
pub mod error;
pub mod retry_after;
pub mod users;

pub use crate::user::ZoomUser;
pub use chat::{ChatMessage, SentMessage};
pub use client::{Endpoints, ZoomClient};
pub use error::{Disposition, ZoomError};
