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
