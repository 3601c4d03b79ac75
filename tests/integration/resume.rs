//! Crashes and resumption: the real binary is killed with SIGKILL at random moments during a
//! run, then run again until it finishes. Nobody is lost, and duplicates are bounded by the
//! sends in flight at each kill (at most `concurrency` per kill); with `on_uncertain = "skip"`
//! there are none, and the recipients whose outcome a kill hid are reported as uncertain.

use std::process::Stdio;
use std::time::Duration;

use rand::Rng;

use crate::harness::Env;

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
    let people = crate::harness::bulk_emails("hand", PEOPLE).join("\n");
    std::fs::write(env.jobs_dir().join("people.txt"), people).unwrap();
    env.job(
        "bulk",
        "[recipients]\nfile = \"people.txt\"\n\n[message]\nhead = \"Notice\"\nbody = \"Hi\"\n\n\
         [delivery]\nconcurrency = 2\n",
    );
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
