//! A real Prometheus (Debian's `prometheus` and `promtool`) against `serve`: `promtool check
//! metrics` accepts what a plain scraper gets, and a Prometheus server scrapes the series with
//! `job_name` for zoomcast's job beside its own `job`. Ignored by `cargo test` (it needs the
//! two programs); `.ci/run` installs them and runs it.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Env, job_to, wait_for};
use crate::serve::{Served, http};

#[test]
#[ignore = "needs Debian's prometheus and promtool: .ci/run installs them and runs it"]
fn prometheus_scrapes_serve_and_promtool_accepts_its_metrics() {
    let env = Env::new();
    env.login();
    env.job("team", &job_to(&["ana@example.com"]));
    env.run(&["run", "team"]).code(0);
    let served = Served::start(&env);

    let plain = http()
        .get(served.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) is installed");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(plain.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}\n{plain}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let target = served.base.trim_start_matches("http://").to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = env.dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: zoomcast\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            env.dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian's package) is installed");
    let query = format!("http://127.0.0.1:{port}/api/v1/query?query=zoomcast_runs_total");
    let found = wait_for(Duration::from_secs(30), Duration::from_millis(250), || {
        let answer: Value = http().get(&query).send().ok()?.json().ok()?;
        let result = answer["data"]["result"].as_array()?.first()?.clone();
        Some(result)
    });
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    let series = found.expect("Prometheus scraped zoomcast_runs_total");
    let labels = &series["metric"];
    assert_eq!(
        labels["job"], "zoomcast",
        "Prometheus's own job label: {series}"
    );
    assert_eq!(
        labels["job_name"], "team",
        "zoomcast's job, not renamed: {series}"
    );
    assert_eq!(labels["outcome"], "succeeded");
    assert!(labels.get("exported_job").is_none(), "{series}");
    assert_eq!(series["value"][1], "1");
}
