//! Button presses on sent messages, acknowledgements and the reminders to the others.

use super::*;

#[test]
fn a_button_press_on_a_message_without_buttons_changes_nothing() {
    let (env, served) = served_after_a_run();
    let history = || env.run(&["history", "--run", "1", "--json"]).code(0).json();
    let before = history();
    let ana = &before["deliveries"][0];
    assert_eq!(ana["email"], "ana@example.com");
    // Today's jobs send no buttons, so Zoom sends no presses for their messages; one that
    // claims to be for such a message (or for a message zoomcast never sent) is acknowledged
    // and recorded nowhere.
    for message_id in [ana["message_id"].as_str().unwrap(), "not-a-message-of-ours"] {
        let (status, _) = emulator_event(
            &env,
            &json!({"event": "interactive_message_actions", "user": "ana@example.com",
                    "message_id": message_id, "value": "ack"}),
        );
        assert_eq!(status, 200);
    }
    assert_eq!(history(), before);
    let metrics = scrape(&served);
    let ignored = series(
        &metrics,
        "zoomcast_webhook_events",
        &[
            ("event", "interactive_message_actions"),
            ("verdict", "ignored"),
        ],
    );
    assert_eq!(ignored, Some(2.0));
    served.stop();
}

#[test]
fn a_button_press_is_recorded_on_the_delivery_of_its_message() {
    let env = Env::new();
    env.login();
    let job = job_to(&["ana@example.com", "bo@example.com"]).replace(
        "[delivery]",
        "[[message.blocks]]\ntype = \"actions\"\nbuttons = [{ text = \"Done\", value = \"done\" }]\n\n[delivery]",
    );
    env.job("team", &job.replace("body = ", "# body = "));
    env.run(&["run", "team"]).code(0);
    let history = || env.run(&["history", "--run", "1", "--json"]).code(0).json();
    let delivery = |history: &Value, email: &str| {
        let all = history["deliveries"].as_array().unwrap();
        all.iter().find(|d| d["email"] == email).unwrap().clone()
    };
    let bo_message = delivery(&history(), "bo@example.com")["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let served = Served::start(&env);
    let before = history();
    let press = json!({"event": "interactive_message_actions", "user": "bo@example.com",
                       "message_id": bo_message, "value": "done"});
    assert_eq!(emulator_event(&env, &press).0, 200);

    let after = history();
    let presses = &delivery(&after, "bo@example.com")["presses"];
    assert_eq!(presses.as_array().unwrap().len(), 1, "{after}");
    assert_eq!(presses[0]["value"], "done");
    let bo_jid = env.emu().directory().find("bo@example.com").unwrap().jid;
    assert_eq!(presses[0]["by"], bo_jid.as_str());
    assert!(
        presses[0]["at"]
            .as_str()
            .is_some_and(|at| at.starts_with("20"))
    );
    assert_eq!(
        delivery(&after, "ana@example.com"),
        delivery(&before, "ana@example.com"),
        "only the pressed message's delivery changes"
    );
    env.run(&["history", "--run", "1"])
        .code(0)
        .stdout_has("pressed `done` at");
    let metrics = scrape(&served);
    let labels = [
        ("event", "interactive_message_actions"),
        ("verdict", "accepted"),
    ];
    assert_eq!(
        series(&metrics, "zoomcast_webhook_events", &labels),
        Some(1.0)
    );
    served.stop();
}

/// `schedule --listen` (checking job files every second) with the emulator's webhook secret,
/// and the emulator's events pointed at it.
pub(crate) fn scheduler_serving_webhooks(env: &Env) -> crate::schedule::Daemon {
    let secret = env.emu().knobs().webhook_secret;
    let args = ["--listen", "127.0.0.1:0", "--watch-every", "1s"];
    let daemon = crate::schedule::Daemon::start_with(env, &args, |cmd| {
        cmd.env("ZOOM_WEBHOOK_SECRET", &secret);
    });
    let base = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        served_at(&daemon.log())
    })
    .expect("the scheduler announces where it serves");
    env.adjust_knobs(|k| k.webhook_url = Some(format!("{base}/webhooks/zoom")));
    daemon
}

#[test]
fn acknowledgements_are_recorded_and_the_others_are_reminded_at_most_max_reminders_times() {
    let env = Env::new();
    env.login();
    let people = ["ana@example.com", "bo@example.com", "chen@example.com"];
    let job = job_to(&people).replace(
        "[delivery]",
        "[[message.blocks]]\ntype = \"actions\"\nbuttons = [{ text = \"Got it\", value = \"ack\", style = \"Primary\" }, { text = \"Swap\", value = \"swap\" }]\n\n[acknowledge]\nbutton = \"ack\"\nremind_after = \"2s\"\nmax_reminders = 2\n\n[delivery]",
    );
    env.job("handoff", &job.replace("body = ", "# body = "));
    let daemon = scheduler_serving_webhooks(&env);
    env.run(&["run", "handoff"]).code(0);
    let sent = env.emu().messages();
    let message_of = |email: &str| {
        sent.iter()
            .find(|m| m.to_email == email)
            .unwrap()
            .message_id
            .clone()
    };
    // Ana acknowledges; Bo presses the other button, which is not an acknowledgement.
    for (user, value) in [("ana@example.com", "ack"), ("bo@example.com", "swap")] {
        let press = json!({"event": "interactive_message_actions", "user": user,
                           "message_id": message_of(user), "value": value});
        assert_eq!(emulator_event(&env, &press).0, 200);
    }
    let reminders = || {
        env.emu()
            .messages()
            .into_iter()
            .filter(|m| m.reply_to.is_some())
            .collect::<Vec<_>>()
    };
    wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        (reminders().len() >= 4).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "two reminders each to bo and chen: {:?}\n{}",
            reminders(),
            daemon.log()
        )
    });
    // Two more reminder periods: still at most two each, and none to Ana.
    std::thread::sleep(Duration::from_secs(4));
    let reminders = reminders();
    let mut to: Vec<_> = reminders.iter().map(|m| m.to_email.as_str()).collect();
    to.sort_unstable();
    assert_eq!(
        to,
        [
            "bo@example.com",
            "bo@example.com",
            "chen@example.com",
            "chen@example.com"
        ]
    );
    for reminder in &reminders {
        assert_eq!(
            reminder.reply_to.as_deref(),
            Some(message_of(&reminder.to_email).as_str())
        );
        let text = reminder.content["body"][0]["text"].as_str().unwrap();
        assert!(text.contains("press “Got it”"), "{text}");
    }
    let history = env.run(&["history", "--run", "1", "--json"]).code(0).json();
    let delivery = |email: &str| {
        let all = history["deliveries"].as_array().unwrap();
        all.iter().find(|d| d["email"] == email).unwrap().clone()
    };
    let ana_jid = env.emu().directory().find("ana@example.com").unwrap().jid;
    assert_eq!(delivery("ana@example.com")["acknowledged"]["value"], "ack");
    assert_eq!(
        delivery("ana@example.com")["acknowledged"]["by"],
        ana_jid.as_str()
    );
    assert!(
        delivery("bo@example.com")["acknowledged"].is_null(),
        "{history}"
    );
    assert_eq!(
        delivery("chen@example.com")["reminders"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    env.run(&["history", "--run", "1"])
        .code(0)
        .stdout_has("acknowledged (`ack`): 1 of 3")
        .stdout_has("not yet: bo@example.com, chen@example.com");
    let (log, _) = daemon.stop();
    assert!(log.contains("reminders to acknowledge sent"), "{log}");
}
