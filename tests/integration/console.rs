//! The web console (`/console` on `serve`) through real HTTP on loopback: one-time sign-in
//! links, the session cookie, the pages, the actions and every refusal. `browser.rs` drives the
//! same console in Chromium.

use std::time::Duration;

use crate::harness::{Env, job_to, wait_for};
use crate::serve::Served;

/// A client that shows redirects instead of following them.
pub(crate) fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// `console-link ARGS`: the link it printed (a path: no `public_url` is set).
pub(crate) fn console_link(env: &Env, args: &[&str]) -> String {
    let mut command = vec!["console-link"];
    command.extend_from_slice(args);
    let run = env.run(&command);
    run.code(0).stderr_has("sign-in link for");
    let link = run.stdout.trim().to_owned();
    assert!(
        link.starts_with("/console/login?token=zcl_"),
        "{}",
        run.stdout
    );
    link
}

/// Opens `link`: the session cookie (`name=value`) it set.
fn sign_in(served: &Served, link: &str) -> String {
    let answer = client().get(served.url(link)).send().unwrap();
    assert_eq!(answer.status().as_u16(), 303);
    assert_eq!(answer.headers()["location"], "/console");
    let cookie = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/console", "Max-Age=43200"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http on loopback: {cookie}"
    );
    cookie.split(';').next().unwrap().to_owned()
}

/// GETs `path` with `cookie`: status and body.
fn get(served: &Served, path: &str, cookie: &str) -> (u16, String) {
    let answer = client()
        .get(served.url(path))
        .header("cookie", cookie)
        .send()
        .unwrap();
    (answer.status().as_u16(), answer.text().unwrap())
}

/// POSTs the form `fields` to `path` with `cookie`: status and `Location`.
fn post(served: &Served, path: &str, cookie: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let answer = client()
        .post(served.url(path))
        .header("cookie", cookie)
        .form(fields)
        .send()
        .unwrap();
    let location = answer
        .headers()
        .get("location")
        .map_or_else(String::new, |l| l.to_str().unwrap().to_owned());
    (answer.status().as_u16(), location)
}

/// The CSRF field of a page's forms.
pub(crate) fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a form") + r#"name="csrf" value=""#.len();
    html[at..].split('"').next().unwrap().to_owned()
}

fn run_count(env: &Env) -> usize {
    env.history(Some("team")).len()
}

#[test]
fn a_link_signs_in_once_and_the_pages_show_runs_recipients_and_grants() {
    let env = Env::new();
    env.login();
    env.job("team", &job_to(&["ana@example.com", "nobody@example.com"]));
    env.run(&["run", "team"]).code(3);
    let served = Served::start(&env);

    // Without a session, every page sends the browser to sign in, which says how.
    let answer = client().get(served.url("/console/runs/1")).send().unwrap();
    assert_eq!(answer.status().as_u16(), 303);
    assert_eq!(answer.headers()["location"], "/console/login");
    let (status, login) = get(&served, "/console/login", "");
    assert_eq!(status, 200);
    assert!(login.contains("zoomcast console-link"), "{login}");

    // Made beside the running server (through its control socket); used once.
    let link = console_link(&env, &["--name", "ana@example.com"]);
    let cookie = sign_in(&served, &link);
    let again = client().get(served.url(&link)).send().unwrap();
    assert_eq!(again.status().as_u16(), 403, "a used link");
    assert!(again.headers().get("set-cookie").is_none());
    let unknown = client()
        .get(served.url("/console/login?token=zcl_guessed"))
        .send()
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 403);
    let expired = console_link(&env, &["--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(1100));
    let late = client().get(served.url(&expired)).send().unwrap();
    assert_eq!(late.status().as_u16(), 403, "an expired link");

    // Every page: who is signed in, and headers that forbid framing and scripts.
    let answer = client()
        .get(served.url("/console"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let csp = answer.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(answer.headers()["x-frame-options"], "DENY");
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let jobs = answer.text().unwrap();
    assert!(
        jobs.contains("ana@example.com") && jobs.contains(r#"data-job="team""#),
        "{jobs}"
    );
    assert!(
        jobs.contains("partly_failed"),
        "the last run's outcome: {jobs}"
    );

    let (status, run) = get(&served, "/console/runs/1", &cookie);
    assert_eq!(status, 200);
    assert!(
        run.contains("<td>ana@example.com</td>") && run.contains("<td>nobody@example.com</td>"),
        "{run}"
    );
    assert!(run.contains("Recipients 1–2 of 2"), "{run}");
    let (_, failed) = get(&served, "/console/runs/1?state=failed", &cookie);
    assert!(failed.contains("nobody@example.com") && !failed.contains("<td>ana@example.com</td>"));
    let (status, csv) = get(&served, "/console/runs/1/failures.csv", &cookie);
    assert_eq!(status, 200);
    assert!(
        csv.starts_with("email,state,code,message\nnobody@example.com,failed,"),
        "{csv}"
    );
    assert_eq!(get(&served, "/console/runs/99", &cookie).0, 404);

    let (_, runs) = get(&served, "/console/runs", &cookie);
    assert!(runs.contains(r#"data-run="1""#), "{runs}");
    let (_, grants) = get(&served, "/console/grants", &cookie);
    assert!(grants.contains("emulated-account-1 (home)"), "{grants}");
    assert!(grants.contains("stored in plain form"), "{grants}");
    let (status, optouts) = get(&served, "/console/optouts", &cookie);
    assert_eq!(status, 200);
    assert!(optouts.contains("Nobody opted out"), "{optouts}");

    // Every session ended from the host (beside the running server): the old cookie is no
    // session, the new link's is.
    let fresh = console_link(&env, &["--name", "ana@example.com", "--end-sessions"]);
    assert_eq!(get(&served, "/console", &cookie).0, 303, "ended");
    let cookie = sign_in(&served, &fresh);
    assert_eq!(get(&served, "/console", &cookie).0, 200);

    // A cookie altered by hand is no session.
    let forged = format!("{cookie}x");
    assert_eq!(get(&served, "/console", &forged).0, 303);
    let log = served.stop();
    assert!(
        log.contains("console: `ana@example.com` signed in"),
        "{log}"
    );
    assert!(
        !log.contains(link.trim_start_matches("/console/login?token=")),
        "the token is never logged"
    );
}

#[test]
fn actions_need_the_csrf_field_and_a_session_that_may_act_and_are_logged_with_who() {
    let env = Env::new();
    env.login();
    env.job(
        "team",
        &format!(
            "schedule = \"0 0 9 * * *\"\n{}",
            job_to(&["ana@example.com"])
        ),
    );
    env.run(&["run", "team"]).code(0);
    let served = Served::start(&env);
    let cookie = sign_in(&served, &console_link(&env, &["--name", "ops"]));
    let (_, jobs) = get(&served, "/console", &cookie);
    let csrf = csrf_of(&jobs);

    // Without the field, with another's, or with none of a session: refused, nothing runs.
    assert_eq!(post(&served, "/console/jobs/team/run", &cookie, &[]).0, 403);
    assert_eq!(
        post(
            &served,
            "/console/jobs/team/run",
            &cookie,
            &[("csrf", "forged")]
        )
        .0,
        403
    );
    assert_eq!(
        post(&served, "/console/jobs/team/run", "", &[("csrf", &csrf)]).0,
        403
    );
    assert_eq!(run_count(&env), 1);

    // Run now: the new run's page.
    let (status, location) = post(
        &served,
        "/console/jobs/team/run",
        &cookie,
        &[("csrf", &csrf)],
    );
    assert_eq!(
        (status, location.as_str()),
        (303, "/console/runs/2?done=run")
    );
    wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
        (env.history(Some("team"))
            .iter()
            .filter(|r| r["status"] == "succeeded")
            .count()
            == 2)
            .then_some(())
    })
    .expect("the console's run succeeds");
    assert_eq!(
        post(
            &served,
            "/console/jobs/nope/run",
            &cookie,
            &[("csrf", &csrf)]
        )
        .0,
        404
    );

    suspend_and_resume(&env, &served, &cookie, &csrf);

    // Recall: queued, then every message of the run deleted.
    let (status, location) = post(
        &served,
        "/console/runs/2/recall",
        &cookie,
        &[("csrf", &csrf)],
    );
    assert_eq!(
        (status, location.as_str()),
        (303, "/console/runs/2?done=recall")
    );
    wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
        (env.emu().stats().deletes == 1).then_some(())
    })
    .expect("the recall deletes the run's message");

    read_only_refused(&env, &served);

    // Signing out ends the session in that browser.
    let (status, location) = post(&served, "/console/logout", &cookie, &[("csrf", &csrf)]);
    assert_eq!((status, location.as_str()), (303, "/console/login"));

    let log = served.stop();
    for line in [
        "console: `ops` started run 2 of job `team`",
        "console: `ops` suspended job `team`",
        "console: `ops` resumed job `team`",
        "console: `ops` recalled run 2 of job `team`",
        "console: an action of a read-only session was refused",
        "console: a form without this session's CSRF field was refused",
    ] {
        assert!(log.contains(line), "{line} in {log}");
    }
}

#[test]
fn console_link_refuses_a_bad_name_or_ttl_and_prints_a_whole_link_with_public_url() {
    let env = Env::new();
    env.run(&["console-link", "--ttl", "48h"])
        .code(2)
        .stderr_has("--ttl 2days is longer than a sign-in link may wait");
    env.run(&["console-link", "--name", ""])
        .code(2)
        .stderr_has("cannot name a console session");
    let config = env.dir.path().join("zoomcast.toml");
    std::fs::write(&config, "public_url = \"https://zoomcast.example.com/\"\n").unwrap();
    let run = env.run(&[
        "--config",
        config.to_str().unwrap(),
        "console-link",
        "--read-only",
    ]);
    run.code(0).stderr_has("a read-only sign-in link");
    assert!(
        run.stdout
            .starts_with("https://zoomcast.example.com/console/login?token=zcl_"),
        "{}",
        run.stdout
    );
    std::fs::write(&config, "public_url = \"ftp://x\"\n").unwrap();
    env.run(&["--config", config.to_str().unwrap(), "console-link"])
        .code(2)
        .stderr_has("public_url is a ftp URL");
}

/// Suspend, seen by `jobs` and the page; then resume.
fn suspend_and_resume(env: &Env, served: &Served, cookie: &str, csrf: &str) {
    // Suspend, seen by `jobs`; then resume.
    let (status, location) = post(
        served,
        "/console/jobs/team/suspend",
        cookie,
        &[("csrf", csrf)],
    );
    assert_eq!(
        (status, location.as_str()),
        (303, "/console?done=suspended")
    );
    let listed = env.run(&["jobs", "--json"]).code(0).json();
    assert_eq!(listed[0]["suspended"], true, "{listed}");
    assert_eq!(listed[0]["console"]["by"], "ops");
    env.run(&["jobs"])
        .code(0)
        .stdout_has("suspended (console: ops)");
    let (_, page) = get(served, "/console?done=suspended", cookie);
    assert!(
        page.contains(">Resume<") && page.contains("by ops at"),
        "{page}"
    );
    post(
        served,
        "/console/jobs/team/suspend",
        cookie,
        &[("csrf", csrf)],
    );
    assert_eq!(
        env.run(&["jobs", "--json"]).code(0).json()[0]["suspended"],
        false
    );
}

/// A read-only session looks but does not act.
fn read_only_refused(env: &Env, served: &Served) {
    // A read-only session looks but does not act.
    let viewer = sign_in(
        served,
        &console_link(env, &["--name", "viewer", "--read-only"]),
    );
    let (_, page) = get(served, "/console", &viewer);
    assert!(page.contains("viewer (read-only)"), "{page}");
    let viewer_csrf = csrf_of(&page);
    assert_eq!(
        post(
            served,
            "/console/jobs/team/run",
            &viewer,
            &[("csrf", &viewer_csrf)]
        )
        .0,
        403
    );
    assert_eq!(
        post(
            served,
            "/console/jobs/team/suspend",
            &viewer,
            &[("csrf", &viewer_csrf)]
        )
        .0,
        403
    );
    assert_eq!(
        post(
            served,
            "/console/runs/2/recall",
            &viewer,
            &[("csrf", &viewer_csrf)]
        )
        .0,
        403
    );
    assert_eq!(run_count(env), 2);
}

#[test]
fn a_job_suspended_from_the_console_of_schedule_listen_stops_firing_until_resumed() {
    let env = Env::new();
    env.login();
    env.job(
        "tick",
        &format!(
            "schedule = \"*/2 * * * * *\"\n{}",
            job_to(&["ana@example.com"])
        ),
    );
    let daemon =
        crate::schedule::Daemon::start(&env, &["--listen", "127.0.0.1:0", "--watch-every", "1s"]);
    let base = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        crate::serve::served_at(&daemon.log())
    })
    .expect("the scheduler announces where it serves");
    let runs = || env.history(Some("tick")).len();
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        (runs() >= 1).then_some(())
    })
    .expect("the job fires");
    let link = console_link(&env, &["--name", "ops"]);
    let at = |path: &str| format!("{base}{path}");
    let answer = client().get(at(&link)).send().unwrap();
    let cookie = answer.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = client()
        .get(at("/console"))
        .header("cookie", &cookie)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        !page.contains("does not fire schedules"),
        "the scheduler fires them: {page}"
    );
    let csrf = csrf_of(&page);
    let toggle = || {
        let answer = client()
            .post(at("/console/jobs/tick/suspend"))
            .header("cookie", &cookie)
            .form(&[("csrf", csrf.as_str())])
            .send()
            .unwrap();
        assert_eq!(answer.status().as_u16(), 303);
    };
    toggle();
    std::thread::sleep(Duration::from_secs(1)); // a run started before may still end
    let suspended_at = runs();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(runs(), suspended_at, "no tick fires while suspended");
    let page = client()
        .get(at("/console"))
        .header("cookie", &cookie)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("by ops at"), "{page}");
    toggle();
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        (runs() > suspended_at).then_some(())
    })
    .expect("resumed, it fires again");
    assert!(
        daemon.log().contains("job `tick` suspended"),
        "{}",
        daemon.log()
    );
}
