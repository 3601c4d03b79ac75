//! `/healthz` and `/metrics` (read with an `OpenMetrics` parser), counting runs made by
//! another process.

use super::*;

#[test]
fn healthz_and_metrics_count_runs_made_by_another_process() {
    let (env, served) = served_after_a_run();
    let health = http().get(served.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    let metrics = scrape(&served);
    let runs = series(
        &metrics,
        "zoomcast_runs",
        &[("job_name", "team"), ("outcome", "succeeded")],
    );
    assert_eq!(runs, Some(1.0), "{metrics}");
    let sent = series(
        &metrics,
        "zoomcast_deliveries",
        &[("job_name", "team"), ("outcome", "sent")],
    );
    assert_eq!(sent, Some(2.0));
    let last = series(
        &metrics,
        "zoomcast_job_last_success_timestamp_seconds",
        &[("job_name", "team")],
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
            &[("job_name", "team"), ("outcome", "succeeded")]
        ),
        Some(2.0)
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

#[test]
fn metrics_negotiate_their_format_and_show_the_last_run_and_each_grant() {
    let (env, served) = served_after_a_run();
    let metrics = scrape(&served);
    let started = series(
        &metrics,
        "zoomcast_job_last_run_timestamp_seconds",
        &[("job_name", "team")],
    )
    .unwrap();
    #[allow(clippy::cast_precision_loss)] // seconds since the epoch, well within f64
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(started > now - 120.0 && started <= now, "{started}");
    assert!(
        metrics.contains("zoomcast_run_duration_seconds_count{job_name=\"team\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("zoomcast_run_duration_seconds_bucket{le=\"+Inf\",job_name=\"team\"} 1\n"),
        "{metrics}"
    );
    let account = env.emu().knobs().account_id;
    let grant = [("app", "default"), ("account", account.as_str())];
    assert_eq!(series(&metrics, "zoomcast_grant_valid", &grant), Some(1.0));

    // A client that does not ask for OpenMetrics gets the Prometheus text format: a counter's
    // help and type name its samples, and no `# EOF`.
    let plain = http().get(served.url("/metrics")).send().unwrap();
    assert_eq!(
        plain.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = plain.text().unwrap();
    assert!(
        text.contains("# TYPE zoomcast_runs_total counter\n"),
        "{text}"
    );
    assert!(text.contains("# HELP zoomcast_runs_total "), "{text}");
    assert!(!text.contains("# EOF"), "{text}");

    // Zoom refuses the grant: it is dead, and the series says so.
    env.emu().revoke_all_grants();
    env.emu().kill_user_access_tokens();
    env.run(&["doctor"]).code(1);
    let metrics = scrape(&served);
    assert_eq!(
        series(&metrics, "zoomcast_grant_valid", &grant),
        Some(0.0),
        "{metrics}"
    );
    served.stop();
}

#[test]
fn a_scheduler_shows_each_jobs_next_run_its_suspension_and_the_files_it_refuses() {
    let env = Env::new();
    env.login();
    let daily = format!("schedule = \"0 9 * * *\"\n{}", job_to(&["ana@example.com"]));
    env.job("daily", &daily);
    env.job("paused", &format!("suspend = true\n{daily}"));
    env.job("broken", "schedule = \"not a schedule\"\n");
    let daemon = crate::schedule::Daemon::start(&env, &["--listen", "127.0.0.1:0"]);
    let base = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        served_at(&daemon.log())
    })
    .expect("the scheduler announces where it serves");
    let metrics = http()
        .get(format!("{base}/metrics"))
        .header("accept", "application/openmetrics-text")
        .send()
        .unwrap()
        .text()
        .unwrap();
    let daily_label = [("job_name", "daily")];
    let next = series(
        &metrics,
        "zoomcast_job_next_run_timestamp_seconds",
        &daily_label,
    )
    .unwrap_or_else(|| panic!("{metrics}"));
    #[allow(clippy::cast_precision_loss)] // seconds since the epoch, well within f64
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(next > now && next <= now + 86_400.0, "{next}");
    let paused_label = [("job_name", "paused")];
    assert_eq!(
        series(
            &metrics,
            "zoomcast_job_next_run_timestamp_seconds",
            &paused_label
        ),
        None,
        "a suspended job has no next run"
    );
    assert_eq!(
        series(&metrics, "zoomcast_job_suspended", &paused_label),
        Some(1.0)
    );
    assert_eq!(
        series(&metrics, "zoomcast_job_suspended", &daily_label),
        Some(0.0)
    );
    assert_eq!(
        series(&metrics, "zoomcast_jobs_invalid", &[]),
        Some(1.0),
        "{metrics}"
    );
    daemon.stop();
}
