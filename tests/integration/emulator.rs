//! The emulator behaves like Zoom, not like a mock that accepts anything: these tests talk to
//! it with zoomcast's own OAuth and Zoom clients and check Zoom's answers and codes.

use serde_json::json;
use zoomcast::auth::login::Pkce;
use zoomcast::auth::{OAuthClient, OAuthError};
use zoomcast::emulator::{Knobs, RetryAfterStyle};
use zoomcast::token::ClientSecret;
use zoomcast::zoom::{Disposition, ZoomError};

use crate::inproc::{REDIRECT, zoom};

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
        content: zoomcast::card::text("head", "body"),
        is_markdown_support: false,
        reply_to: None,
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
