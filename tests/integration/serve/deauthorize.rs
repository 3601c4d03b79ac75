//! An account removing the app: its data deleted, its runs closed, nothing else touched.

use super::*;

#[test]
fn deauthorization_deletes_that_accounts_data_and_nothing_else() {
    let env = Env::new();
    // The app is installed by two accounts, each sending to its own people.
    env.login();
    env.adjust_knobs(|k| k.login_as = "admin@second.example".into());
    env.login();
    let job =
        |account: &str, people: &[&str]| format!("account = \"{account}\"\n{}", job_to(people));
    env.job(
        "team",
        &job("emulated-account-1", &["ana@example.com", "bo@example.com"]),
    );
    env.job(
        "theirs",
        &job(
            "emulated-account-2",
            &["gus@second.example", "hana@second.example"],
        ),
    );
    env.run(&["run", "team"]).code(0);
    env.run(&["run", "theirs"]).code(0);
    let details = |env: &Env, run: &str| {
        let history = env.run(&["history", "--run", run, "--json"]).code(0).json();
        history["deliveries"].as_array().unwrap().len()
    };
    assert_eq!(details(&env, "2"), 2);
    let served = Served::start(&env);
    let secret = env.emu().knobs().webhook_secret;
    for user in ["ana@example.com", "hana@second.example"] {
        let stop = json!({"event": "bot_notification", "user": user, "cmd": "stop"});
        assert_eq!(emulator_event(&env, &stop).0, 200);
    }
    assert_eq!(optout_count(&env), 2);

    // A deauthorization for another app (client id) deletes nothing.
    let stray = json!({"event": "app_deauthorized", "payload": {
        "account_id": env.emu().knobs().account_id, "client_id": "another-app",
        "user_id": "x", "deauthorization_time": "2026-11-30T00:00:00Z",
    }});
    let body = serde_json::to_vec(&stray).unwrap();
    let now = chrono::Utc::now().timestamp();
    assert_eq!(post(&served, &body, &signed(&secret, now, &body)).0, 200);
    assert_eq!(optout_count(&env), 2);

    // The first account removes the app.
    let removed = json!({"event": "app_deauthorized", "user": "admin@example.com"});
    assert_eq!(emulator_event(&env, &removed).0, 200);
    let optouts = env.run(&["optouts", "--json"]).code(0).json();
    assert_eq!(optouts.as_array().unwrap().len(), 1, "{optouts}");
    assert_eq!(
        optouts[0]["account"], "emulated-account-2",
        "another account's stays"
    );
    let grants = env.run(&["auth", "status", "--json"]).code(0).json();
    let accounts: Vec<_> = grants
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["account_id"])
        .collect();
    assert_eq!(accounts, ["emulated-account-2"], "{grants}");
    let grant_file = |account: &str| {
        env.state_dir()
            .join(format!("grants/default/{account}.json"))
    };
    assert!(
        !grant_file("emulated-account-1").exists(),
        "the grant file is gone too"
    );
    assert!(grant_file("emulated-account-2").exists());
    // The run's summary stays, without its recipients.
    let history = env.run(&["history", "--run", "1", "--json"]).code(0).json();
    assert_eq!(history["counts"]["sent"], 2, "{history}");
    assert_eq!(history["deliveries"], json!([]));
    assert_eq!(history["details_pruned"], true);
    // The account's next run fails, saying how to install again; the other account's runs
    // keep their details and go on.
    env.run(&["run", "team"])
        .code(1)
        .stderr_has("holds no grant of account emulated-account-1")
        .stderr_has("/install");
    assert_eq!(
        details(&env, "2"),
        2,
        "another account's run keeps its details"
    );
    env.run(&["run", "theirs", "--json"]).code(0);
    let last = env.emu().messages().pop().unwrap();
    assert_eq!(last.account_id, "emulated-account-2");
    let log = served.stop();
    assert!(log.contains("removed the app"), "{log}");
    assert!(
        log.contains("the per-recipient details of 1 runs (2 entries) and 2 cached lookups"),
        "the run's deliveries and the cached lookups are deleted: {log}"
    );
    for person in ["ana@example.com", "admin@example.com"] {
        assert!(!log.contains(person), "no personal data in the log: {log}");
    }
}

#[test]
fn a_run_going_on_when_the_account_removes_the_app_ends_closed_with_nothing_kept() {
    let env = Env::new();
    env.login();
    env.job(
        "slow",
        &crate::harness::bulk_job("slow", 60).replace("concurrency = 4", "concurrency = 1"),
    );
    env.adjust_knobs(|k| k.latency_ms = 50);
    let served = Served::start(&env);
    let run = env
        .command(&["run", "slow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(20), Duration::from_millis(20), || {
        (env.emu().stats().sends_accepted >= 3).then_some(())
    })
    .expect("the run is sending");
    let (status, _) = emulator_event(&env, &json!({"event": "app_deauthorized"}));
    assert_eq!(status, 200);
    let output = run.wait_with_output().unwrap();
    assert_ne!(output.status.code(), Some(0), "it could not finish");
    let history = env.run(&["history", "--run", "1", "--json"]).code(0).json();
    assert_eq!(history["status"], "closed", "{history}");
    assert_eq!(
        history["deliveries"],
        json!([]),
        "nothing it recorded afterwards is kept"
    );
    served.stop();
}
