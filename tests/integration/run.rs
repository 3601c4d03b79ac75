//! `run` end to end: delivery exactly once, failures reported with Zoom's answer, retries,
//! configuration errors, exit codes.

use std::collections::HashMap;

use crate::harness::{Env, bulk_job, job_to};

#[test]
fn a_run_delivers_to_every_known_recipient_exactly_once() {
    let env = Env::new();
    let recipients = [
        "ana@example.com",
        "BO@example.com",
        "chen@example.com",
        "bo@example.com",
        "dee@example.com",
    ];
    env.job("team", &job_to(&recipients));
    env.login();
    env.run(&["run", "team"])
        .code(0)
        .stdout_has("4 recipients, 4 sent, 0 failed");
    let messages = env.emu().messages();
    for m in &messages {
        assert_eq!(
            m.user_jid, "kdynimt4kpd8kkdqt9fq@xmpp.zoom.us",
            "user_jid comes from the grant"
        );
        assert_eq!(
            m.account_id, "emulated-account-1",
            "account_id comes from the grant"
        );
    }
    let expected: HashMap<String, usize> = [
        "ana@example.com",
        "bo@example.com",
        "chen@example.com",
        "dee@example.com",
    ]
    .iter()
    .map(|e| ((*e).to_owned(), 1))
    .collect();
    assert_eq!(env.per_recipient(), expected);
    let ana = messages
        .iter()
        .find(|m| m.to_email == "ana@example.com")
        .unwrap();
    assert_eq!(ana.content["head"]["text"], "Hello");
    assert_eq!(ana.content["body"][0]["text"], "Hi Ana <ana@example.com>");
    let stats = env.emu().stats();
    assert_eq!(
        stats.users_called_with_bot_token + stats.chat_called_with_user_token,
        0,
        "{stats:?}"
    );
}

#[test]
fn unknown_emails_are_reported_with_zooms_answer_and_exit_3() {
    let env = Env::new();
    env.job(
        "team",
        &job_to(&["ana@example.com", "ghost@example.com", "bo@example.com"]),
    );
    env.login();
    let run = env.run(&["run", "team"]);
    run.code(3)
        .stdout_has("3 recipients, 2 sent, 1 failed")
        .stdout_has("ghost@example.com")
        .stdout_has("(code 1001): User does not exist: ghost@example.com.");
    assert_eq!(env.emu().messages().len(), 2);

    // The failures, exported, are a recipients file for a follow-up job.
    let csv = env.dir.path().join("failed.csv");
    env.run(&["run", "team", "--failures", csv.to_str().unwrap()])
        .code(3)
        .stderr_has("wrote 1 failed or uncertain recipients");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(
        text,
        "email,state,code,message\nghost@example.com,failed,1001,zoom answered 404 Not Found (code 1001): User does not exist: ghost@example.com.\n"
    );
    std::fs::copy(&csv, env.jobs_dir().join("failed.csv")).unwrap();
    env.job("retry", "[recipients]\nfile = \"failed.csv\"\n\n[message]\nhead = \"x\"\nbody = \"y {{ message }}\"\n");
    env.run(&[
        "validate",
        env.jobs_dir().join("retry.toml").to_str().unwrap(),
    ])
    .code(0)
    .stdout_has("(1 recipients");

    let report = env.run(&["run", "team", "--json"]).code(3).json();
    assert_eq!(report["counts"]["failed"], 1);
    assert_eq!(report["failures"][0]["email"], "ghost@example.com");
    assert_eq!(report["failures"][0]["code"], 1001);

    // history lists the runs, and one run's recipients.
    let runs = env.history(Some("team"));
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["status"], "partly_failed");
    let newest = runs[2]["run_id"].to_string();
    let run = env.run(&["history", "--run", &newest, "--json"]).json();
    let states: Vec<(&str, &str)> = run["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["email"].as_str().unwrap(), d["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("ana@example.com", "sent"),
            ("bo@example.com", "sent"),
            ("ghost@example.com", "failed")
        ]
    );
    env.run(&["history", "--run", &newest])
        .code(0)
        .stdout_has("ghost@example.com  failed");
}

#[test]
fn a_bot_zoom_does_not_know_stops_the_run_and_the_fixed_config_finishes_it() {
    // A robot JID that names no chatbot: Zoom answers 403 code 7003 to every send, so failing
    // each recipient would only make 40 doomed requests and 40 failures to clean up.
    let env = Env::new();
    env.job("bulk", &bulk_job("w", 40));
    env.login();
    env.run_with(&["run", "bulk"], |cmd| {
        cmd.env("ZOOM_ROBOT_JID", "nobody@xmpp.zoom.us");
    })
    .code(1)
    .stderr_has("zoom does not know the chatbot that app `default` sends as")
    .stderr_has("(code 7003): No Chatbot can be found with the given robot_jid value.")
    .stderr_has("set ZOOM_ROBOT_JID to the app's Bot JID")
    .stderr_has("run the job again: it picks up where it stopped");
    let stats = env.emu().stats();
    assert_eq!(stats.sends_accepted, 0);
    assert!(
        stats.sends_rejected <= 4,
        "only the sends in flight (concurrency 4) were made: {stats:?}"
    );
    let runs = env.history(Some("bulk"));
    assert_eq!(runs[0]["status"], "aborted", "{}", runs[0]);
    // Zoom processed none of the refused sends: nobody is left failed or uncertain.
    let detail = env.run(&["history", "--json", "--run", "1"]).code(0).json();
    assert_eq!(detail["deliveries"], serde_json::json!([]), "{detail}");

    // With the right robot JID the same run finishes, each recipient once.
    env.run(&["run", "bulk"])
        .code(0)
        .stdout_has("40 recipients, 40 sent");
    env.assert_each_sent_once(40);
    assert_eq!(env.history(Some("bulk")).len(), 1, "resumed, not a new run");
}

#[test]
fn a_recipient_gone_since_their_jid_was_cached_fails_with_zooms_code() {
    let env = Env::new();
    env.job("team", &bulk_job("left", 3));
    env.login();
    env.run(&["run", "team"]).code(0);
    // The people leave the account; their JIDs stay cached, so the next run sends to them.
    env.adjust_knobs(|k| k.synthetic_domain = None);
    env.run(&["run", "team"])
        .code(3)
        .stdout_has("3 recipients, 0 sent, 3 failed")
        .stdout_has("(code 7004): No channel or user can be found with the given to_jid value.");
    assert_eq!(env.emu().stats().sends_rejected, 3, "one request each");
}

#[test]
fn a_wrong_account_id_is_named_when_zoom_refuses_every_send() {
    let env = Env::new();
    env.job("team", &bulk_job("p", 24));
    env.login();
    env.job("warm", &bulk_job("p", 24));
    env.run(&["run", "warm"]).code(0); // the recipients' JIDs are cached
    // The chatbot now answers in another account than the one that authorized.
    env.adjust_knobs(|k| k.account_id = "some-other-account".into());
    let run = env.run(&["run", "team"]);
    run.code(3)
        .stdout_has("24 recipients, 0 sent, 24 failed")
        .stdout_has("hint: every send was refused.")
        .stdout_has("check the job's `account` and ZOOM_ACCOUNT_ID");
    assert!(
        run.stderr
            .contains("Zoom refused the first 20 sends with 7004 and accepted none"),
        "warned while running, not only at the end: {}",
        run.stderr
    );
    let json = env.run(&["run", "team", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(
        report["hint"]
            .as_str()
            .is_some_and(|h| h.contains("ZOOM_ACCOUNT_ID")),
        "{report}"
    );
    // The right account: the hint is gone with the refusals.
    env.adjust_knobs(|k| k.account_id = "emulated-account-1".into());
    env.run(&["run", "team"])
        .code(0)
        .stdout_has("24 recipients, 24 sent");
}

#[test]
fn injected_server_errors_are_retried_until_delivered() {
    let env = Env::new();
    env.job(
        "bulk",
        &bulk_job("user", 40).replace("concurrency = 4", "concurrency = 8\nmax_attempts = 12"),
    );
    env.login(); // before the faults: logging in does not retry
    env.adjust_knobs(|k| k.fail_5xx = 0.3);
    env.run(&["run", "bulk"])
        .code(0)
        .stdout_has("40 recipients, 40 sent");
    assert_eq!(env.emu().messages().len(), 40, "each exactly once");
    assert!(env.emu().stats().injected_faults > 0);
}

#[test]
fn a_dry_run_checks_with_zoom_shows_the_card_and_sends_nothing() {
    let env = Env::new();
    env.job("team", &job_to(&["ana@example.com", "bo@example.com"]));
    env.job("typo", &job_to(&["ana@example.com", "nobody@example.com"]));
    env.login();
    let bot_tokens = env.emu().stats().bot_tokens_issued;
    env.run(&["run", "team", "--dry-run", "--show", "2"])
        .code(0)
        .stdout_has("dry run of job `team`: nothing was sent")
        .stdout_has("the bot token was obtained")
        .stdout_has("2 recipients: 2 found, 0 opted out, 0 would fail")
        .stdout_has("card for ana@example.com (to ana0001aaaaaaaa0001@xmpp.zoom.us)")
        .stdout_has("\"text\": \"Hi Bo <bo@example.com>\"");
    assert!(
        env.emu().stats().bot_tokens_issued > bot_tokens,
        "asked Zoom for the bot token"
    );
    // An address Zoom does not know: what a run would fail, before it runs.
    let preview = env
        .run(&["run", "typo", "--dry-run", "--json"])
        .code(3)
        .json();
    assert_eq!(
        preview["resolved"]["failing"][0]["recipient"], "nobody@example.com",
        "{preview}"
    );
    assert_eq!(preview["messages"][0]["content"]["head"]["text"], "Hello");
    // Without lookups, no recipient is looked up.
    let lookups = env.emu().stats().user_lookups + env.emu().stats().unknown_users;
    env.run(&["run", "typo", "--dry-run", "--no-resolve"])
        .code(0)
        .stdout_has("2 recipients, not looked up (--no-resolve)");
    let made = env.emu().stats().user_lookups + env.emu().stats().unknown_users - lookups;
    assert_eq!(
        made, 1,
        "only the authorizing user (`me`), none of the recipients"
    );
    assert!(env.emu().messages().is_empty());
    assert!(env.history(None).is_empty(), "a dry run records no run");
    // Zoom out of reach: the dry run says so, where it used to say "valid".
    env.run_with(&["run", "team", "--dry-run"], |cmd| {
        cmd.env("ZOOM_API_URL", "http://127.0.0.1:9")
            .env("ZOOM_OAUTH_URL", "http://127.0.0.1:9");
    })
    .code(1)
    .stderr_has("could not reach zoom's token endpoint at http://127.0.0.1:9/oauth/token")
    .stderr_has("Connection refused");
}

#[test]
fn a_robot_jid_that_is_not_a_chat_jid_is_a_configuration_error() {
    let env = Env::new();
    env.job("team", &job_to(&["ana@example.com"]));
    env.login();
    env.run_with(&["run", "team", "--dry-run"], |cmd| {
        cmd.env("ZOOM_ROBOT_JID", "my-bot");
    })
    .code(2)
    .stderr_has("the robot_jid of app `default`, `my-bot`, is not a chatbot's JID")
    .stderr_has("Bot JID");
    assert!(env.emu().messages().is_empty());
}

#[test]
fn a_missing_robot_jid_is_a_configuration_error() {
    let env = Env::new();
    env.job("team", &job_to(&["ana@example.com"]));
    env.login();
    env.run_with(&["run", "team"], |cmd| {
        cmd.env_remove("ZOOM_ROBOT_JID");
    })
    .code(2)
    .stderr_has("app `default` has no robot_jid")
    .stderr_has("set ZOOM_ROBOT_JID");
}

#[test]
fn a_job_can_be_given_by_path() {
    let env = Env::new();
    env.login();
    let path = env.dir.path().join("elsewhere.toml");
    std::fs::write(&path, job_to(&["ana@example.com"])).unwrap();
    env.run(&["run", path.to_str().unwrap()])
        .code(0)
        .stdout_has("job `elsewhere`");
}

#[test]
fn zoom_failing_every_attempt_stops_the_run_with_exit_1() {
    let env = Env::new();
    env.job(
        "team",
        &job_to(&["ana@example.com", "bo@example.com"])
            .replace("concurrency = 4", "concurrency = 1\nmax_attempts = 2"),
    );
    env.login();
    env.adjust_knobs(|k| k.fail_5xx = 1.0);
    env.run(&["run", "team"])
        .code(1)
        .stderr_has("zoom kept failing after 2 attempts (last: zoom answered 503 Service Unavailable (code 503)");
    env.run(&["history", "team"]).code(0).stdout_has("aborted");
}

#[test]
fn a_user_managed_app_is_explained_not_retried_into_the_ground() {
    let env = Env::new();
    env.job(
        "team",
        &job_to(&["ana@example.com", "bo@example.com", "chen@example.com"]),
    );
    env.login();
    env.adjust_knobs(|k| k.user_managed = true);
    env.run(&["run", "team"])
        .code(1)
        .stderr_has("zoom rejected a freshly renewed user token of app `default`")
        .stderr_has(
            "must be an admin-managed (account-level) app with the user:read:user:admin scope",
        );
    let stats = env.emu().stats();
    assert_eq!(
        stats.refreshes, 1,
        "one renewal, not one per recipient: {stats:?}"
    );
    assert!(env.emu().messages().is_empty());
}

#[test]
fn a_job_that_names_its_account_never_sends_in_another() {
    let env = Env::new();
    env.login();
    let job = job_to(&["ana@example.com"]);
    env.job("ours", &format!("account = \"emulated-account-1\"\n{job}"));
    env.job("theirs", &format!("account = \"other-account\"\n{job}"));
    env.job("garbled", &format!("account = \"not an id!\"\n{job}"));
    env.run(&["validate", "jobs/garbled.toml"])
        .code(2)
        .stderr_has("account `not an id!` is not a Zoom account id")
        .stderr_has("garbled.toml:1:");
    env.run(&["run", "theirs"])
        .code(1)
        .stderr_has("app `default` holds no grant of account other-account");
    assert_eq!(env.emu().messages().len(), 0, "nothing was sent");
    env.run(&["run", "ours"]).code(0);
    assert_eq!(env.emu().messages().len(), 1);
}
