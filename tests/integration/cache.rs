//! The JID cache: resolved emails (and misses) reused between runs, and old lookups swept.

use crate::harness::{Env, job_to};

#[test]
fn resolved_jids_are_cached_between_runs_misses_too() {
    let env = Env::new();
    env.job(
        "team",
        &job_to(&["ana@example.com", "bo@example.com", "ghost@example.com"]),
    );
    env.login();
    env.run(&["run", "team"]).code(3);
    let first = env.emu().stats();
    assert_eq!(
        (first.user_lookups, first.unknown_users),
        (3, 1),
        "me + ana + bo, and ghost: {first:?}"
    );
    env.run(&["run", "team"])
        .code(3)
        .stdout_has("ghost@example.com");
    let second = env.emu().stats();
    assert_eq!(
        (second.user_lookups, second.unknown_users),
        (3, 1),
        "all from the cache: {second:?}"
    );
    assert_eq!(env.emu().messages().len(), 4);
    env.run(&["run", "team", "--refresh-cache"]).code(3);
    let third = env.emu().stats();
    assert_eq!(
        (third.user_lookups, third.unknown_users),
        (5, 2),
        "{third:?}"
    );
}

#[test]
fn a_finished_run_deletes_cached_lookups_older_than_thirty_days() {
    use chrono::{TimeDelta, Utc};
    use zoomcast::state::{CacheTtl, CachedLookup, Store};

    let env = Env::new();
    env.job("team", &job_to(&["ana@example.com"]));
    env.login();
    let miss = |days| CachedLookup {
        user: None,
        code: Some(1001),
        message: "User does not exist".into(),
        fetched_at: Utc::now() - TimeDelta::days(days),
    };
    {
        // Answers cached by earlier runs of other jobs.
        let store = Store::open(&env.state_dir()).unwrap();
        let jids = store.jids().unwrap();
        let jids = jids.of("emulated-account-1");
        jids.put("gone@example.com", &miss(31)).unwrap();
        jids.put("kept@example.com", &miss(29)).unwrap();
    }
    env.run(&["run", "team"]).code(0);
    let store = Store::open(&env.state_dir()).unwrap();
    let jids = store.jids().unwrap();
    let jids = jids.of("emulated-account-1");
    let any_age = CacheTtl {
        hit: TimeDelta::days(400),
        miss: TimeDelta::days(400),
    };
    let cached = |email| jids.get(email, any_age, Utc::now()).unwrap().is_some();
    assert!(!cached("gone@example.com"), "older than 30 days: deleted");
    assert!(cached("kept@example.com"), "younger than 30 days: kept");
    assert!(cached("ana@example.com"), "the run's own lookup");
}
