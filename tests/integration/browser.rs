//! The web console in a real browser: Debian's `chromium` driven through `chromedriver`
//! (`WebDriver`, with fantoccini) against `serve` and the emulator. Sign in with a link, see a
//! run's recipients and acknowledgements, press "Run now" and see the new run; a used link, a
//! read-only session's action and a form stripped of its CSRF field are refused. Ignored by
//! `cargo test` (it needs the two programs); `.ci/run` installs them and runs it. With
//! `ZOOMCAST_SCREENSHOTS=DIR` it saves a screenshot of each page there (the book's pictures).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::console::console_link;
use crate::harness::{Env, job_to, wait_for};
use crate::serve::{Served, emulator_event};

/// `chromedriver` on a free port, and a headless Chromium session through it.
struct Browser {
    driver: Child,
    client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver) is installed");
        wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .expect("chromedriver listens");
        let profile = tempfile::tempdir().unwrap();
        // Chromium's own background connections are refused by a closed network: turned off.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--window-size=1280,860",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": args}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session starts");
        Self {
            driver,
            client,
            _profile: profile,
        }
    }

    /// The text of the first element `css` finds, once the page shows one (a page being
    /// replaced after a click may still be the old one for a moment).
    async fn text_of(&self, css: &str) -> String {
        let mut last = None;
        for _ in 0..100 {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => match element.text().await {
                    Ok(text) => return text,
                    Err(e) => last = Some(e),
                },
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css}: {last:?}");
    }

    /// Clicks `element` and waits for the page at `path` to load.
    async fn click_to(&self, element: fantoccini::elements::Element, path: &str) {
        element.click().await.unwrap();
        for _ in 0..100 {
            if self.client.current_url().await.unwrap().path() == path {
                self.client
                    .wait()
                    .for_element(Locator::Css("main"))
                    .await
                    .unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no page at {path} after the click");
    }

    /// The page's visible text.
    async fn body(&self) -> String {
        self.text_of("body").await
    }

    /// Saves a screenshot of the page as `name` in `ZOOMCAST_SCREENSHOTS`, when it is set.
    async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("ZOOMCAST_SCREENSHOTS").map(PathBuf::from) else {
            return;
        };
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn stop(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A job to three people (one unknown to Zoom) whose card asks for an acknowledgement.
fn acknowledged_job() -> String {
    let job = job_to(&[
        "ana@example.com",
        "bo@example.com",
        "chen@example.com",
        "nobody@example.com",
    ]);
    let job = job.replace("body = \"Hi {{ first_name }} <{{ email }}>\"", "");
    let blocks = "[[message.blocks]]\ntype = \"message\"\ntext = \"Stand-up moves to 9:30 today, {{ first_name }}.\"\n\n[[message.blocks]]\ntype = \"actions\"\nbuttons = [{ text = \"Done\", value = \"done\" }]\n\n[acknowledge]\nbutton = \"done\"\n\n[delivery]";
    format!(
        "schedule = \"0 0 9 * * MON-FRI\"\ntimezone = \"Europe/Berlin\"\n{}",
        job.replace("[delivery]", blocks)
    )
}

/// Presses the button on the messages of run 1 to `who`.
fn acknowledge(env: &Env, who: &[&str]) {
    let history = env.run(&["history", "--run", "1", "--json"]).code(0).json();
    for email in who {
        let delivery = history["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["email"] == *email)
            .unwrap();
        let press = json!({"event": "interactive_message_actions", "user": email,
                           "message_id": delivery["message_id"], "value": "done"});
        assert_eq!(emulator_event(env, &press).0, 200);
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
#[ignore = "needs Debian's chromium and chromium-driver: .ci/run installs them and runs it"]
fn the_console_in_chromium_signs_in_shows_a_run_runs_a_job_and_refuses_what_it_must() {
    let env = Env::new();
    env.login();
    env.job("standup", &acknowledged_job());
    env.job("payroll", &job_to(&["ana@example.com"]));
    env.run(&["run", "standup"]).code(3);
    let served = Served::start(&env);
    acknowledge(&env, &["ana@example.com", "chen@example.com"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let browser = Browser::start().await;
        signed_in_pages(&env, &served, &browser).await;
        refusals(&env, &served, &browser).await;
        browser.stop().await;
    });
    let log = served.stop();
    assert!(
        log.contains("console: `ana@example.com` started run 2 of job `payroll`"),
        "{log}"
    );
}

/// Signs in, reads the run, runs a job now and sees its run.
async fn signed_in_pages(env: &Env, served: &Served, browser: &Browser) {
    let c = &browser.client;
    c.goto(&served.url("/console")).await.unwrap();
    assert!(
        c.current_url().await.unwrap().path() == "/console/login",
        "no session: sign in"
    );
    assert!(browser.body().await.contains("zoomcast console-link"));

    let link = console_link(env, &["--name", "ana@example.com"]);
    c.goto(&served.url(&link)).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/console");
    assert_eq!(browser.text_of("#who").await, "ana@example.com");
    let jobs = browser.text_of("#jobs").await;
    assert!(
        jobs.contains("standup") && jobs.contains("partly_failed") && jobs.contains("payroll"),
        "{jobs}"
    );
    browser.screenshot("jobs").await;

    let run_1 = c.find(Locator::LinkText("run 1")).await.unwrap();
    browser.click_to(run_1, "/console/runs/1").await;
    let recipients = browser.text_of("#recipients").await;
    for email in [
        "ana@example.com",
        "bo@example.com",
        "chen@example.com",
        "nobody@example.com",
    ] {
        assert!(recipients.contains(email), "{email} in {recipients}");
    }
    assert_eq!(
        browser.text_of("#acknowledged").await,
        "2 of 3 (button done)"
    );
    let chart = c.find(Locator::Css("figure svg")).await.unwrap();
    assert_eq!(
        chart
            .attr("aria-label")
            .await
            .unwrap()
            .unwrap()
            .split(" acknowledged")
            .next(),
        Some("2 of 3")
    );
    browser.screenshot("run").await;

    c.goto(&served.url("/console")).await.unwrap();
    let payroll = c
        .find(Locator::Css(r#"tr[data-job="payroll"]"#))
        .await
        .unwrap();
    let run_now = payroll
        .find(Locator::Css(r#"button[value="run"]"#))
        .await
        .unwrap();
    browser.click_to(run_now, "/console/runs/2").await;
    assert!(browser.body().await.contains("Run 2 of payroll"));
    wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        env.history(Some("payroll"))
            .first()
            .filter(|r| r["status"] == "succeeded")
            .map(|_| ())
    })
    .expect("the run succeeds");
    c.goto(&served.url("/console/runs")).await.unwrap();
    let runs = browser.text_of("#runs").await;
    assert!(
        runs.lines().any(|l| l.starts_with("2 payroll succeeded")),
        "{runs}"
    );
    browser.screenshot("runs").await;
    c.goto(&served.url("/console/grants")).await.unwrap();
    browser.screenshot("grants").await;

    // The link was used: opened again, it is refused (and the session stays).
    c.goto(&served.url(&link)).await.unwrap();
    assert!(
        browser
            .body()
            .await
            .contains("This sign-in link was used already")
    );
}

/// A form stripped of its CSRF field, and a read-only session's action, are refused.
async fn refusals(env: &Env, served: &Served, browser: &Browser) {
    let c = &browser.client;
    c.goto(&served.url("/console")).await.unwrap();
    c.execute(
        "document.querySelectorAll('input[name=csrf]').forEach(e => e.remove());",
        vec![],
    )
    .await
    .unwrap();
    let payroll = c
        .find(Locator::Css(r#"tr[data-job="payroll"]"#))
        .await
        .unwrap();
    let suspend = payroll
        .find(Locator::Css(r#"button[value="suspend"]"#))
        .await
        .unwrap();
    browser
        .click_to(suspend, "/console/jobs/payroll/suspend")
        .await;
    assert!(
        browser
            .body()
            .await
            .contains("did not carry this session's CSRF field")
    );
    assert_eq!(
        env.run(&["jobs", "--json"]).code(0).json()[0]["suspended"],
        false
    );

    let link = console_link(env, &["--name", "viewer", "--read-only"]);
    c.goto(&served.url(&link)).await.unwrap();
    assert_eq!(browser.text_of("#who").await, "viewer (read-only)");
    let payroll = c
        .find(Locator::Css(r#"tr[data-job="payroll"]"#))
        .await
        .unwrap();
    let run_now = payroll
        .find(Locator::Css(r#"button[value="run"]"#))
        .await
        .unwrap();
    browser.click_to(run_now, "/console/jobs/payroll/run").await;
    assert!(browser.body().await.contains("This is a read-only session"));
    assert_eq!(env.history(Some("payroll")).len(), 1, "nothing ran");
}
