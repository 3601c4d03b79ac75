//! Progress: log lines when stderr is not a terminal, a bar that leaves the report clean when
//! it is.

use crate::harness::{Env, bulk_job};

/// A job to `n` recipients that takes about a second against a 20 ms emulator.
fn slow_bulk_job(env: &Env, n: usize) {
    env.job("bulk", &bulk_job("p", n));
    env.login();
    env.adjust_knobs(|k| k.latency_ms = 20);
}

#[test]
fn progress_is_logged_in_lines_when_stderr_is_not_a_terminal() {
    let env = Env::new();
    slow_bulk_job(&env, 100);
    let run = env.run(&["run", "bulk", "--progress-every", "150ms"]);
    run.code(0).stdout_has("100 recipients, 100 sent");
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("job `bulk`:") && l.contains(" sent, "))
        .collect();
    assert!(lines.len() >= 2, "progress lines:\n{}", run.stderr);
    for line in &lines {
        assert!(
            line.contains(" failed, ")
                && line.contains("/s, about ")
                && line.contains(" left, ETA "),
            "a progress line says sent, failed, rate, what is left and ETA: {line}"
        );
    }
    assert!(
        !run.stderr.contains("[="),
        "no bar in a log:\n{}",
        run.stderr
    );
    let quiet = env.run(&[
        "run",
        "bulk",
        "--progress",
        "none",
        "--progress-every",
        "150ms",
    ]);
    quiet.code(0).stdout_has("100 recipients, 100 sent");
    assert!(!quiet.stderr.contains(" sent, "), "{}", quiet.stderr);
    env.run(&["run", "bulk", "--progress-every", "0s"])
        .code(2)
        .stderr_has("must be longer than zero");
}

#[test]
fn a_terminal_gets_a_progress_bar_that_leaves_the_report_clean() {
    let env = Env::new();
    slow_bulk_job(&env, 100);
    let (code, screen) = env.run_on_terminal(&["run", "bulk", "--progress-every", "150ms"]);
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("/100 ") && screen.contains(" sent, ") && screen.contains(" ETA "),
        "the bar shows position, sent, failed, rate and ETA:\n{screen}"
    );
    assert!(
        !screen.contains("job `bulk`: "),
        "a bar instead of log lines on a terminal:\n{screen}"
    );
    assert!(screen.contains("100 recipients, 100 sent"), "{screen}");
}
