//! The HTTP API (`/v1` on `serve`): keys, starting runs with their own variables, following
//! them, and every refusal, through real HTTP on loopback.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Env, job_to, wait_for};
use crate::serve::{Served, http};

/// A job to ana saying where it deployed (`[vars] env`).
fn deploy_job() -> String {
    job_to(&["ana@example.com"]).replace(
        "body = \"Hi {{ first_name }} <{{ email }}>\"",
        "body = \"deployed to {{ env }}\"\n\n[vars]\nenv = \"staging\"",
    )
}

/// `api-key create NAME [ARGS]`: the key it printed.
fn create_key(env: &Env, name: &str, args: &[&str]) -> String {
    let mut command = vec!["api-key", "create", name];
    command.extend_from_slice(args);
    let run = env.run(&command);
    run.code(0).stderr_has("it is shown only now");
    let key = run.stdout.trim().to_owned();
    assert!(key.starts_with("zck_") && key.len() >= 4 + 32, "{key}");
    assert_eq!(run.stdout.lines().count(), 1);
    key
}

/// POSTs `body` to `path` with `key` (and `headers`): status, JSON answer, `Location`.
fn post(
    served: &Served,
    path: &str,
    key: Option<&str>,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Value, Option<String>) {
    let mut request = http().post(served.url(path)).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = request.send().unwrap();
    let status = answer.status().as_u16();
    let location = answer
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (status, answer.json().unwrap_or(Value::Null), location)
}

/// GETs `/v1/runs/{id}` until the run is no longer running: its answer.
fn finished(served: &Served, key: &str, id: u64) -> Value {
    wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
        let answer = http()
            .get(served.url(&format!("/v1/runs/{id}")))
            .bearer_auth(key)
            .send()
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        let run: Value = answer.json().unwrap();
        (run["status"] != "running").then_some(run)
    })
    .expect("the run finishes")
}

fn last_text(env: &Env) -> String {
    let sent = env.emu().messages().pop().expect("a message was sent");
    sent.content["body"][0]["text"].as_str().unwrap().to_owned()
}

/// Every refusal of a run request: no key and a wrong one alike (401), a job the key may not
/// start (403), no such job (404), a variable the job does not declare and a body that is not
/// `{"vars": ...}` (400).
fn refusals(served: &Served, ci: &str, ops: &str) {
    let runs = "/v1/jobs/deploy/runs";
    let (none, none_body, _) = post(served, runs, None, &json!({}), &[]);
    let (wrong, wrong_body, _) = post(served, runs, Some("zck_wrong"), &json!({}), &[]);
    assert_eq!((none, wrong), (401, 401));
    assert_eq!(
        none_body, wrong_body,
        "no key and a wrong key look the same"
    );
    let payroll = post(served, "/v1/jobs/payroll/runs", Some(ci), &json!({}), &[]);
    assert_eq!(payroll.0, 403, "{:?}", payroll.1);
    let missing = post(served, "/v1/jobs/nope/runs", Some(ops), &json!({}), &[]);
    assert_eq!(missing.0, 404, "{:?}", missing.1);
    let undeclared = post(
        served,
        runs,
        Some(ci),
        &json!({"vars": {"region": "eu"}}),
        &[],
    );
    assert_eq!(undeclared.0, 400);
    assert!(
        undeclared.1["error"].as_str().unwrap().contains("`region`"),
        "{:?}",
        undeclared.1
    );
    let malformed = post(served, runs, Some(ci), &json!({"variables": {}}), &[]);
    assert_eq!(malformed.0, 400);
}

#[test]
fn a_key_starts_a_run_with_its_own_vars_and_every_refusal_has_its_status() {
    let env = Env::new();
    env.login();
    env.job("deploy", &deploy_job());
    env.job("payroll", &job_to(&["bo@example.com"]));
    let ci = create_key(&env, "ci", &["--jobs", "deploy"]);
    let ops = create_key(&env, "ops", &[]);
    let pay = create_key(&env, "pay", &["--jobs", "payroll"]);
    env.run(&["api-key", "create", "ci"])
        .code(2)
        .stderr_has("there is an API key named `ci` already");
    env.run(&["api-key", "create", "x", "--jobs", "nope"])
        .code(2)
        .stderr_has("--jobs:");
    let served = Served::start(&env);
    let runs = "/v1/jobs/deploy/runs";

    refusals(&served, &ci, &ops);
    assert!(
        env.emu().messages().is_empty(),
        "nothing was sent for a refusal"
    );

    let (status, run, location) = post(
        &served,
        runs,
        Some(&ci),
        &json!({"vars": {"env": "prod"}}),
        &[],
    );
    assert_eq!(status, 202, "{run}");
    let id = run["run_id"].as_u64().unwrap();
    assert_eq!(location.as_deref(), Some(format!("/v1/runs/{id}").as_str()));
    assert_eq!(run["job"], "deploy");
    let done = finished(&served, &ci, id);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["counts"]["sent"], 1);
    assert_eq!(last_text(&env), "deployed to prod");
    // `run --var` beside the server runs in it, with its values.
    env.run(&["run", "deploy", "--var", "env=qa"])
        .code(0)
        .stderr_has("holds the state directory");
    assert_eq!(last_text(&env), "deployed to qa");
    // The same run as any other: in `history` and the metrics.
    env.run(&["history", "deploy"])
        .code(0)
        .stdout_has("succeeded");
    let scrape = http()
        .get(served.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        scrape.contains(r#"zoomcast_runs_total{job_name="deploy",outcome="succeeded"} 2"#),
        "{scrape}"
    );
    // A key reads only its jobs' runs.
    let read_with = |key: &str| {
        http()
            .get(served.url(&format!("/v1/runs/{id}")))
            .bearer_auth(key)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!((read_with(&ops), read_with(&pay)), (200, 403));

    let listed = env.run(&["api-key", "list", "--json"]).code(0).json();
    let ci_listed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci")
        .unwrap();
    assert!(ci_listed["last_used"].is_string(), "{listed}");
    assert!(
        !env.run(&["api-key", "list", "--json"])
            .stdout
            .contains(&ci[4..])
    );

    env.run(&["api-key", "revoke", "ci"]).code(0);
    let revoked = post(&served, runs, Some(&ci), &json!({}), &[]);
    assert_eq!(revoked.0, 401, "a revoked key is refused at once");
    let log = served.stop();
    assert!(log.contains("API key `ci` started run"), "{log}");
    assert!(!log.contains(&ci[4..]), "the key itself is never logged");
}

#[test]
fn a_retried_idempotency_key_sends_nothing_twice_and_a_busy_job_is_409() {
    let env = Env::new();
    env.login();
    env.job("deploy", &deploy_job());
    let key = create_key(&env, "ci", &[]);
    let served = Served::start(&env);
    let runs = "/v1/jobs/deploy/runs";
    let idem = [("Idempotency-Key", "deploy-4711")];

    let (status, first, _) = post(&served, runs, Some(&key), &json!({}), &idem);
    assert_eq!(status, 202, "{first}");
    let id = first["run_id"].as_u64().unwrap();
    finished(&served, &key, id);
    for _ in 0..3 {
        let (status, again, location) = post(&served, runs, Some(&key), &json!({}), &idem);
        assert_eq!(status, 202, "{again}");
        assert_eq!(
            again["run_id"].as_u64(),
            Some(id),
            "the first run, not a new one"
        );
        assert_eq!(again["status"], "succeeded");
        assert_eq!(location.as_deref(), Some(format!("/v1/runs/{id}").as_str()));
    }
    assert_eq!(env.emu().messages().len(), 1, "sent once");
    let bad = post(
        &served,
        runs,
        Some(&key),
        &json!({}),
        &[("Idempotency-Key", "a b")],
    );
    assert_eq!(bad.0, 400);

    // A slow run holds the job: a second request while it goes is refused, not queued.
    env.adjust_knobs(|k| k.latency_ms = 1500);
    let (status, slow, _) = post(&served, runs, Some(&key), &json!({}), &[]);
    assert_eq!(status, 202, "{slow}");
    let (busy, answer, _) = post(&served, runs, Some(&key), &json!({}), &[]);
    assert_eq!(busy, 409, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("has a run going")
    );
    let done = finished(&served, &key, slow["run_id"].as_u64().unwrap());
    assert_eq!(done["status"], "succeeded");
    assert_eq!(env.emu().messages().len(), 2);
}
