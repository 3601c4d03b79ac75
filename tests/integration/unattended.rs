//! What must not go quietly wrong while nobody watches: reminders to people who said `stop` or
//! to channels, the bot's replies lost to one refusal, a dead grant that looks healthy, a daily
//! limit taken for a passing one.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Env, wait_for};
use crate::serve::{Served, emulator_event};

/// Replies the bot wrote (in chat, as `zoomcast`) to `email`.
fn replies_to(env: &Env, email: &str) -> Vec<String> {
    env.emu()
        .messages()
        .into_iter()
        .filter(|m| m.to_email == email && m.content["head"]["text"] == "zoomcast")
        .map(|m| {
            m.content["body"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn reminders_skip_people_who_said_stop_since_and_channels_which_count_for_nothing() {
    let env = Env::new();
    env.login();
    env.job(
        "handoff",
        r#"
[recipients]
emails = ["ana@example.com", "bo@example.com"]
channels = ["general@conference.xmpp.zoom.us"]

[message]
head = "Hand-off"

[[message.blocks]]
type = "actions"
buttons = [{ text = "Got it", value = "ack" }]

[acknowledge]
button = "ack"
remind_after = "3s"
max_reminders = 2
"#,
    );
    let daemon = crate::serve::scheduler_serving_webhooks(&env);
    env.run(&["run", "handoff"]).code(0);
    // Right after the run, Bo tells the bot `stop`.
    let stop = json!({"event": "bot_notification", "user": "bo@example.com", "cmd": "stop"});
    assert_eq!(emulator_event(&env, &stop).0, 200);
    let reminders = || {
        env.emu()
            .messages()
            .into_iter()
            .filter(|m| m.reply_to.is_some())
            .map(|m| m.to_jid)
            .collect::<Vec<_>>()
    };
    let ana = env.emu().directory().find("ana@example.com").unwrap().jid;
    wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
        (reminders().iter().filter(|to| **to == ana).count() >= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("two reminders to ana: {:?}\n{}", reminders(), daemon.log()));
    // One more period: nobody else was reminded, not Bo, not the channel.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(reminders(), [ana.clone(), ana], "{}", daemon.log());
    // The channel is not one of those asked to acknowledge.
    env.run(&["history", "--run", "1"])
        .code(0)
        .stdout_has("acknowledged (`ack`): 0 of 2")
        .stdout_has("not yet: ana@example.com, bo@example.com");
    daemon.stop();
}

#[test]
fn the_bots_replies_wait_for_the_accounts_limit_instead_of_being_lost() {
    let env = Env::new();
    env.login();
    // One send a second in the account: two of three quick replies meet a 429 first.
    env.adjust_knobs(|k| k.send_rate_limit = Some(1));
    let served = Served::start(&env);
    for _ in 0..3 {
        let help = json!({"event": "bot_notification", "user": "ana@example.com", "cmd": "help"});
        assert_eq!(emulator_event(&env, &help).0, 200);
    }
    let replies = wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
        Some(replies_to(&env, "ana@example.com")).filter(|r| r.len() == 3)
    });
    let log = served.stop();
    assert!(
        replies.is_some(),
        "three replies: {:?}\n{log}",
        replies_to(&env, "ana@example.com")
    );
    assert!(
        env.emu().stats().sends_rate_limited > 0,
        "the limit was met"
    );
}

#[test]
fn a_grant_zoom_refused_is_recorded_dead_and_every_check_says_so() {
    let env = Env::new();
    env.job("team", &crate::harness::job_to(&["ana@example.com"]));
    env.login();
    env.run(&["doctor"])
        .code(0)
        .stdout_has("with Zoom: zoom answers for admin@example.com");
    // The admin removed the app: Zoom refuses its tokens, while their expiries look fine.
    env.emu().revoke_all_grants();
    // A dry run asks Zoom as a run would: the rejected token renewed, the refusal named.
    env.run(&["run", "team", "--dry-run"])
        .code(1)
        .stderr_has("run `zoomcast auth login --app default` to authorize again");
    // From then on it is known dead: said by status and doctor, exit 1.
    env.run(&["auth", "status"])
        .code(1)
        .stdout_has("DEAD since")
        .stderr_has("zoom refused the grant of app `default` in account emulated-account-1");
    let status = env.run(&["auth", "status", "--json"]).json();
    assert_eq!(status[0]["access_token_valid"], false, "{status}");
    assert!(status[0]["dead"]["since"].is_string(), "{status}");
    env.run(&["doctor"])
        .code(1)
        .stdout_has("FAIL app `default` grant of account emulated-account-1: dead since");
    // Runs stop at once, and nothing presents the dead refresh token to Zoom again.
    env.run(&["run", "team", "--refresh-cache"])
        .code(1)
        .stderr_has("is dead since");
    assert_eq!(env.emu().stats().dead_refresh_presentations, 1);
    // A new authorization brings it back.
    env.login();
    env.run(&["auth", "status"]).code(0);
    env.run(&["doctor"]).code(0);
    env.run(&["run", "team"]).code(0);
}

#[test]
fn doctor_beside_a_scheduler_has_it_check_the_grants_it_holds() {
    let env = Env::new();
    env.login();
    let daemon = crate::schedule::Daemon::start(&env, &[]);
    env.run(&["doctor"])
        .code(0)
        .stdout_has("with Zoom: zoom answers for admin@example.com");
    env.emu().revoke_all_grants();
    env.run(&["doctor"])
        .code(1)
        .stdout_has("with Zoom: the authorization of app `default` is no longer valid");
    env.run(&["auth", "status"])
        .code(1)
        .stdout_has("DEAD since");
    let (log, _) = daemon.stop();
    assert!(log.contains("recorded as dead"), "{log}");
}

/// A job `NAME` of `n` synthetic recipients sent one at a time (slow against a slow emulator).
fn slow_job(env: &Env, name: &str, n: usize) {
    let emails = crate::harness::bulk_emails(name, n);
    let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
    let job = crate::harness::job_to(&emails).replace("concurrency = 4", "concurrency = 1");
    env.job(name, &job);
}

/// Starts `run NAME` in the background, and returns once it holds the state and says so.
fn running(env: &Env, name: &str) -> std::process::Child {
    let child = env
        .command(&["run", name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = env.state_dir().join("lock");
    // The lock file names its holder's pid first (an earlier holder's text stays after it).
    let mine = format!("{}\nrunning job `{name}`", child.id());
    wait_for(Duration::from_secs(20), Duration::from_millis(20), || {
        let holder = std::fs::read_to_string(&lock).ok()?;
        holder.starts_with(&mine).then_some(())
    })
    .expect("the run holds the state");
    child
}

#[test]
fn two_runs_at_once_on_one_state_both_succeed() {
    let env = Env::with_knobs(zoomcast::emulator::Knobs {
        latency_ms: 30,
        ..zoomcast::emulator::Knobs::default()
    });
    env.login();
    slow_job(&env, "first", 40);
    slow_job(&env, "second", 2);
    // Two timers firing together: the second waits for the first, then runs.
    let first = running(&env, "first");
    let second = env.run(&["run", "second"]);
    second
        .code(0)
        .stderr_has("is in use by another zoomcast process (pid ")
        .stderr_has("running job `first`")
        .stderr_has("waiting for it (up to 10m, --wait)");
    let first: crate::harness::Run = first.wait_with_output().unwrap().into();
    first.code(0);
    env.assert_each_sent_once(42);
}

#[test]
fn read_only_commands_answer_beside_a_standalone_run_and_create_nothing() {
    let env = Env::with_knobs(zoomcast::emulator::Knobs {
        latency_ms: 30,
        ..zoomcast::emulator::Knobs::default()
    });
    env.login();
    slow_job(&env, "slow", 60);
    env.run(&["run", "slow"]).code(0);
    let mut run = running(&env, "slow");
    for args in [
        &["history"][..],
        &["history", "slow", "--json"],
        &["jobs", "--json"],
        &["optouts"],
        &["auth", "status"],
    ] {
        let answered = env.run(args);
        answered.code(0);
        assert!(
            answered.stderr.contains("running job `slow`") || args[0] == "jobs",
            "{args:?} says who answered: {}",
            answered.stderr
        );
    }
    assert_eq!(
        env.history(Some("slow")).len(),
        2,
        "the finished run and this one"
    );
    let _ = run.kill();
    let _ = run.wait();

    // Started in the wrong directory: nothing is created, and the missing directory is named.
    let elsewhere = env.dir.path().join("not-here");
    for args in [&["history"][..], &["optouts"], &["auth", "status"]] {
        env.run_with(args, |cmd| {
            cmd.env("ZOOMCAST_STATE", &elsewhere);
        })
        .code(1)
        .stderr_has(&format!(
            "the state directory {} does not exist",
            elsewhere.display()
        ));
    }
    env.run_with(&["jobs"], |cmd| {
        cmd.env("ZOOMCAST_STATE", &elsewhere);
    })
    .code(0);
    assert!(!elsewhere.exists(), "no read-only command created it");
}

#[test]
fn serve_speaks_of_itself_and_of_no_scheduler() {
    let env = Env::new();
    env.login();
    env.job("team", &crate::harness::job_to(&["ana@example.com"]));
    let served = Served::start(&env);
    let run = env.run(&["run", "team"]);
    run.code(0).stderr_has(
        "the running `zoomcast serve` holds the state directory: running job `team` in it",
    );
    env.run(&["doctor"])
        .stdout_has("held by the running `zoomcast serve`, which answers for it");
    let log = served.stop();
    for said in [&run.stderr, &log] {
        assert!(!said.to_lowercase().contains("scheduler"), "{said}");
    }
}

#[test]
fn history_of_an_aborted_run_says_why_it_stopped_and_how_to_go_on() {
    let env = Env::new();
    env.job("team", &crate::harness::job_to(&["ana@example.com"]));
    env.login();
    env.emu().revoke_all_grants();
    env.run(&["run", "team"]).code(1);
    env.run(&["history", "--run", "1"])
        .code(0)
        .stdout_has("aborted")
        .stdout_has("stopped: the authorization of app `default` is no longer valid")
        .stdout_has("`zoomcast run team` resumes it where it stopped");
}
