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
