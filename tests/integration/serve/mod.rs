//! `serve`: Zoom's signed webhooks through real HTTP on a port of its own, one file per
//! capability, and the helpers they share (a served state, signed posts, scrapes).

mod buttons;
mod deauthorize;
mod installs;
mod metrics;
mod optouts;
mod webhooks;

use std::process::{Child, Stdio};
use std::time::Duration;

use openmetrics_parser::{OpenMetricsValue, openmetrics::parse_openmetrics};
use serde_json::{Value, json};
use zoomcast::server::signature::{sign, validation_answer};
use zoomcast::token::WebhookSecret;

use crate::harness::{Env, consent_redirect, job_to, wait_for};

pub(crate) use buttons::scheduler_serving_webhooks;
pub(crate) use installs::{serve_for_installs, serve_for_installs_with, start_install, visit};

/// A running `serve` and where it listens.
pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) base: String,
    log: std::path::PathBuf,
}

impl Served {
    /// Starts `serve` on a free loopback port, with the emulator's webhook secret, and points
    /// the emulator's events at it.
    pub(crate) fn start(env: &Env) -> Self {
        Self::start_with(env, |_| {})
    }

    /// Starts `serve` with `tweak` applied to its command.
    pub(crate) fn start_with(env: &Env, tweak: impl FnOnce(&mut std::process::Command)) -> Self {
        Self::start_on(env, "127.0.0.1:0", tweak)
    }

    /// Starts `serve` listening on `listen`, with `tweak` applied to its command.
    pub(crate) fn start_on(
        env: &Env,
        listen: &str,
        tweak: impl FnOnce(&mut std::process::Command),
    ) -> Self {
        let log = env.dir.path().join("serve.log");
        let mut command = env.command(&["serve", "--listen", listen]);
        command
            .env("ZOOM_WEBHOOK_SECRET", env.emu().knobs().webhook_secret)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        tweak(&mut command);
        let child = command.spawn().unwrap();
        let base = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
            served_at(&std::fs::read_to_string(&log).ok()?)
        })
        .expect("serve announces where it listens");
        env.adjust_knobs(|k| k.webhook_url = Some(format!("{base}/webhooks/zoom")));
        Self { child, base, log }
    }

    /// Where its log goes.
    pub(crate) fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then exit 0 within 15 s; returns the log.
    pub(crate) fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let code = wait_for(Duration::from_secs(15), Duration::from_millis(20), || {
            self.child.try_wait().unwrap().map(|s| s.code())
        })
        .expect("serve exits within 15 s of SIGTERM");
        let log = std::fs::read_to_string(&self.log).unwrap();
        assert_eq!(code, Some(0), "{log}");
        log
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The base URL a `serve` or `schedule --listen` log announces (`... on http://ADDR ...`).
pub(crate) fn served_at(log: &str) -> Option<String> {
    let at = log.find("on http://")? + "on ".len();
    Some(
        log[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect(),
    )
}

pub(crate) fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Posts `body` to the webhook with `headers` (name, value).
pub(crate) fn post(served: &Served, body: &[u8], headers: &[(&str, String)]) -> (u16, String) {
    let mut request = http()
        .post(served.url("/webhooks/zoom"))
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

/// Zoom's headers for `body`, signed with `secret` at `at` (seconds since the epoch).
pub(crate) fn signed(secret: &str, at: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("x-zm-request-timestamp", at.to_string()),
        (
            "x-zm-signature",
            sign(&WebhookSecret::new(secret), at, body),
        ),
    ]
}

/// Has the emulator send an event, and returns zoomcast's answer (status, body).
pub(crate) fn emulator_event(env: &Env, event: &Value) -> (u16, String) {
    let answer: Value = http()
        .post(format!("{}/_emulator/events", env.emulator_url()))
        .json(event)
        .send()
        .unwrap()
        .json()
        .unwrap();
    (
        u16::try_from(answer["status"].as_u64().unwrap()).unwrap(),
        answer["body"].as_str().unwrap().to_owned(),
    )
}

/// The value of one series in an `OpenMetrics` text, parsed (never matched as text).
pub(crate) fn series(text: &str, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let exposition = parse_openmetrics(text).expect("valid OpenMetrics text");
    let family = exposition.families.get(family)?;
    family.iter_samples().find_map(|sample| {
        let set = sample.get_labelset().ok()?;
        labels
            .iter()
            .all(|(name, value)| set.get_label_value(name) == Some(*value))
            .then(|| match &sample.value {
                OpenMetricsValue::Counter(c) => c.value.as_f64(),
                OpenMetricsValue::Gauge(g) => g.as_f64(),
                _ => f64::NAN,
            })
    })
}

/// How many opt-outs `optouts --json` lists.
pub(crate) fn optout_count(env: &Env) -> usize {
    let listed = env.run(&["optouts", "--json"]).code(0).json();
    listed.as_array().map_or(0, Vec::len)
}

/// `/metrics` in the `OpenMetrics` format, as Prometheus asks for it.
pub(crate) fn scrape(served: &Served) -> String {
    let response = http()
        .get(served.url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().unwrap()
}

/// A logged-in state whose job `team` (ana and bo) ran once, by a process of its own, and then
/// `serve` on it.
fn served_after_a_run() -> (Env, Served) {
    let env = Env::new();
    env.login();
    env.job("team", &job_to(&["ana@example.com", "bo@example.com"]));
    env.run(&["run", "team"]).code(0);
    let served = Served::start(&env);
    (env, served)
}
