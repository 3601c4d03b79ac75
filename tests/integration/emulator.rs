//! The emulator behaves like Zoom, not like a mock that accepts anything: these tests talk to
//! it with zoomcast's own OAuth and Zoom clients and check Zoom's answers and codes.

use std::sync::Arc;

use serde_json::{Value, json};
use zoomcast::auth::login::Pkce;
use zoomcast::auth::{OAuthClient, OAuthError};
use zoomcast::emulator::{EmulatorHandle, Knobs, RetryAfterStyle};
use zoomcast::token::{BotToken, ClientSecret, UserToken};
use zoomcast::zoom::{Disposition, Endpoints, ZoomClient, ZoomError};

struct Zoom {
    handle: EmulatorHandle,
    api: ZoomClient,
    oauth: OAuthClient,
    runtime: tokio::runtime::Runtime,
}

fn zoom(knobs: Knobs) -> Zoom {
    let handle = EmulatorHandle::start(knobs.clone()).unwrap();
    let url = url::Url::parse(&handle.url()).unwrap();
    let zoom = ZoomClient::new(Endpoints {
        oauth: url.clone(),
        api: url,
    })
    .unwrap();
    let oauth = OAuthClient::new(
        "default",
        &knobs.client_id,
        ClientSecret::new(knobs.client_secret),
        zoom.clone(),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    Zoom {
        handle,
        api: zoom,
        oauth,
        runtime,
    }
}

const REDIRECT: &str = "http://127.0.0.1:4199/oauth/callback";

impl Zoom {
    /// Sends a raw request (one zoomcast's types would not let it write): status and body.
    fn answer(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        self.runtime.block_on(async {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    }

    /// Consent: the code the emulator redirects with.
    fn code(&self, pkce: &Pkce) -> String {
        let url = self
            .oauth
            .authorize_url(&REDIRECT.parse().unwrap(), "st", &pkce.challenge);
        let location = crate::harness::consent_redirect(url.as_str());
        let (code, state) = zoomcast::auth::login::parse_pasted(&location).unwrap();
        assert_eq!(state.as_deref(), Some("st"), "state is echoed");
        code
    }

    fn login(&self) -> (UserToken, String) {
        let pkce = Pkce::new();
        let code = self.code(&pkce);
        let t = self
            .runtime
            .block_on(
                self.oauth
                    .exchange_code(&code, &REDIRECT.parse().unwrap(), &pkce.verifier),
            )
            .unwrap();
        let refresh = t.refresh_token.unwrap().expose().to_owned();
        (
            UserToken::issued(t.access_token, t.expires_in, chrono::Utc::now()),
            refresh,
        )
    }

    fn bot(&self) -> BotToken {
        let t = self
            .runtime
            .block_on(self.oauth.client_credentials())
            .unwrap();
        assert!(
            t.refresh_token.is_none(),
            "client credentials carry no refresh token"
        );
        BotToken::issued(t.access_token, t.expires_in, chrono::Utc::now())
    }
}

fn api_code(e: &ZoomError) -> (u16, Option<i64>) {
    match e {
        ZoomError::Api { status, code, .. } => (status.as_u16(), *code),
        other => panic!("expected an API error, got {other}"),
    }
}

#[test]
fn codes_are_single_use_and_bound_to_redirect_uri_and_verifier() {
    let z = zoom(Knobs::default());
    let pkce = Pkce::new();
    let redirect = REDIRECT.parse().unwrap();
    let code = z.code(&pkce);
    let wrong_verifier =
        z.runtime
            .block_on(z.oauth.exchange_code(&code, &redirect, "not-the-verifier"));
    assert!(
        matches!(wrong_verifier, Err(OAuthError::CodeRejected { .. })),
        "{wrong_verifier:?}"
    );
    // The failed attempt used the code up.
    let reuse = z
        .runtime
        .block_on(z.oauth.exchange_code(&code, &redirect, &pkce.verifier));
    assert!(
        matches!(reuse, Err(OAuthError::CodeRejected { ref reason, .. }) if reason == "Invalid authorization code"),
        "{reuse:?}"
    );
    let code = z.code(&pkce);
    let other_redirect = "http://127.0.0.1:9/elsewhere".parse().unwrap();
    let mismatch = z.runtime.block_on(z.oauth.exchange_code(
        &code,
        &other_redirect,
        &pkce.verifier,
    ));
    assert!(
        matches!(mismatch, Err(OAuthError::CodeRejected { ref reason, .. }) if reason == "Redirect URI mismatch."),
        "{mismatch:?}"
    );
    let bad_client = OAuthClient::new(
        "default",
        "zoomcast-emulator",
        ClientSecret::new("wrong"),
        z.api.clone(),
    );
    let refused = z.runtime.block_on(bad_client.client_credentials());
    assert!(
        matches!(refused, Err(OAuthError::InvalidClient { .. })),
        "{refused:?}"
    );
}

#[test]
fn refresh_rotates_and_the_old_refresh_token_is_dead() {
    let z = zoom(Knobs::default());
    let (first_access, first_refresh) = z.login();
    let rotated = z
        .runtime
        .block_on(
            z.oauth
                .refresh(&zoomcast::token::RefreshToken::new(first_refresh.clone())),
        )
        .unwrap();
    assert_ne!(
        rotated.refresh_token.as_ref().unwrap().expose(),
        first_refresh
    );
    let again = z.runtime.block_on(
        z.oauth
            .refresh(&zoomcast::token::RefreshToken::new(first_refresh)),
    );
    assert!(
        matches!(again, Err(OAuthError::GrantRevoked { ref reason, .. }) if reason == "Invalid Token!"),
        "{again:?}"
    );
    assert_eq!(z.handle.emulator().stats().dead_refresh_presentations, 1);
    // The new access token killed the previous one (Zoom's default tolerance).
    let old = z
        .runtime
        .block_on(z.api.get_user(&first_access, "me"))
        .unwrap_err();
    assert_eq!(api_code(&old), (401, Some(124)));
    assert_eq!(old.disposition(), Disposition::RenewToken);
}

#[test]
fn each_api_accepts_only_its_own_token() {
    let z = zoom(Knobs::default());
    let (user, _) = z.login();
    let bot = z.bot();
    let me = z.runtime.block_on(z.api.get_user(&user, "me")).unwrap();
    assert_eq!(me.email, "admin@example.com");
    // A bot token presented to the Users API, and a user token to the Chatbot API, through
    // raw requests (zoomcast's types make these calls impossible to write).
    let users = reqwest::Client::new().get(format!("{}/v2/users/me", z.handle.url()));
    assert_eq!(
        z.answer(users.bearer_auth(bot.access.expose())),
        (
            401,
            json!({"code": 124, "message": "Invalid access token."})
        )
    );
    let chat = reqwest::Client::new().post(format!("{}/v2/im/chat/messages", z.handle.url()));
    assert_eq!(
        z.answer(chat.bearer_auth(user.access.expose()).json(&json!({}))),
        (
            401,
            json!({"code": 7010, "message": "Invalid authorization token."})
        )
    );
    let counters = z.handle.emulator().stats();
    assert_eq!(
        (
            counters.users_called_with_bot_token,
            counters.chat_called_with_user_token
        ),
        (1, 1)
    );
    let unknown = z
        .runtime
        .block_on(z.api.get_user(&user, "ghost@example.com"))
        .unwrap_err();
    assert_eq!(api_code(&unknown), (404, Some(1001)));
    assert_eq!(unknown.disposition(), Disposition::Permanent);
}

fn message(
    to_jid: &str,
    me: &zoomcast::zoom::ZoomUser,
    knobs: &Knobs,
) -> zoomcast::zoom::ChatMessage {
    zoomcast::zoom::ChatMessage {
        robot_jid: knobs.robot_jid.clone(),
        to_jid: to_jid.to_owned(),
        account_id: knobs.account_id.clone(),
        user_jid: me.jid.clone(),
        content: zoomcast::zoom::chat::Content::text("head".into(), "body".into()),
        is_markdown_support: false,
    }
}

#[test]
fn sends_are_validated_like_zooms_schema() {
    let knobs = Knobs::default();
    let z = zoom(knobs.clone());
    let (user, _) = z.login();
    let bot = z.bot();
    let me = z.runtime.block_on(z.api.get_user(&user, "me")).unwrap();
    let ana = z
        .runtime
        .block_on(z.api.get_user(&user, "ana@example.com"))
        .unwrap();
    let sent = z
        .runtime
        .block_on(z.api.send_message(&bot, &message(&ana.jid, &me, &knobs)))
        .unwrap();
    assert!(!sent.message_id.is_empty());
    let unknown = z
        .runtime
        .block_on(
            z.api
                .send_message(&bot, &message("nobody@xmpp.zoom.us", &me, &knobs)),
        )
        .unwrap_err();
    assert_eq!(api_code(&unknown), (403, Some(7004)));
    let incomplete = reqwest::Client::new()
        .post(format!("{}/v2/im/chat/messages", z.handle.url()))
        .bearer_auth(bot.access.expose())
        .json(&json!({"robot_jid": knobs.robot_jid, "to_jid": ana.jid, "content": {"head": {"text": "x"}}}));
    let (status, body) = z.answer(incomplete);
    assert_eq!(
        (status, body["code"].clone()),
        (400, json!(7001)),
        "account_id and user_jid are required"
    );
    assert_eq!(z.handle.emulator().messages().len(), 1);
}

#[test]
fn the_rate_limit_answers_429_with_each_retry_after_form() {
    for (style, check) in [
        (RetryAfterStyle::Seconds, Some("1")),
        (RetryAfterStyle::HttpDate, Some("GMT")),
        (RetryAfterStyle::Iso, Some("Z")),
        (RetryAfterStyle::Absent, None),
    ] {
        let knobs = Knobs {
            send_rate_limit: Some(2),
            retry_after: style,
            ..Knobs::default()
        };
        let z = zoom(knobs.clone());
        let (user, _) = z.login();
        let bot = z.bot();
        let me = z.runtime.block_on(z.api.get_user(&user, "me")).unwrap();
        let msg = message(&me.jid, &me, &knobs);
        let client = reqwest::Client::new();
        let url = format!("{}/v2/im/chat/messages", z.handle.url());
        let answers: Vec<(u16, Option<String>)> = z.runtime.block_on(async {
            let mut answers = Vec::new();
            for _ in 0..6 {
                let r = client
                    .post(&url)
                    .bearer_auth(bot.access.expose())
                    .json(&msg)
                    .send()
                    .await
                    .unwrap();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                answers.push((r.status().as_u16(), retry));
            }
            answers
        });
        let limited: Vec<_> = answers.iter().filter(|(s, _)| *s == 429).collect();
        assert!(
            !limited.is_empty() && limited.len() <= 4,
            "{style:?}: {answers:?}"
        );
        for (_, retry) in limited {
            match check {
                Some(needle) => assert!(
                    retry.as_deref().is_some_and(|r| r.contains(needle)),
                    "{style:?}: {retry:?}"
                ),
                None => assert!(retry.is_none()),
            }
        }
        // zoomcast reads every form.
        let e = z.runtime.block_on(async {
            loop {
                if let Err(e) = z.api.send_message(&bot, &msg).await {
                    break e;
                }
            }
        });
        assert!(matches!(e.disposition(), Disposition::Retry { .. }), "{e}");
    }
}

/// An emulator, a state store and the app's tokens, logged in.
fn logged_in() -> (
    Zoom,
    tempfile::TempDir,
    zoomcast::state::Store,
    Arc<zoomcast::auth::AppTokens>,
) {
    let z = zoom(Knobs::default());
    let dir = tempfile::tempdir().unwrap();
    let store = zoomcast::state::Store::open(dir.path()).unwrap();
    let pkce = Pkce::new();
    let code = z.code(&pkce);
    let knobs = z.handle.emulator().knobs();
    let mut config = zoomcast::config::Config::empty();
    config.set("default", "client_id", &knobs.client_id);
    config.set("default", "client_secret", &knobs.client_secret);
    let app = config.app("default").unwrap();
    let tokens = Arc::new(zoomcast::auth::AppTokens::new(
        &app,
        z.oauth.clone(),
        store.grants().unwrap(),
    ));
    z.runtime.block_on(async {
        zoomcast::auth::login::complete(
            &z.oauth,
            &z.api,
            &store.grants().unwrap(),
            "default",
            &code,
            &REDIRECT.parse().unwrap(),
            &pkce.verifier,
        )
        .await
        .unwrap();
    });
    (z, dir, store, tokens)
}

#[test]
fn concurrent_renewals_cost_one_refresh() {
    let (z, _dir, store, tokens) = logged_in();
    z.runtime.block_on(async {
        let rejected = tokens.user_token().await.unwrap();
        let before = tokens.grant().await.unwrap().generation;
        let renewals: Vec<_> = (0..20)
            .map(|_| {
                let (tokens, rejected) = (tokens.clone(), rejected.clone());
                tokio::spawn(async move { tokens.renew_user_token(&rejected).await.unwrap() })
            })
            .collect();
        let mut renewed = Vec::new();
        for r in renewals {
            renewed.push(r.await.unwrap());
        }
        assert!(renewed.iter().all(|t| *t == renewed[0] && *t != rejected));
        // The rotated grant was stored before the token was handed out.
        let stored = store.grants().unwrap().get("default").unwrap().unwrap();
        assert_eq!(stored.access, renewed[0]);
        assert_eq!(stored.generation, before + 1);
    });
    assert_eq!(z.handle.emulator().stats().refreshes, 1);
}

#[test]
fn a_token_rejected_right_after_its_refresh_is_not_refreshed_again() {
    let (z, _dir, _store, tokens) = logged_in();
    z.runtime.block_on(async {
        let first = tokens.user_token().await.unwrap();
        tokens.user_token_worked(&first);
        let fresh = tokens.renew_user_token(&first).await.unwrap();
        // Zoom rejects the fresh token too: a second refresh cannot help.
        let again = tokens.renew_user_token(&fresh).await;
        assert!(
            matches!(
                again,
                Err(zoomcast::auth::TokenError::RejectedAfterRefresh { .. })
            ),
            "{again:?}"
        );
        // Once a call succeeds with it, a later rejection (say, expiry) refreshes as usual.
        tokens.user_token_worked(&fresh);
        let later = tokens.renew_user_token(&fresh).await.unwrap();
        assert_ne!(later, fresh);
    });
    assert_eq!(z.handle.emulator().stats().refreshes, 2);
}

#[test]
fn keep_alive_refreshes_only_a_grant_left_idle() {
    use zoomcast::auth::keepalive::{KeepAlive, refresh_if_idle};
    let (z, _dir, store, tokens) = logged_in();
    let grants = store.grants().unwrap();
    let thirty_days = chrono::TimeDelta::days(30);
    z.runtime.block_on(async {
        let before = grants.get("default").unwrap().unwrap();
        let now = chrono::Utc::now();
        let kept = refresh_if_idle(&tokens, thirty_days, now).await.unwrap();
        assert_eq!(kept, KeepAlive::Fresh);
        // A month and a day later, the grant is refreshed and the rotation stored.
        let later = now + chrono::TimeDelta::days(31);
        let kept = refresh_if_idle(&tokens, thirty_days, later).await.unwrap();
        assert!(
            matches!(kept, KeepAlive::Refreshed(idle) if idle > thirty_days),
            "{kept:?}"
        );
        let after = grants.get("default").unwrap().unwrap();
        assert_eq!(after.generation, before.generation + 1);
        assert!(after.refreshed_at > before.refreshed_at);
        assert_ne!(after.access, before.access);
    });
    assert_eq!(z.handle.emulator().stats().refreshes, 1);
}

#[test]
fn a_keep_alive_refresh_is_decided_on_the_grant_as_it_is_when_refreshing() {
    let (z, _dir, _store, tokens) = logged_in();
    z.runtime.block_on(async {
        let login = tokens.grant().await.unwrap().refreshed_at;
        let since = chrono::Utc::now();
        // Two keep-alives that both saw the login's grant as idle: the first refreshes, the
        // second finds that refresh and does not rotate again.
        let first = tokens.refresh_if_before(since).await.unwrap();
        assert_eq!(first, Some(login));
        let second = tokens.refresh_if_before(since).await.unwrap();
        assert_eq!(second, None);
    });
    assert_eq!(z.handle.emulator().stats().refreshes, 1);
}

/// Writes `DIR/NAME.toml` sending to `emails` and loads it.
fn job_in(dir: &std::path::Path, name: &str, emails: &[&str]) -> zoomcast::config::Job {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, crate::harness::job_to(emails)).unwrap();
    zoomcast::config::Job::load(&path, &zoomcast::config::Config::empty()).unwrap()
}

#[test]
fn a_schedule_tick_has_one_run_however_often_it_is_launched() {
    use zoomcast::delivery::{Engine, RunOptions, sender};
    let (z, dir, store, tokens) = logged_in();
    let job = job_in(dir.path(), "tick", &["ana@example.com", "bo@example.com"]);
    let robot = z.handle.emulator().knobs().robot_jid;
    let engine = Engine::new(&store, z.api.clone(), tokens.clone(), Arc::default()).unwrap();
    let tick = |s: &str| Some(chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc());
    let ids: Vec<_> = z.runtime.block_on(async {
        let from = sender(&tokens, Some(&robot), None, "default")
            .await
            .unwrap();
        let mut ids = Vec::new();
        for t in [
            "2026-11-23T09:00:00Z",
            "2026-11-23T09:00:00Z",
            "2026-11-23T10:00:00Z",
        ] {
            let options = RunOptions {
                scheduled_for: tick(t),
                ..RunOptions::default()
            };
            let report = engine.run(&job, &from, options).await.unwrap();
            assert_eq!(report.record.scheduled_for, tick(t));
            ids.push(report.record.id);
        }
        ids
    });
    assert_eq!(ids[0], ids[1], "the same tick is the same run");
    assert_ne!(ids[1], ids[2], "another tick is another run");
    assert_eq!(
        z.handle.emulator().messages().len(),
        4,
        "two runs of two recipients"
    );
    assert_eq!(store.runs().unwrap().list(Some("tick")).unwrap().len(), 2);
}

#[test]
fn a_resumed_run_resends_what_was_in_flight_exactly_as_journaled() {
    use zoomcast::delivery::{Engine, RunOptions, sender};
    use zoomcast::state::{Delivery, DeliveryState, Rendered};
    let (z, dir, store, tokens) = logged_in();
    let job = job_in(
        dir.path(),
        "resume",
        &["ana@example.com", "bo@example.com", "chen@example.com"],
    );
    let emu = z.handle.emulator();
    let robot = emu.knobs().robot_jid;
    let ana_jid = "ana0001aaaaaaaa0001@xmpp.zoom.us";
    // A crash left two sends in flight: ana's, and one to eli, who has since left the job.
    let runs = store.runs().unwrap();
    let deliveries = store.deliveries().unwrap();
    let crashed = z
        .runtime
        .block_on(runs.start("resume", "default", None, None))
        .unwrap();
    for (email, jid, body) in [
        (
            "ana@example.com",
            ana_jid,
            "the message as it was rendered then",
        ),
        // Eli's real JID: a resend would reach him, so the test sees one if it happens.
        (
            "eli@example.com",
            "eli0005eeeeeeee0005@xmpp.zoom.us",
            "for eli",
        ),
    ] {
        let in_flight = Delivery {
            email: email.into(),
            state: DeliveryState::Sending,
            jid: Some(jid.into()),
            rendered: Some(Rendered {
                head: "Hello".into(),
                body: body.into(),
            }),
            attempts: 1,
            updated_at: chrono::Utc::now(),
        };
        deliveries.set(crashed.id, &in_flight).unwrap();
    }
    let engine = Engine::new(&store, z.api.clone(), tokens.clone(), Arc::default()).unwrap();
    let lookups_before = emu.stats().user_lookups;
    let report = z.runtime.block_on(async {
        let from = sender(&tokens, Some(&robot), None, "default")
            .await
            .unwrap();
        engine
            .run(&job, &from, RunOptions::default())
            .await
            .unwrap()
    });
    assert_eq!(report.record.id, crashed.id, "the interrupted run resumed");
    let messages = emu.messages();
    let to = |email: &str| {
        messages
            .iter()
            .filter(|m| m.to_email == email)
            .map(|m| m.content["body"][0]["text"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        to("ana@example.com"),
        ["the message as it was rendered then"]
    );
    assert_eq!(to("bo@example.com"), ["Hi Bo <bo@example.com>"]);
    assert_eq!(to("chen@example.com"), ["Hi Chen <chen@example.com>"]);
    assert!(to("eli@example.com").is_empty(), "eli left the job");
    assert_eq!(
        emu.stats().user_lookups - lookups_before,
        2,
        "ana was resent to her journaled JID, without a lookup"
    );
    let c = &report.record.counts;
    assert_eq!((c.total, c.sent, c.uncertain), (4, 3, 1));
    assert_eq!(report.failures[0].email, "eli@example.com");
    assert_eq!(report.failures[0].state, DeliveryState::Uncertain);
}
