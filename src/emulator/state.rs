//! The emulator's memory: issued codes, grants, tokens, delivered messages and counters.
//! One `std::sync::Mutex`, held only for short critical sections, never across an `.await`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;

use super::Knobs;
use super::delay::Delays;
use super::directory::{Directory, User};

/// A pending authorization code: single use, five minutes, bound to client and redirect URI.
pub(super) struct PendingCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: Option<(String, String)>,
    pub user: User,
    pub expires_at: DateTime<Utc>,
}

/// A device authorization (`/oauth/devicecode`) waiting for its user's decision.
pub(super) struct PendingDevice {
    pub user_code: String,
    pub expires_at: DateTime<Utc>,
    /// Seconds a client must wait between polls; `slow_down` adds five.
    pub interval: u64,
    pub last_poll: Option<std::time::Instant>,
    /// `slow_down` answers still to give to polls that came in time (`device_slow_downs`).
    pub forced_slow_downs: u32,
    pub decision: Decision,
}

/// What the person decided about a device authorization.
#[derive(Clone)]
pub(super) enum Decision {
    /// Nothing yet.
    Pending,
    /// Approved, by this user.
    Approved(User),
    /// Denied.
    Denied,
}

/// A user grant: who, the one live refresh token and the newest access token.
pub(super) struct GrantState {
    pub user: User,
    pub refresh_token: String,
    pub access_token: String,
    pub revoked: bool,
}

/// What an access token is.
#[derive(Clone)]
pub(super) enum TokenKind {
    User { grant: u64 },
    Bot,
}

pub(super) struct AccessToken {
    pub kind: TokenKind,
    pub expires_at: DateTime<Utc>,
    pub dead: bool,
}

/// A message the Chatbot API accepted.
#[derive(Debug, Clone, Serialize)]
pub struct Delivered {
    /// Its id.
    pub message_id: String,
    /// The recipient's JID.
    pub to_jid: String,
    /// The recipient's email (a channel's JID for a message to a channel).
    pub to_email: String,
    /// The bot's JID.
    pub robot_jid: String,
    /// The account.
    pub account_id: String,
    /// The authorizing user's JID.
    pub user_jid: String,
    /// The whole `content` object as sent.
    pub content: serde_json::Value,
    /// `is_markdown_support`.
    pub is_markdown_support: bool,
    /// When it arrived.
    pub sent_time: String,
    /// The message it replies to (`reply_to`).
    pub reply_to: Option<String>,
    /// How often it was edited (`PUT`).
    pub edits: u32,
    /// Whether it was deleted (`DELETE`).
    pub deleted: bool,
}

/// Counters a test (or an operator) can check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Authorization codes exchanged.
    pub code_exchanges: u64,
    /// Exchanges of an authorization code refused (unknown, used, expired or mismatched).
    pub code_exchanges_refused: u64,
    /// Refreshes that rotated a grant.
    pub refreshes: u64,
    /// Grants revoked through `/oauth/revoke`.
    pub revocations: u64,
    /// Refresh tokens presented after they were rotated or revoked.
    pub dead_refresh_presentations: u64,
    /// Client-credentials (bot) tokens issued.
    pub bot_tokens_issued: u64,
    /// Users API calls answered 200.
    pub user_lookups: u64,
    /// Pages of the channel list answered.
    pub channel_pages: u64,
    /// Users API calls answered 404.
    pub unknown_users: u64,
    /// Users API calls made with a bot token (wrong token).
    pub users_called_with_bot_token: u64,
    /// Chatbot API calls made with a user token (wrong token).
    pub chat_called_with_user_token: u64,
    /// Calls with an expired, superseded or unknown token.
    pub rejected_tokens: u64,
    /// Sends accepted (201).
    pub sends_accepted: u64,
    /// Sends answered 429.
    pub sends_rate_limited: u64,
    /// Users API calls answered 429.
    pub lookups_rate_limited: u64,
    /// Calls answered with an injected 503.
    pub injected_faults: u64,
    /// Sends rejected for their body or recipient (400, 403).
    pub sends_rejected: u64,
    /// Messages edited (`PUT`, 200).
    pub edits: u64,
    /// Messages deleted (`DELETE`, 200).
    pub deletes: u64,
    /// The most API requests (Users and Chatbot) in progress at once.
    pub peak_in_flight: u64,
    /// Device-code polls of the token endpoint.
    pub device_polls: u64,
    /// Of them, answered `slow_down`.
    pub device_slow_downs: u64,
}

#[derive(Default)]
pub(super) struct Inner {
    pub codes: HashMap<String, PendingCode>,
    /// Device authorizations by device code.
    pub devices: HashMap<String, PendingDevice>,
    pub grants: HashMap<u64, GrantState>,
    pub dead_refresh: HashSet<String>,
    pub tokens: HashMap<String, AccessToken>,
    pub messages: Vec<Delivered>,
    pub stats: Stats,
    pub issued: Vec<String>,
    /// Per account, the current second and the sends counted in it (`send_rate_limit`):
    /// Zoom's limits are each account's.
    pub rate_windows: HashMap<String, (i64, u32)>,
    /// The same for Users API calls (`lookup_rate_limit`).
    pub lookup_window: (i64, u32),
    /// When the emulator's current day began, and the sends that passed its limit in it.
    pub daily_window: Option<(DateTime<Utc>, u32)>,
    /// API requests in progress now.
    pub in_flight: u64,
    /// When each send request arrived (every attempt, whatever its answer).
    pub send_attempts: Vec<std::time::Instant>,
    next_id: u64,
}

impl Inner {
    /// A fresh id.
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A fresh random secret, remembered so tests can check that none leaks.
    pub fn secret(&mut self, prefix: &str) -> String {
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        let value = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
        self.issued.push(value.clone());
        value
    }

    /// Issues an access token of `kind`, valid for `ttl` seconds.
    pub fn issue_access(&mut self, kind: TokenKind, ttl: i64) -> String {
        let token = self.secret("emu_at_");
        let expires_at = chrono::TimeDelta::try_seconds(ttl)
            .and_then(|ttl| Utc::now().checked_add_signed(ttl))
            .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
        self.tokens.insert(
            token.clone(),
            AccessToken {
                kind,
                expires_at,
                dead: false,
            },
        );
        token
    }

    /// The live token `token`, if it is one.
    pub fn live(&self, token: &str) -> Option<&AccessToken> {
        self.tokens.get(token).filter(|t| {
            let grant_alive = match t.kind {
                TokenKind::User { grant } => self.grants.get(&grant).is_some_and(|g| !g.revoked),
                TokenKind::Bot => true,
            };
            !t.dead && t.expires_at > Utc::now() && grant_alive
        })
    }

    /// Revokes a grant: its refresh token and access tokens die.
    pub fn revoke(&mut self, grant_id: u64) {
        if let Some(grant) = self.grants.get_mut(&grant_id) {
            grant.revoked = true;
            self.dead_refresh.insert(grant.refresh_token.clone());
        }
    }
}

/// The emulator: knobs, the directory and the mutable state.
pub struct Emulator {
    /// Shared, so that a request reads them without copying their strings.
    knobs: Mutex<Arc<Knobs>>,
    inner: Mutex<Inner>,
    /// The timer behind the latency knob.
    pub(super) delays: Delays,
}

impl Emulator {
    /// A fresh emulator.
    pub fn new(knobs: Knobs) -> Self {
        Self {
            knobs: Mutex::new(Arc::new(knobs)),
            inner: Mutex::new(Inner::default()),
            delays: Delays::start(),
        }
    }

    /// A copy of the current knobs.
    pub fn knobs(&self) -> Knobs {
        Knobs::clone(&self.current_knobs())
    }

    /// The current knobs, shared: what a request handler reads.
    pub(super) fn current_knobs(&self) -> Arc<Knobs> {
        Arc::clone(&self.knobs.lock().expect("knobs lock"))
    }

    /// Replaces the knobs.
    pub fn set_knobs(&self, knobs: Knobs) {
        *self.knobs.lock().expect("knobs lock") = Arc::new(knobs);
    }

    /// The directory under the current knobs.
    pub fn directory(&self) -> Directory {
        Directory::new(&self.current_knobs())
    }

    pub(super) fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("emulator lock")
    }

    /// Counts an API request in progress until the guard is dropped, keeping the peak; a send
    /// also has its arrival recorded (see [`Emulator::send_attempt_times`]). One lock for both.
    pub(super) fn in_flight(self: &Arc<Self>, request: ApiRequest) -> InFlight {
        let mut inner = self.inner();
        inner.in_flight += 1;
        inner.stats.peak_in_flight = inner.stats.peak_in_flight.max(inner.in_flight);
        if request == ApiRequest::Send {
            inner.send_attempts.push(std::time::Instant::now());
        }
        InFlight(Arc::clone(self))
    }

    /// When each send request arrived, every attempt included.
    pub fn send_attempt_times(&self) -> Vec<std::time::Instant> {
        self.inner().send_attempts.clone()
    }

    /// Every message accepted so far.
    pub fn messages(&self) -> Vec<Delivered> {
        self.inner().messages.clone()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.inner().stats.clone()
    }

    /// Every secret issued (tokens, codes), for leak tests.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.inner().issued.clone()
    }

    /// Kills every user access token (refresh tokens stay good), as Zoom does when a newer
    /// token was issued elsewhere: the next Users call answers 124.
    pub fn kill_user_access_tokens(&self) {
        for token in self.inner().tokens.values_mut() {
            if matches!(token.kind, TokenKind::User { .. }) {
                token.dead = true;
            }
        }
    }

    /// Revokes every grant, as an admin removing the app would.
    pub fn revoke_all_grants(&self) {
        self.revoke_grants_where(|_| true);
    }

    /// Revokes every grant authorized by a user of `account_id` (the account removed the app).
    pub fn revoke_account_grants(&self, account_id: &str) {
        self.revoke_grants_where(|g| g.user.account_id == account_id);
    }

    fn revoke_grants_where(&self, which: impl Fn(&GrantState) -> bool) {
        let mut inner = self.inner();
        let ids: Vec<u64> = inner
            .grants
            .iter()
            .filter(|(_, g)| which(g))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            inner.revoke(id);
        }
    }
}

/// Which API a request in progress calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ApiRequest {
    /// `GET /v2/users/...`.
    Lookup,
    /// `POST /v2/im/chat/messages`.
    Send,
}

/// An API request in progress (see [`Emulator::in_flight`]).
pub(super) struct InFlight(Arc<Emulator>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inner().in_flight -= 1;
    }
}
