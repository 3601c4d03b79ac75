//! `zoomcast schedule`: the real daemon fires a job on its schedule, each tick once, delivers
//! each recipient once per run, and exits 0 on SIGTERM within the drain deadline.

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Env, job_to};

const RECIPIENTS: [&str; 3] = ["ana@example.com", "bo@example.com", "chen@example.com"];

/// A running `schedule`, killed if a failing test leaves it running.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `schedule` with its logs going to a file in the test directory.
fn start_schedule(env: &Env, args: &[&str]) -> (Daemon, std::path::PathBuf) {
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
    (Daemon(child), log)
}

fn sigterm(Daemon(child): &Daemon) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the child to exit, at most `limit`; returns its exit code and how long it took.
fn wait_exit(Daemon(child): &mut Daemon, limit: Duration) -> (Option<i32>, Duration) {
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

fn json_of(run: &crate::harness::Run) -> Value {
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

#[test]
fn commands_work_beside_the_scheduler_and_job_files_reload() {
    let env = Env::new();
    env.job(
        "pulse",
        &format!(
            "schedule = \"*/2 * * * * *\"\n{}",
            job_to(&["ana@example.com"])
        ),
    );
    env.job("manual", &job_to(&["eli@example.com", "fay@example.com"]));
    env.login();
    let (mut child, log) = start_schedule(&env, &["--watch-every", "300ms"]);
    std::thread::sleep(Duration::from_millis(2500));

    // The scheduler holds the state directory; these ask it instead of failing on the lock.
    let status = json_of(&env.run(&["auth", "status", "--json"]));
    assert_eq!(status[0]["authorized"], true, "{status}");
    let runs = json_of(&env.run(&["history", "--json", "pulse"]));
    assert!(!runs.as_array().unwrap().is_empty(), "{runs}");
    let jobs = json_of(&env.run(&["jobs", "--json"]));
    let pulse = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "pulse")
        .unwrap();
    assert_eq!(pulse["last_run"]["job"], "pulse", "{pulse}");
    assert!(
        pulse["next_utc"][0].as_str().unwrap().ends_with("+00:00"),
        "{pulse}"
    );
    let manual = env.run(&["run", "manual", "--json"]);
    manual.code(0).stderr_has("running job `manual` in it");
    let report: Value = serde_json::from_str(&manual.stdout).unwrap();
    assert_eq!(report["counts"]["sent"], 2, "{report}");

    // A new job file is picked up; a broken edit keeps the last good version running.
    env.job(
        "late",
        &format!(
            "schedule = \"*/2 * * * * *\"\n{}",
            job_to(&["dee@example.com"])
        ),
    );
    env.job("pulse", "schedule = \"*/2 * * * * *\"\nbogus = 1\n");
    std::thread::sleep(Duration::from_millis(4500));
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(15));
    let logs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, Some(0), "{logs}");
    assert!(
        logs.contains("job `pulse` is invalid now; keeping its last good version"),
        "{logs}"
    );
    assert!(logs.contains("unknown field `bogus`"), "{logs}");

    let count = |email: &str| {
        env.emu()
            .messages()
            .iter()
            .filter(|m| m.to_email == email)
            .count()
    };
    let runs = |job: &str| {
        json_of(&env.run(&["history", "--json", job]))
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(
        count("ana@example.com"),
        runs("pulse"),
        "pulse kept running, once per tick"
    );
    assert!(runs("pulse") >= 3, "{logs}");
    assert!(runs("late") >= 1, "the new job ran:\n{logs}");
    assert_eq!(count("dee@example.com"), runs("late"));
    assert_eq!(count("eli@example.com"), 1);
}

#[test]
fn sigterm_mid_run_drains_and_the_next_start_resumes_without_duplicates() {
    const PEOPLE: usize = 300;
    let env = Env::with_knobs(zoomcast::emulator::Knobs {
        latency_ms: 20,
        ..Default::default()
    });
    let people: Vec<String> = (0..PEOPLE)
        .map(|i| format!("person{i}@bulk.example.com"))
        .collect();
    std::fs::write(env.jobs_dir().join("people.txt"), people.join("\n")).unwrap();
    env.job(
        "bulk",
        "[recipients]\nfile = \"people.txt\"\n\n[message]\nhead = \"Notice\"\nbody = \"Hi\"\n\n\
         [delivery]\nconcurrency = 2\n",
    );
    env.login();
    let (mut child, log) = start_schedule(&env, &["--drain", "1s"]);
    std::thread::sleep(Duration::from_millis(500));
    // A run by hand, in the scheduler; SIGTERM cuts it off after the drain deadline.
    let by_hand = env
        .command(&["run", "bulk"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    sigterm(&child);
    let (code, took) = wait_exit(&mut child, Duration::from_secs(15));
    let logs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, Some(0), "{logs}");
    assert!(
        took < Duration::from_secs(4),
        "exit took {took:?}:
{logs}"
    );
    let by_hand = by_hand.wait_with_output().unwrap();
    assert_eq!(
        by_hand.status.code(),
        Some(1),
        "the run by hand was cut off"
    );
    assert!(
        String::from_utf8_lossy(&by_hand.stderr).contains("stopped for shutdown"),
        "{}",
        String::from_utf8_lossy(&by_hand.stderr)
    );
    let runs = history(&env);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "interrupted", "{}", runs[0]);
    let delivered_before = env.emu().messages().len();
    assert!(
        delivered_before > 0 && delivered_before < PEOPLE,
        "{delivered_before}"
    );

    // The next start resumes the same run and finishes it.
    let (mut child, log) = start_schedule(&env, &[]);
    let start = Instant::now();
    // Once the socket is there the scheduler holds the state; `history` then asks it.
    while !env.state_dir().join("control.sock").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the scheduler did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    while history(&env)[0]["status"] != "succeeded" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the run was not resumed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(15));
    let logs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, Some(0), "{logs}");
    let runs = history(&env);
    assert_eq!(runs.len(), 1, "resumed under the same run");
    assert_eq!(runs[0]["counts"]["sent"], PEOPLE);
    let messages = env.emu().messages();
    let unique: BTreeSet<&str> = messages.iter().map(|m| m.to_email.as_str()).collect();
    assert_eq!(unique.len(), PEOPLE, "nobody is lost");
    assert_eq!(
        messages.len(),
        PEOPLE,
        "a drained run leaves nothing uncertain: no duplicates"
    );
}
