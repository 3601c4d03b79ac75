//! `auth login --device`: Zoom's device authorization grant against the emulator: pending
//! polls, `slow_down`, a denial, an expired code, and an approval whose grant sends.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use zoomcast::emulator::Knobs;

use crate::harness::{Env, Run, browse, job_to, wait_for};

fn env_polling_every_second(change: impl FnOnce(&mut Knobs)) -> Env {
    let mut knobs = Knobs {
        device_interval_secs: 1,
        ..Knobs::default()
    };
    change(&mut knobs);
    Env::with_knobs(knobs)
}

/// Starts `auth login --device` and returns it with the verification URL it printed.
fn start_device_login(env: &Env) -> (Child, String) {
    let mut child = env
        .command(&["auth", "login", "--device"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("http://"), "{line:?}");
    (child, line.trim().to_owned())
}

fn finish(child: Child) -> Run {
    child.wait_with_output().unwrap().into()
}

#[test]
fn an_approval_after_pending_polls_stores_a_grant_that_sends() {
    let env = env_polling_every_second(|_| {});
    env.job("team", &job_to(&["ana@example.com"]));
    let (child, url) = start_device_login(&env);
    // The person takes a while: zoomcast keeps polling, at the interval.
    wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        (env.emu().stats().device_polls >= 2).then_some(())
    })
    .expect("zoomcast polls while the approval is pending");
    assert!(browse(&url).contains("Device approved"));
    let run = finish(child);
    run.code(0)
        .stderr_has("enter the code")
        .stderr_has("authorized app `default` as admin@example.com");
    assert_eq!(env.emu().stats().device_slow_downs, 0);
    env.run(&["auth", "status"]).code(0);
    env.run(&["run", "team"]).code(0);
    assert_eq!(env.emu().messages().len(), 1);
}

#[test]
fn slow_down_lengthens_the_interval_by_five_seconds() {
    // A short-lived code, so that a client that ignores `slow_down` fails soon.
    let env = env_polling_every_second(|k| {
        k.device_slow_downs = 1;
        k.device_expires_secs = 20;
    });
    let (child, url) = start_device_login(&env);
    browse(&url);
    finish(child).code(0);
    // A client that kept polling every second after `slow_down` would have been answered
    // `slow_down` again (the emulator wants 6 s between polls from then on).
    let stats = env.emu().stats();
    assert_eq!(stats.device_slow_downs, 1, "{stats:?}");
    assert_eq!(stats.device_polls, 2, "{stats:?}");
}

#[test]
fn a_denial_or_an_expired_code_stores_nothing_and_says_what_to_do() {
    let env = env_polling_every_second(|_| {});
    let (child, url) = start_device_login(&env);
    assert!(browse(&format!("{url}&deny=1")).contains("denied"));
    finish(child)
        .code(1)
        .stderr_has("the authorization was denied at Zoom; run `zoomcast auth login --device");
    env.run(&["auth", "status"]).code(1);

    env.adjust_knobs(|k| k.device_expires_secs = 2);
    let (child, _) = start_device_login(&env);
    finish(child)
        .code(1)
        .stderr_has("the code expired before anyone approved it");
    env.run(&["auth", "status"]).code(1);
}
