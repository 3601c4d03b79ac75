//! `serve`: Zoom's signed webhooks through real HTTP on a port of its own, the commands users
//! write to the bot (`stop`, `start`, `help`), `/healthz` and `/metrics` (read with an
//! `OpenMetrics` parser), and SIGTERM.

use std::process::{Child, Stdio};
use std::time::Duration;

use openmetrics_parser::{OpenMetricsValue, openmetrics::parse_openmetrics};
use serde_json::{Value, json};
use zoomcast::server::signature::{sign, validation_answer};
use zoomcast::token::WebhookSecret;

use crate::harness::{Env, consent_redirect, job_to, wait_for};

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

/// How many opt-outs `optouts --json` lists.
pub(crate) fn optout_count(env: &Env) -> usize {
    let listed = env.run(&["optouts", "--json"]).code(0).json();
    listed.as_array().map_or(0, Vec::len)
}

pub(crate) fn scrape(served: &Served) -> String {
    let response = http().get(served.url("/metrics")).send().unwrap();
    assert_eq!(response.status(), 200);
    response.text().unwrap()
}

#[test]
fn webhooks_are_answered_only_when_zoom_signed_them() {
    let env = Env::new();
    env.login();
    let served = Served::start(&env);
    let secret = env.emu().knobs().webhook_secret;
    let now = chrono::Utc::now().timestamp();

    // Zoom's URL validation, sent (signed) by the emulator.
    let (status, body) = emulator_event(
        &env,
        &json!({"event": "endpoint.url_validation", "plain_token": "qgg8vlvZRS6UYooatFL8Aw"}),
    );
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(
        answer["encryptedToken"],
        validation_answer(
            &WebhookSecret::new(secret.clone()),
            "qgg8vlvZRS6UYooatFL8Aw"
        )
    );

    let event = br#"{"event":"meeting.started","payload":{}}"#;
    // Unsigned, tampered, signed with another secret, stale: refused before the body is read.
    assert_eq!(post(&served, event, &[]).0, 401, "unsigned");
    let tampered = br#"{"event":"meeting.started","payload":{"x":1}}"#;
    assert_eq!(post(&served, tampered, &signed(&secret, now, event)).0, 401);
    assert_eq!(
        post(&served, event, &signed("another secret", now, event)).0,
        401
    );
    assert_eq!(
        post(&served, event, &signed(&secret, now - 600, event)).0,
        401,
        "stale"
    );
    // An unsigned URL validation would make zoomcast sign any text an attacker chose.
    let validation = br#"{"event":"endpoint.url_validation","payload":{"plainToken":"v0:1:x"}}"#;
    assert_eq!(post(&served, validation, &[]).0, 401);

    // Signed: an event zoomcast has no use for is acknowledged; the same request again is a
    // replay.
    let headers = signed(&secret, now, event);
    assert_eq!(post(&served, event, &headers).0, 200);
    assert_eq!(post(&served, event, &headers).0, 401, "replayed");
    // Signed but not an event, or too large to read.
    let garbage = b"{not json";
    assert_eq!(
        post(&served, garbage, &signed(&secret, now, garbage)).0,
        400
    );
    let huge = vec![b' '; 2 * 1024 * 1024];
    assert_eq!(post(&served, &huge, &signed(&secret, now, &huge)).0, 413);

    let metrics = scrape(&served);
    let count = |event: &str, verdict: &str| {
        series(
            &metrics,
            "zoomcast_webhook_events",
            &[("event", event), ("verdict", verdict)],
        )
    };
    assert_eq!(count("unverified", "unsigned"), Some(2.0), "{metrics}");
    assert_eq!(count("unverified", "bad_signature"), Some(2.0));
    assert_eq!(count("unverified", "stale"), Some(1.0));
    assert_eq!(count("unverified", "replayed"), Some(1.0));
    assert_eq!(count("meeting.started", "ignored"), Some(1.0));
    assert_eq!(count("endpoint.url_validation", "accepted"), Some(1.0));
    assert_eq!(count("malformed", "malformed"), Some(1.0));
    let log = served.stop();
    assert!(!log.contains(&secret), "the secret is never logged");
}

#[test]
fn stop_opts_a_user_out_of_every_job_until_start() {
    let env = Env::new();
    env.login();
    env.job("team", &job_to(&["ana@example.com", "bo@example.com"]));
    let served = Served::start(&env);
    let ana = env.emu().directory().find("ana@example.com").unwrap();
    let replies_to_ana = || {
        env.emu()
            .messages()
            .into_iter()
            .filter(|m| m.to_jid == ana.jid && m.content["head"]["text"] == "zoomcast")
            .map(|m| {
                m.content["body"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };

    let (status, _) = emulator_event(
        &env,
        &json!({"event": "bot_notification", "user": "ana@example.com", "cmd": "Stop"}),
    );
    assert_eq!(status, 200);
    let replies = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        Some(replies_to_ana()).filter(|r| !r.is_empty())
    })
    .expect("the bot answers in chat");
    assert!(replies[0].contains("no more notifications"), "{replies:?}");
    let optouts = env.run(&["optouts", "--json"]).code(0).json();
    assert_eq!(optouts.as_array().unwrap().len(), 1, "{optouts}");
    assert_eq!(optouts[0]["user_jid"], ana.jid);
    assert_eq!(optouts[0]["account"], env.emu().knobs().account_id);

    // The run (inside `serve`, through its control socket) skips her.
    let report = env.run(&["run", "team", "--json"]).code(0).json();
    assert_eq!(report["counts"]["sent"], 1, "{report}");
    assert_eq!(report["counts"]["opted_out"], 1, "{report}");
    let to_ana = |env: &Env| {
        env.emu()
            .messages()
            .iter()
            .filter(|m| m.to_jid == ana.jid && m.content["head"]["text"] == "Hello")
            .count()
    };
    assert_eq!(to_ana(&env), 0);
    let id = report["run_id"].as_u64().unwrap().to_string();
    let history = env.run(&["history", "--run", &id, "--json"]).code(0).json();
    let state_of_ana = history["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["recipient"] == "ana@example.com" || d["email"] == "ana@example.com")
        .map(|d| d["state"].clone());
    assert_eq!(state_of_ana, Some(json!("opted_out")), "{history}");

    // `start` opts her back in; the next run reaches her.
    emulator_event(
        &env,
        &json!({"event": "bot_notification", "user": "ana@example.com", "cmd": "start"}),
    );
    let optouts = env.run(&["optouts", "--json"]).code(0).json();
    assert_eq!(optouts, json!([]));
    env.run(&["run", "team"]).code(0);
    assert_eq!(to_ana(&env), 1);

    // Anything else gets the help text.
    emulator_event(
        &env,
        &json!({"event": "bot_notification", "user": "ana@example.com", "cmd": "what is this"}),
    );
    let replies = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        Some(replies_to_ana()).filter(|r| r.len() == 3)
    })
    .expect("three replies");
    assert!(replies[1].contains("notifications again"), "{replies:?}");
    assert!(replies[2].contains("`stop`") && replies[2].contains("`start`"));
    served.stop();
}

#[test]
fn healthz_and_metrics_count_runs_made_by_another_process() {
    let (env, served) = served_after_a_run();
    let health = http().get(served.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    let metrics = scrape(&served);
    let runs = series(
        &metrics,
        "zoomcast_runs",
        &[("job", "team"), ("outcome", "succeeded")],
    );
    assert_eq!(runs, Some(1.0), "{metrics}");
    let sent = series(
        &metrics,
        "zoomcast_deliveries",
        &[("job", "team"), ("outcome", "sent")],
    );
    assert_eq!(sent, Some(2.0));
    let last = series(
        &metrics,
        "zoomcast_job_last_success_timestamp_seconds",
        &[("job", "team")],
    )
    .unwrap();
    #[allow(clippy::cast_precision_loss)] // seconds since the epoch, well within f64
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(last > now - 120.0 && last <= now, "{last}");
    // A run through the server's control socket is counted at the next scrape.
    env.run(&["run", "team"]).code(0);
    let metrics = scrape(&served);
    assert_eq!(
        series(
            &metrics,
            "zoomcast_runs",
            &[("job", "team"), ("outcome", "succeeded")]
        ),
        Some(2.0)
    );
    served.stop();
}

#[test]
fn installing_the_bot_is_answered_with_the_apps_welcome_message() {
    let env = Env::new();
    std::fs::write(
        env.dir.path().join("zoomcast.toml"),
        "welcome = \"Hi! I post the on-call hand-offs here. Write `stop` to opt out.\"\n",
    )
    .unwrap();
    let served = Served::start_with(&env, |cmd| {
        cmd.arg("--config")
            .arg(env.dir.path().join("zoomcast.toml"));
    });
    let (status, body) = emulator_event(
        &env,
        &json!({"event": "bot_installed", "user": "bo@example.com"}),
    );
    assert_eq!(status, 200, "{body}");
    // A Chatbot Message Object, as Zoom's chatbot authorization page shows it: the card is
    // wrapped in `content`, and nothing else is at the top.
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer.as_object().unwrap().len(), 1, "{answer}");
    let card = &answer["content"];
    assert_eq!(
        card["body"][0]["text"],
        "Hi! I post the on-call hand-offs here. Write `stop` to opt out."
    );
    assert_eq!(card["body"][0]["type"], "message");
    served.stop();
}

#[test]
fn deauthorization_deletes_that_accounts_data_and_nothing_else() {
    let env = Env::new();
    // The app is installed by two accounts, each sending to its own people.
    env.login();
    env.adjust_knobs(|k| k.login_as = "admin@second.example".into());
    env.login();
    let job =
        |account: &str, people: &[&str]| format!("account = \"{account}\"\n{}", job_to(people));
    env.job(
        "team",
        &job("emulated-account-1", &["ana@example.com", "bo@example.com"]),
    );
    env.job(
        "theirs",
        &job(
            "emulated-account-2",
            &["gus@second.example", "hana@second.example"],
        ),
    );
    env.run(&["run", "team"]).code(0);
    env.run(&["run", "theirs"]).code(0);
    let details = |env: &Env, run: &str| {
        let history = env.run(&["history", "--run", run, "--json"]).code(0).json();
        history["deliveries"].as_array().unwrap().len()
    };
    assert_eq!(details(&env, "2"), 2);
    let served = Served::start(&env);
    let secret = env.emu().knobs().webhook_secret;
    for user in ["ana@example.com", "hana@second.example"] {
        let stop = json!({"event": "bot_notification", "user": user, "cmd": "stop"});
        assert_eq!(emulator_event(&env, &stop).0, 200);
    }
    assert_eq!(optout_count(&env), 2);

    // A deauthorization for another app (client id) deletes nothing.
    let stray = json!({"event": "app_deauthorized", "payload": {
        "account_id": env.emu().knobs().account_id, "client_id": "another-app",
        "user_id": "x", "deauthorization_time": "2026-11-30T00:00:00Z",
    }});
    let body = serde_json::to_vec(&stray).unwrap();
    let now = chrono::Utc::now().timestamp();
    assert_eq!(post(&served, &body, &signed(&secret, now, &body)).0, 200);
    assert_eq!(optout_count(&env), 2);

    // The first account removes the app.
    let removed = json!({"event": "app_deauthorized", "user": "admin@example.com"});
    assert_eq!(emulator_event(&env, &removed).0, 200);
    let optouts = env.run(&["optouts", "--json"]).code(0).json();
    assert_eq!(optouts.as_array().unwrap().len(), 1, "{optouts}");
    assert_eq!(
        optouts[0]["account"], "emulated-account-2",
        "another account's stays"
    );
    let grants = env.run(&["auth", "status", "--json"]).code(0).json();
    let accounts: Vec<_> = grants
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["account_id"])
        .collect();
    assert_eq!(accounts, ["emulated-account-2"], "{grants}");
    let grant_file = |account: &str| {
        env.state_dir()
            .join(format!("grants/default/{account}.json"))
    };
    assert!(
        !grant_file("emulated-account-1").exists(),
        "the grant file is gone too"
    );
    assert!(grant_file("emulated-account-2").exists());
    // The run's summary stays, without its recipients.
    let history = env.run(&["history", "--run", "1", "--json"]).code(0).json();
    assert_eq!(history["counts"]["sent"], 2, "{history}");
    assert_eq!(history["deliveries"], json!([]));
    assert_eq!(history["details_pruned"], true);
    // The account's next run fails, saying how to install again; the other account's runs
    // keep their details and go on.
    env.run(&["run", "team"])
        .code(1)
        .stderr_has("holds no grant of account emulated-account-1")
        .stderr_has("/install");
    assert_eq!(
        details(&env, "2"),
        2,
        "another account's run keeps its details"
    );
    env.run(&["run", "theirs", "--json"]).code(0);
    let last = env.emu().messages().pop().unwrap();
    assert_eq!(last.account_id, "emulated-account-2");
    let log = served.stop();
    assert!(log.contains("removed the app"), "{log}");
    assert!(
        log.contains("the per-recipient details of 1 runs (2 entries) and 2 cached lookups"),
        "the run's deliveries and the cached lookups are deleted: {log}"
    );
    for person in ["ana@example.com", "admin@example.com"] {
        assert!(!log.contains(person), "no personal data in the log: {log}");
    }
}

/// A browser that keeps redirects to itself.
pub(crate) fn browser() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// GETs `url` with `cookie` (if any): status, `Location`, body.
pub(crate) fn visit(url: &str, cookie: Option<&str>) -> (u16, String, String) {
    let mut request = browser().get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().unwrap();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        response.status().as_u16(),
        location,
        response.text().unwrap(),
    )
}

/// `serve` on a port known before it starts, with the app's redirect URI pointing at it.
pub(crate) fn serve_for_installs(env: &Env) -> Served {
    serve_for_installs_with(env, |_| {})
}

/// [`serve_for_installs`] with `tweak` applied to its command.
pub(crate) fn serve_for_installs_with(
    env: &Env,
    tweak: impl FnOnce(&mut std::process::Command),
) -> Served {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let callback = format!("http://127.0.0.1:{port}/oauth/callback");
    Served::start_on(env, &format!("127.0.0.1:{port}"), |cmd| {
        cmd.env("ZOOM_REDIRECT_URI", callback);
        tweak(cmd);
    })
}

/// Starts an install: the cookie `/install` set and the callback URL Zoom redirects to.
pub(crate) fn start_install(served: &Served) -> (String, String) {
    let response = browser().get(served.url("/install")).send().unwrap();
    assert_eq!(response.status(), 302);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let authorize = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.contains("code_challenge=") && authorize.contains("state="));
    (cookie, consent_redirect(&authorize))
}

#[test]
fn an_admin_installs_the_app_from_a_browser_once() {
    let env = Env::new();
    let served = serve_for_installs(&env);
    // `auth status` exits 1 while the app is not authorized, 0 once it is.
    let grant = |env: &Env| {
        let run = env.run(&["auth", "status", "--json"]);
        let rows = run.json();
        run.code(i32::from(rows[0]["authorized"] != true));
        rows[0].clone()
    };
    assert_eq!(grant(&env)["authorized"], false);

    // No cookie (another browser, or a forged link), or a state of another install: refused.
    let (cookie, callback) = start_install(&served);
    let (status, _, page) = visit(&callback, None);
    assert_eq!(status, 400, "{page}");
    let (other_cookie, _) = start_install(&served);
    assert_eq!(
        visit(&callback, Some(&other_cookie)).0,
        400,
        "the state of another install"
    );
    // A cookie past its ten minutes, even correctly signed.
    let knobs = env.emu().knobs();
    let state = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let expired = zoomcast::server::install::Pending {
        state,
        verifier: "v".repeat(43),
        expires: chrono::Utc::now().timestamp() - 1,
    };
    let name = zoomcast::server::install::cookie_name("default");
    let value = zoomcast::server::install::cookie_value(
        &zoomcast::token::ClientSecret::new(knobs.client_secret.clone()),
        "default",
        &expired,
    );
    assert_eq!(
        visit(&callback, Some(&format!("{name}={value}"))).0,
        400,
        "expired"
    );
    // The right cookie with the last hex digit of its MAC changed: the MAC no longer matches.
    let tampered = {
        let (rest, last) = cookie.split_at(cookie.len() - 1);
        format!("{rest}{}", if last == "0" { '1' } else { '0' })
    };
    assert_eq!(visit(&callback, Some(&tampered)).0, 400, "tampered");
    // Zoom's own refusal.
    let denied = format!("{}/oauth/callback?error=access_denied", served.base);
    assert_eq!(visit(&denied, Some(&cookie)).0, 400);
    assert_eq!(grant(&env)["authorized"], false, "nothing stored so far");

    // The real thing: the grant of the account is stored, and the browser goes to the bot.
    let (status, to, page) = visit(&callback, Some(&cookie));
    assert_eq!(status, 302, "{page}");
    assert!(
        to.starts_with("https://zoom.us/launch/chat?jid=robot_"),
        "{to}"
    );
    let installed = grant(&env);
    assert_eq!(installed["authorized"], true);
    assert_eq!(installed["account_id"], knobs.account_id);
    // The same code again (a reload, or a stolen redirect) is refused and changes nothing.
    let (status, _, page) = visit(&callback, Some(&cookie));
    assert_eq!(status, 400, "{page}");
    assert_eq!(grant(&env)["refreshed_at"], installed["refreshed_at"]);

    // An admin of a second account installs it too: each account has its own grant, and the
    // first one's is untouched.
    env.adjust_knobs(|k| k.login_as = "admin@second.example".into());
    let (cookie, callback) = start_install(&served);
    assert_eq!(visit(&callback, Some(&cookie)).0, 302);
    let rows = env.run(&["auth", "status", "--json"]).code(0).json();
    let accounts: Vec<_> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["account_id"])
        .collect();
    assert_eq!(
        accounts,
        ["emulated-account-1", "emulated-account-2"],
        "{rows}"
    );
    assert_eq!(rows[0]["refreshed_at"], installed["refreshed_at"]);

    // Zoom issues the tokens but `/v2/users/me` fails: the account is unknown, so nothing is
    // stored, and the tokens nothing will hold are revoked.
    env.adjust_knobs(|k| k.fail_5xx = 1.0);
    let (cookie, callback) = start_install(&served);
    let (status, _, page) = visit(&callback, Some(&cookie));
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("Nothing was stored"), "{page}");
    assert_eq!(env.emu().stats().revocations, 1);
    env.adjust_knobs(|k| k.fail_5xx = 0.0);
    let after = env.run(&["auth", "status", "--json"]).code(0).json();
    assert_eq!(after, rows);
    served.stop();
}

#[test]
fn a_button_press_on_a_message_without_buttons_changes_nothing() {
    let (env, served) = served_after_a_run();
    let history = || env.run(&["history", "--run", "1", "--json"]).code(0).json();
    let before = history();
    let ana = &before["deliveries"][0];
    assert_eq!(ana["email"], "ana@example.com");
    // Today's jobs send no buttons, so Zoom sends no presses for their messages; one that
    // claims to be for such a message (or for a message zoomcast never sent) is acknowledged
    // and recorded nowhere.
    for message_id in [ana["message_id"].as_str().unwrap(), "not-a-message-of-ours"] {
        let (status, _) = emulator_event(
            &env,
            &json!({"event": "interactive_message_actions", "user": "ana@example.com",
                    "message_id": message_id, "value": "ack"}),
        );
        assert_eq!(status, 200);
    }
    assert_eq!(history(), before);
    let metrics = scrape(&served);
    let ignored = series(
        &metrics,
        "zoomcast_webhook_events",
        &[
            ("event", "interactive_message_actions"),
            ("verdict", "ignored"),
        ],
    );
    assert_eq!(ignored, Some(2.0));
    served.stop();
}

#[test]
fn a_button_press_is_recorded_on_the_delivery_of_its_message() {
    let env = Env::new();
    env.login();
    let job = job_to(&["ana@example.com", "bo@example.com"]).replace(
        "[delivery]",
        "[[message.blocks]]\ntype = \"actions\"\nbuttons = [{ text = \"Done\", value = \"done\" }]\n\n[delivery]",
    );
    env.job("team", &job.replace("body = ", "# body = "));
    env.run(&["run", "team"]).code(0);
    let history = || env.run(&["history", "--run", "1", "--json"]).code(0).json();
    let delivery = |history: &Value, email: &str| {
        let all = history["deliveries"].as_array().unwrap();
        all.iter().find(|d| d["email"] == email).unwrap().clone()
    };
    let bo_message = delivery(&history(), "bo@example.com")["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let served = Served::start(&env);
    let before = history();
    let press = json!({"event": "interactive_message_actions", "user": "bo@example.com",
                       "message_id": bo_message, "value": "done"});
    assert_eq!(emulator_event(&env, &press).0, 200);

    let after = history();
    let presses = &delivery(&after, "bo@example.com")["presses"];
    assert_eq!(presses.as_array().unwrap().len(), 1, "{after}");
    assert_eq!(presses[0]["value"], "done");
    let bo_jid = env.emu().directory().find("bo@example.com").unwrap().jid;
    assert_eq!(presses[0]["by"], bo_jid.as_str());
    assert!(
        presses[0]["at"]
            .as_str()
            .is_some_and(|at| at.starts_with("20"))
    );
    assert_eq!(
        delivery(&after, "ana@example.com"),
        delivery(&before, "ana@example.com"),
        "only the pressed message's delivery changes"
    );
    env.run(&["history", "--run", "1"])
        .code(0)
        .stdout_has("pressed `done` at");
    let metrics = scrape(&served);
    let labels = [
        ("event", "interactive_message_actions"),
        ("verdict", "accepted"),
    ];
    assert_eq!(
        series(&metrics, "zoomcast_webhook_events", &labels),
        Some(1.0)
    );
    served.stop();
}

#[test]
fn stalled_clients_are_cut_off_and_cannot_take_every_connection() {
    use std::io::{Read, Write};

    let env = Env::new();
    let served = Served::start_with(&env, |cmd| {
        cmd.args(["--client-timeout", "1s", "--max-connections", "2"]);
    });
    let addr = served.base.trim_start_matches("http://").to_owned();
    // Two clients take both connections and never finish their headers.
    let mut stalled: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    // A third is served once the server has cut them off.
    let health = http().get(served.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    for stream in &mut stalled {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut rest = Vec::new();
        // The server closes the connection (with or without an answer first), long before the
        // client's own 20 s would run out.
        let read = stream.read_to_end(&mut rest);
        let closed = match &read {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "{read:?}");
    }
    // A client that sends its headers and then stalls on the body gets 408.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    // (Its headers are those of a signed request: a body is read only after they pass.)
    let at = chrono::Utc::now().timestamp();
    let head = format!(
        "POST /webhooks/zoom HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\
         x-zm-request-timestamp: {at}\r\nx-zm-signature: v0={}\r\n\r\n{{",
        "0".repeat(64)
    );
    slow.write_all(head.as_bytes()).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    served.stop();
}

#[test]
fn schedule_listen_serves_beside_the_scheduler() {
    let env = Env::new();
    env.login();
    env.job("team", &job_to(&["ana@example.com"]));
    let daemon = crate::schedule::Daemon::start(&env, &["--listen", "127.0.0.1:0"]);
    let base = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        served_at(&daemon.log())
    })
    .expect("the scheduler announces where it serves");
    let health = http().get(format!("{base}/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    // The scheduler still runs jobs (here by hand, through its socket), and the server sees them.
    env.run(&["run", "team"]).code(0);
    let metrics = http()
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let runs = series(
        &metrics,
        "zoomcast_runs",
        &[("job", "team"), ("outcome", "succeeded")],
    );
    assert_eq!(runs, Some(1.0), "{metrics}");
    let (log, _) = daemon.stop();
    assert!(log.contains("scheduler started"), "{log}");
    assert!(
        log.contains("app `default` has no webhook secret token: /webhooks/zoom answers 503"),
        "said once at start, not at the first event: {log}"
    );
}

#[test]
fn a_run_going_on_when_the_account_removes_the_app_ends_closed_with_nothing_kept() {
    let env = Env::new();
    env.login();
    env.job(
        "slow",
        &crate::harness::bulk_job("slow", 60).replace("concurrency = 4", "concurrency = 1"),
    );
    env.adjust_knobs(|k| k.latency_ms = 50);
    let served = Served::start(&env);
    let run = env
        .command(&["run", "slow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(20), Duration::from_millis(20), || {
        (env.emu().stats().sends_accepted >= 3).then_some(())
    })
    .expect("the run is sending");
    let (status, _) = emulator_event(&env, &json!({"event": "app_deauthorized"}));
    assert_eq!(status, 200);
    let output = run.wait_with_output().unwrap();
    assert_ne!(output.status.code(), Some(0), "it could not finish");
    let history = env.run(&["history", "--run", "1", "--json"]).code(0).json();
    assert_eq!(history["status"], "closed", "{history}");
    assert_eq!(
        history["deliveries"],
        json!([]),
        "nothing it recorded afterwards is kept"
    );
    served.stop();
}

#[test]
fn metrics_count_the_429s_of_runs_made_by_another_process() {
    let env = Env::new();
    env.login();
    env.job("bulk", &crate::harness::bulk_job("limited", 40));
    env.adjust_knobs(|k| k.send_rate_limit = Some(10));
    let report = env.run(&["run", "bulk", "--json"]).code(0).json();
    let refused = env.emu().stats().sends_rate_limited;
    assert!(
        refused > 0,
        "a fresh state finds the limit by running into it"
    );
    assert_eq!(report["rate_limited"]["chat"], refused, "{report}");
    let served = Served::start(&env);
    let metrics = scrape(&served);
    #[allow(clippy::cast_precision_loss)] // a few 429s
    let expected = refused as f64;
    assert_eq!(
        series(&metrics, "zoomcast_rate_limited", &[("endpoint", "chat")]),
        Some(expected),
        "{metrics}"
    );
    served.stop();
}

/// `schedule --listen` (checking job files every second) with the emulator's webhook secret,
/// and the emulator's events pointed at it.
pub(crate) fn scheduler_serving_webhooks(env: &Env) -> crate::schedule::Daemon {
    let secret = env.emu().knobs().webhook_secret;
    let args = ["--listen", "127.0.0.1:0", "--watch-every", "1s"];
    let daemon = crate::schedule::Daemon::start_with(env, &args, |cmd| {
        cmd.env("ZOOM_WEBHOOK_SECRET", &secret);
    });
    let base = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        served_at(&daemon.log())
    })
    .expect("the scheduler announces where it serves");
    env.adjust_knobs(|k| k.webhook_url = Some(format!("{base}/webhooks/zoom")));
    daemon
}

#[test]
fn acknowledgements_are_recorded_and_the_others_are_reminded_at_most_max_reminders_times() {
    let env = Env::new();
    env.login();
    let people = ["ana@example.com", "bo@example.com", "chen@example.com"];
    let job = job_to(&people).replace(
        "[delivery]",
        "[[message.blocks]]\ntype = \"actions\"\nbuttons = [{ text = \"Got it\", value = \"ack\", style = \"Primary\" }, { text = \"Swap\", value = \"swap\" }]\n\n[acknowledge]\nbutton = \"ack\"\nremind_after = \"2s\"\nmax_reminders = 2\n\n[delivery]",
    );
    env.job("handoff", &job.replace("body = ", "# body = "));
    let daemon = scheduler_serving_webhooks(&env);
    env.run(&["run", "handoff"]).code(0);
    let sent = env.emu().messages();
    let message_of = |email: &str| {
        sent.iter()
            .find(|m| m.to_email == email)
            .unwrap()
            .message_id
            .clone()
    };
    // Ana acknowledges; Bo presses the other button, which is not an acknowledgement.
    for (user, value) in [("ana@example.com", "ack"), ("bo@example.com", "swap")] {
        let press = json!({"event": "interactive_message_actions", "user": user,
                           "message_id": message_of(user), "value": value});
        assert_eq!(emulator_event(&env, &press).0, 200);
    }
    let reminders = || {
        env.emu()
            .messages()
            .into_iter()
            .filter(|m| m.reply_to.is_some())
            .collect::<Vec<_>>()
    };
    wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        (reminders().len() >= 4).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "two reminders each to bo and chen: {:?}\n{}",
            reminders(),
            daemon.log()
        )
    });
    // Two more reminder periods: still at most two each, and none to Ana.
    std::thread::sleep(Duration::from_secs(4));
    let reminders = reminders();
    let mut to: Vec<_> = reminders.iter().map(|m| m.to_email.as_str()).collect();
    to.sort_unstable();
    assert_eq!(
        to,
        [
            "bo@example.com",
            "bo@example.com",
            "chen@example.com",
            "chen@example.com"
        ]
    );
    for reminder in &reminders {
        assert_eq!(
            reminder.reply_to.as_deref(),
            Some(message_of(&reminder.to_email).as_str())
        );
        let text = reminder.content["body"][0]["text"].as_str().unwrap();
        assert!(text.contains("press “Got it”"), "{text}");
    }
    let history = env.run(&["history", "--run", "1", "--json"]).code(0).json();
    let delivery = |email: &str| {
        let all = history["deliveries"].as_array().unwrap();
        all.iter().find(|d| d["email"] == email).unwrap().clone()
    };
    let ana_jid = env.emu().directory().find("ana@example.com").unwrap().jid;
    assert_eq!(delivery("ana@example.com")["acknowledged"]["value"], "ack");
    assert_eq!(
        delivery("ana@example.com")["acknowledged"]["by"],
        ana_jid.as_str()
    );
    assert!(
        delivery("bo@example.com")["acknowledged"].is_null(),
        "{history}"
    );
    assert_eq!(
        delivery("chen@example.com")["reminders"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    env.run(&["history", "--run", "1"])
        .code(0)
        .stdout_has("acknowledged (`ack`): 1 of 3")
        .stdout_has("not yet: bo@example.com, chen@example.com");
    let (log, _) = daemon.stop();
    assert!(log.contains("reminders to acknowledge sent"), "{log}");
}
