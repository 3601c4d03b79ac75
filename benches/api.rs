//! The HTTP API under load, against `serve` as a process of its own and the emulator in this
//! process (so each send's arrival is timed exactly):
//!
//! 1. the time from a `POST /v1/jobs/{job}/runs` to the run's first send, over 1,000 requests
//!    one after another (a job runs once at a time), p50 and p99;
//! 2. Alertmanager notifications of distinct groups per second, with `serve` pinned to one core
//!    (`taskset -c 0`): all posted at once by 8 clients, until each is answered (journaled) and
//!    until each one's message has arrived.
//!
//! `cargo bench --bench api [-- REQUESTS NOTIFICATIONS]` (defaults 1000 and 1000).

#![allow(clippy::cast_precision_loss)] // rates of counts far below 2^52

mod common;

use std::time::{Duration, Instant};

use common::{Workspace, serve};
use serde_json::{Value, json};
use zoomcast::emulator::{EmulatorHandle, Knobs};

fn api_key(ws: &Workspace) -> String {
    let out = ws
        .command(&["api-key", "create", "bench"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// The value `per_mille` thousandths of the way through `sorted`.
fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    sorted[(sorted.len() - 1) * per_mille / 1000]
}

/// Scenario 1: POST to first send, one request after another.
fn start_to_first_send(emu: &EmulatorHandle, requests: usize) {
    let ws = Workspace::at(&emu.url());
    std::fs::write(
        ws.dir.path().join("jobs/deploy.toml"),
        "[recipients]\nemails = [\"ana@example.com\"]\n\n[message]\nhead = \"Deploy\"\nbody = \"{{ env }}\"\n\n[vars]\nenv = \"staging\"\n",
    )
    .unwrap();
    let key = api_key(&ws);
    let served = serve(&ws, false, &["--max-connections", "64"], &[]);
    let http = client();
    let mut latencies = Vec::with_capacity(requests);
    for i in 0..requests + 20 {
        let sends_before = emu.emulator().send_attempt_times().len();
        // The run before is recorded as ended a moment before the scheduler frees the job.
        let (started, answer) = loop {
            let started = Instant::now();
            let answer = http
                .post(format!("{}/v1/jobs/deploy/runs", served.base))
                .bearer_auth(&key)
                .json(&json!({"vars": {"env": format!("prod-{i}")}}))
                .send()
                .unwrap();
            match answer.status().as_u16() {
                409 => std::thread::sleep(Duration::from_micros(200)),
                status => {
                    assert_eq!(status, 202);
                    break (started, answer);
                }
            }
        };
        let run: Value = answer.json().unwrap();
        let id = run["run_id"].as_u64().unwrap();
        let first = loop {
            if let Some(at) = emu.emulator().send_attempt_times().get(sends_before) {
                break *at;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        if i >= 20 {
            latencies.push(first.duration_since(started));
        }
        // The job is free again once the run is recorded as ended.
        loop {
            let run: Value = http
                .get(format!("{}/v1/runs/{id}", served.base))
                .bearer_auth(&key)
                .send()
                .unwrap()
                .json()
                .unwrap();
            if run["status"] != "running" {
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    latencies.sort();
    println!(
        "1. POST /v1/jobs/deploy/runs to its first send, {requests} requests one after another: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 500).as_secs_f64() * 1e3,
        percentile(&latencies, 990).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
}

/// Scenario 2: many Alertmanager groups at once, `serve` on one core.
fn alerts_per_second(emu: &EmulatorHandle, notifications: usize) {
    let ws = Workspace::at(&emu.url());
    std::fs::write(
        ws.dir.path().join("jobs/oncall.toml"),
        "[recipients]\nemails = [\"ana@example.com\"]\n\n[message]\nhead = \"[{{ status }}] {{ commonLabels.alertname }}\"\nbody = \"{% for a in alerts %}{{ a.labels.instance }} {% endfor %}\"\n",
    )
    .unwrap();
    let key = api_key(&ws);
    let served = serve(&ws, true, &["--max-connections", "64"], &[]);
    let sends_before = emu.emulator().messages().len();
    let started = Instant::now();
    let clients = 8;
    std::thread::scope(|scope| {
        for c in 0..clients {
            let (served, key) = (&served, &key);
            scope.spawn(move || {
                let http = client();
                for n in (c..notifications).step_by(clients) {
                    let body = json!({
                        "version": "4", "status": "firing", "receiver": "zoomcast",
                        "groupKey": format!("{{}}:{{instance=\"api-{n}\"}}"),
                        "groupLabels": {"instance": format!("api-{n}")},
                        "commonLabels": {"alertname": "HighLatency"},
                        "commonAnnotations": {}, "externalURL": "http://am:9093", "truncatedAlerts": 0,
                        "alerts": [{"status": "firing", "labels": {"alertname": "HighLatency", "instance": format!("api-{n}")},
                                    "annotations": {}, "startsAt": "2026-12-07T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                                    "generatorURL": "", "fingerprint": format!("{n:016x}")}],
                    });
                    let answer = http
                        .post(format!("{}/v1/alertmanager/oncall", served.base))
                        .bearer_auth(key)
                        .json(&body)
                        .send()
                        .unwrap();
                    assert_eq!(answer.status().as_u16(), 200, "{:?}", answer.text());
                }
            });
        }
    });
    let journaled = started.elapsed();
    while emu.emulator().messages().len() < sends_before + notifications {
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = started.elapsed();
    println!(
        "2. {notifications} Alertmanager notifications of distinct groups, serve on one core: all journaled in {:.2} s ({:.0}/s), all sent in {:.2} s ({:.0}/s)",
        journaled.as_secs_f64(),
        notifications as f64 / journaled.as_secs_f64(),
        sent.as_secs_f64(),
        notifications as f64 / sent.as_secs_f64(),
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let requests = args.first().copied().unwrap_or(1000);
    let notifications = args.get(1).copied().unwrap_or(1000);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!(
        "zoomcast API benchmark ({cores} cores); serve as a process of its own, the emulator in this one"
    );
    let emu = EmulatorHandle::start(Knobs::default()).expect("the emulator starts");
    start_to_first_send(&emu, requests);
    alerts_per_second(&emu, notifications);
}
