//! Trust: what another local user, a hostile Zoom, a careless job file or a closed pipe can do
//! to zoomcast. No token readable by others, no daemon another user can drive, no panic that
//! loses a grant. The checks as another user run where the tests run as root (as CI does).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{Env, bulk_job, job_to, make_fifo, wait_for};
use crate::schedule::Daemon;

/// The uid the checks as another user run as (`nobody`).
const OTHER_UID: u32 = 65534;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// Every path below `dir` (not following links), `dir` included.
fn everything_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = vec![dir.to_owned()];
    let mut i = 0;
    while i < found.len() {
        if found[i].is_dir() && !found[i].is_symlink() {
            for entry in std::fs::read_dir(&found[i]).unwrap() {
                found.push(entry.unwrap().path());
            }
        }
        i += 1;
    }
    found
}

/// Asserts that nothing in `dir` is open to group or others.
#[track_caller]
fn assert_private(dir: &Path) {
    for path in everything_in(dir) {
        let m = mode(&path);
        assert_eq!(m & 0o077, 0, "{} has mode {m:o}", path.display());
    }
}

/// Runs `program args` as [`OTHER_UID`] and says whether it succeeded.
fn as_other_user(program: &str, args: &[&Path]) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    Command::new(program)
        .args(args)
        .uid(OTHER_UID)
        .gid(OTHER_UID)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The test directory open to every user, as `/srv/zoomcast` would be: only the state
/// directory's own modes then keep another user out.
fn open_test_dir(env: &Env) {
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_state_directory_that_existed_open_is_made_private_and_unreadable_to_others() {
    let env = Env::new();
    open_test_dir(&env);
    // What `git clone` left before: a 0755 state/ with a 0644 file, and a leftover temporary
    // grant file open to everyone.
    let state = env.state_dir();
    std::fs::create_dir_all(state.join("grants/default")).unwrap();
    std::fs::write(state.join("README.md"), "notes").unwrap();
    std::fs::write(
        state.join("grants/default/emulated-account-1.json.tmp"),
        "{}",
    )
    .unwrap();
    for (path, m) in [
        (state.clone(), 0o755),
        (state.join("grants"), 0o755),
        (state.join("grants/default"), 0o755),
        (state.join("README.md"), 0o644),
        (
            state.join("grants/default/emulated-account-1.json.tmp"),
            0o666,
        ),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
    }
    env.login();
    env.job("team", &job_to(&["ana@example.com"]));
    // Started under the loosest umask.
    let out = env
        .command_under_umask("000", &["run", "team"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    assert!(
        state.join("db").is_dir()
            && state
                .join("grants/default/emulated-account-1.json")
                .is_file()
    );
    assert_eq!(mode(&state), 0o700);
    for own in zoomcast::state::private::OWN_ENTRIES {
        if state.join(own).exists() {
            assert_private(&state.join(own));
        }
    }
    if is_root() {
        for secret in [
            "db/db",
            "grants/default/emulated-account-1.json",
            "README.md",
        ] {
            let read = as_other_user("cat", &[&state.join(secret)]);
            assert!(
                !read.status.success(),
                "uid {OTHER_UID} read {secret}: {}",
                String::from_utf8_lossy(&read.stdout)
            );
        }
        assert!(!as_other_user("ls", &[&state]).status.success());
    }
}

#[test]
fn a_state_directory_another_user_owns_is_refused_with_the_fix() {
    if !is_root() {
        eprintln!("skipped: changing a directory's owner needs root");
        return;
    }
    let env = Env::new();
    let state = env.state_dir();
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    env.run(&["history"])
        .code(1)
        .stderr_has(&format!("belongs to uid {OTHER_UID}"))
        .stderr_has("chown -R");
    assert_eq!(std::fs::metadata(&state).unwrap().uid(), OTHER_UID);
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        0,
        "nothing was written"
    );
}

#[test]
fn the_control_socket_under_umask_000_is_private_and_refuses_other_users() {
    let env = Env::new();
    open_test_dir(&env);
    env.job("manual", &job_to(&["ana@example.com"]));
    env.login();
    let daemon = Daemon::spawn(&env, env.command_under_umask("000", &["schedule"]));
    let socket = zoomcast::control::socket_path(&env.state_dir());
    assert_eq!(mode(&socket), 0o600);
    assert_private(&env.state_dir()); // nothing but zoomcast's own entries in it
    if is_root() {
        // Even a socket someone opened up answers only its own user.
        std::fs::set_permissions(env.state_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
        let socket_for_other = socket.clone();
        let answer = std::thread::spawn(move || {
            rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(OTHER_UID)).unwrap();
            ask(&socket_for_other)
        })
        .join()
        .unwrap();
        assert_eq!(answer, "", "another user got an answer");
        assert!(
            ask(&socket).contains("\"response\":\"runs\""),
            "the owner is answered"
        );
    }
    let (logs, _) = daemon.stop();
    if is_root() {
        assert!(
            logs.contains(&format!("refused a connection from uid {OTHER_UID}")),
            "{logs}"
        );
    }
}

/// Sends a `runs` request to the control socket and returns the answer (empty if none).
fn ask(socket: &Path) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return String::new();
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(b"{\"request\":\"runs\",\"job\":null}\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn the_scheduler_runs_only_job_files_of_its_own_jobs_directory() {
    let env = Env::new();
    env.login();
    let elsewhere = env.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("sneaky.toml"), job_to(&["ana@example.com"])).unwrap();
    // A job of the jobs directory may be a link to a file kept elsewhere.
    std::fs::write(elsewhere.join("shared.toml"), job_to(&["bo@example.com"])).unwrap();
    std::os::unix::fs::symlink(
        elsewhere.join("shared.toml"),
        env.jobs_dir().join("linked.toml"),
    )
    .unwrap();
    let daemon = Daemon::start(&env, &[]);
    let sneaky = elsewhere.join("sneaky.toml");
    let climbing = env.jobs_dir().join("../elsewhere/sneaky.toml");
    for path in [sneaky.to_str().unwrap(), climbing.to_str().unwrap()] {
        for args in [&["run", path][..], &["run", path, "--dry-run"]] {
            env.run(args)
                .code(2)
                .stderr_has("runs only job files in its jobs directory");
        }
    }
    assert!(env.emu().messages().is_empty(), "nothing was sent");
    env.run(&["run", "linked"]).code(0);
    daemon.stop();
    env.assert_each_sent_once(1);
}

#[test]
fn history_and_auth_status_end_quietly_on_a_closed_stdout() {
    let env = Env::new();
    env.login();
    env.job("team", &bulk_job("pipe", 40));
    env.run(&["run", "team"]).code(0);
    for args in [
        &["history"][..],
        &["history", "team", "--run", "1"],
        &["auth", "status"],
        &["jobs"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // `| head` that has already exited
        let out = env
            .command(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?} ends quietly");
    }
}

#[test]
fn a_scheduler_whose_log_reader_went_away_still_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let env = Env::new();
    env.login();
    let mut child = env
        .command(&["schedule"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("scheduler started") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the log ended");
    }
    drop(stderr); // the log collector died
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let code = wait_for(Duration::from_secs(15), Duration::from_millis(20), || {
        child.try_wait().unwrap().map(|s| s.code())
    });
    if code.is_none() {
        let _ = child.kill();
    }
    assert_eq!(code, Some(Some(0)), "SIGTERM ends the scheduler");
}

#[test]
fn a_refresh_answered_with_an_absurd_lifetime_keeps_the_grant() {
    let env = Env::new();
    env.login();
    env.job("team", &job_to(&["ana@example.com", "bo@example.com"]));
    // Zoom rotates the refresh token and answers `expires_in: 1e14`.
    env.adjust_knobs(|k| k.access_ttl_secs = 100_000_000_000_000);
    env.emu().kill_user_access_tokens();
    env.run(&["run", "team"]).code(0);
    // The rotated refresh token was kept: the next refresh works.
    env.adjust_knobs(|k| k.access_ttl_secs = 3600);
    env.emu().kill_user_access_tokens();
    env.run(&["run", "team", "--refresh-cache"]).code(0);
    assert_eq!(env.emu().stats().dead_refresh_presentations, 0);
    assert!(env.emu().stats().refreshes >= 2);
    let status = env.run(&["auth", "status", "--json"]).code(0).json();
    assert_eq!(status[0]["authorized"], true, "{status}");
}

#[test]
fn urls_that_would_leak_the_secret_or_reach_nothing_are_refused() {
    let env = Env::new();
    env.job("team", &job_to(&["ana@example.com"]));
    for (var, value, says) in [
        ("ZOOM_API_URL", "mailto:ops@example.com", "has no host"),
        ("ZOOM_API_URL", "ftp://api.zoom.us", "scheme `ftp:`"),
        ("ZOOM_OAUTH_URL", "http://zoom.us", "unencrypted"),
    ] {
        env.run_with(&["run", "team", "--dry-run"], |cmd| {
            cmd.env(var, value);
        })
        .code(2)
        .stderr_has(says);
    }
}

#[test]
fn hostile_recipient_files_are_refused_before_anything_is_sent() {
    let env = Env::new();
    env.login();
    let lookups = env.emu().stats().user_lookups; // the login's /users/me
    let dotenv = env.dir.path().join(".env");
    std::fs::write(&dotenv, "CANARY_SECRET=canary-value-1234\nOTHER=x\n").unwrap();
    let fifo = env.dir.path().join("pipe");
    make_fifo(&fifo);
    for (file, says) in [
        ("/proc/self/environ", "not a text file"),
        ("/dev/zero", "not a regular file"),
        ("/", "not a regular file"),
        (dotenv.to_str().unwrap(), "the line is not shown"),
        (fifo.to_str().unwrap(), "not a regular file"),
    ] {
        env.job(
            "hostile",
            &format!("[recipients]\nfile = \"{file}\"\n\n[message]\nhead = \"h\"\nbody = \"b\"\n"),
        );
        let run = env.run_with(&["run", "hostile"], |cmd| {
            cmd.env("CANARY_SECRET", "canary-value-1234");
        });
        run.code(2).stderr_has(says);
        assert!(!run.stderr.contains("canary-value-1234"), "{}", run.stderr);
    }
    assert_eq!(env.emu().stats().user_lookups, lookups);
    assert!(env.emu().messages().is_empty());
}

#[test]
fn a_run_resumes_only_for_the_job_file_that_started_it() {
    let env = Env::new();
    env.login();
    env.job("report", &job_to(&["ana@example.com", "bo@example.com"]));
    // An interrupted run of jobs/report.toml.
    {
        let store = zoomcast::state::Store::open(&env.state_dir()).unwrap();
        let file = std::fs::canonicalize(env.jobs_dir().join("report.toml")).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime
            .block_on(
                store
                    .runs()
                    .unwrap()
                    .start("report", ("default", None), Some(file), None),
            )
            .unwrap();
    }
    let other = env.dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("report.toml"), job_to(&["chen@example.com"])).unwrap();
    env.run(&["run", "other/report.toml"])
        .code(2)
        .stderr_has("belongs to another file of that name");
    assert!(env.emu().messages().is_empty());
    // Its own file finishes it, as the same run.
    env.run(&["run", "report"]).code(0);
    let runs = env.history(Some("report"));
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["counts"]["sent"], 2);
    env.assert_each_sent_once(2);
}

#[test]
fn the_failures_file_is_private_and_no_cell_is_a_formula() {
    let env = Env::new();
    env.login();
    env.job(
        "team",
        &job_to(&["ana@example.com", "=cmd@unknown.example.com"]),
    );
    let failures = env.dir.path().join("failures.csv");
    std::fs::write(&failures, "old").unwrap();
    std::fs::set_permissions(&failures, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.run(&["run", "team", "--failures", failures.to_str().unwrap()])
        .code(3);
    assert_eq!(mode(&failures), 0o600);
    let text = std::fs::read_to_string(&failures).unwrap();
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("'=cmd@unknown.example.com,failed,"),
        "{text}"
    );
    // The file still works as a follow-up job's recipients.
    env.job(
        "retry",
        "[recipients]\nfile = \"../failures.csv\"\n\n[message]\nhead = \"h\"\nbody = \"{{ email }}\"\n",
    );
    env.run(&[
        "validate",
        env.jobs_dir().join("retry.toml").to_str().unwrap(),
    ])
    .code(0);
}

#[test]
fn a_login_callback_without_the_state_cannot_end_the_login() {
    let env = Env::new();
    let (child, url) = env.start_login(&[]);
    let redirect = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let forged = reqwest::blocking::get(format!("{redirect}?error=access_denied")).unwrap();
    assert_eq!(forged.status(), 400);
    // The real browser still completes the login.
    let page = crate::harness::browse(&url);
    assert!(page.contains("zoomcast is authorized"), "{page}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn a_job_file_that_is_a_pipe_or_huge_is_refused_without_waiting() {
    let env = Env::new();
    let fifo = env.dir.path().join("job.toml");
    make_fifo(&fifo);
    env.run(&["validate", fifo.to_str().unwrap()])
        .code(2)
        .stderr_has("not a regular file");
    let huge = env.dir.path().join("huge.toml");
    let text = job_to(&["ana@example.com"]) + "# " + &"x".repeat(2 * 1024 * 1024) + "\n";
    std::fs::write(&huge, text).unwrap();
    env.run(&["run", huge.to_str().unwrap(), "--dry-run"])
        .code(2)
        .stderr_has("larger than 1024 KiB");
}

/// A body that doubles a 16-byte text 27 times: 2 GiB, beyond the renderer's 512 MiB, behind
/// `condition` (a minijinja test).
fn memory_bomb(condition: &str) -> String {
    let doublings = "{% set s = s ~ s %}".repeat(27);
    format!(
        "{{% if {condition} %}}{{% set s = \"xxxxxxxxxxxxxxxx\" %}}{doublings}{{{{ s|length }}}}\
         {{% endif %}}Hi {{{{ first_name }}}}"
    )
}

fn job_with_body(emails: &[&str], body: &str) -> String {
    job_to(emails).replace(
        "body = \"Hi {{ first_name }} <{{ email }}>\"",
        &format!("body = '''{body}'''"),
    )
}

#[test]
fn a_template_that_grows_without_bound_fails_its_render_not_the_machine() {
    let env = Env::new();
    env.job(
        "bomb",
        &job_with_body(&["ana@example.com"], &memory_bomb("true")),
    );
    env.run(&["validate"])
        .code(2)
        .stderr_has("the message cannot be rendered: the render needed more than 512 MiB");
    env.login();
    env.run(&["run", "bomb"]).code(2);
    assert_eq!(env.emu().messages().len(), 0);
}

#[test]
fn a_template_that_grows_for_one_recipient_fails_that_recipient_only() {
    let env = Env::new();
    // The sample recipient (ana@) passes `validate`; bo@ sets the template off at the run.
    let body = memory_bomb("email == \"bo@example.com\"");
    env.job(
        "bomb",
        &job_with_body(
            &["ana@example.com", "bo@example.com", "chen@example.com"],
            &body,
        ),
    );
    env.run(&["validate"]).code(0);
    env.login();
    only_bo_failed(&env.run(&["run", "bomb", "--json"]), "more than 512 MiB");
    assert_eq!(env.emu().messages().len(), 2);
}

#[test]
fn a_template_that_renders_too_long_fails_at_the_deadline() {
    let env = Env::new();
    // 100 MB, within the memory cap, measured again on every turn of a long loop.
    let body = "{% set ns = namespace(s=\"x\" * 100000000) %}\
                {% for i in range(100000) %}{{ ns.s|length }}{% endfor %}";
    env.job("slow", &job_with_body(&["ana@example.com"], body));
    let start = std::time::Instant::now();
    env.run(&["validate"])
        .code(2)
        .stderr_has("the render took longer than 10 s");
    assert!(start.elapsed() < Duration::from_secs(60));
}

/// The run exited 3 with Bo its one failure, for a reason that says `why`.
#[track_caller]
fn only_bo_failed(run: &crate::harness::Run, why: &str) {
    run.code(3);
    let report = run.json();
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{report}");
    assert_eq!(failures[0]["recipient"], "bo@example.com", "{report}");
    let message = failures[0]["message"].as_str().unwrap();
    assert!(message.contains(why), "{report}");
}

/// A live (not yet reaped) `render-worker` child of process `parent` that has spent more than
/// half a second of CPU, if there is one.
fn busy_render_worker(parent: u32) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name: state, ppid, ... utime (12th), stime (13th).
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let cpu_ticks: u64 =
            fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if fields[0] != "Z"
            && fields[1] == parent.to_string()
            && cmdline.windows(13).any(|w| w == b"render-worker")
            && cpu_ticks > 50
        {
            return Some(pid);
        }
    }
    None
}

#[test]
fn a_renderer_killed_twice_on_one_recipient_fails_that_recipient_not_the_run() {
    let env = Env::new();
    // Bo's card takes many seconds of CPU to render; the others' none.
    let body = "{% if email == \"bo@example.com\" %}{% set ns = namespace(s=\"x\" * 20000000) %}\
                {% for i in range(100000) %}{{ ns.s|length }}{% endfor %}{% endif %}Hi";
    env.job(
        "heavy",
        &job_with_body(
            &["ana@example.com", "bo@example.com", "chen@example.com"],
            body,
        ),
    );
    env.login();
    let run = env
        .command(&["run", "heavy", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The kernel's out-of-memory killer, played by the test: the renderer busy with Bo's card
    // is killed, and so is the one that takes the request again.
    // A renderer killed a moment ago may still look busy: only another one counts.
    let mut killed = Vec::new();
    for _ in 0..2 {
        let busy =
            crate::harness::wait_for(Duration::from_secs(30), Duration::from_millis(20), || {
                busy_render_worker(run.id()).filter(|pid| !killed.contains(pid))
            })
            .expect("a renderer busy with Bo's card");
        killed.push(busy);
        std::process::Command::new("kill")
            .args(["-KILL", &busy.to_string()])
            .status()
            .unwrap();
    }
    let run: crate::harness::Run = run.wait_with_output().unwrap().into();
    only_bo_failed(&run, "killed twice");
    assert_eq!(
        env.emu().messages().len(),
        2,
        "Ana and Chen were sent theirs"
    );
}
