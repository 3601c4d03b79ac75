//! One app installed by several Zoom accounts: a grant per account, each job sending in the
//! account it names, and nothing shared between the accounts but the app.

use crate::harness::*;

/// Logs in as the first account's admin, then as the second's.
fn installed_by_two_accounts(env: &Env) {
    env.login();
    env.adjust_knobs(|k| k.login_as = "admin@second.example".into());
    env.login();
}

/// A job file sending in `account` to `emails`.
fn job_in(account: &str, emails: &[&str]) -> String {
    format!("account = \"{account}\"\n{}", job_to(emails))
}

#[test]
fn each_account_has_its_grant_and_a_job_sends_in_the_account_it_names() {
    let env = Env::new();
    installed_by_two_accounts(&env);
    env.run(&["auth", "status"])
        .code(0)
        .stdout_has("default: authorized by admin@example.com (user KdYnimT4KPd8KKdQt9FQ, account emulated-account-1)")
        .stdout_has("default: authorized by admin@second.example (user Sam0101SSSSssss0101, account emulated-account-2)");

    // A job that names no account sends in the app's home account, the first that authorized
    // it: the second account's install changed nothing for it.
    env.run(&["auth", "status", "--json"])
        .code(0)
        .stdout_has("\"home\": true")
        .stdout_has("\"home\": false");
    env.job("unnamed", &job_to(&["ana@example.com"]));
    env.run(&["run", "unnamed", "--dry-run"])
        .code(0)
        .stdout_has("in account emulated-account-1");
    env.run(&["run", "unnamed"]).code(0);
    assert_eq!(
        env.emu().messages().pop().unwrap().account_id,
        "emulated-account-1"
    );

    // Each job sends as its own account's admin, to that account's people only: a person of
    // another account is not found with this account's grant.
    env.job(
        "first",
        &job_in("emulated-account-1", &["ana@example.com", "bo@example.com"]),
    );
    env.job(
        "second",
        &job_in(
            "emulated-account-2",
            &["gus@second.example", "ana@example.com"],
        ),
    );
    env.run(&["run", "first"]).code(0);
    env.run(&["run", "second"])
        .code(3)
        .stdout_has("2 recipients, 1 sent, 1 failed")
        .stdout_has("User does not exist: ana@example.com");
    let directory = env.emu().directory();
    let admin_jid = |email: &str| directory.find(email).unwrap().jid;
    let sent: Vec<_> = env
        .emu()
        .messages()
        .into_iter()
        .map(|m| (m.to_email, m.account_id, m.user_jid))
        .collect();
    assert_eq!(
        sent.iter().filter(|m| m.1 == "emulated-account-1").count(),
        3,
        "ana (unnamed), ana and bo (first)"
    );
    for (to, account, from) in &sent {
        let admin = if account == "emulated-account-1" {
            "admin@example.com"
        } else {
            "admin@second.example"
        };
        assert_eq!(*from, admin_jid(admin), "{to} in {account}");
        assert_eq!(directory.find(to).unwrap().account_id, *account);
    }

    // Logging one account out (at the shell, on purpose) keeps the other's grant; then a job
    // naming no account sends in the one left, which becomes the home.
    env.run(&["auth", "logout"])
        .code(2)
        .stderr_has("name one with --account");
    env.run(&["auth", "logout", "--account", "emulated-account-1"])
        .code(0)
        .stderr_has("deleted the grant of app `default` in account emulated-account-1");
    env.job("unnamed", &job_to(&["hana@second.example"]));
    env.run(&["run", "unnamed"]).code(0);
    assert_eq!(
        env.emu().messages().pop().unwrap().account_id,
        "emulated-account-2"
    );
    env.run(&["run", "first"])
        .code(1)
        .stderr_has("holds no grant of account emulated-account-1");
}

#[test]
fn a_pace_learned_in_one_account_is_not_applied_to_another() {
    let env = Env::new();
    installed_by_two_accounts(&env);
    // What an earlier process measured in the first account: a slow plan.
    env.remember_send_pace("emulated-account-1", 2.0);
    // Zoom limits each account apart: here 10 sends a second in each.
    env.adjust_knobs(|k| k.send_rate_limit = Some(10));
    let emails: Vec<_> = (0..40)
        .map(|i| format!("p{i}@second.bulk.example.com"))
        .collect();
    let emails: Vec<_> = emails.iter().map(String::as_str).collect();
    let file = job_in("emulated-account-2", &emails).replace("concurrency = 4", "concurrency = 8");
    env.job("theirs", &file);
    env.run(&["run", "theirs"])
        .code(0)
        .stdout_has("40 recipients, 40 sent");
    // Paced at the first account's 2/s, no second could have held more than 10 sends; the
    // second account knows no pace of its own yet, so it starts unpaced and meets its limit.
    let limited = env.emu().stats().sends_rate_limited;
    assert!(
        limited > 0,
        "the second account started at the first account's pace: no send answered 429"
    );
}

/// `serve` for installs, reading `config` (a zoomcast.toml) as its configuration.
fn serve_with_config(env: &Env, config: &str) -> crate::serve::Served {
    let path = env.dir.path().join("zoomcast.toml");
    std::fs::write(&path, config).unwrap();
    crate::serve::serve_for_installs_with(env, |cmd| {
        cmd.arg("--config").arg(&path);
    })
}

/// An install through `served` by whoever the emulator approves as: status and page.
fn install(served: &crate::serve::Served) -> (u16, String) {
    let (cookie, callback) = crate::serve::start_install(served);
    let (status, _, page) = crate::serve::visit(&callback, Some(&cookie));
    (status, page)
}

/// The accounts `auth status --json` lists, with whether each is the home account.
fn accounts(env: &Env) -> Vec<(String, bool)> {
    let rows = env.run(&["auth", "status", "--json"]).json();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let home = r["home"] == true;
            (
                r["account_id"].as_str().unwrap_or_default().to_owned(),
                home,
            )
        })
        .collect()
}

#[test]
fn another_accounts_install_never_moves_a_job_and_install_accounts_limits_who_may() {
    let env = Env::new();
    env.job("team", &job_to(&["ana@example.com"]));
    // Only the first account may install.
    let served = serve_with_config(&env, "install_accounts = [\"emulated-account-1\"]\n");
    assert_eq!(install(&served).0, 302);
    env.adjust_knobs(|k| k.login_as = "admin@second.example".into());
    let (status, page) = install(&served);
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("may not install"), "{page}");
    assert!(page.contains("Nothing was stored"), "{page}");
    assert_eq!(
        env.emu().stats().revocations,
        1,
        "its new tokens are revoked"
    );
    assert_eq!(accounts(&env), [("emulated-account-1".to_owned(), true)]);
    let log = served.stop();
    assert!(log.contains("install_accounts"), "{log}");
    assert!(
        !log.contains("admin@second.example"),
        "no person in the log: {log}"
    );

    // Any account may install: the second one does, and the job still sends in the first.
    let served = serve_with_config(&env, "install_accounts = \"any\"\n");
    assert_eq!(install(&served).0, 302);
    assert_eq!(
        accounts(&env),
        [
            ("emulated-account-1".to_owned(), true),
            ("emulated-account-2".to_owned(), false)
        ]
    );
    env.run(&["run", "team"]).code(0);
    assert_eq!(
        env.emu().messages().pop().unwrap().account_id,
        "emulated-account-1"
    );
    // The home account removes the app (Zoom's event, no person here): the job does not move
    // to the other account, and says where it sends and how to go on.
    let removed = serde_json::json!({"event": "app_deauthorized", "user": "admin@example.com"});
    assert_eq!(crate::serve::emulator_event(&env, &removed).0, 200);
    let sent = env.emu().messages().len();
    env.run(&["run", "team"])
        .code(1)
        .stderr_has("holds no grant of account emulated-account-1, its home account");
    assert_eq!(env.emu().messages().len(), sent);
    served.stop();
    // A list that is not one of account ids is refused, naming the fix.
    std::fs::write(
        env.dir.path().join("zoomcast.toml"),
        "install_accounts = \"all\"\n",
    )
    .unwrap();
    env.run(&["--config", "zoomcast.toml", "run", "team"])
        .code(2)
        .stderr_has("install_accounts is neither \"any\" nor a list of Zoom account ids");
}

#[test]
fn a_member_never_replaces_an_admins_working_grant() {
    let env = Env::new();
    env.job("team", &job_to(&["bo@example.com"]));
    env.login();
    let admin = env.run(&["auth", "status", "--json"]).json()[0].clone();
    // Ana is a member of the account: her login is refused and revoked, at the shell...
    env.adjust_knobs(|k| k.login_as = "ana@example.com".into());
    let (child, url) = env.start_login(&[]);
    assert!(crate::harness::browse(&url).contains("zoomcast is authorized"));
    let refused: Run = child.wait_with_output().unwrap().into();
    refused
        .code(1)
        .stderr_has("ana@example.com is not an owner or admin of account emulated-account-1 (their role: Member)")
        .stderr_has("the account's working grant, which an owner or admin made")
        .stderr_has("it is revoked at zoom");
    // ... and through /install.
    let served = crate::serve::serve_for_installs(&env);
    let (status, page) = install(&served);
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("is not an owner or admin"), "{page}");
    assert_eq!(env.emu().stats().revocations, 2);
    served.stop();
    let kept = env.run(&["auth", "status", "--json"]).json()[0].clone();
    assert_eq!(kept["user_email"], "admin@example.com");
    assert_eq!(kept["refreshed_at"], admin["refreshed_at"]);
    assert_eq!(kept["role"], "Owner");
    env.run(&["run", "team"]).code(0);

    // Once Zoom refused the admin's grant, a member's login may take its place.
    env.emu().revoke_all_grants();
    env.run(&["run", "team", "--refresh-cache"]).code(1);
    env.login();
    let now = env.run(&["auth", "status", "--json"]).json()[0].clone();
    assert_eq!(now["user_email"], "ana@example.com");
    assert_eq!(now["role"], "Member");
}

#[test]
fn a_login_of_another_client_is_refused_by_the_scheduler_and_by_a_run() {
    let env = Env::new();
    env.job("team", &job_to(&["ana@example.com"]));
    env.login();
    let daemon = crate::schedule::Daemon::start(&env, &[]);
    // Another app, on another OAuth server (a second emulator), logged in from a shell whose
    // environment names it.
    let other = zoomcast::emulator::EmulatorHandle::start(zoomcast::emulator::Knobs {
        client_id: "another-app".into(),
        client_secret: "another-app-secret".into(),
        ..zoomcast::emulator::Knobs::default()
    })
    .unwrap();
    let other_url = other.url();
    let elsewhere = [
        ("ZOOM_CLIENT_ID", "another-app"),
        ("ZOOM_CLIENT_SECRET", "another-app-secret"),
        ("ZOOM_OAUTH_URL", other_url.as_str()),
        ("ZOOM_API_URL", other_url.as_str()),
    ];
    let (child, url) = env.start_login(&elsewhere);
    assert!(crate::harness::browse(&url).contains("zoomcast is authorized"));
    let refused: Run = child.wait_with_output().unwrap().into();
    refused
        .code(1)
        .stderr_has("issued to client id another-app, but app `default` is configured with client id zoomcast-emulator")
        .stderr_has("it is revoked at zoom");
    assert_eq!(other.emulator().stats().revocations, 1);
    // The scheduler's grant works on.
    env.run(&["run", "team"]).code(0);
    daemon.stop();
    // A run configured with another client than its grant's says so, and asks nothing.
    let mut other_client = env.command(&["run", "team"]);
    other_client.env("ZOOM_CLIENT_ID", "another-app");
    let run: Run = other_client.output().unwrap().into();
    run.code(1).stderr_has(
        "was issued to client id zoomcast-emulator, but the app is configured with client id another-app",
    );
}
