//! Refresh-token keep-alive: a grant that has not been refreshed for a while is refreshed on
//! purpose, so a job that runs monthly never finds its refresh token expired (Zoom's refresh
//! tokens are said to expire after 90 days unused; see `zoom-api.md`).

use chrono::{DateTime, TimeDelta, Utc};

use super::{AppTokens, TokenError};

/// What a keep-alive check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// The account has no grant (any more).
    NoGrant,
    /// The grant was refreshed recently enough.
    Fresh,
    /// The grant was refreshed; it had been idle this long.
    Refreshed(TimeDelta),
}

/// Refreshes the account's grant if its last refresh is more than `max_idle` before `now`. Reads
/// the grant `tokens` holds (the newest, even if writing it failed), not the disk.
pub async fn refresh_if_idle(
    tokens: &AppTokens,
    max_idle: TimeDelta,
    now: DateTime<Utc>,
) -> Result<KeepAlive, TokenError> {
    let since = now
        .checked_sub_signed(max_idle)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    match tokens.refresh_if_before(since).await {
        Err(TokenError::NoGrant { .. } | TokenError::NotInstalled { .. }) => Ok(KeepAlive::NoGrant),
        Err(e) => Err(e),
        Ok(None) => Ok(KeepAlive::Fresh),
        Ok(Some(last)) => Ok(KeepAlive::Refreshed(now - last)),
    }
}
