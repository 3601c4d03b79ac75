//! No secret (client secret, tokens, codes) ever appears in output, even at trace level.

use crate::harness::{Env, Run, job_to};

#[test]
fn no_secret_in_any_output_with_rust_log_trace() {
    let env = Env::new();
    env.job("team", &job_to(&["ana@example.com", "ghost@example.com"]));
    let mut outputs: Vec<Run> = vec![env.login_with(&[("RUST_LOG", "trace")])];
    // Kill the access token so the runs below refresh (the refresh token goes on the wire).
    env.emu().kill_user_access_tokens();
    for args in [
        &["run", "team"][..],
        &["run", "team", "--json"],
        &["auth", "status"],
        &["auth", "status", "--json"],
        &["history"],
        &["auth", "logout"],
    ] {
        outputs.push(env.run_with(args, |cmd| {
            cmd.env("RUST_LOG", "trace");
        }));
    }

    let mut secrets = env.emu().issued_secrets();
    secrets.push(env.emu().knobs().client_secret);
    assert!(
        secrets.len() > 5,
        "tokens and codes were issued: {secrets:?}"
    );
    let mut all = String::new();
    for o in &outputs {
        all.push_str(&o.stdout);
        all.push('\n');
        all.push_str(&o.stderr);
    }
    assert!(all.len() > 10_000, "trace logging was on");
    for secret in &secrets {
        assert!(!all.contains(secret.as_str()), "a secret leaked: {secret}");
    }
}

#[test]
fn json_logs_are_one_object_a_line_and_hold_no_secret_at_trace_level() {
    let env = Env::new();
    env.job("team", &job_to(&["ana@example.com", "ghost@example.com"]));
    env.login();
    env.emu().kill_user_access_tokens();
    let run = env.run_with(&["--log-format", "json", "run", "team"], |cmd| {
        cmd.env("RUST_LOG", "trace");
    });
    run.code(3);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(lines.len() > 20, "trace logging was on: {}", run.stderr);
    for line in &lines {
        let object: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        for field in ["timestamp", "level", "target", "fields"] {
            assert!(object.get(field).is_some(), "no {field}: {line}");
        }
    }
    let mut secrets = env.emu().issued_secrets();
    secrets.push(env.emu().knobs().client_secret);
    for secret in &secrets {
        assert!(
            !run.stderr.contains(secret.as_str()),
            "a secret leaked: {secret}"
        );
    }
}

/// Every run of 8 characters of `secret`: what a shown excerpt of it would contain.
fn pieces(secret: &str) -> Vec<String> {
    let chars: Vec<char> = secret.chars().collect();
    chars.windows(8).map(|w| w.iter().collect()).collect()
}

#[test]
fn a_state_key_linked_into_the_jobs_directory_is_named_without_its_content() {
    let env = Env::new();
    let key = env.run(&["state", "new-key"]).stdout.trim().to_owned();
    let key_path = env.dir.path().join("state.key");
    std::fs::write(&key_path, format!("{key}\n")).unwrap();
    // The easy slip: `ln -s` into the wrong directory.
    std::os::unix::fs::symlink(&key_path, env.jobs_dir().join("key.toml")).unwrap();
    let with_key = |cmd: &mut std::process::Command| {
        cmd.env("ZOOMCAST_STATE_KEY_FILE", &key_path);
    };
    // A key of the past (no longer configured) beside it: not TOML, so none of it is shown.
    let old_key = env.run(&["state", "new-key"]).stdout.trim().to_owned();
    let old_path = env.dir.path().join("old.key");
    std::fs::write(&old_path, format!("{old_key}\n")).unwrap();
    std::os::unix::fs::symlink(&old_path, env.jobs_dir().join("old.toml")).unwrap();
    let validate = env.run_with(&["validate"], with_key);
    validate
        .code(2)
        .stderr_has("key.toml")
        .stderr_has("contains the state key (ZOOMCAST_STATE_KEY)")
        .stderr_has("old.toml")
        .stderr_has("this is not a TOML file: ")
        .stderr_has(" at line 1, column ");
    let jobs = env.run_with(&["jobs"], with_key);
    jobs.code(2).stderr_has("key.toml").stderr_has("old.toml");
    let daemon = crate::schedule::Daemon::start_with(&env, &["--watch-every", "1s"], with_key);
    let log = crate::harness::wait_for(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(50),
        || Some(daemon.log()).filter(|l| l.contains("key.toml")),
    )
    .expect("the scheduler names the invalid file");
    daemon.stop();
    for (what, text) in [
        ("validate", &validate.stderr),
        ("jobs", &jobs.stderr),
        ("the scheduler's log", &log),
    ] {
        for piece in pieces(&key).iter().chain(&pieces(&old_key)) {
            assert!(
                !text.contains(piece),
                "{what} shows `{piece}` of a key:\n{text}"
            );
        }
    }

    // In a valid TOML file, the key is named, never shown.
    std::fs::remove_file(env.jobs_dir().join("key.toml")).unwrap();
    std::fs::remove_file(env.jobs_dir().join("old.toml")).unwrap();
    env.job(
        "leaky",
        &format!("description = \"{key}\"\n{}", job_to(&["ana@example.com"])),
    );
    let leaky = env.run_with(&["validate", "leaky"], with_key);
    leaky
        .code(2)
        .stderr_has("contains the state key (ZOOMCAST_STATE_KEY)");
    assert!(!leaky.stderr.contains(&key[..8]), "{}", leaky.stderr);
}

#[test]
fn the_process_writes_no_core_whatever_its_ulimit() {
    let env = Env::new();
    let inner = env.command(&["serve", "--listen", "127.0.0.1:0"]);
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -c unlimited 2>/dev/null; exec \"$0\" \"$@\"")
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(env.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(env.dir.path().join("serve.log")).unwrap());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    let mut child = cmd.spawn().unwrap();
    crate::harness::wait_for(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(20),
        || {
            let log = std::fs::read_to_string(env.dir.path().join("serve.log")).ok()?;
            log.contains("on http://").then_some(())
        },
    )
    .expect("serve started");
    let text = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let limits = text
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = limits.split_whitespace().collect();
    assert_eq!(fields[4..6], ["0", "0"], "{limits}");
    // Where the kernel writes cores as files in the working directory, SIGQUIT writes none.
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if !pattern.starts_with('|') {
        std::process::Command::new("kill")
            .args(["-QUIT", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap();
        let cores: Vec<_> = std::fs::read_dir(env.dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("core"))
            .collect();
        assert!(cores.is_empty(), "{cores:?}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_browser_opener_gets_no_secret() {
    let env = Env::new();
    // A desktop whose opener writes down the environment it was given.
    let bin = env.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let seen = env.dir.path().join("opener.env");
    let opener = bin.join("xdg-open");
    std::fs::write(&opener, format!("#!/bin/sh\nenv > '{}'\n", seen.display())).unwrap();
    std::fs::set_permissions(&opener, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let key = env.run(&["state", "new-key"]).stdout.trim().to_owned();
    let client_secret = env.emu().knobs().client_secret;
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut login = env.command(&["auth", "login", "--port", "0"]);
    login
        .env("PATH", path)
        .env("ZOOMCAST_STATE_KEY", &key)
        .env("ZOOM_WEBHOOK_SECRET", "webhook-secret-of-the-test")
        // A secret a `${VAR}` of zoomcast.toml would read, under a name of the user's own.
        .env("OPS_CLIENT_SECRET", &client_secret)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = login.spawn().unwrap();
    let mut url = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut url,
    )
    .unwrap();
    let given = crate::harness::wait_for(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(20),
        || {
            std::fs::read_to_string(&seen)
                .ok()
                .filter(|t| t.contains("PATH="))
        },
    )
    .expect("the opener ran");
    assert!(crate::harness::browse(url.trim()).contains("zoomcast is authorized"));
    assert!(child.wait().unwrap().success());
    assert!(
        given.contains("HOME="),
        "the rest of the environment is kept: {given}"
    );
    for secret in [key.as_str(), &client_secret, "webhook-secret-of-the-test"] {
        assert!(
            !given.contains(secret),
            "the opener was given {secret}:\n{given}"
        );
    }
    for name in [
        "ZOOM_CLIENT_SECRET=",
        "ZOOMCAST_STATE_KEY=",
        "OPS_CLIENT_SECRET=",
    ] {
        assert!(!given.contains(name), "{name} in {given}");
    }
}
