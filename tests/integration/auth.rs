//! Authorization end to end: login by callback and by pasting, rotation across processes,
//! revocation, the state lock.

use crate::harness::{Env, job_to};

#[test]
fn login_through_the_callback_stores_who_authorized() {
    let env = Env::new();
    env.login()
        .stderr_has("authorized app `default` as admin@example.com");
    let rows = env.run(&["auth", "status", "--json"]).code(0).json();
    let row = &rows[0];
    assert_eq!(row["app"], "default");
    assert_eq!(row["authorized"], true);
    assert_eq!(row["user_email"], "admin@example.com");
    assert_eq!(row["user_jid"], "kdynimt4kpd8kkdqt9fq@xmpp.zoom.us");
    assert_eq!(row["account_id"], "emulated-account-1");
    assert_eq!(row["access_token_valid"], true);
    assert_eq!(env.emu().stats().code_exchanges, 1);
}

#[test]
fn login_with_the_pasted_redirect_url() {
    let env = Env::new();
    env.login_pasting(ToOwned::to_owned)
        .code(0)
        .stderr_has("authorized app `default`");
    env.run(&["auth", "status"])
        .code(0)
        .stdout_has("default: authorized by admin@example.com");
}

#[test]
fn login_with_the_pasted_bare_code() {
    let env = Env::new();
    let run = env.login_pasting(|location| {
        let url = url::Url::parse(location).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned()
    });
    run.code(0).stderr_has("authorized app `default`");
}

#[test]
fn a_pasted_url_from_another_login_is_refused_and_the_next_one_accepted() {
    let env = Env::new();
    // The forged URL first, then the real one, each on its own line.
    env.login_pasting(|location| format!("{}\n{location}", location.replace("state=", "state=x")))
        .code(0)
        .stderr_has("state does not match");
}

#[test]
fn every_later_process_refreshes_with_the_rotated_token() {
    // Two-second access tokens: each process finds the previous one's token expired and
    // must refresh with the refresh token the previous process rotated and stored
    // (`--refresh-cache` makes every run look its recipients up with the user token).
    let env = Env::with_knobs(zoomcast::emulator::Knobs {
        access_ttl_secs: 2,
        ..Default::default()
    });
    env.job("ping", &job_to(&["ana@example.com", "bo@example.com"]));
    env.login();
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(2100));
        env.run(&["run", "ping", "--refresh-cache"]).code(0);
    }
    let stats = env.emu().stats();
    assert!(stats.refreshes >= 3, "{stats:?}");
    assert_eq!(stats.dead_refresh_presentations, 0, "{stats:?}");
    assert_eq!(stats.users_called_with_bot_token, 0, "{stats:?}");
    assert_eq!(stats.chat_called_with_user_token, 0, "{stats:?}");
    assert_eq!(env.emu().messages().len(), 6);
}

#[test]
fn a_superseded_access_token_is_renewed_once_and_the_run_goes_on() {
    // The stored access token is unexpired, but Zoom has killed it (a newer token was issued
    // elsewhere): the 124 must cost one refresh and a retry, not failed recipients.
    let env = Env::new();
    env.job(
        "ping",
        &job_to(&["ana@example.com", "bo@example.com", "chen@example.com"]),
    );
    env.login();
    env.emu().kill_user_access_tokens();
    env.run(&["run", "ping"])
        .code(0)
        .stdout_has("3 sent, 0 failed");
    let stats = env.emu().stats();
    assert_eq!(
        stats.refreshes, 1,
        "one refresh for the whole run, not one per recipient: {stats:?}"
    );
    assert!(stats.rejected_tokens >= 1, "{stats:?}");
    assert_eq!(stats.dead_refresh_presentations, 0);
}

#[test]
fn a_revoked_grant_exits_1_and_says_to_log_in_again() {
    let env = Env::new();
    env.job("ping", &job_to(&["ana@example.com"]));
    env.login();
    env.emu().revoke_all_grants();
    let run = env.run(&["run", "ping"]);
    run.code(1)
        .stderr_has("run `zoomcast auth login --app default` to authorize again");
    assert!(env.emu().messages().is_empty());
    // Nothing else is lost: the grant is still listed (dead, so `auth status` exits 1), and
    // the aborted run is in history.
    env.run(&["auth", "status"])
        .code(1)
        .stdout_has("default: authorized by")
        .stdout_has("DEAD since");
    env.run(&["history"]).code(0).stdout_has("aborted");
    // Logging in again fixes it.
    env.login();
    env.run(&["run", "ping"]).code(0);
}

#[test]
fn running_without_a_grant_says_to_log_in() {
    let env = Env::new();
    env.job("ping", &job_to(&["ana@example.com"]));
    env.run(&["run", "ping"])
        .code(1)
        .stderr_has("app `default` is not authorized yet; run `zoomcast auth login --app default`");
}

#[test]
fn a_locked_state_directory_names_the_holder() {
    let env = Env::new();
    env.job("ping", &job_to(&["ana@example.com"]));
    std::fs::create_dir_all(env.state_dir()).unwrap();
    let _held = zoomcast::state::StateLock::acquire(&env.state_dir()).unwrap();
    // A command that writes waits for the holder (here a second), then names it.
    let run = env.run(&["run", "ping", "--wait", "1s"]);
    run.code(1).stderr_has(&format!(
        "is in use by another zoomcast process (pid {})",
        std::process::id()
    ));
    env.run(&["auth", "status"])
        .code(1)
        .stderr_has("in use by another zoomcast process");
}

#[test]
fn logout_revokes_at_zoom_and_deletes_the_grant() {
    let env = Env::new();
    env.login();
    env.run(&["auth", "logout"])
        .code(0)
        .stderr_has("revoked the grant of app `default` in account emulated-account-1 at zoom");
    env.run(&["auth", "status"])
        .code(1)
        .stdout_has("default: not authorized")
        .stderr_has("not authorized: app default");
    assert!(
        !env.state_dir()
            .join("grants/default/emulated-account-1.json")
            .exists()
    );
}

#[cfg(unix)]
#[test]
fn the_state_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.login();
    let mode = std::fs::metadata(env.state_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let mode = std::fs::metadata(
        env.state_dir()
            .join("grants/default/emulated-account-1.json"),
    )
    .unwrap()
    .permissions()
    .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_login_whose_user_cannot_be_looked_up_stores_nothing_and_revokes_its_tokens() {
    let env = Env::new();
    // Zoom issues the tokens, but `GET /v2/users/me` answers 503 however often it is asked.
    env.adjust_knobs(|k| k.fail_5xx = 1.0);
    let (child, url) = env.start_login(&[]);
    crate::harness::browse(&url);
    let run: crate::harness::Run = child.wait_with_output().unwrap().into();
    run.code(1)
        .stderr_has("nothing was stored and the new tokens were revoked")
        .stderr_has("user:read:user:admin");
    assert_eq!(env.emu().stats().revocations, 1);
    assert!(env.emu().stats().injected_faults >= 4, "retried first");
    env.adjust_knobs(|k| k.fail_5xx = 0.0);
    env.run(&["auth", "status"])
        .code(1)
        .stdout_has("default: not authorized")
        .stderr_has("not authorized: app default");
}
