//! `on_failure`: a run that partly fails (or is aborted or closed) is told to the job's
//! `on_failure` addresses in one card each, sent as a run of the job `on_failure`; a notice
//! that fails is logged, never notified.

use crate::harness::{Env, job_to};

fn job_with_on_failure(emails: &[&str], on_failure: &str) -> String {
    format!("on_failure = [{on_failure}]\n{}", job_to(emails))
}

#[test]
fn a_partly_failed_run_is_told_to_the_on_failure_addresses_once() {
    let env = Env::new();
    env.login();
    env.job(
        "payroll",
        &job_with_on_failure(
            &["ana@example.com", "nobody@example.com"],
            "\"bo@example.com\", \"general@conference.xmpp.zoom.us\"",
        ),
    );
    env.run(&["run", "payroll"]).code(3);
    let notices: Vec<_> = env
        .emu()
        .messages()
        .into_iter()
        .filter(|m| m.to_email != "ana@example.com")
        .collect();
    assert_eq!(notices.len(), 2, "one card to each address: {notices:?}");
    for notice in &notices {
        assert_eq!(
            notice.content["head"]["text"],
            "Run 1 of job `payroll` partly failed"
        );
        let text = notice.content["body"][0]["text"].as_str().unwrap();
        assert!(text.contains("2 recipients: 1 sent, 1 failed"), "{text}");
        assert!(text.contains("- nobody@example.com: "), "{text}");
        assert!(text.contains("zoomcast history --run 1"), "{text}");
    }
    env.run(&["history", "on_failure"])
        .code(0)
        .stdout_has("succeeded");

    // A successful run tells nobody.
    env.job(
        "payroll",
        &job_with_on_failure(&["ana@example.com"], "\"bo@example.com\""),
    );
    env.run(&["run", "payroll"]).code(0);
    assert_eq!(
        env.emu().messages().len(),
        4,
        "ana once more, and no notice"
    );
}

#[test]
fn a_notice_that_fails_is_logged_and_never_notified() {
    let env = Env::new();
    env.login();
    env.job(
        "payroll",
        &job_with_on_failure(&["nobody@example.com"], "\"ghost@example.com\""),
    );
    env.run(&["run", "payroll"])
        .code(3)
        .stderr_has("the failure notice of run 1 of job `payroll` reached 0 of its 1 addresses");
    assert!(env.emu().messages().is_empty());
    let notices = env.run(&["history", "on_failure", "--json"]).code(0).json();
    assert_eq!(
        notices.as_array().unwrap().len(),
        1,
        "no notice of the notice"
    );
    env.job(
        "bad",
        &job_with_on_failure(&["ana@example.com"], "\"not an address\""),
    );
    env.run(&["validate", "jobs/bad.toml"])
        .code(2)
        .stderr_has("`not an address` is not an address")
        .stderr_has("bad.toml:1:15");
}
