//! The commands users write to the bot: `stop` opts a user out of every job, `start` in again.

use super::*;

#[test]
fn stop_opts_a_user_out_of_every_job_until_start() {
    let env = Env::new();
    env.login();
    env.job("team", &job_to(&["ana@example.com", "bo@example.com"]));
    let served = Served::start(&env);
    let ana = env.emu().directory().find("ana@example.com").unwrap();
    let replies_to_ana = || {
        env.emu()
            .messages()
            .into_iter()
            .filter(|m| m.to_jid == ana.jid && m.content["head"]["text"] == "zoomcast")
            .map(|m| {
                m.content["body"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };

    let (status, _) = emulator_event(
        &env,
        &json!({"event": "bot_notification", "user": "ana@example.com", "cmd": "Stop"}),
    );
    assert_eq!(status, 200);
    let replies = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        Some(replies_to_ana()).filter(|r| !r.is_empty())
    })
    .expect("the bot answers in chat");
    assert!(replies[0].contains("no more notifications"), "{replies:?}");
    let optouts = env.run(&["optouts", "--json"]).code(0).json();
    assert_eq!(optouts.as_array().unwrap().len(), 1, "{optouts}");
    assert_eq!(optouts[0]["user_jid"], ana.jid);
    assert_eq!(optouts[0]["account"], env.emu().knobs().account_id);

    // The run (inside `serve`, through its control socket) skips her.
    let report = env.run(&["run", "team", "--json"]).code(0).json();
    assert_eq!(report["counts"]["sent"], 1, "{report}");
    assert_eq!(report["counts"]["opted_out"], 1, "{report}");
    let to_ana = |env: &Env| {
        env.emu()
            .messages()
            .iter()
            .filter(|m| m.to_jid == ana.jid && m.content["head"]["text"] == "Hello")
            .count()
    };
    assert_eq!(to_ana(&env), 0);
    let id = report["run_id"].as_u64().unwrap().to_string();
    let history = env.run(&["history", "--run", &id, "--json"]).code(0).json();
    let state_of_ana = history["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["recipient"] == "ana@example.com" || d["email"] == "ana@example.com")
        .map(|d| d["state"].clone());
    assert_eq!(state_of_ana, Some(json!("opted_out")), "{history}");

    // `start` opts her back in; the next run reaches her.
    emulator_event(
        &env,
        &json!({"event": "bot_notification", "user": "ana@example.com", "cmd": "start"}),
    );
    let optouts = env.run(&["optouts", "--json"]).code(0).json();
    assert_eq!(optouts, json!([]));
    env.run(&["run", "team"]).code(0);
    assert_eq!(to_ana(&env), 1);

    // Anything else gets the help text.
    emulator_event(
        &env,
        &json!({"event": "bot_notification", "user": "ana@example.com", "cmd": "what is this"}),
    );
    let replies = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        Some(replies_to_ana()).filter(|r| r.len() == 3)
    })
    .expect("three replies");
    assert!(replies[1].contains("notifications again"), "{replies:?}");
    assert!(replies[2].contains("`stop`") && replies[2].contains("`start`"));
    served.stop();
}
