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
