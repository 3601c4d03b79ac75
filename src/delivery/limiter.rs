//! [`Limiter`]: the adaptive rate limit of one (app, endpoint), shared by every run in the
//! process, because Zoom limits requests per account, not per job.
//!
//! It starts unlimited (Zoom's limit depends on the account's plan). On a 429 it cuts its rate
//! to just under the rate Zoom accepted over the last second (halving instead when nothing was
//! accepted: that is no evidence of the limit). Several 429s arriving together (the requests
//! that were in flight) cut the rate once, and callers already waiting for a turn take a new one
//! at the new pace. It then recovers by 2% a second while Zoom keeps accepting (idle time
//! counts for nothing), up to a plateau just under that accepted rate, where it holds until half
//! a minute after the cut before probing higher: pacing at the limit itself draws a 429 every
//! few seconds, and each costs its request a whole `Retry-After`. The rejected request itself
//! waits at least its `Retry-After` (see `call`); a long `Retry-After` (Zoom's daily limit
//! says "tomorrow") pauses every caller. A 429 on a request made at the new pace within a
//! second of the cut pauses them briefly: Zoom's second was already spent (it counts in fixed
//! windows), and every request until it turns over would be refused one by one.
//!
//! A 429 less than a second after the limiter got busy is thin evidence: the second it counted
//! may have been mostly spent by someone else (the run just before, another app of the
//! account). When the limiter already has a rate, such a 429 leaves it alone. When nothing is
//! known yet, it cuts to what got through, but provisionally: that rate grows 10% a second
//! until a 429 on a whole second of evidence measures the limit, since a cut to the 2 requests
//! that got through must not take minutes to recover. The plateau a measurement sets is
//! remembered in the state directory ([`super::limiters`]), and the next process starts on it,
//! sending at that pace from its first request instead of finding the limit again.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The rate after a cut, as a share of the accepted rate.
const CUT_TO: f64 = 0.95;
/// Growth per second without a 429.
const RECOVERY: f64 = 1.02;
/// Growth per second of a provisional rate (from a cut on thin evidence).
const PROBE: f64 = 1.1;
/// The plateau, as a share of the rate Zoom accepted when it pushed back.
const PLATEAU_AT: f64 = 0.96;
/// How long the rate holds at its plateau.
const PLATEAU_FOR: Duration = Duration::from_secs(30);
/// Evidence shorter than this is thin; an idle gap longer than this ends a busy stretch.
const SECOND: Duration = Duration::from_secs(1);
/// A `Retry-After` at least this long pauses every caller, not just the rejected request.
const GLOBAL_PAUSE: Duration = Duration::from_secs(5);
/// How long every caller waits between probes of a second spent before a cut.
const SPENT_SECOND_PROBE: Duration = Duration::from_millis(250);
/// The slowest the limiter ever goes.
pub(super) const MIN_RATE: f64 = 0.5;
/// The share of a documented limit a limiter paces at: Zoom counts requests in its own
/// one-second windows, which an even pace does not line up with.
const DOCUMENTED_SHARE: f64 = 0.95;
/// The fastest rate it paces at; growing past it is as good as unlimited.
pub(super) const MAX_RATE: f64 = 100_000.0;

#[derive(Debug)]
struct State {
    /// Requests per second, or `None` while Zoom has not pushed back.
    rate: Option<f64>,
    /// Where recovery holds, measured by the last cut on a whole second of evidence (or
    /// remembered from one).
    plateau: Option<Plateau>,
    /// Whether `rate` came from a cut on less than a second of evidence.
    provisional: bool,
    /// The most the rate grows to: a little under the limit Zoom documents for the account's
    /// plan, when it is known (probing above a documented limit only draws 429s).
    cap: f64,
    next_slot: Instant,
    paused_until: Instant,
    last_cut: Option<Instant>,
    last_growth: Instant,
    accepted: VecDeque<Instant>,
    /// When the current stretch of requests (no gap over a second) began.
    busy_since: Instant,
    last_request: Instant,
}

/// A rate just under Zoom's limit, and since when the limiter knows it.
#[derive(Debug, Clone, Copy)]
struct Plateau {
    level: f64,
    since: Instant,
    /// Measured by this process (not remembered from an earlier one): worth storing.
    measured_here: bool,
}

/// A caller's turn: the instant it may make its request, under the pace of the moment.
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    /// When the request may go.
    pub at: Instant,
    epoch: u64,
}

/// One endpoint's shared limit.
#[derive(Debug)]
pub struct Limiter {
    state: Mutex<State>,
    /// Bumped (under the state's lock) by every cut or pause: turns handed out before it are
    /// void. Outside the lock, so that checking a turn on every request takes none.
    epoch: AtomicU64,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::starting_at(None)
    }
}

impl Limiter {
    /// A limiter pacing at `rate` from its first request (a remembered measurement), or
    /// unlimited.
    pub(super) fn starting_at(rate: Option<f64>) -> Self {
        Self::new(rate, MAX_RATE)
    }

    /// A limiter pacing at `rate` (or unlimited) that never grows above `cap`.
    fn new(rate: Option<f64>, cap: f64) -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(State {
                rate,
                plateau: rate.map(|level| Plateau {
                    level,
                    since: now,
                    measured_here: false,
                }),
                provisional: false,
                cap,
                next_slot: now,
                paused_until: now,
                last_cut: None,
                last_growth: now,
                accepted: VecDeque::new(),
                busy_since: now,
                last_request: now,
            }),
            epoch: AtomicU64::new(0),
        }
    }

    /// A fixed pace of `rate` requests a second: a job's own ceiling (`rate_per_second`). It is
    /// never told Zoom's answers, so it neither cuts nor grows.
    pub(super) fn ceiling(rate: std::num::NonZeroU32) -> Self {
        Self::starting_at(Some(f64::from(rate.get())))
    }

    /// A limiter for an endpoint whose limit Zoom documents for the account's plan
    /// (`per_second`): it paces a little under that limit from the first request and never
    /// grows above it; a 429 (another app spending the account's quota) still cuts it.
    pub(super) fn documented(per_second: u32) -> Self {
        let rate = f64::from(per_second) * DOCUMENTED_SHARE;
        Self::new(Some(rate), rate)
    }

    /// Reserves this caller's turn. When every caller is paused for longer than `patience` (a
    /// daily limit), nothing is reserved and the answer is how long the pause still lasts.
    pub fn reserve(&self, patience: Duration) -> Result<Turn, Duration> {
        let mut s = self.state.lock().expect("limiter lock");
        let now = Instant::now();
        if now.duration_since(s.last_request) > SECOND {
            s.busy_since = now;
        }
        s.last_request = now;
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
        Ok(Turn {
            at: slot,
            epoch: self.epoch.load(Ordering::Acquire),
        })
    }

    /// Whether `turn` still stands when it comes: after a cut or pause, a caller takes a new
    /// turn at the new pace rather than send at the old one.
    pub fn stands(&self, turn: Turn) -> bool {
        self.epoch.load(Ordering::Acquire) == turn.epoch
    }

    /// Zoom accepted a request.
    pub fn accepted(&self) {
        let mut s = self.state.lock().expect("limiter lock");
        let now = Instant::now();
        s.accepted.push_back(now);
        while s
            .accepted
            .front()
            .is_some_and(|t| now.duration_since(*t) > SECOND)
        {
            s.accepted.pop_front();
        }
        // Only busy time is evidence: a limiter idle for an hour has learned nothing new.
        let elapsed = now.duration_since(s.last_growth.max(s.busy_since));
        if let Some(rate) = s.rate
            && elapsed >= SECOND
        {
            let growth = if s.provisional { PROBE } else { RECOVERY };
            let mut grown = rate * growth.powf(elapsed.as_secs_f64());
            if let Some(plateau) = s.plateau
                && now.duration_since(plateau.since) < PLATEAU_FOR
            {
                grown = grown.min(plateau.level).max(rate);
            }
            s.rate = Some(grown.min(s.cap));
            s.last_growth = now;
        }
    }

    /// Zoom answered 429 to the request made on `turn`, asking (maybe) to wait `retry_after`.
    pub fn throttled(&self, turn: Turn, retry_after: Option<Duration>) {
        let mut s = self.state.lock().expect("limiter lock");
        let now = Instant::now();
        if let Some(until) = retry_after
            .filter(|w| *w >= GLOBAL_PAUSE)
            .and_then(|w| now.checked_add(w))
        {
            s.paused_until = s.paused_until.max(until);
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(cut) = s.last_cut.filter(|t| now.duration_since(*t) < SECOND) {
            if self.stands(turn) {
                self.wait_out_the_spent_second(&mut s, cut);
            }
            return; // the rest of a burst that was already in flight
        }
        let thin = now.duration_since(s.busy_since) < SECOND;
        if thin && s.rate.is_some() {
            return; // the second may be someone else's: keep the pace, the 429 waits alone
        }
        let accepted = s
            .accepted
            .iter()
            .filter(|t| now.duration_since(**t) <= SECOND)
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
        s.provisional = thin;
        if !thin && observed >= 1.0 {
            s.plateau = Some(Plateau {
                level: (observed * PLATEAU_AT).max(rate),
                since: now,
                measured_here: true,
            });
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        s.last_cut = Some(now);
        s.last_growth = now;
        s.next_slot = now;
        tracing::info!("zoom is rate limiting: pacing to {rate:.1} requests/s");
    }

    /// A request paced at the rate of the cut `cut` was refused too: the budget of Zoom's
    /// second was spent before the cut. Every caller waits a quarter second, so that one
    /// request at a time probes whether Zoom's window has turned over, where each would
    /// otherwise spend a request to learn it (and waiting out a whole `Retry-After` of "1"
    /// loses half a second on average). A second after the cut every request that spent the
    /// budget is out of any one-second window, so no pause reaches past it.
    fn wait_out_the_spent_second(&self, s: &mut State, cut: Instant) {
        let until = (Instant::now() + SPENT_SECOND_PROBE).min(cut + SECOND);
        s.paused_until = s.paused_until.max(until);
        s.last_growth = s.last_growth.max(until); // a pause is no evidence of a higher limit
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The current rate, `None` when unlimited.
    pub fn rate(&self) -> Option<f64> {
        self.state.lock().expect("limiter lock").rate
    }

    /// The plateau this limiter measured on a whole second of evidence, worth remembering (a
    /// pace remembered from an earlier process is not measured again by being used).
    pub fn measured(&self) -> Option<f64> {
        let s = self.state.lock().expect("limiter lock");
        s.plateau.filter(|p| p.measured_here).map(|p| p.level)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    impl Limiter {
        /// Waits for this caller's turn, however long, and gives it.
        pub(crate) async fn acquire(&self) -> Turn {
            let turn = self.reserve(Duration::MAX).expect("no patience limit");
            tokio::time::sleep_until(turn.at).await;
            turn
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_paces_below_the_accepted_rate_and_a_long_retry_after_pauses_all() {
        let limiter = Limiter::default();
        let turn = burst(&limiter, 20).await;
        assert_eq!(limiter.rate(), None, "unlimited until zoom pushes back");
        limiter.throttled(turn, Some(Duration::from_secs(1)));
        limiter.throttled(turn, Some(Duration::from_secs(1)));
        assert_eq!(limiter.rate(), Some(19.0), "cut once, to 95% of 20/s");
        let start = Instant::now();
        limiter.acquire().await;
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "a short Retry-After is the rejected request's own wait"
        );
        let mut turn = turn;
        for _ in 0..19 {
            turn = limiter.acquire().await;
        }
        // 19 more at 19/s: one second (the paused clock's timers round up to a millisecond).
        let paced = start.elapsed();
        assert!(
            paced >= Duration::from_secs(1) && paced <= Duration::from_millis(1010),
            "{paced:?}"
        );
        limiter.throttled(turn, Some(Duration::from_secs(3600)));
        let start = Instant::now();
        let turn = limiter.acquire().await;
        assert!(
            start.elapsed() >= Duration::from_secs(3600),
            "a daily limit pauses everyone"
        );
        limiter.throttled(turn, Some(Duration::from_secs(3600)));
        let left = limiter.reserve(Duration::from_secs(900)).unwrap_err();
        assert!(
            left > Duration::from_secs(3599),
            "a caller with less patience than the pause is told how long it lasts: {left:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_refused_at_the_new_pace_pauses_everyone_until_the_spent_second_is_over() {
        let limiter = Limiter::default();
        let in_flight = burst(&limiter, 20).await;
        let cut = Instant::now();
        limiter.throttled(in_flight, Some(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_millis(100)).await;
        limiter.throttled(in_flight, Some(Duration::from_secs(1)));
        let paced = limiter.acquire().await;
        assert_eq!(
            cut.elapsed(),
            Duration::from_millis(100),
            "the rest of the burst in flight is no news: nobody waits"
        );
        // Each request made at the new pace and refused pauses every caller a quarter second,
        // up to a second after the cut.
        let mut refused = paced;
        for expected in [350, 600, 850, 1000] {
            limiter.throttled(refused, None);
            assert!(!limiter.stands(refused), "waiting turns are void");
            refused = limiter.acquire().await;
            assert_eq!(
                refused.at - cut,
                Duration::from_millis(expected),
                "one probe at a time"
            );
        }
        assert_eq!(limiter.rate(), Some(19.0), "pauses do not cut again");
    }

    #[tokio::test(start_paused = true)]
    async fn recovers_gradually_to_a_plateau_then_probes_higher() {
        let limiter = Limiter::default();
        // Requests for over a second: the cut rests on a whole second of evidence.
        let mut turn = limiter.reserve(Duration::MAX).unwrap();
        for _ in 0..4 {
            turn = limiter.acquire().await;
            limiter.accepted();
            tokio::time::advance(Duration::from_millis(400)).await;
        }
        limiter.throttled(turn, None);
        let cut = limiter.rate().unwrap();
        assert!(
            (cut - 2.0 * CUT_TO).abs() < 1e-9,
            "two accepted in the last second"
        );
        let plateau = 2.0 * PLATEAU_AT;
        assert_eq!(limiter.measured(), Some(plateau));
        let mut rates = Vec::new();
        for _ in 0..30 {
            tokio::time::advance(Duration::from_secs(1)).await;
            limiter.accepted();
            rates.push(limiter.rate().unwrap());
        }
        assert!(
            rates[..29].iter().all(|r| (r - plateau).abs() < 1e-9),
            "back up to just under what Zoom accepted, and holds there: {rates:?}"
        );
        assert!(
            (rates[29] - plateau * RECOVERY).abs() < 1e-9,
            "then probes higher, 2% a second: {rates:?}"
        );
        tokio::time::advance(Duration::from_secs(3600)).await;
        limiter.acquire().await;
        limiter.accepted();
        assert_eq!(
            limiter.rate(),
            rates.last().copied(),
            "an idle hour is no evidence of a higher limit"
        );
    }

    /// `n` requests as fast as the limiter lets them go, every one accepted.
    async fn burst(limiter: &Limiter, n: usize) -> Turn {
        let mut turn = limiter.reserve(Duration::MAX).expect("no pause");
        for _ in 0..n {
            turn = limiter.acquire().await;
            limiter.accepted();
        }
        turn
    }

    /// Requests for `how_long`, every one accepted.
    pub(crate) async fn busy(limiter: &Limiter, how_long: Duration) -> Turn {
        let start = Instant::now();
        loop {
            let turn = limiter.acquire().await;
            limiter.accepted();
            tokio::time::advance(Duration::from_millis(50)).await;
            if start.elapsed() >= how_long {
                return turn;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_on_thin_evidence_keeps_a_known_pace() {
        let limiter = Limiter::starting_at(Some(20.0));
        // Idle (a scheduler between runs), then a run whose first second the run before it
        // had mostly spent: 2 of ours got through.
        tokio::time::advance(Duration::from_secs(10)).await;
        let turn = burst(&limiter, 2).await;
        limiter.throttled(turn, Some(Duration::from_secs(1)));
        let kept = limiter.rate().unwrap();
        assert!(kept >= 20.0, "not cut to 1.9/s: {kept}");
        // After a whole second of requests, a 429 is evidence.
        let turn = busy(&limiter, Duration::from_millis(1100)).await;
        limiter.throttled(turn, Some(Duration::from_secs(1)));
        let cut = limiter.rate().unwrap();
        assert!(cut < kept, "{cut}");
        let plateau = limiter.measured().unwrap();
        assert!(cut < plateau && plateau < kept, "{cut} {plateau}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_429_on_thin_evidence_grows_back_fast_until_one_on_a_whole_second() {
        let limiter = Limiter::default();
        let turn = burst(&limiter, 2).await;
        limiter.throttled(turn, Some(Duration::from_secs(1)));
        assert_eq!(limiter.rate(), Some(2.0 * CUT_TO), "all there is to go on");
        assert_eq!(limiter.measured(), None, "too thin to remember");
        tokio::time::advance(Duration::from_secs(1)).await;
        limiter.accepted();
        assert!((limiter.rate().unwrap() - 2.0 * CUT_TO * PROBE).abs() < 1e-9);
        let turn = busy(&limiter, Duration::from_millis(1100)).await;
        limiter.throttled(turn, Some(Duration::from_secs(1)));
        let cut = limiter.rate().unwrap();
        assert!(limiter.measured().is_some(), "a whole second of evidence");
        tokio::time::advance(Duration::from_secs(1)).await;
        limiter.accepted();
        let grown = limiter.rate().unwrap();
        assert!(
            grown <= cut * RECOVERY + 1e-9,
            "gradual again: {cut} -> {grown}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_documented_limit_paces_from_the_start_and_caps_recovery() {
        let limiter = Limiter::documented(20);
        assert_eq!(limiter.rate(), Some(19.0));
        let turn = busy(&limiter, Duration::from_secs(120)).await;
        assert_eq!(
            limiter.rate(),
            Some(19.0),
            "never probes above the plan's limit"
        );
        limiter.throttled(turn, Some(Duration::from_secs(1)));
        let cut = limiter.rate().unwrap();
        assert!(cut < 19.0, "another app's traffic still cuts it: {cut}");
        busy(&limiter, Duration::from_secs(120)).await;
        assert_eq!(
            limiter.rate(),
            Some(19.0),
            "and it recovers to the cap, not above"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_ceiling_spaces_turns_evenly_and_never_moves() {
        let ceiling = Limiter::ceiling(std::num::NonZeroU32::new(10).unwrap());
        let start = Instant::now();
        for _ in 0..3 {
            ceiling.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        assert_eq!(ceiling.rate(), Some(10.0));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            ceiling.rate(),
            Some(10.0),
            "it is told nothing, so it never grows"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_sends_the_callers_already_waiting_back_for_a_new_turn() {
        let limiter = Limiter::default();
        let before = limiter.reserve(Duration::MAX).unwrap();
        assert!(limiter.stands(before));
        limiter.accepted();
        limiter.throttled(before, None);
        assert!(!limiter.stands(before), "a turn taken at the old pace");
        let after = limiter.reserve(Duration::MAX).unwrap();
        assert!(limiter.stands(after));
        limiter.throttled(after, Some(Duration::from_secs(3600)));
        assert!(!limiter.stands(after), "a daily limit's pause voids it too");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_with_nothing_accepted_is_no_evidence() {
        let limiter = Limiter::default();
        let turn = limiter.reserve(Duration::MAX).unwrap();
        limiter.throttled(turn, None);
        assert_eq!(
            limiter.rate(),
            None,
            "the quota may be another app's: backoff handles it"
        );
        limiter.accepted();
        limiter.throttled(turn, Some(Duration::from_secs(u64::MAX)));
        assert_eq!(
            limiter.rate(),
            Some(CUT_TO),
            "one accepted in the last second; and no overflow on an absurd Retry-After"
        );
    }
}
