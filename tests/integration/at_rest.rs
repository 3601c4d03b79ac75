//! Tokens at rest: with a state key, no token is readable in the state directory; a missing or
//! wrong key is refused and changes nothing; `state rekey` moves every grant to a new key.

use std::path::{Path, PathBuf};

use crate::harness::{Env, Run, job_to};

/// A new key from `state new-key`, written to a file in the test's directory.
fn key_file(env: &Env, name: &str) -> PathBuf {
    let run = env.run(&["state", "new-key"]);
    run.code(0);
    let path = env.state_dir().with_file_name(name);
    std::fs::write(&path, &run.stdout).unwrap();
    path
}

/// Every file under `dir`, read whole.
fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else if entry.file_type().unwrap().is_file() {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// The issued tokens found in some file of the state directory.
fn readable_tokens(env: &Env) -> Vec<String> {
    let files = all_bytes(&env.state_dir());
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    env.emu()
        .issued_secrets()
        .into_iter()
        .filter(|s| s.len() > 8 && files.iter().any(|(_, b)| contains(b, s.as_bytes())))
        .collect()
}

fn with_key<'a>(var: &'a str, file: &'a Path) -> impl FnOnce(&mut std::process::Command) + 'a {
    move |cmd| {
        cmd.env(var, file);
    }
}

fn grant_file(env: &Env) -> PathBuf {
    let dir = env.state_dir().join("grants/default");
    std::fs::read_dir(dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

#[test]
fn with_a_state_key_no_token_is_readable_in_the_state_directory() {
    // Without a key the tokens are there to read: what the key changes.
    let plain = Env::new();
    plain.job("team", &job_to(&["ana@example.com"]));
    plain.login();
    plain.run(&["run", "team"]).code(0);
    assert!(!readable_tokens(&plain).is_empty());

    let env = Env::new();
    env.job("team", &job_to(&["ana@example.com", "bo@example.com"]));
    let key = key_file(&env, "state.key");
    let key_env = key.to_str().unwrap();
    env.login_with(&[("ZOOMCAST_STATE_KEY_FILE", key_env)]);
    // A run that rotates the refresh token and caches a bot token.
    env.emu().kill_user_access_tokens();
    let run = env.run_with(&["run", "team"], with_key("ZOOMCAST_STATE_KEY_FILE", &key));
    run.code(0);
    assert!(!run.stderr.contains("plain form"), "{}", run.stderr);
    assert!(env.emu().issued_secrets().len() > 3);
    assert_eq!(readable_tokens(&env), Vec::<String>::new());
    let file = std::fs::read_to_string(grant_file(&env)).unwrap();
    assert!(file.starts_with(r#"{"sealed":{"key":"#), "{file}");
}

#[test]
fn a_missing_or_wrong_key_is_refused_and_changes_nothing() {
    let env = Env::new();
    env.job("team", &job_to(&["ana@example.com"]));
    let key = key_file(&env, "state.key");
    let other = key_file(&env, "other.key");
    env.login_with(&[("ZOOMCAST_STATE_KEY_FILE", key.to_str().unwrap())]);
    let before = std::fs::read(grant_file(&env)).unwrap();

    let run = env.run(&["run", "team"]);
    run.code(1)
        .stderr_has("no state key is set; set ZOOMCAST_STATE_KEY or ZOOMCAST_STATE_KEY_FILE");
    let run = env.run_with(
        &["auth", "status"],
        with_key("ZOOMCAST_STATE_KEY_FILE", &other),
    );
    run.code(1).stderr_has("but the key given is");
    // A new key can be made whatever the state key variables hold.
    env.run_with(
        &["state", "new-key"],
        with_key("ZOOMCAST_STATE_KEY_FILE", Path::new("/nonexistent")),
    )
    .code(0);
    std::fs::write(&other, "not a key\n").unwrap();
    let run = env.run_with(&["history"], with_key("ZOOMCAST_STATE_KEY_FILE", &other));
    run.code(2).stderr_has("other.key) must be 32 random bytes");
    assert!(!run.stderr.contains("not a key"), "{}", run.stderr);

    assert_eq!(std::fs::read(grant_file(&env)).unwrap(), before);
    assert_eq!(env.emu().messages().len(), 0);
    env.run_with(&["run", "team"], with_key("ZOOMCAST_STATE_KEY_FILE", &key))
        .code(0);
}

#[test]
fn rekey_moves_every_grant_to_the_new_key_or_to_plain_form() {
    let env = Env::new();
    env.job("team", &job_to(&["ana@example.com"]));
    let old = key_file(&env, "old.key");
    let new = key_file(&env, "new.key");
    env.login_with(&[("ZOOMCAST_STATE_KEY_FILE", old.to_str().unwrap())]);

    let rekey = |keys: &[(&str, &PathBuf)], extra: &[&str]| -> Run {
        let args: Vec<&str> = ["state", "rekey"].iter().chain(extra).copied().collect();
        env.run_with(&args, |cmd| {
            cmd.envs(keys.iter().map(|(var, path)| (*var, path.as_path())));
        })
    };
    rekey(&[("ZOOMCAST_STATE_KEY_FILE", &old)], &[])
        .code(2)
        .stderr_has("`state rekey` needs the new key");
    let both = [
        ("ZOOMCAST_STATE_KEY_FILE", &old),
        ("ZOOMCAST_NEW_STATE_KEY_FILE", &new),
    ];
    rekey(&both, &[])
        .code(0)
        .stdout_has("1 grant(s)")
        .stdout_has("now encrypted with state key");
    // Run again (as after an interruption): nothing left to move, and no harm.
    rekey(&both, &[]).code(0);

    env.run_with(&["run", "team"], with_key("ZOOMCAST_STATE_KEY_FILE", &old))
        .code(1)
        .stderr_has("but the key given is");
    env.run_with(&["run", "team"], with_key("ZOOMCAST_STATE_KEY_FILE", &new))
        .code(0);

    rekey(&[("ZOOMCAST_STATE_KEY_FILE", &new)], &["--plain"])
        .code(0)
        .stdout_has("now stored in plain form");
    let file = std::fs::read_to_string(grant_file(&env)).unwrap();
    assert!(file.contains("\"refresh_token\""), "{file}");
    env.run(&["run", "team"]).code(0);
}

#[test]
fn plain_grants_are_sealed_once_a_key_is_set_and_plain_form_is_said_once() {
    let env = Env::new();
    env.job("team", &job_to(&["ana@example.com"]));
    env.login();
    let first = env.run(&["run", "team"]);
    first.code(0).stderr_has("are stored in plain form");
    let second = env.run(&["run", "team"]);
    second.code(0);
    assert!(!second.stderr.contains("plain form"), "{}", second.stderr);

    let key = key_file(&env, "state.key");
    env.run_with(
        &["auth", "status"],
        with_key("ZOOMCAST_STATE_KEY_FILE", &key),
    )
    .code(0)
    .stderr_has("stored 1 grant(s) encrypted with state key");
    let file = std::fs::read(grant_file(&env)).unwrap();
    assert!(file.starts_with(br#"{"sealed""#));
    let secrets = env.emu().issued_secrets();
    assert!(
        secrets
            .iter()
            .all(|s| !file.windows(s.len()).any(|w| w == s.as_bytes()))
    );
}

#[test]
fn doctor_says_how_the_scheduler_holding_the_state_stores_tokens() {
    let env = Env::new();
    let key = key_file(&env, "state.key");
    env.login_with(&[("ZOOMCAST_STATE_KEY_FILE", key.to_str().unwrap())]);
    let daemon =
        crate::schedule::Daemon::start_with(&env, &[], with_key("ZOOMCAST_STATE_KEY_FILE", &key));
    // Asked from a shell without the key: the answer is the scheduler's.
    let doctor = env.run(&["doctor", "--json"]);
    let findings = doctor.json();
    let at_rest = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "tokens at rest")
        .unwrap_or_else(|| panic!("{}", doctor.stdout));
    assert!(
        at_rest["detail"]
            .as_str()
            .unwrap()
            .starts_with("encrypted with state key"),
        "{at_rest}"
    );
    daemon.stop();
}
