//! `zoomcast schedule`: the real daemon fires a job on its schedule, each tick once, delivers
//! each recipient once per run, and exits 0 on SIGTERM within the drain deadline.

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Env, job_to};

const RECIPIENTS: [&str; 3] = ["ana@example.com", "bo@example.com", "chen@example.com"];

/// Starts `schedule` with its logs going to a file in the test directory.
fn start_schedule(env: &Env, args: &[&str]) -> (Child, std::path::PathBuf) {
    let log = env.dir.path().join("schedule.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut all = vec!["schedule"];
    all.extend_from_slice(args);
    let child = env
        .command(&all)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    (child, log)
}

fn sigterm(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the child to exit, at most `limit`; returns its exit code and how long it took.
fn wait_exit(child: &mut Child, limit: Duration) -> (Option<i32>, Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    panic!("the scheduler did not exit within {limit:?}");
}

fn history(env: &Env) -> Vec<Value> {
    let run = env.run(&["history", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str::<Value>(&run.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_job_every_two_seconds_runs_each_tick_once_and_sigterm_exits_0() {
    let env = Env::new();
    env.job(
        "pulse",
        &format!("schedule = \"*/2 * * * * *\"\n{}", job_to(&RECIPIENTS)),
    );
    env.login();
    let (mut child, log) = start_schedule(&env, &["--drain", "5s"]);
    std::thread::sleep(Duration::from_secs(9));
    sigterm(&child);
    let (code, took) = wait_exit(&mut child, Duration::from_secs(15));
    let logs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, Some(0), "{logs}");
    assert!(took < Duration::from_secs(5), "exit took {took:?}:\n{logs}");

    let runs = history(&env);
    assert!(runs.len() >= 3, "{} runs:\n{logs}", runs.len());
    let ticks: BTreeSet<&str> = runs
        .iter()
        .map(|r| r["scheduled_for"].as_str().expect("a scheduled run"))
        .collect();
    assert_eq!(ticks.len(), runs.len(), "one run per tick");
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["counts"]["sent"], 3, "{run}");
    }
    // Each run delivered to each recipient exactly once.
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for m in env.emu().messages() {
        *per_recipient.entry(m.to_email.clone()).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), RECIPIENTS.len());
    for (email, count) in per_recipient {
        assert_eq!(count, runs.len(), "{email}");
    }
}
