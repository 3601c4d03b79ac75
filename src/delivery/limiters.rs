//! [`Limiters`]: every [`Limiter`] of the process, one per Zoom account and endpoint (Zoom's
//! limits are the account's, shared by every app installed in it), created on first use: at
//! the limit Zoom documents for the account's plan when an app configures it, else at the pace
//! the state directory remembers; what they measure is stored for the next process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::limiter::{Limiter, MAX_RATE, MIN_RATE};
use crate::config::Plan;
use crate::state::Paces;

/// Which Zoom endpoint a limiter guards: Zoom's rate classes differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /v2/users/{id}` (Light).
    Users,
    /// `POST /v2/im/chat/messages` (Medium).
    Chat,
}

impl Endpoint {
    const ALL: [Self; 2] = [Self::Users, Self::Chat];

    /// Its name in the state directory.
    pub fn name(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Chat => "chat",
        }
    }
}

/// Every limiter of the process, by account and endpoint.
#[derive(Debug, Default)]
pub struct Limiters {
    map: Mutex<HashMap<(String, Endpoint), Arc<Limiter>>>,
    /// The plans of the accounts whose apps configure one: their limiters start at Zoom's
    /// documented limits.
    plans: Mutex<HashMap<String, Plan>>,
    /// Where measured paces are remembered between processes, if anywhere.
    paces: Option<Paces>,
}

impl Limiters {
    /// Limiters that start from the paces remembered in `paces`, and remember what they measure
    /// when told to ([`Limiters::remember`]).
    pub fn remembering(paces: Paces) -> Self {
        Self {
            map: Mutex::default(),
            plans: Mutex::default(),
            paces: Some(paces),
        }
    }

    /// Records that `account` is on `plan`, before its limiters are first used.
    pub fn know_plan(&self, account: &str, plan: Plan) {
        self.plans
            .lock()
            .expect("plans lock")
            .insert(account.to_owned(), plan);
    }

    /// The limiter of `account`'s `endpoint`, created on first use.
    pub fn get(&self, account: &str, endpoint: Endpoint) -> Arc<Limiter> {
        self.map
            .lock()
            .expect("limiters lock")
            .entry((account.to_owned(), endpoint))
            .or_insert_with(|| Arc::new(self.new_limiter(account, endpoint)))
            .clone()
    }

    /// A new limiter for `account`'s `endpoint`: at the plan's documented limit if the account
    /// has a plan, else at the pace an earlier process measured, else unlimited until a 429.
    fn new_limiter(&self, account: &str, endpoint: Endpoint) -> Limiter {
        let plan = self.plans.lock().expect("plans lock").get(account).copied();
        match plan {
            Some(plan) => Limiter::documented(match endpoint {
                Endpoint::Users => plan.lookups_per_second(),
                Endpoint::Chat => plan.sends_per_second(),
            }),
            None => Limiter::starting_at(self.recall(account, endpoint)),
        }
    }

    /// Stores the paces `account`'s limiters measured, for the next process. A failure is only
    /// logged: the next process would find the limit again, at the cost of a few 429s.
    pub fn remember(&self, account: &str) {
        let Some(paces) = &self.paces else { return };
        let measured: Vec<(Endpoint, f64)> = {
            let map = self.map.lock().expect("limiters lock");
            Endpoint::ALL
                .into_iter()
                .filter_map(|e| Some((e, map.get(&(account.to_owned(), e))?.measured()?)))
                .collect()
        };
        for (endpoint, rate) in measured {
            if let Err(e) = paces.remember(account, endpoint.name(), rate) {
                tracing::warn!("account {account}: Zoom's measured pace could not be stored: {e}");
            }
        }
    }

    fn recall(&self, account: &str, endpoint: Endpoint) -> Option<f64> {
        let paces = self.paces.as_ref()?;
        match paces.recall(account, endpoint.name()) {
            // A value outside the limiter's range was not written by it.
            Ok(rate) => rate.filter(|r| (MIN_RATE..=MAX_RATE).contains(r)),
            Err(e) => {
                tracing::warn!("account {account}: the remembered pace could not be read: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::delivery::limiter::tests::busy;

    #[tokio::test(start_paused = true)]
    async fn limiters_start_at_the_pace_an_earlier_process_measured() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::state::Store::open(dir.path()).unwrap();
        let first = Limiters::remembering(store.paces().unwrap());
        let chat = first.get("a", Endpoint::Chat);
        let users = first.get("a", Endpoint::Users);
        assert_eq!(chat.rate(), None, "nothing remembered yet");
        // The users limiter's first 429 comes at once: too thin to remember.
        let turn = users.acquire().await;
        users.accepted();
        users.throttled(turn, None);
        assert!(users.rate().is_some() && users.measured().is_none());
        let turn = busy(&chat, Duration::from_millis(1100)).await;
        chat.throttled(turn, Some(Duration::from_secs(1)));
        let measured = chat.measured().expect("a whole second of evidence");
        first.remember("a");

        let next = Limiters::remembering(store.paces().unwrap());
        assert_eq!(next.get("a", Endpoint::Chat).rate(), Some(measured));
        assert_eq!(
            next.get("a", Endpoint::Chat).measured(),
            None,
            "using a remembered pace does not measure it again (it would never expire)"
        );
        assert_eq!(next.get("a", Endpoint::Users).rate(), None);
        assert_eq!(
            next.get("b", Endpoint::Chat).rate(),
            None,
            "another account"
        );
        let start = Instant::now();
        for _ in 0..3 {
            next.get("a", Endpoint::Chat).acquire().await;
        }
        assert!(
            start.elapsed() >= Duration::from_secs_f64(2.0 / measured),
            "paced from the first request"
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
