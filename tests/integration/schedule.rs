//! `zoomcast schedule`: the real daemon fires a job on its schedule, each tick once, delivers
//! each recipient once per run, and exits 0 on SIGTERM within the drain deadline.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Env, Run, by_name, job_to, wait_for};

const RECIPIENTS: [&str; 3] = ["ana@example.com", "bo@example.com", "chen@example.com"];

/// A running `schedule` with its log file; killed if a failing test leaves it running.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `schedule` with its logs going to a file in the test directory.
    pub(crate) fn start(env: &Env, args: &[&str]) -> Self {
        Self::start_with(env, args, |_| {})
    }

    /// Starts `schedule` with `tweak` applied to its command, and waits until it holds the
    /// state directory (its control socket is there).
    pub(crate) fn start_with(env: &Env, args: &[&str], tweak: impl FnOnce(&mut Command)) -> Self {
        let mut all = vec!["schedule"];
        all.extend_from_slice(args);
        let mut command = env.command(&all);
        tweak(&mut command);
        Self::spawn(env, command)
    }

    /// Starts `command` (a `schedule`) with its logs going to a file in the test directory,
    /// and waits until it holds the state directory.
    pub(crate) fn spawn(env: &Env, mut command: Command) -> Self {
        let log = env.dir.path().join("schedule.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = command.stdout(Stdio::null()).stderr(file).spawn().unwrap();
        let daemon = Self { child, log };
        let socket = zoomcast::control::socket_path(&env.state_dir());
        wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
            socket.exists().then_some(())
        })
        .expect("the scheduler starts");
        daemon
    }

    /// What it has logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM, waits (at most 15 s) for exit 0, and returns the log and how long the
    /// exit took.
    #[track_caller]
    pub(crate) fn stop(mut self) -> (String, Duration) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        let code = wait_for(Duration::from_secs(15), Duration::from_millis(20), || {
            self.child.try_wait().unwrap().map(|status| status.code())
        })
        .expect("the scheduler exits within 15 s");
        let took = start.elapsed();
        let logs = std::fs::read_to_string(&self.log).unwrap();
        assert_eq!(code, Some(0), "{logs}");
        (logs, took)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A job every two seconds to `emails`.
fn every_two_seconds(emails: &[&str]) -> String {
    format!("schedule = \"*/2 * * * * *\"\n{}", job_to(emails))
}

#[test]
fn a_job_every_two_seconds_runs_each_tick_once_and_sigterm_exits_0() {
    let env = Env::new();
    env.job("pulse", &every_two_seconds(&RECIPIENTS));
    env.login();
    let daemon = Daemon::start(&env, &["--drain", "5s"]);
    std::thread::sleep(Duration::from_secs(9));
    let (logs, took) = daemon.stop();
    assert!(took < Duration::from_secs(5), "exit took {took:?}:\n{logs}");

    let runs = env.history(None);
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
    let per_recipient = env.per_recipient();
    assert_eq!(per_recipient.len(), RECIPIENTS.len());
    for (email, count) in per_recipient {
        assert_eq!(count, runs.len(), "{email}");
    }
}

#[test]
fn commands_work_beside_the_scheduler_and_job_files_reload() {
    let env = Env::new();
    env.job("pulse", &every_two_seconds(&["ana@example.com"]));
    env.job("manual", &job_to(&["eli@example.com", "fay@example.com"]));
    env.login();
    let daemon = Daemon::start(&env, &["--watch-every", "300ms"]);
    std::thread::sleep(Duration::from_millis(2500));

    // The scheduler holds the state directory; these ask it instead of failing on the lock.
    let status = env.run(&["auth", "status", "--json"]).code(0).json();
    assert_eq!(status[0]["authorized"], true, "{status}");
    let runs = env.history(Some("pulse"));
    assert!(!runs.is_empty());
    let jobs = env.run(&["jobs", "--json"]).code(0).json();
    let pulse = by_name(&jobs, "pulse");
    assert_eq!(pulse["last_run"]["job"], "pulse", "{pulse}");
    assert!(
        pulse["next_utc"][0].as_str().unwrap().ends_with("+00:00"),
        "{pulse}"
    );
    env.run(&["run", "manual", "--dry-run"])
        .code(0)
        .stdout_has("dry run of job `manual`, through the running scheduler: nothing was sent")
        .stdout_has("bot v1robotzoomcast@xmpp.zoom.us")
        .stdout_has("2 recipients: 2 found");
    let manual = env.run(&["run", "manual", "--json"]);
    let report = manual
        .code(0)
        .stderr_has("running job `manual` in it")
        .json();
    assert_eq!(report["counts"]["sent"], 2, "{report}");

    // A new job file is picked up; a broken edit keeps the last good version running.
    env.job("late", &every_two_seconds(&["dee@example.com"]));
    env.job("pulse", "schedule = \"*/2 * * * * *\"\nbogus = 1\n");
    std::thread::sleep(Duration::from_millis(4500));
    let (logs, _) = daemon.stop();
    assert!(
        logs.contains("job `pulse` is invalid now; keeping its last good version"),
        "{logs}"
    );
    assert!(logs.contains("unknown field `bogus`"), "{logs}");
    assert!(logs.contains("of job `pulse` succeeded"), "{logs}");
    assert!(
        !logs.contains("job `pulse`: run "),
        "a run's line names its job once: {logs}"
    );

    let count = env.per_recipient();
    let count = |email: &str| count.get(email).copied().unwrap_or(0);
    let runs = |job: &str| env.history(Some(job)).len();
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
fn a_dry_run_beside_the_scheduler_checks_the_schedulers_configuration() {
    let env = Env::new();
    env.job("manual", &job_to(&["eli@example.com"]));
    env.login();
    // The scheduler runs without a chatbot JID; this shell has one, but the scheduler would
    // be the one sending.
    let daemon = Daemon::start_with(&env, &[], |cmd| {
        cmd.env_remove("ZOOM_ROBOT_JID");
    });
    env.run(&["run", "manual", "--dry-run"])
        .code(2)
        .stderr_has("app `default` has no robot_jid")
        .stderr_has("set ZOOM_ROBOT_JID");
    daemon.stop();
    assert!(env.emu().messages().is_empty());
}

#[test]
fn sigterm_mid_run_drains_and_the_next_start_resumes_without_duplicates() {
    const PEOPLE: usize = 300;
    let env = Env::with_knobs(zoomcast::emulator::Knobs {
        latency_ms: 20,
        ..Default::default()
    });
    crate::harness::people_job(&env, "person", PEOPLE, 2);
    env.login();
    let daemon = Daemon::start(&env, &["--drain", "1s"]);
    std::thread::sleep(Duration::from_millis(500));
    // A run by hand, in the scheduler; SIGTERM cuts it off after the drain deadline.
    let by_hand = env
        .command(&["run", "bulk"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let (logs, took) = daemon.stop();
    assert!(took < Duration::from_secs(4), "exit took {took:?}:\n{logs}");
    let by_hand = Run::from(by_hand.wait_with_output().unwrap());
    by_hand.code(1).stderr_has("stopped for shutdown");
    let runs = env.history(None);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "interrupted", "{}", runs[0]);
    let delivered_before = env.emu().messages().len();
    assert!(
        delivered_before > 0 && delivered_before < PEOPLE,
        "{delivered_before}"
    );

    // The next start resumes the same run and finishes it.
    // Once it started, the scheduler holds the state; `history` then asks it.
    let daemon = Daemon::start(&env, &[]);
    wait_for(Duration::from_secs(30), Duration::from_millis(200), || {
        (env.history(None)[0]["status"] == "succeeded").then_some(())
    })
    .expect("the run is resumed");
    daemon.stop();
    let runs = env.history(None);
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

#[test]
fn a_suspended_job_is_listed_as_such_and_still_runs_by_hand() {
    let env = Env::new();
    env.login();
    let job = format!(
        "schedule = \"0 9 * * *\"\nsuspend = true\n{}",
        job_to(&["ana@example.com"])
    );
    env.job("paused", &job);
    let listed = env.run(&["jobs", "--json"]).code(0).json();
    assert_eq!(listed[0]["suspended"], true, "{listed}");
    env.run(&["jobs"]).code(0).stdout_has("suspended");
    env.run(&["run", "paused"]).code(0).stdout_has("1 sent");
    env.job("paused", &job.replace("suspend = true\n", ""));
    assert_eq!(
        env.run(&["jobs", "--json"]).code(0).json()[0]["suspended"],
        false
    );
}
