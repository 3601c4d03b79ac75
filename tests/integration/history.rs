//! `history`: old runs keep their summary, only the newest keep every recipient's outcome.

use crate::harness::{Env, job_to};
use crate::serve::{Served, scrape, series};

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
    // keep_runs likewise: at least one record, the one a run by hand resumes.
    env.job(
        "norecord",
        &format!("keep_runs = 0\n{}", job_to(&["ana@example.com"])),
    );
    env.run(&[
        "validate",
        env.jobs_dir().join("norecord.toml").to_str().unwrap(),
    ])
    .code(2)
    .stderr_has("norecord.toml:1")
    .stderr_has("keep_runs")
    .stderr_has("1 to 1000000");
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

#[test]
fn history_shows_the_newest_twenty_unless_asked_for_all() {
    let env = Env::new();
    env.login();
    env.job("team", &job_to(&["ana@example.com"]));
    for _ in 0..21 {
        env.run(&["run", "team"]).code(0);
    }
    let ids = |args: &[&str]| -> Vec<u64> {
        let listed = env.run(args).code(0).json();
        let runs = listed.as_array().expect("an array").iter();
        runs.map(|r| r["run_id"].as_u64().unwrap()).collect()
    };
    let newest: Vec<u64> = (2..=21).collect();
    assert_eq!(ids(&["history", "team", "--json"]), newest);
    assert_eq!(ids(&["history", "--json"]), newest);
    let every: Vec<u64> = (1..=21).collect();
    assert_eq!(ids(&["history", "team", "--json", "--all"]), every);
    assert_eq!(ids(&["history", "--json", "--limit", "3"]), [19, 20, 21]);
    assert!(ids(&["history", "--json", "--since", "2999-01-01"]).is_empty());
    assert_eq!(ids(&["history", "--json", "--all", "--since", "1h"]), every);
    let text = env.run(&["history", "team"]);
    text.code(0)
        .stdout_has("older runs are not shown")
        .stdout_has("job `team`: runs 21,");
    let rows = text
        .stdout
        .lines()
        .filter(|l| l.contains(" succeeded "))
        .count();
    assert_eq!(rows, 20, "{}", text.stdout);
    env.run(&["history", "--since", "last tuesday"])
        .code(2)
        .stderr_has("--since");
}

#[test]
fn folding_old_runs_keeps_every_counter_exact() {
    let env = Env::new();
    env.login();
    let job = job_to(&["ana@example.com", "ghost@example.com"]);
    env.job("team", &format!("keep_runs = 3\n{job}"));
    let served = Served::start(&env);
    let counters = || {
        let metrics = scrape(&served);
        let value = |family, outcome| {
            series(
                &metrics,
                family,
                &[("job_name", "team"), ("outcome", outcome)],
            )
            .unwrap_or_else(|| panic!("{family} {outcome}: {metrics}"))
        };
        (
            value("zoomcast_runs", "partly_failed"),
            value("zoomcast_deliveries", "sent"),
            value("zoomcast_deliveries", "failed"),
        )
    };
    for n in 1..=5 {
        env.run(&["run", "team"]).code(3);
        let n = f64::from(n);
        assert_eq!(counters(), (n, n, n), "after run {n}");
    }
    let kept: Vec<u64> = env
        .history(Some("team"))
        .iter()
        .map(|r| r["run_id"].as_u64().unwrap())
        .collect();
    assert_eq!(kept, [3, 4, 5], "the newest keep_runs runs are kept");
    env.run(&["history", "--run", "1"])
        .code(1)
        .stderr_has("folded");
    let totals = env
        .run(&["history", "team", "--totals", "--json"])
        .code(0)
        .json();
    let team = &totals[0];
    assert_eq!(
        (team["runs"].as_u64(), team["kept"].as_u64()),
        (Some(5), Some(3))
    );
    assert_eq!(team["folded"], 2);
    assert_eq!(team["ended"]["partly_failed"], 5);
    assert_eq!(
        (
            team["deliveries"]["sent"].as_u64(),
            team["deliveries"]["failed"].as_u64()
        ),
        (Some(5), Some(5))
    );
    served.stop();
}
