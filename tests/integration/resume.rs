//! Crashes and resumption: the real binary is killed with SIGKILL at random moments during a
//! run, then run again until it finishes. Nobody is lost, and duplicates are bounded by the
//! sends in flight at each kill (at most `concurrency` per kill); with `on_uncertain = "skip"`
//! there are none, and the recipients whose outcome a kill hid are reported as uncertain.
//! Ctrl-C drains a run instead; a resumed run resends what was in flight exactly as it was
//! journaled, and a schedule tick has one run however often it is launched.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use crate::harness::Env;
use crate::inproc::{job_in, logged_in};

const RECIPIENTS: usize = 2000;
const CONCURRENCY: usize = 8;

fn bulk_env(on_uncertain: &str) -> Env {
    let env = Env::with_knobs(zoomcast::emulator::Knobs {
        latency_ms: 4,
        ..Default::default()
    });
    let rows: Vec<String> = (0..RECIPIENTS)
        .map(|i| format!("person{i}@bulk.example.com,team{}", i % 7))
        .collect();
    let csv = format!("email,team\n{}\n", rows.join("\n"));
    std::fs::write(env.jobs_dir().join("people.csv"), csv).unwrap();
    env.job(
        "bulk",
        &format!(
            "[recipients]\nfile = \"people.csv\"\n\n[message]\nhead = \"Notice\"\nbody = \"Hi {{{{ first_name }}}} of {{{{ team }}}}\"\n\n\
             [delivery]\nconcurrency = {CONCURRENCY}\nmax_attempts = 8\non_uncertain = \"{on_uncertain}\"\n"
        ),
    );
    env.login();
    env
}

/// Starts `run bulk` in the background, its output discarded.
fn start_run(env: &Env) -> std::process::Child {
    env.command(&["run", "bulk"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Starts `run bulk` and kills it after a random moment, `kills` times; returns how many of
/// those runs were really cut off (a run may finish before its kill).
fn kill_repeatedly(env: &Env, kills: usize) -> usize {
    let mut rng = rand::thread_rng();
    let mut cut_off = 0;
    for _ in 0..kills {
        let mut child = start_run(env);
        std::thread::sleep(Duration::from_millis(rng.gen_range(150..900)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            cut_off += 1;
        }
        child.wait().unwrap();
    }
    cut_off
}

#[test]
fn sigkilled_runs_resume_without_losing_anyone() {
    let env = bulk_env("resend");
    let kills = kill_repeatedly(&env, 4);
    assert!(kills > 0, "at least one run was cut off");
    let report = env.run(&["run", "bulk", "--json"]).code(0).json();
    assert_eq!(report["counts"]["sent"], RECIPIENTS);
    assert!(
        report["run_id"] == 1,
        "every process worked on the one run: {report}"
    );

    let counts = env.per_recipient();
    assert_eq!(counts.len(), RECIPIENTS, "every recipient got the message");
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    eprintln!(
        "crash test: {kills} runs killed, {duplicates} duplicate messages (bound {})",
        kills * CONCURRENCY
    );
    assert!(
        duplicates <= kills * CONCURRENCY,
        "{duplicates} duplicates after {kills} kills"
    );
    let msg = env
        .emu()
        .messages()
        .into_iter()
        .find(|m| m.to_email == "person9@bulk.example.com")
        .unwrap();
    assert_eq!(msg.content["body"][0]["text"], "Hi Person9 of team2");

    let runs = env.history(Some("bulk"));
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "succeeded");
}

#[test]
fn with_skip_nobody_is_messaged_twice_and_the_uncertain_are_reported() {
    let env = bulk_env("skip");
    let kills = kill_repeatedly(&env, 3);
    let last = env.run(&["run", "bulk", "--json"]);
    let report = last.json();
    let (sent, uncertain) = (
        report["counts"]["sent"].as_u64().unwrap(),
        report["counts"]["uncertain"].as_u64().unwrap(),
    );
    assert_eq!(sent + uncertain, RECIPIENTS as u64, "{report}");
    assert!(
        usize::try_from(uncertain).unwrap() <= kills * CONCURRENCY,
        "{report}"
    );
    eprintln!("crash test (skip): {kills} runs killed, {uncertain} uncertain, 0 duplicates");
    last.code(if uncertain > 0 { 3 } else { 0 });

    let counts = env.per_recipient();
    assert!(counts.values().all(|n| *n == 1), "at most once");
    // Every recipient is accounted for: delivered, or reported as uncertain (and those
    // were either delivered before the kill or not at all).
    let uncertain: Vec<&str> = report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        counts.len()
            + uncertain
                .iter()
                .filter(|e| !counts.contains_key(**e))
                .count(),
        RECIPIENTS
    );
}

#[test]
fn an_interrupted_run_says_so_in_history() {
    let env = bulk_env("resend");
    let mut child = start_run(&env);
    std::thread::sleep(Duration::from_millis(400));
    child.kill().unwrap();
    child.wait().unwrap();
    env.run(&["history", "bulk"])
        .code(0)
        .stdout_has("interrupted");
}

#[test]
fn ctrl_c_on_run_drains_and_the_next_run_resumes_with_nobody_lost() {
    const PEOPLE: usize = 300;
    let env = Env::with_knobs(zoomcast::emulator::Knobs {
        latency_ms: 20,
        ..Default::default()
    });
    crate::harness::people_job(&env, "hand", PEOPLE, 2);
    env.login();
    let child = env
        .command(&["run", "bulk"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::harness::wait_for(
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(20),
        || (env.emu().messages().len() >= 10).then_some(()),
    )
    .expect("the run sends");
    let ctrl_c = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ctrl_c.success());
    let run = crate::harness::Run::from(child.wait_with_output().unwrap());
    run.code(1)
        .stderr_has("interrupted by a signal")
        .stderr_has("zoomcast run bulk");
    let runs = env.history(Some("bulk"));
    assert_eq!(runs[0]["status"], "interrupted", "{}", runs[0]);
    let before = env.emu().messages().len();
    assert!(before < PEOPLE, "stopped early: {before}");

    env.run(&["run", "bulk"]).code(0);
    let runs = env.history(Some("bulk"));
    assert_eq!(runs.len(), 1, "resumed under the same run");
    assert_eq!(runs[0]["counts"]["sent"], PEOPLE);
    env.assert_each_sent_once(PEOPLE);
}

#[test]
fn a_schedule_tick_has_one_run_however_often_it_is_launched() {
    use zoomcast::delivery::{Engine, RunOptions, sender};
    let (z, dir, store, tokens) = logged_in();
    let job = job_in(dir.path(), "tick", &["ana@example.com", "bo@example.com"]);
    let robot = z.handle.emulator().knobs().robot_jid;
    let engine = Engine::new(&store, z.api.clone(), Arc::default()).unwrap();
    let tick = |s: &str| Some(chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc());
    let ids: Vec<_> = z.runtime.block_on(async {
        let from = sender(tokens.clone(), Some(&robot), "default")
            .await
            .unwrap();
        let mut ids = Vec::new();
        for t in [
            "2026-11-23T09:00:00Z",
            "2026-11-23T09:00:00Z",
            "2026-11-23T10:00:00Z",
        ] {
            let options = RunOptions {
                scheduled_for: tick(t),
                ..RunOptions::default()
            };
            let report = engine.run(&job, &from, options).await.unwrap();
            assert_eq!(report.record.scheduled_for, tick(t));
            ids.push(report.record.id);
        }
        ids
    });
    assert_eq!(ids[0], ids[1], "the same tick is the same run");
    assert_ne!(ids[1], ids[2], "another tick is another run");
    assert_eq!(
        z.handle.emulator().messages().len(),
        4,
        "two runs of two recipients"
    );
    assert_eq!(store.runs().unwrap().list(Some("tick")).unwrap().len(), 2);
}

#[test]
fn a_resumed_run_resends_what_was_in_flight_exactly_as_journaled() {
    use zoomcast::delivery::{Engine, RunOptions, sender};
    use zoomcast::state::{Delivery, DeliveryState, Rendered};
    let (z, dir, store, tokens) = logged_in();
    let job = job_in(
        dir.path(),
        "resume",
        &["ana@example.com", "bo@example.com", "chen@example.com"],
    );
    let emu = z.handle.emulator();
    let robot = emu.knobs().robot_jid;
    let ana_jid = "ana0001aaaaaaaa0001@xmpp.zoom.us";
    // A crash left two sends in flight: ana's, and one to eli, who has since left the job.
    let runs = store.runs().unwrap();
    let deliveries = store.deliveries().unwrap();
    let crashed = z
        .runtime
        .block_on(runs.start("resume", ("default", None), None, None))
        .unwrap();
    for (email, jid, body) in [
        (
            "ana@example.com",
            ana_jid,
            "the message as it was rendered then",
        ),
        // Eli's real JID: a resend would reach him, so the test sees one if it happens.
        (
            "eli@example.com",
            "eli0005eeeeeeee0005@xmpp.zoom.us",
            "for eli",
        ),
    ] {
        let in_flight = Delivery {
            rendered: Some(Rendered {
                content: zoomcast::card::text("Hello", body),
            }),
            ..Delivery::new(email, DeliveryState::Sending, Some(jid.into()), 1)
        };
        deliveries.set(crashed.id, &in_flight).unwrap();
    }
    let engine = Engine::new(&store, z.api.clone(), Arc::default()).unwrap();
    let lookups_before = emu.stats().user_lookups;
    let report = z.runtime.block_on(async {
        let from = sender(tokens.clone(), Some(&robot), "default")
            .await
            .unwrap();
        engine
            .run(&job, &from, RunOptions::default())
            .await
            .unwrap()
    });
    assert_eq!(report.record.id, crashed.id, "the interrupted run resumed");
    let messages = emu.messages();
    let to = |email: &str| {
        messages
            .iter()
            .filter(|m| m.to_email == email)
            .map(|m| m.content["body"][0]["text"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        to("ana@example.com"),
        ["the message as it was rendered then"]
    );
    assert_eq!(to("bo@example.com"), ["Hi Bo <bo@example.com>"]);
    assert_eq!(to("chen@example.com"), ["Hi Chen <chen@example.com>"]);
    assert!(to("eli@example.com").is_empty(), "eli left the job");
    assert_eq!(
        emu.stats().user_lookups - lookups_before,
        2,
        "ana was resent to her journaled JID, without a lookup"
    );
    let c = &report.record.counts;
    assert_eq!((c.total, c.sent, c.uncertain), (4, 3, 1));
    assert_eq!(report.failures[0].email, "eli@example.com");
    assert_eq!(report.failures[0].state, DeliveryState::Uncertain);
}
