//! Tokens in one process: concurrent renewals cost one refresh, a token rejected right after
//! its refresh is not refreshed again, and the keep-alive refreshes only a grant left idle.

use crate::inproc::logged_in;

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
        let stored = store
            .grants()
            .unwrap()
            .get("default", "emulated-account-1")
            .unwrap()
            .unwrap();
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
        let before = grants
            .get("default", "emulated-account-1")
            .unwrap()
            .unwrap();
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
        let after = grants
            .get("default", "emulated-account-1")
            .unwrap()
            .unwrap();
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
