//! `demo` on a fresh checkout: the emulator, a login without a person, the example job, then a
//! recipient's `stop` through `serve` and the job again without them, then a second account's
//! install through `serve` and a job of that account.

use crate::harness::{Env, repo_root};

#[test]
fn the_demo_delivers_the_example_job() {
    let env = Env::new();
    let jobs = repo_root().join("jobs");
    let run = env.run(&["--jobs", jobs.to_str().unwrap(), "demo"]);
    run.code(0)
        .stdout_has("run 1 of job `example` succeeded: 4 recipients, 4 sent, 0 failed")
        .stdout_has("to ana@example.com")
        .stdout_has("Hi Ana, the stand-up starts at 09:00")
        .stdout_has("zoomcast answered the signed event with HTTP 200")
        .stdout_has("You will get no more notifications")
        .stdout_has("run 2 of job `example` succeeded: 4 recipients, 3 sent, 0 failed, 0 uncertain, 1 opted out")
        .stdout_has("admin@second.example, an admin of the emulator's second account, installed the app")
        .stdout_has("run 3 of job `second-account` succeeded: 2 recipients, 2 sent, 0 failed")
        .stdout_has("to gus@second.example");
    assert!(
        !env.state_dir().exists(),
        "the demo never touches the real state directory"
    );
}

#[test]
fn the_demo_runs_outside_the_repository_and_logs_without_colour_when_not_on_a_terminal() {
    let env = Env::new();
    let nowhere = env.dir.path().join("no-jobs-here");
    let run = env.run(&["--jobs", nowhere.to_str().unwrap(), "demo"]);
    run.code(0)
        .stdout_has("run 1 of job `example` succeeded: 4 recipients, 4 sent");
    assert!(run.stderr.contains("INFO"), "{}", run.stderr);
    assert!(
        !run.stderr.contains('\u{1b}'),
        "no ANSI escapes in a redirected log: {:?}",
        run.stderr
    );
}
