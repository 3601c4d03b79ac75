//! `validate` and `jobs`: problems named by file, line and column; exit 2; nothing sent.

use serde_json::Value;

use crate::harness::{Env, by_name, job_to};

#[test]
fn a_bad_job_file_is_reported_with_file_line_and_column() {
    let env = Env::new();
    env.job("good", &job_to(&["ana@example.com"]));
    env.job(
        "bad",
        &job_to(&["ana@example.com"]).replace("concurrency = 4", "concurrency = 4\nretries = 3"),
    );
    let run = env.run(&["validate"]);
    run.code(2)
        .stdout_has("ok: ")
        .stdout_has("good.toml")
        .stderr_has("error: unknown field `retries`")
        .stderr_has("bad.toml:12:1")
        .stderr_has("12 | retries = 3");
}

#[test]
fn validate_takes_a_directory_a_job_name_or_a_path() {
    let env = Env::new();
    env.job("good", &job_to(&["ana@example.com"]));
    env.job("other", &job_to(&["bo@example.com"]));
    let jobs = env.jobs_dir();
    let dir = format!("{}/", jobs.display());
    env.run(&["validate", &dir])
        .code(0)
        .stdout_has("good.toml")
        .stdout_has("other.toml");
    let by_name = env.run(&["validate", "good"]);
    by_name.code(0).stdout_has("good.toml");
    assert!(!by_name.stdout.contains("other.toml"), "{}", by_name.stdout);
    let empty = env.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    env.run(&["validate", empty.to_str().unwrap()])
        .code(0)
        .stdout_has("no job files in");
}

#[test]
fn running_an_invalid_job_exits_2_and_sends_nothing() {
    let env = Env::new();
    env.login();
    env.job(
        "typo",
        &job_to(&["ana@example.com"]).replace("first_name", "frist_name"),
    );
    env.run(&["run", "typo"])
        .code(2)
        .stderr_has("the message uses `frist_name`, which no recipient has");
    assert!(env.emu().messages().is_empty());
    env.run(&["run", "missing"])
        .code(2)
        .stderr_has("there is no job `missing` in");
}

#[test]
fn bad_arguments_exit_2() {
    let env = Env::new();
    env.run(&["run"]).code(2);
    env.run(&["frobnicate"]).code(2);
    // An interval of zero would spin: refused before anything starts.
    env.run(&["schedule", "--watch-every", "0s"])
        .code(2)
        .stderr_has("must be longer than zero");
}

#[test]
fn jobs_json_lists_next_fire_times_with_offsets() {
    let env = Env::new();
    let job = job_to(&["ana@example.com"]);
    env.job(
        "standup",
        &format!("schedule = \"50 8 * * Mon-Fri\"\ntimezone = \"Europe/Berlin\"\n{job}"),
    );
    env.job("manual", &job);
    let jobs = env.run(&["jobs", "--json", "--next", "3"]).code(0).json();
    let standup = by_name(&jobs, "standup");
    assert_eq!(standup["schedule"], "50 8 * * Mon-Fri");
    assert_eq!(standup["timezone"], "Europe/Berlin");
    let next = standup["next"].as_array().unwrap();
    assert_eq!(next.len(), 3);
    for t in next {
        let t = chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap()).unwrap();
        assert_eq!(t.format("%H:%M").to_string(), "08:50");
        assert!(
            matches!(t.offset().local_minus_utc(), 3600 | 7200),
            "Berlin's offset: {t}"
        );
    }
    let manual = by_name(&jobs, "manual");
    assert_eq!(manual["next"], Value::Array(vec![]));
    assert_eq!(manual["last_run"], Value::Null);
    let utc = standup["next_utc"][0].as_str().unwrap();
    assert!(
        utc.ends_with("+00:00") && (utc.contains("T07:50:00") || utc.contains("T06:50:00")),
        "{utc}"
    );
}

#[test]
fn jobs_lists_the_valid_and_exits_2_naming_the_invalid() {
    let env = Env::new();
    let job = job_to(&["ana@example.com"]);
    env.job("good", &format!("schedule = \"@daily\"\n{job}"));
    env.job("never", &format!("schedule = \"0 0 30 2 *\"\n{job}"));
    let run = env.run(&["jobs"]);
    run.code(2)
        .stdout_has("good  \"@daily\"  UTC")
        .stdout_has("last run: never")
        .stderr_has("never.toml:1:12")
        .stderr_has("can never fire");
}

#[test]
fn every_mistake_of_a_file_is_reported_in_one_pass_with_the_closest_key() {
    let env = Env::new();
    let job = job_to(&["ana@example.com"])
        .replace(
            "description = \"test\"",
            "descripton = \"test\"\ntimezone = \"Mars/Olympus\"",
        )
        .replace(
            "concurrency = 4",
            "concurrency = \"four\"\nmax_atempts = 3\nretries = 2",
        );
    env.job("messy", &job);
    let run = env.run(&["validate", "jobs/messy.toml"]);
    run.code(2)
        .stderr_has("unknown field `descripton`")
        .stderr_has("did you mean `description`?")
        .stderr_has("messy.toml:1:1")
        .stderr_has("invalid type: string \"four\"")
        .stderr_has("unknown field `max_atempts`")
        .stderr_has("did you mean `max_attempts`?")
        .stderr_has("unknown field `retries`")
        .stderr_has("unknown timezone `Mars/Olympus`")
        .stderr_has("use an IANA name")
        .stderr_has("messy.toml:2:12");
    assert_eq!(run.stderr.matches("error:").count(), 5, "{}", run.stderr);
}

#[test]
fn a_secret_or_token_written_into_a_job_file_is_refused_without_showing_it() {
    let env = Env::new();
    let secret = env.emu().knobs().client_secret;
    let job = job_to(&["ana@example.com"]).replace("Hello", &format!("key {secret}"));
    env.job("leaky", &job);
    let run = env.run(&["validate", "jobs/leaky.toml"]);
    run.code(2)
        .stderr_has("the job file contains the client secret of app `default`");
    assert!(!run.stderr.contains(&secret), "{}", run.stderr);
    let jwt = "eyJhbGciOiJIUzUxMiJ9.eyJ2ZXIiOjEwLCJhdWlkIjoiYWJjIn0.c2lnbmF0dXJl";
    env.job("token", &job_to(&["ana@example.com"]).replace("Hello", jwt));
    let run = env.run(&["validate", "jobs/token.toml"]);
    run.code(2)
        .stderr_has("line 7 of the job file holds what looks like a Zoom token");
    assert!(!run.stderr.contains(jwt));
}

#[test]
fn a_mistaken_line_that_may_hold_a_secret_is_named_but_not_shown() {
    let env = Env::new();
    let job = job_to(&["ana@example.com"]).replace(
        "description = \"test\"",
        "description = \"test\"\napi_token = \"tok-9f8e7d6c5b4a\"",
    );
    env.job("leaky", &job);
    let run = env.run(&["validate", "jobs/leaky.toml"]);
    run.code(2)
        .stderr_has("line 2: unknown field `api_token`")
        .stderr_has("the line is not shown: it may hold a secret");
    assert!(!run.stderr.contains("tok-9f8e7d6c5b4a"), "{}", run.stderr);
}

#[test]
fn a_mistyped_timezone_gets_the_closest_iana_name() {
    let env = Env::new();
    let job = job_to(&["ana@example.com"]).replace(
        "description = \"test\"",
        "description = \"test\"\ntimezone = \"europe/berln\"",
    );
    env.job("tz", &job);
    env.run(&["validate", "jobs/tz.toml"])
        .code(2)
        .stderr_has("unknown timezone `europe/berln`")
        .stderr_has("did you mean \"Europe/Berlin\"?");
}

#[test]
fn names_and_addresses_with_hidden_characters_are_refused_and_shown_escaped() {
    let env = Env::new();
    // A job file whose name carries a terminal escape, and one with a zero-width space in an
    // address: neither reaches a terminal as it is, both are refused.
    std::fs::write(
        env.jobs_dir().join("team\u{1b}[2J\u{7}.toml"),
        job_to(&["ana@example.com"]),
    )
    .unwrap();
    env.job(
        "lookalike",
        &job_to(&["ana@example.com"]).replace(
            "emails = [\"ana@example.com\"]",
            "emails = [\"ana\u{200b}@example.com\", \"ana@example.com\"]",
        ),
    );
    for args in [&["validate"][..], &["jobs"]] {
        let run = env.run(args);
        run.code(2)
            .stderr_has("team\\u{1b}[2J\\u{7}")
            .stderr_has("has a control, bidirectional or invisible character (\\u{1b})")
            .stderr_has("ana\\u{200b}@example.com")
            .stderr_has("has a control or invisible character (\\u{200b})");
        for raw in ['\u{1b}', '\u{7}', '\u{200b}'] {
            assert!(
                !run.stderr.contains(raw),
                "{raw:?} printed as it is:\n{}",
                run.stderr
            );
            assert!(
                !run.stdout.contains(raw),
                "{raw:?} printed as it is:\n{}",
                run.stdout
            );
        }
    }
    // In a recipients file, a byte order mark inside an address.
    std::fs::remove_file(env.jobs_dir().join("team\u{1b}[2J\u{7}.toml")).unwrap();
    std::fs::remove_file(env.jobs_dir().join("lookalike.toml")).unwrap();
    std::fs::write(
        env.jobs_dir().join("people.txt"),
        "ana@example.com\nbo\u{feff}@example.com\n",
    )
    .unwrap();
    env.job(
        "listed",
        "[recipients]\nfile = \"people.txt\"\n\n[message]\nhead = \"Hi\"\nbody = \"Hello\"\n",
    );
    env.run(&["validate", "listed"])
        .code(2)
        .stderr_has("people.txt:2: ")
        .stderr_has("invisible character");
    assert!(env.emu().messages().is_empty());
}

#[test]
fn more_buttons_than_zoom_shows_is_a_warning_and_the_job_runs() {
    let env = Env::new();
    let buttons: Vec<String> = (1..=6)
        .map(|i| format!("{{ text = \"Option {i}\", value = \"o{i}\" }}"))
        .collect();
    let job = job_to(&["ana@example.com"]).replace(
        "[delivery]",
        &format!(
            "[[message.blocks]]\ntype = \"actions\"\nbuttons = [{}]\n\n[delivery]",
            buttons.join(", ")
        ),
    );
    env.job("menu", &job.replace("body = ", "# body = "));
    env.run(&["validate", "menu"])
        .code(0)
        .stdout_has("ok: ")
        .stderr_has("warning: the message has 6 buttons")
        .stderr_has("groups the rest into a menu")
        .stderr_has("menu.toml:");
    env.login();
    env.run(&["run", "menu"]).code(0);
    let sent = env.emu().messages();
    let items = sent[0].content["body"][0]["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(items, 6, "all six go to Zoom");
}
