//! What operators run zoomcast under: systemd's notification protocol (readiness, watchdog,
//! stopping) and the `health` probe a container's health check runs.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::harness::{Env, wait_for};
use crate::schedule::Daemon;
use crate::serve::served_at;

/// The next notification systemd would receive, if one comes within 10 s.
fn next_notification(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn the_service_tells_systemd_it_is_ready_alive_and_stopping_and_answers_the_probe() {
    let env = Env::new();
    let path = env.dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&path).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let daemon = Daemon::start_with(&env, &["--listen", "127.0.0.1:0"], |cmd| {
        cmd.env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "400000");
    });
    let ready = next_notification(&systemd);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // Fed at half the period while the state database reads and writes.
    for _ in 0..2 {
        assert_eq!(next_notification(&systemd), "WATCHDOG=1\n");
    }

    let addr = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        served_at(&daemon.log())
    })
    .expect("the scheduler says where it serves");
    let addr = addr.trim_start_matches("http://").to_owned();
    env.run(&["health", &addr])
        .code(0)
        .stdout_has(&format!("http://{addr}/healthz: ok"));

    daemon.stop();
    systemd
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut after: Vec<String> = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = systemd.recv(&mut buf) {
        after.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        after.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "{after:?}"
    );
    env.run(&["health", &addr])
        .code(1)
        .stderr_has(&format!("no answer from http://{addr}/healthz"));
}

#[test]
fn auth_login_beside_a_running_scheduler_hands_it_the_grant() {
    let env = Env::new();
    env.job("team", &crate::harness::job_to(&["ana@example.com"]));
    let daemon = Daemon::start(&env, &[]);
    env.login()
        .stderr_has("authorized app `default` as admin@example.com")
        .stderr_has("by the running scheduler, which uses it from now on");
    env.run(&["run", "team"]).code(0);
    // A second login revokes the first grant at Zoom; the scheduler, which refreshed with
    // the first, must now use the second.
    env.emu().kill_user_access_tokens();
    env.login().stderr_has("by the running scheduler");
    env.emu().kill_user_access_tokens();
    env.run(&["run", "team"]).code(0);
    assert_eq!(env.emu().stats().dead_refresh_presentations, 0);
    assert_eq!(env.emu().messages().len(), 2);
    daemon.stop();
    let status = env.run(&["auth", "status", "--json"]);
    status.code(0);
    assert_eq!(status.json()[0]["user_email"], "admin@example.com");
}

#[test]
fn a_command_finding_a_run_in_progress_says_which_and_how_far() {
    let env = Env::with_knobs(zoomcast::emulator::Knobs {
        latency_ms: 100,
        ..zoomcast::emulator::Knobs::default()
    });
    let emails = crate::harness::bulk_emails("slow", 100);
    let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
    let job = crate::harness::job_to(&emails).replace("concurrency = 4", "concurrency = 1");
    env.job("slow", &job);
    env.login();
    let mut run = env
        .command(&["run", "slow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(env.dir.path().join("run.log")).unwrap())
        .spawn()
        .unwrap();
    // Read without taking the lock, which would stop the run from starting.
    let lock = env.state_dir().join("lock");
    wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        let holder = std::fs::read_to_string(&lock).ok()?;
        holder.contains(" sent, ").then_some(())
    })
    .expect("the run says how far it is in the lock file");
    let said = env.run(&["history"]).stderr;
    let _ = run.kill();
    let _ = run.wait();
    assert!(
        said.contains(&format!("(pid {}, running job `slow`, run 1: ", run.id())),
        "{said}"
    );
    assert!(said.contains("about "), "{said}");
}

#[test]
fn a_login_whose_scheduler_stopped_meanwhile_stores_the_grant_itself() {
    let env = Env::new();
    let daemon = Daemon::start(&env, &[]);
    let (child, url) = env.start_login(&[]);
    // The scheduler stops (a restart) while the admin is at Zoom's consent page.
    daemon.stop();
    assert!(crate::harness::browse(&url).contains("zoomcast is authorized"));
    let login: crate::harness::Run = child.wait_with_output().unwrap().into();
    login
        .code(0)
        .stderr_has("authorized app `default` as admin@example.com");
    assert!(!login.stderr.contains("scheduler"), "{}", login.stderr);
    let status = env.run(&["auth", "status", "--json"]);
    status.code(0);
    assert_eq!(status.json()[0]["user_email"], "admin@example.com");
}

#[test]
fn json_logs_carry_the_job_run_app_account_and_outcome_and_a_partly_failed_run_warns() {
    use crate::serve::{Served, http};
    let env = Env::new();
    env.login();
    env.job(
        "payroll",
        &crate::harness::job_to(&["ana@example.com", "nobody@example.com"]),
    );
    let key = env.run(&["api-key", "create", "ci"]);
    key.code(0);
    let served = Served::start_with(&env, |cmd| {
        cmd.env("ZOOMCAST_LOG_FORMAT", "json");
    });
    let answer = http()
        .post(served.url("/v1/jobs/payroll/runs"))
        .bearer_auth(key.stdout.trim())
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    let run: serde_json::Value = answer.json().unwrap();
    let ended = wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
        let log = std::fs::read_to_string(served.log_path()).ok()?;
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["fields"]["outcome"].is_string())
    })
    .expect("the run's end is logged");
    assert_eq!(ended["level"], "WARN", "{ended}");
    let fields = &ended["fields"];
    assert_eq!(fields["job"], "payroll");
    assert_eq!(fields["run_id"], run["run_id"]);
    assert_eq!(fields["app"], "default");
    assert_eq!(fields["outcome"], "partly_failed");
    assert_eq!(fields["account"], env.emu().knobs().account_id);
    assert!(
        fields["message"]
            .as_str()
            .unwrap()
            .contains("partly failed: 2 recipients, 1 sent, 1 failed"),
        "{ended}"
    );
}
