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

    // With two accounts, a job must say which one it sends in; nothing is sent meanwhile.
    env.job("unnamed", &job_to(&["ana@example.com"]));
    env.run(&["run", "unnamed"])
        .code(2)
        .stderr_has("unnamed.toml")
        .stderr_has("names no account, and app `default` is installed by several: emulated-account-1, emulated-account-2")
        .stderr_has("add `account = \"emulated-account-1\"`");
    env.run(&["run", "unnamed", "--dry-run"]).code(2);
    assert!(env.emu().messages().is_empty());

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
        2
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

    // Logging one account out keeps the other's grant; then a job naming no account sends in
    // the one left.
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
