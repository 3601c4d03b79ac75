//! Channels by name: `#name` in a job's `channels` and in `send --to`, found among every page
//! of the channels the authorizing user can see and cached like JIDs; `zoomcast channels`.

use crate::harness::{Env, job_to};

/// `job_to(emails)` with `channels = [names...]` in its `[recipients]`.
fn job_to_channels(emails: &[&str], channels: &[&str]) -> String {
    let list: Vec<String> = channels.iter().map(|c| format!("{c:?}")).collect();
    job_to(emails).replace(
        "[recipients]\n",
        &format!("[recipients]\nchannels = [{}]\n", list.join(", ")),
    )
}

fn sent_to(env: &Env) -> Vec<String> {
    let mut to: Vec<String> = env.emu().messages().into_iter().map(|m| m.to_jid).collect();
    to.sort();
    to
}

#[test]
fn channels_lists_every_page_and_names_find_their_channel_once() {
    let env = Env::new();
    env.login();
    let listed = env.run(&["channels", "--json"]).code(0).json();
    let listed = listed.as_array().unwrap();
    assert_eq!(
        listed.len(),
        54,
        "General, On-call, two standups and 50 teams"
    );
    assert!(env.emu().stats().channel_pages >= 2, "more than one page");
    assert!(
        listed
            .iter()
            .any(|c| c["name"] == "team-50" && c["jid"] == "team-50@conference.xmpp.zoom.us")
    );
    env.run(&["channels"])
        .code(0)
        .stdout_has("#General  general@conference.xmpp.zoom.us");

    env.job("teams", &job_to_channels(&[], &["#general", "#Team-42"]));
    env.run(&["validate", "jobs/teams.toml"]).code(0);
    env.run(&["run", "teams"])
        .code(0)
        .stdout_has("2 recipients, 2 sent");
    assert_eq!(
        sent_to(&env),
        [
            "general@conference.xmpp.zoom.us",
            "team-42@conference.xmpp.zoom.us"
        ]
    );
    // The names are cached like JIDs: the next run lists no channel.
    let pages = env.emu().stats().channel_pages;
    env.run(&["run", "teams"]).code(0);
    assert_eq!(env.emu().stats().channel_pages, pages);
    assert_eq!(env.emu().messages().len(), 4);

    env.run(&["send", "--to", "#team-07", "hello team"]).code(0);
    let last = env.emu().messages().pop().unwrap();
    assert_eq!(last.to_jid, "team-07@conference.xmpp.zoom.us");
}

#[test]
fn an_unknown_or_shared_channel_name_fails_that_recipient_and_says_why() {
    let env = Env::new();
    env.login();
    env.job(
        "mixed",
        &job_to_channels(&["ana@example.com"], &["#genral", "#standup", "#payroll"]),
    );
    let run = env.run(&["run", "mixed"]);
    run.code(3)
        .stdout_has("4 recipients, 1 sent, 3 failed")
        .stdout_has("no channel named `#genral`; the closest: #General")
        .stdout_has("2 channels are named `#standup`")
        .stdout_has("standup-eng@conference.xmpp.zoom.us")
        .stdout_has("standup-ops@conference.xmpp.zoom.us")
        .stdout_has("no channel named `#payroll`");
    let hidden = job_to(&["ana@example.com"]).replace(
        "[recipients]\n",
        "[recipients]\nchannels = [\"#\", \"#\\u202Ex\"]\n",
    );
    env.job("empty", &hidden);
    env.run(&["validate", "jobs/empty.toml"])
        .code(2)
        .stderr_has("`#` names no channel")
        .stderr_has("control or invisible character");
}
