//! `history`: old runs keep their summary, only the newest keep every recipient's outcome.

use crate::harness::{Env, job_to};

#[test]
fn old_runs_keep_their_summary_and_only_the_newest_keep_every_recipient() {
    let env = Env::new();
    env.job(
        "keep",
        &format!(
            "{}keep_details = 2\n",
            job_to(&["ana@example.com", "bo@example.com"])
        ),
    );
    env.job("other", &job_to(&["ana@example.com"]));
    env.login();
    env.run(&["run", "other"]).code(0);
    for _ in 0..4 {
        env.run(&["run", "keep"]).code(0);
    }
    let runs = env.history(Some("keep"));
    assert_eq!(runs.len(), 4, "every run keeps its summary");
    for (i, run) in runs.iter().enumerate() {
        let id = run["run_id"].to_string();
        let detail = env.run(&["history", "--run", &id, "--json"]).code(0).json();
        let pruned = i < 2;
        assert_eq!(detail["details_pruned"], pruned, "{detail}");
        assert_eq!(detail["counts"]["sent"], 2, "{detail}");
        let emails = detail["deliveries"].as_array().unwrap().len();
        assert_eq!(emails, if pruned { 0 } else { 2 }, "{detail}");
    }
    let oldest = runs[0]["run_id"].to_string();
    env.run(&["history", "--run", &oldest])
        .code(0)
        .stdout_has("per-recipient outcomes deleted")
        .stdout_has("keep_details");
    // Another job's runs are its own business.
    let other = env.history(Some("other"));
    let id = other[0]["run_id"].to_string();
    let detail = env.run(&["history", "--run", &id, "--json"]).json();
    assert_eq!(detail["deliveries"].as_array().unwrap().len(), 1);

    // Zero would leave even the last run without its failures to export.
    env.job(
        "none",
        &format!("{}keep_details = 0\n", job_to(&["ana@example.com"])),
    );
    env.run(&[
        "validate",
        env.jobs_dir().join("none.toml").to_str().unwrap(),
    ])
    .code(2)
    .stderr_has("none.toml:")
    .stderr_has("keep_details");
}

#[test]
fn history_limit_keeps_the_newest_runs() {
    let env = Env::new();
    env.login();
    env.job("team", &job_to(&["ana@example.com"]));
    for _ in 0..3 {
        env.run(&["run", "team"]).code(0);
    }
    let newest = env
        .run(&["history", "team", "--limit", "2", "--json"])
        .code(0)
        .json();
    let ids: Vec<u64> = newest
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 3], "{newest}");
    env.run(&["history", "--limit", "1", "--run", "1"]).code(2);
}
