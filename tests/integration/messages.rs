//! What a job sends and to whom: recipients by email, chat user JID and channel JID.

use crate::harness::{Env, job_to};

/// `job_to(emails)` with `extra` lines added to its `[recipients]` table.
fn job_with_recipients(emails: &[&str], extra: &str) -> String {
    job_to(emails).replace("[recipients]\n", &format!("[recipients]\n{extra}\n"))
}

#[test]
fn users_and_channels_addressed_by_jid_are_sent_to_without_a_lookup() {
    let env = Env::new();
    env.login();
    let bo = env.emu().directory().find("bo@example.com").unwrap().jid;
    let extra = format!(
        "jids = [\"{bo}\", \"{}\"]\nchannels = [\"general@conference.xmpp.zoom.us\", \"gone@conference.xmpp.zoom.us\"]",
        bo.to_uppercase()
    );
    env.job("mixed", &job_with_recipients(&["ana@example.com"], &extra));
    let lookups = env.emu().stats().user_lookups;
    env.run(&["run", "mixed"])
        .code(3)
        .stdout_has("4 recipients, 3 sent, 1 failed")
        .stdout_has("gone@conference.xmpp.zoom.us")
        .stdout_has("No channel or user can be found");
    assert_eq!(
        env.emu().stats().user_lookups - lookups,
        1,
        "only the email was looked up"
    );
    let mut to: Vec<_> = env
        .emu()
        .messages()
        .into_iter()
        .map(|m| (m.to_email, m.to_jid))
        .collect();
    to.sort();
    let ana = env.emu().directory().find("ana@example.com").unwrap().jid;
    assert_eq!(
        to,
        [
            ("ana@example.com".into(), ana),
            ("bo@example.com".into(), bo.clone()),
            (
                "general@conference.xmpp.zoom.us".into(),
                "general@conference.xmpp.zoom.us".into()
            ),
        ]
    );
    // No profile without a lookup: the template's fields are empty for a JID.
    let to_channel = env
        .emu()
        .messages()
        .into_iter()
        .find(|m| m.to_jid.starts_with("general@"))
        .unwrap();
    assert_eq!(
        to_channel.content["body"][0]["text"], "Hi  <>",
        "{to_channel:?}"
    );
    let history = env.run(&["history", "--run", "1", "--json"]).code(0).json();
    let keys: Vec<_> = history["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["recipient"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        keys.contains(&bo),
        "a JID recipient is named by its JID: {keys:?}"
    );
}

#[test]
fn a_jid_or_channel_that_is_not_one_is_named_with_its_line_and_column() {
    let env = Env::new();
    let extra = "jids = [\"ana@example.com\"]\nchannels = [\"general@xmpp.zoom.us\"]";
    env.job("bad", &job_with_recipients(&["ana@example.com"], extra));
    env.run(&["validate", "jobs/bad.toml"])
        .code(2)
        .stderr_has("`ana@example.com` is not a chat user's JID")
        .stderr_has("bad.toml:4:9")
        .stderr_has("`general@xmpp.zoom.us` is not a channel's JID")
        .stderr_has("bad.toml:5:13")
        .stderr_has("xxxx@conference.xmpp.zoom.us");
}

/// A job to ana whose `[message]` body is `body`, with `extra` top-level lines and tables.
fn job_with_body(body: &str, extra: &str) -> String {
    let job = job_to(&["ana@example.com"]);
    let start = job.find("body = ").unwrap();
    let end = start + job[start..].find('\n').unwrap();
    format!("{extra}\n{}body = {body:?}{}", &job[..start], &job[end..])
}

#[test]
fn vars_the_job_the_run_and_its_start_reach_the_message() {
    let env = Env::new();
    env.login();
    let body = "{{ greeting }} {{ first_name }}: see {{ runbook }} ({{ job }}, run {{ run_id }}, {{ now | date(format=\"%Y\") }}, {{ now[:4] }})";
    let vars = "timezone = \"Pacific/Kiritimati\"\n\n[vars]\ngreeting = \"Hello\"\nrunbook = \"https://wiki.example.com/oncall\"\n";
    env.job("handoff", &job_with_body(body, vars));
    env.run(&["validate", "jobs/handoff.toml"]).code(0);
    env.run(&["run", "handoff"]).code(0);
    let sent = env.emu().messages().pop().unwrap();
    let text = sent.content["body"][0]["text"].as_str().unwrap().to_owned();
    // `now` is the run's start in the job's timezone (UTC+14 here), as the date filter reads it.
    let year = chrono::Utc::now()
        .with_timezone(&chrono_tz::Pacific::Kiritimati)
        .format("%Y")
        .to_string();
    assert_eq!(
        text,
        format!("Hello Ana: see https://wiki.example.com/oncall (handoff, run 1, {year}, {year})")
    );
}

#[test]
fn vars_that_shadow_a_variable_or_are_not_values_are_refused_with_their_line() {
    let env = Env::new();
    let vars = "[vars]\nemail = \"x\"\nteam = [\"a\", \"b\"]\n\"bad name\" = \"y\"\n";
    env.job(
        "bad",
        &job_with_body("{{ email }} {{ now | date(format=\"%Q\") }}", vars),
    );
    env.run(&["validate", "jobs/bad.toml"])
        .code(2)
        .stderr_has("`email` is already a variable of every message")
        .stderr_has("bad.toml:2:1")
        .stderr_has("`team` must be a string, a number or true/false")
        .stderr_has("bad.toml:3:8")
        .stderr_has("`bad name` cannot be a template variable")
        .stderr_has("`%Q` is not a date format");
}

/// A job to `emails` whose `[message]` table is `message` (TOML, from its first key on).
fn job_with_message(emails: &[&str], message: &str) -> String {
    let job = job_to(emails);
    let start = job.find("[message]").unwrap();
    let end = job.find("[delivery]").unwrap();
    format!("{}[message]\n{message}\n{}", &job[..start], &job[end..])
}

const CARD: &str = r#"head = "On-call hand-off"
sub_head = "Week of {{ now | date(format=\"%d %B\") }}"

[[message.blocks]]
type = "message"
text = "Hi {{ first_name }}, you are on call from Monday 09:00."

[[message.blocks]]
type = "fields"
items = [{ key = "Runbook", value = "https://wiki.example.com/oncall", short = true }, { key = "Email", value = "{{ email }}" }]

[[message.blocks]]
type = "divider"

[[message.blocks]]
type = "attachments"
resource_url = "https://wiki.example.com/oncall.pdf"
title = "Runbook for {{ first_name }}"
ext = "pdf"
size = 2048

[[message.blocks]]
type = "actions"
buttons = [{ text = "Acknowledge", value = "ack", style = "Primary" }, { text = "Swap", value = "swap" }]
"#;

#[test]
fn a_card_with_every_block_type_reaches_zoom_as_its_content_object() {
    let env = Env::new();
    env.login();
    env.job("handoff", &job_with_message(&["ana@example.com"], CARD));
    env.run(&["run", "handoff"]).code(0);
    let sent = env.emu().messages().pop().unwrap();
    let week = chrono::Utc::now().format("%d %B").to_string();
    assert_eq!(
        sent.content,
        serde_json::json!({
            "head": { "text": "On-call hand-off", "sub_head": { "text": format!("Week of {week}") } },
            "body": [
                { "type": "message", "text": "Hi Ana, you are on call from Monday 09:00." },
                { "type": "fields", "items": [
                    { "key": "Runbook", "value": "https://wiki.example.com/oncall", "short": true },
                    { "key": "Email", "value": "ana@example.com", "short": false },
                ] },
                { "type": "divider" },
                { "type": "attachments", "resource_url": "https://wiki.example.com/oncall.pdf",
                  "information": { "title": { "text": "Runbook for Ana" } }, "ext": "pdf", "size": 2048 },
                { "type": "actions", "items": [
                    { "text": "Acknowledge", "value": "ack", "style": "Primary" },
                    { "text": "Swap", "value": "swap", "style": "Default" },
                ] },
            ]
        })
    );
}

#[test]
fn a_content_template_is_sent_as_the_json_it_renders() {
    let env = Env::new();
    env.login();
    let message = r#"content = '''
{"head": {"text": {{ ("Hello " ~ first_name) | tojson }}},
 "body": [{"type": "message", "text": {{ job | tojson }}}]}
'''"#;
    env.job("raw", &job_with_message(&["ana@example.com"], message));
    env.run(&["run", "raw"]).code(0);
    let sent = env.emu().messages().pop().unwrap();
    assert_eq!(
        sent.content,
        serde_json::json!({"head": {"text": "Hello Ana"}, "body": [{"type": "message", "text": "raw"}]})
    );
}

#[test]
fn a_message_zoom_would_refuse_is_named_at_validate_with_its_line() {
    let env = Env::new();
    let bad = r#"head = "Hi"

[[message.blocks]]
type = "message"
buttons = [{ text = "A", value = "a" }]

[[message.blocks]]
type = "banner"

[[message.blocks]]
type = "actions"
buttons = [{ text = "1", value = "1", style = "Loud" }, { text = "2", value = "2" }, { text = "3", value = "3" }, { text = "4", value = "4" }, { text = "5", value = "5" }, { text = "6", value = "6" }]
"#;
    env.job("bad", &job_with_message(&["ana@example.com"], bad));
    env.run(&["validate", "jobs/bad.toml"])
        .code(2)
        .stderr_has("a message block has no `buttons`")
        .stderr_has("bad.toml:11:11")
        .stderr_has("the message block has no `text`")
        .stderr_has("`banner` is not a block type")
        .stderr_has("the types are message, fields, actions, attachments, divider")
        .stderr_has("`Loud` is not a button style");
    // Within the limits only with short values: the sample render finds what every recipient
    // would break.
    let long = format!("head = \"Hi\"\nbody = \"{}\"\n", "x".repeat(4097));
    env.job("long", &job_with_message(&["ana@example.com"], &long));
    env.run(&["validate", "jobs/long.toml"])
        .code(2)
        .stderr_has("the text is longer than 4096 characters");
    let both = "head = \"Hi\"\nbody = \"text\"\n\n[[message.blocks]]\ntype = \"divider\"\n";
    env.job("both", &job_with_message(&["ana@example.com"], both));
    env.run(&["validate", "jobs/both.toml"])
        .code(2)
        .stderr_has("both a text `body` and blocks");
    let unquoted = "content = '{\"head\": {\"text\": \"{{ first_name }}\"}}'\nhead = \"x\"\n";
    env.job("mixed", &job_with_message(&["ana@example.com"], unquoted));
    env.run(&["validate", "jobs/mixed.toml"])
        .code(2)
        .stderr_has("`content` is the whole message");
}

#[test]
fn a_recipient_whose_message_breaks_zoom_limits_fails_alone_and_nothing_is_sent_to_them() {
    let env = Env::new();
    env.login();
    let dir = env.jobs_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let note = "y".repeat(300);
    std::fs::write(
        dir.join("team.csv"),
        format!("email,note\nana@example.com,short\nbo@example.com,{note}\n"),
    )
    .unwrap();
    let message = "head = \"Notes\"\n\n[[message.blocks]]\ntype = \"fields\"\nitems = [{ key = \"Note\", value = \"{{ note }}\" }]\n";
    let job = job_with_message(&[], message).replace("emails = []", "file = \"team.csv\"");
    env.job("notes", &job);
    env.run(&["run", "notes"])
        .code(3)
        .stdout_has("2 recipients, 1 sent, 1 failed")
        .stdout_has("a field's value is longer than 256 characters");
    let to: Vec<_> = env
        .emu()
        .messages()
        .into_iter()
        .map(|m| m.to_email)
        .collect();
    assert_eq!(to, ["ana@example.com"]);
}

/// Deletes `message_id` at the emulator as the bot would, behind zoomcast's back (what a
/// recall cut short by a crash leaves: deleted in Zoom, not recorded).
fn delete_behind_zoomcasts_back(env: &Env, message_id: &str) {
    let knobs = env.emu().knobs();
    let client = reqwest::blocking::Client::new();
    let token: serde_json::Value = client
        .post(format!(
            "{}/oauth/token?grant_type=client_credentials",
            env.emulator_url()
        ))
        .basic_auth(&knobs.client_id, Some(&knobs.client_secret))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let user_jid = env.emu().directory().find("admin@example.com").unwrap().jid;
    let deleted = client
        .delete(format!(
            "{}/v2/im/chat/messages/{message_id}",
            env.emulator_url()
        ))
        .query(&[
            ("robot_jid", knobs.robot_jid.as_str()),
            ("account_id", knobs.account_id.as_str()),
            ("user_jid", user_jid.as_str()),
        ])
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(deleted.status(), 200);
}

#[test]
fn recall_deletes_each_message_once_and_resumes_what_a_crash_cut_short() {
    let env = Env::new();
    env.login();
    let people = [
        "ana@example.com",
        "bo@example.com",
        "chen@example.com",
        "nobody@example.com",
    ];
    env.job("team", &job_to(&people));
    env.run(&["run", "team"]).code(3);
    // A recall that deleted chen's message and crashed before recording it.
    let chen = env
        .emu()
        .messages()
        .into_iter()
        .find(|m| m.to_email == "chen@example.com")
        .unwrap();
    delete_behind_zoomcasts_back(&env, &chen.message_id);
    env.run(&["recall", "team"])
        .code(0)
        .stdout_has("run 1 of job `team`: 3 messages recalled, 0 already recalled, 1 without a message to change, 0 failed");
    assert!(env.emu().messages().iter().all(|m| m.deleted));
    assert_eq!(env.emu().stats().deletes, 3, "each message deleted once");
    // Twice changes nothing.
    env.run(&["recall", "team"])
        .code(0)
        .stdout_has("0 messages recalled, 3 already recalled");
    assert_eq!(env.emu().stats().deletes, 3);
    let history = env.run(&["history", "--run", "1", "--json"]).code(0).json();
    let recalled = history["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["recalled_at"].is_string())
        .count();
    assert_eq!(recalled, 3, "{history}");
    env.run(&["history", "--run", "1"])
        .code(0)
        .stdout_has("; recalled at ");
    // An edit leaves recalled messages alone.
    env.run(&["edit", "team"]).code(0).stdout_has(
        "0 messages edited, 0 already as the job renders it, 4 without a message to change",
    );
}

#[test]
fn edit_replaces_each_card_with_the_job_as_it_renders_now_and_again_changes_nothing() {
    let env = Env::new();
    env.login();
    let job = job_to(&["ana@example.com", "bo@example.com"]);
    env.job("team", &job);
    env.run(&["run", "team"]).code(0);
    env.job(
        "team",
        &job.replace("Hi {{ first_name }}", "Sorry {{ first_name }}, a fix"),
    );
    env.run(&["edit", "team", "--run", "1"])
        .code(0)
        .stdout_has("2 messages edited, 0 already as the job renders it");
    let bodies: Vec<_> = env
        .emu()
        .messages()
        .into_iter()
        .map(|m| {
            (
                m.to_email,
                m.edits,
                m.content["body"][0]["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        bodies.contains(&(
            "ana@example.com".into(),
            1,
            "Sorry Ana, a fix <ana@example.com>".into()
        )),
        "{bodies:?}"
    );
    env.run(&["edit", "team"])
        .code(0)
        .stdout_has("0 messages edited, 2 already as the job renders it");
    assert_eq!(env.emu().stats().edits, 2);
    let history = env.run(&["history", "--run", "1", "--json"]).code(0).json();
    assert!(
        history["deliveries"][0]["edited_at"].is_string(),
        "{history}"
    );
    // A run of another job, or one that does not exist, is refused by name.
    env.job("other", &job_to(&["ana@example.com"]));
    env.run(&["recall", "other", "--run", "1"])
        .code(1)
        .stderr_has("run 1 is of job `team`, not `other`");
    env.run(&["edit", "team", "--run", "9"])
        .code(1)
        .stderr_has("there is no run 9");
    env.run(&["recall", "other"])
        .code(1)
        .stderr_has("job `other` has no runs yet");
}

#[test]
fn a_run_whose_details_were_pruned_cannot_be_recalled_and_says_why() {
    let env = Env::new();
    env.login();
    let job = job_to(&["ana@example.com"])
        .replace("concurrency = 4", "concurrency = 4\nkeep_details = 1");
    env.job("team", &job);
    env.run(&["run", "team"]).code(0);
    env.run(&["run", "team"]).code(0);
    env.run(&["recall", "team", "--run", "1"])
        .code(1)
        .stderr_has("run 1 no longer keeps its per-recipient details");
    assert_eq!(env.emu().stats().deletes, 0);
    env.run(&["recall", "team"])
        .code(0)
        .stdout_has("run 2 of job `team`: 1 messages recalled");
}

#[test]
fn an_acknowledge_button_the_message_does_not_have_is_named_at_validate() {
    let env = Env::new();
    let message = "head = \"Hi\"\n\n[[message.blocks]]\ntype = \"actions\"\nbuttons = [{ text = \"OK\", value = \"ok\" }]\n\n[acknowledge]\nbutton = \"ack\"\nmax_reminders = 20\n";
    let templated = message
        .replace("value = \"ok\"", "value = \"{{ job }}\"")
        .replace("button = \"ack\"", "button = \"{{ job }}\"");
    env.job(
        "templated",
        &job_with_message(&["ana@example.com"], &templated),
    );
    env.run(&["validate", "jobs/templated.toml"])
        .code(2)
        .stderr_has("the acknowledging button's value is a template");
    env.job("bad", &job_with_message(&["ana@example.com"], message));
    env.run(&["validate", "jobs/bad.toml"])
        .code(2)
        .stderr_has("no button of the message has the value `ack`")
        .stderr_has("the message's button values: ok")
        .stderr_has("`max_reminders` is 20")
        .stderr_has("`max_reminders` without `remind_after`");
}

#[test]
fn the_shipped_examples_validate_and_each_sends_what_it_says() {
    let env = Env::new();
    env.login();
    let jobs = crate::harness::repo_root().join("jobs");
    let jobs = jobs.to_str().unwrap();
    let run = env.run(&["--jobs", jobs, "validate"]);
    run.code(0);
    for example in ["example", "daily-roster", "announcement", "oncall-handoff"] {
        assert!(
            run.stdout.contains(&format!("ok: {jobs}/{example}.toml")),
            "{}",
            run.stdout
        );
    }
    env.run(&["--jobs", jobs, "run", "daily-roster"])
        .code(0)
        .stdout_has("4 recipients, 4 sent");
    let chen = env
        .emu()
        .messages()
        .into_iter()
        .find(|m| m.to_email == "chen@example.com")
        .unwrap();
    assert_eq!(chen.content["head"]["text"], "Search stand-up at 09:00");
    assert_eq!(
        chen.content["body"][0]["text"],
        "Hi Chen, the Search stand-up is in the Green room today; Avery hosts."
    );
    env.run(&["--jobs", jobs, "run", "announcement"]).code(0);
    let to_channel = env.emu().messages().pop().unwrap();
    assert_eq!(to_channel.to_jid, "general@conference.xmpp.zoom.us");
    assert_eq!(to_channel.content["body"][1]["type"], "attachments");
    env.run(&["--jobs", jobs, "run", "oncall-handoff"]).code(0);
    let card = env.emu().messages().pop().unwrap();
    assert_eq!(card.to_email, "bo@example.com");
    assert_eq!(card.content["body"][3]["items"][0]["value"], "ack");
}

#[test]
fn an_edit_cut_short_finishes_when_run_again() {
    let env = Env::new();
    env.login();
    let job = job_to(&["ana@example.com", "bo@example.com", "chen@example.com"])
        .replace("concurrency = 4", "concurrency = 1\nmax_attempts = 1");
    env.job("team", &job);
    env.run(&["run", "team"]).code(0);
    env.job(
        "team",
        &job.replace("Hi {{ first_name }}", "Update for {{ first_name }}"),
    );
    // Zoom takes one edit a second and the job tries each once: the edit stops after the
    // first one or two, keeping what it did.
    env.adjust_knobs(|k| {
        k.send_rate_limit = Some(1);
        k.retry_after = zoomcast::emulator::RetryAfterStyle::Absent;
    });
    env.run(&["edit", "team"])
        .code(1)
        .stderr_has("zoom kept failing");
    let done = env.emu().stats().edits;
    assert!((1..=2).contains(&done), "{done}");
    env.adjust_knobs(|k| k.send_rate_limit = None);
    let finished = env.run(&["edit", "team", "--json"]).code(0).json();
    assert_eq!(finished["unchanged"], done, "{finished}");
    assert_eq!(finished["changed"], 3 - done, "{finished}");
    env.run(&["edit", "team"])
        .code(0)
        .stdout_has("0 messages edited, 3 already as the job renders it");
    assert!(env.emu().messages().iter().all(|m| m.edits == 1));
}

#[test]
fn a_run_sets_its_own_values_of_declared_vars_and_keeps_them_for_an_edit() {
    let env = Env::new();
    env.login();
    let job = job_with_body("deployed to {{ env }}", "");
    env.job("deploy", &format!("{job}\n[vars]\nenv = \"staging\"\n"));
    let text = |env: &Env| {
        let sent = env.emu().messages().pop().unwrap();
        sent.content["body"][0]["text"].as_str().unwrap().to_owned()
    };
    env.run(&["run", "deploy"]).code(0);
    assert_eq!(text(&env), "deployed to staging");
    env.run(&["run", "deploy", "--var", "env=prod=eu"]).code(0);
    assert_eq!(text(&env), "deployed to prod=eu");
    let history = env.run(&["history", "--run", "2", "--json"]).code(0).json();
    assert_eq!(history["vars"]["env"], "prod=eu", "{history}");
    // An edit renders the run again with the values it was sent with.
    env.run(&["edit", "deploy", "--run", "2"]).code(0);
    let edited = env.emu().messages().pop().unwrap();
    assert_eq!(edited.edits, 1);
    assert_eq!(edited.content["body"][0]["text"], "deployed to prod=eu");

    env.run(&["run", "deploy", "--var", "region=eu"])
        .code(2)
        .stderr_has("--var: job `deploy` declares no variable `region` in [vars]; it declares env");
    env.run(&["run", "deploy", "--var", "env"])
        .code(2)
        .stderr_has("`env` is not NAME=VALUE");
    assert_eq!(
        env.emu().messages().len(),
        2,
        "nothing sent for a bad --var"
    );
}
