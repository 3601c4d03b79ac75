//! `POST /v1/alertmanager/{job}`: Alertmanager's and Grafana's notifications through real HTTP
//! on loopback. A group's first notification sends, later ones edit those messages, a resolution
//! too, and the next firing sends anew; an acknowledgement works on alert cards; many groups at
//! once are all journaled and sent within the account's limit.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Env, job_to, wait_for};
use crate::serve::{Served, emulator_event, http};

/// A job to `people` whose card shows the alert, with an "Ack" button that acknowledges it.
fn alert_job(people: &[&str]) -> String {
    let text = "{% for a in alerts %}{{ a.labels.instance }} {% endfor %}({{ alerts | length }})";
    job_to(people)
        .replace(
            "head = \"Hello\"",
            "head = \"[{{ status | upper }}] {{ commonLabels.alertname }}\"",
        )
        .replace("body = \"Hi {{ first_name }} <{{ email }}>\"\n", "")
        .replace(
            "[delivery]",
            &format!(
                "[[message.blocks]]\ntype = \"message\"\ntext = {text:?}\n\n[[message.blocks]]\ntype = \"actions\"\nbuttons = [{{ text = \"Ack\", value = \"ack\" }}]\n\n[acknowledge]\nbutton = \"ack\"\n\n[delivery]"
            ),
        )
}

/// Alertmanager's webhook payload (version 4) for group `group` with alerts on `instances`.
fn payload(group: &str, status: &str, instances: &[&str]) -> Value {
    let alerts: Vec<Value> = instances
        .iter()
        .map(|i| {
            json!({
                "status": status,
                "labels": { "alertname": "HighLatency", "instance": i },
                "annotations": { "summary": "p99 above 2 s" },
                "startsAt": "2026-12-07T09:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": format!("fp-{i}"),
            })
        })
        .collect();
    json!({
        "version": "4",
        "status": status,
        "receiver": "zoomcast",
        "groupKey": format!("{{}}:{{alertname=\"HighLatency\",group=\"{group}\"}}"),
        "groupLabels": { "alertname": "HighLatency" },
        "commonLabels": { "alertname": "HighLatency" },
        "commonAnnotations": { "summary": "p99 above 2 s" },
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": alerts,
    })
}

fn notify(served: &Served, key: &str, job: &str, body: &Value) -> (u16, Value) {
    let answer = http()
        .post(served.url(&format!("/v1/alertmanager/{job}")))
        .bearer_auth(key)
        .json(body)
        .send()
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().unwrap_or(Value::Null))
}

fn key(env: &Env) -> String {
    let run = env.run(&["api-key", "create", "alertmanager"]);
    run.code(0);
    run.stdout.trim().to_owned()
}

/// The messages as they stand: (to, head, body, edits), sorted.
fn cards(env: &Env) -> Vec<(String, String, String, u32)> {
    let mut cards: Vec<_> = env
        .emu()
        .messages()
        .into_iter()
        .filter(|m| m.reply_to.is_none())
        .map(|m| {
            (
                m.to_email.clone(),
                m.content["head"]["text"].as_str().unwrap_or("").to_owned(),
                m.content["body"][0]["text"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                m.edits,
            )
        })
        .collect();
    cards.sort();
    cards
}

/// Waits until the cards are `expected`.
#[track_caller]
fn wait_for_cards(env: &Env, served: &Served, expected: &[(&str, &str, &str, u32)]) {
    let mut expected: Vec<(String, String, String, u32)> = expected
        .iter()
        .map(|(a, b, c, d)| ((*a).into(), (*b).into(), (*c).into(), *d))
        .collect();
    expected.sort();
    if wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
        (cards(env) == expected).then_some(())
    })
    .is_none()
    {
        panic!(
            "cards {:?}, expected {expected:?}\n{}",
            cards(env),
            std::fs::read_to_string(served.log_path()).unwrap_or_default()
        );
    }
}

#[test]
fn a_group_sends_once_is_edited_as_it_grows_and_resolves_and_firing_again_sends_anew() {
    let env = Env::new();
    env.login();
    env.job("oncall", &alert_job(&["ana@example.com", "bo@example.com"]));
    env.run(&["validate", "jobs/oncall.toml"]).code(0);
    let key = key(&env);
    let served = Served::start(&env);
    let (ana, bo) = ("ana@example.com", "bo@example.com");

    let (status, first) = notify(&served, &key, "oncall", &payload("a", "firing", &["api-1"]));
    assert_eq!(status, 200, "{first}");
    let run = first["run_id"].as_u64().unwrap();
    let firing = "[FIRING] HighLatency";
    wait_for_cards(
        &env,
        &served,
        &[(ana, firing, "api-1 (1)", 0), (bo, firing, "api-1 (1)", 0)],
    );

    // Growing: the same messages, edited. Grafana's extra fields are accepted.
    let mut grown = payload("a", "firing", &["api-1", "api-2"]);
    grown["title"] = json!("[FIRING:2] HighLatency");
    grown["orgId"] = json!(1);
    grown["state"] = json!("alerting");
    let (status, second) = notify(&served, &key, "oncall", &grown);
    assert_eq!((status, second["run_id"].as_u64()), (200, Some(run)));
    let both = "api-1 api-2 (2)";
    wait_for_cards(
        &env,
        &served,
        &[(ana, firing, both, 1), (bo, firing, both, 1)],
    );

    // An on-call person acknowledges the alert card.
    let message_id = env
        .emu()
        .messages()
        .into_iter()
        .find(|m| m.to_email == ana)
        .unwrap()
        .message_id;
    let press = json!({"event": "interactive_message_actions", "user": ana,
                       "message_id": message_id, "value": "ack"});
    assert_eq!(emulator_event(&env, &press).0, 200);

    let (status, resolved) = notify(
        &served,
        &key,
        "oncall",
        &payload("a", "resolved", &["api-1", "api-2"]),
    );
    assert_eq!((status, resolved["run_id"].as_u64()), (200, Some(run)));
    let done = "[RESOLVED] HighLatency";
    wait_for_cards(&env, &served, &[(ana, done, both, 2), (bo, done, both, 2)]);

    let (status, again) = notify(&served, &key, "oncall", &payload("a", "firing", &["api-3"]));
    assert_eq!(status, 200);
    let rerun = again["run_id"].as_u64().unwrap();
    assert_ne!(
        rerun, run,
        "after a resolution the next firing one sends anew"
    );
    wait_for_cards(
        &env,
        &served,
        &[
            (ana, done, both, 2),
            (ana, firing, "api-3 (1)", 0),
            (bo, done, both, 2),
            (bo, firing, "api-3 (1)", 0),
        ],
    );
    env.run(&["history", "--run", &run.to_string()])
        .code(0)
        .stdout_has("acknowledged (`ack`): 1 of 2");
    let scrape = http()
        .get(served.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        scrape.contains(r#"zoomcast_runs_total{job_name="oncall",outcome="succeeded"} 2"#),
        "{scrape}"
    );
    assert!(
        scrape.contains(r#"zoomcast_acknowledgements_total{job_name="oncall"} 1"#),
        "{scrape}"
    );
}

#[test]
fn a_hundred_groups_at_once_are_all_journaled_and_sent_within_the_accounts_limit() {
    let env = Env::new();
    env.login();
    env.adjust_knobs(|k| k.send_rate_limit = Some(50));
    env.job("oncall", &alert_job(&["ana@example.com"]));
    let key = key(&env);
    let served = Served::start(&env);
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let posts: Vec<_> = (0..100)
            .map(|n| {
                let (served, key) = (&served, &key);
                scope.spawn(move || {
                    let body = payload(&format!("g{n}"), "firing", &[&format!("api-{n}")]);
                    notify(served, key, "oncall", &body)
                })
            })
            .collect();
        posts.into_iter().map(|p| p.join().unwrap()).collect()
    });
    let mut runs: Vec<u64> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            body["run_id"].as_u64().unwrap()
        })
        .collect();
    runs.sort_unstable();
    runs.dedup();
    assert_eq!(runs.len(), 100, "a run per group");
    wait_for(Duration::from_secs(60), Duration::from_millis(100), || {
        (env.emu().messages().len() == 100).then_some(())
    })
    .unwrap_or_else(|| panic!("{} of 100 sent", env.emu().messages().len()));
    let mut bodies: Vec<String> = cards(&env).into_iter().map(|c| c.2).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 100, "each group's own alert");
    let limited = env.emu().stats().sends_rate_limited;
    assert!(limited <= 5, "{limited} sends answered 429");
    let totals = env
        .run(&["history", "oncall", "--totals", "--json"])
        .code(0)
        .json();
    assert_eq!(totals[0]["runs"], 100, "{totals}");
    assert_eq!(totals[0]["ended"]["succeeded"], 100, "{totals}");
}

#[test]
fn an_answered_notification_is_sent_after_a_crash_before_its_turn() {
    let env = Env::new();
    env.login();
    env.job("oncall", &alert_job(&["ana@example.com"]));
    let key = key(&env);
    let mut served = Served::start(&env);
    // A slow run holds the job, so the notification's run is recorded and waits its turn.
    env.adjust_knobs(|k| k.latency_ms = 3000);
    let first = notify(&served, &key, "oncall", &payload("a", "firing", &["api-1"]));
    let queued = notify(&served, &key, "oncall", &payload("b", "firing", &["api-2"]));
    assert_eq!((first.0, queued.0), (200, 200));
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    env.adjust_knobs(|k| k.latency_ms = 0);
    let served = Served::start(&env);
    wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
        cards(&env).iter().any(|c| c.2 == "api-2 (1)").then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the queued notification is sent after the restart: {:?}\n{}",
            cards(&env),
            std::fs::read_to_string(served.log_path()).unwrap_or_default()
        )
    });
}
