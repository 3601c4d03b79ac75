//! [`Limiter`]: the adaptive rate limit of one (app, endpoint), shared by every run in the
//! process, because Zoom limits requests per account, not per job.
//!
//! It starts unlimited (Zoom's limit depends on the account's plan). On a 429 it cuts its rate
//! to just under the rate Zoom accepted over the last second (halving instead when nothing was
//! accepted: that is no evidence of the limit), then recovers by 2% a second
//! while Zoom keeps accepting. Several 429s arriving together (the requests that were in
//! flight) cut the rate once. The rejected request itself waits at least its `Retry-After`
//! (see `call`); a long `Retry-After` (Zoom's daily limit says "tomorrow") pauses every caller.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// The rate after a cut, as a share of the accepted rate.
const CUT_TO: f64 = 0.95;
/// Growth per second without a 429.
const RECOVERY: f64 = 1.02;
/// A `Retry-After` at least this long pauses every caller, not just the rejected request.
const GLOBAL_PAUSE: Duration = Duration::from_secs(5);
/// The slowest the limiter ever goes.
const MIN_RATE: f64 = 0.5;

#[derive(Debug)]
struct State {
    /// Requests per second, or `None` while Zoom has not pushed back.
    rate: Option<f64>,
    next_slot: Instant,
    paused_until: Instant,
    last_cut: Option<Instant>,
    last_growth: Instant,
    accepted: VecDeque<Instant>,
}

/// One endpoint's shared limit.
#[derive(Debug)]
pub struct Limiter {
    state: Mutex<State>,
}

impl Default for Limiter {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(State {
                rate: None,
                next_slot: now,
                paused_until: now,
                last_cut: None,
                last_growth: now,
                accepted: VecDeque::new(),
            }),
        }
    }
}

impl Limiter {
    /// Reserves this caller's turn: the instant it may make its request. When every caller
    /// is paused for longer than `patience` (a daily limit), nothing is reserved and the
    /// answer is how long the pause still lasts.
    pub fn reserve(&self, patience: Duration) -> Result<Instant, Duration> {
        let mut s = self.state.lock().expect("limiter lock");
        let now = Instant::now();
        if now
            .checked_add(patience)
            .is_some_and(|limit| s.paused_until > limit)
        {
            return Err(s.paused_until - now);
        }
        let mut slot = now.max(s.paused_until);
        if let Some(rate) = s.rate {
            slot = slot.max(s.next_slot);
            s.next_slot = slot + Duration::from_secs_f64(1.0 / rate);
        }
        Ok(slot)
    }

    /// Zoom accepted a request.
    pub fn accepted(&self) {
        let mut s = self.state.lock().expect("limiter lock");
        let now = Instant::now();
        s.accepted.push_back(now);
        while s
            .accepted
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
        {
            s.accepted.pop_front();
        }
        let elapsed = now.duration_since(s.last_growth);
        if let Some(rate) = s.rate
            && elapsed >= Duration::from_secs(1)
        {
            s.rate = Some(rate * RECOVERY.powf(elapsed.as_secs_f64()));
            s.last_growth = now;
        }
    }

    /// Zoom answered 429, asking (maybe) to wait `retry_after`.
    pub fn throttled(&self, retry_after: Option<Duration>) {
        let mut s = self.state.lock().expect("limiter lock");
        let now = Instant::now();
        if let Some(until) = retry_after
            .filter(|w| *w >= GLOBAL_PAUSE)
            .and_then(|w| now.checked_add(w))
        {
            s.paused_until = s.paused_until.max(until);
        }
        if s.last_cut
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return; // the rest of a burst that was already in flight
        }
        let accepted = s
            .accepted
            .iter()
            .filter(|t| now.duration_since(**t) <= Duration::from_secs(1))
            .count();
        #[allow(clippy::cast_precision_loss)] // counts of requests in one second
        let observed = accepted as f64;
        let current = s.rate.unwrap_or(f64::INFINITY);
        // With nothing accepted in the last second there is no evidence of the limit (the
        // quota may be another app's): halve a known rate, or leave it to per-request backoff.
        let base = if observed >= 1.0 {
            observed.min(current)
        } else if current.is_finite() {
            current / 2.0 / CUT_TO
        } else {
            return;
        };
        let rate = (base * CUT_TO).max(MIN_RATE);
        s.rate = Some(rate);
        s.last_cut = Some(now);
        s.last_growth = now;
        s.next_slot = s.next_slot.max(now);
        tracing::info!("zoom is rate limiting: pacing to {rate:.1} requests/s");
    }

    /// The current rate, `None` when unlimited.
    pub fn rate(&self) -> Option<f64> {
        self.state.lock().expect("limiter lock").rate
    }
}

/// Which Zoom endpoint a limiter guards: Zoom's rate classes differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /v2/users/{id}` (Light).
    Users,
    /// `POST /v2/im/chat/messages` (Medium).
    Chat,
}

/// Every limiter of the process, by app and endpoint.
#[derive(Debug, Default)]
pub struct Limiters {
    map: Mutex<HashMap<(String, Endpoint), Arc<Limiter>>>,
}

impl Limiters {
    /// The limiter of `app`'s `endpoint`, created on first use.
    pub fn get(&self, app: &str, endpoint: Endpoint) -> Arc<Limiter> {
        self.map
            .lock()
            .expect("limiters lock")
            .entry((app.to_owned(), endpoint))
            .or_default()
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Limiter {
        /// Waits for this caller's turn, however long.
        async fn acquire(&self) {
            let slot = self.reserve(Duration::MAX).expect("no patience limit");
            tokio::time::sleep_until(slot).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_paces_below_the_accepted_rate_and_a_long_retry_after_pauses_all() {
        let limiter = Limiter::default();
        for _ in 0..20 {
            limiter.acquire().await;
            limiter.accepted();
        }
        assert_eq!(limiter.rate(), None, "unlimited until zoom pushes back");
        limiter.throttled(Some(Duration::from_secs(1)));
        limiter.throttled(Some(Duration::from_secs(1)));
        assert_eq!(limiter.rate(), Some(19.0), "cut once, to 95% of 20/s");
        let start = Instant::now();
        limiter.acquire().await;
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "a short Retry-After is the rejected request's own wait"
        );
        for _ in 0..19 {
            limiter.acquire().await;
        }
        // 19 more at 19/s: one second (the paused clock's timers round up to a millisecond).
        let paced = start.elapsed();
        assert!(
            paced >= Duration::from_secs(1) && paced <= Duration::from_millis(1010),
            "{paced:?}"
        );
        limiter.throttled(Some(Duration::from_secs(3600)));
        let start = Instant::now();
        limiter.acquire().await;
        assert!(
            start.elapsed() >= Duration::from_secs(3600),
            "a daily limit pauses everyone"
        );
        limiter.throttled(Some(Duration::from_secs(3600)));
        let left = limiter.reserve(Duration::from_secs(900)).unwrap_err();
        assert!(
            left > Duration::from_secs(3599),
            "a caller with less patience than the pause is told how long it lasts: {left:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn recovers_gradually_while_zoom_accepts() {
        let limiter = Limiter::default();
        limiter.accepted();
        limiter.throttled(None);
        let cut = limiter.rate().unwrap();
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(1)).await;
            limiter.accepted();
        }
        let recovered = limiter.rate().unwrap();
        assert!(
            (recovered / cut - RECOVERY.powi(10)).abs() < 1e-9,
            "{cut} -> {recovered}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_with_nothing_accepted_is_no_evidence() {
        let limiter = Limiter::default();
        limiter.throttled(None);
        assert_eq!(
            limiter.rate(),
            None,
            "the quota may be another app's: backoff handles it"
        );
        limiter.accepted();
        limiter.throttled(Some(Duration::from_secs(u64::MAX)));
        assert_eq!(
            limiter.rate(),
            Some(CUT_TO),
            "one accepted in the last second; and no overflow on an absurd Retry-After"
        );
    }

    #[test]
    fn shared_per_app_and_endpoint() {
        let limiters = Limiters::default();
        assert!(Arc::ptr_eq(
            &limiters.get("a", Endpoint::Chat),
            &limiters.get("a", Endpoint::Chat)
        ));
        assert!(!Arc::ptr_eq(
            &limiters.get("a", Endpoint::Chat),
            &limiters.get("a", Endpoint::Users)
        ));
        assert!(!Arc::ptr_eq(
            &limiters.get("a", Endpoint::Chat),
            &limiters.get("b", Endpoint::Chat)
        ));
    }
}
