//! `zoomcast send`: one message without a job file, to emails, user JIDs and channels,
//! journaled as a run of the job `send`, with the exit codes of `run`.

use crate::harness::Env;
use crate::serve::Served;

#[test]
fn send_reaches_an_email_a_user_jid_and_a_channel_and_is_journaled_as_typed() {
    let env = Env::new();
    env.login();
    let bo = env.emu().directory().find("bo@example.com").unwrap().jid;
    let text = "Deploy {{ done }} at 10:00 — *really*";
    env.run(&[
        "send",
        "--to",
        &format!("ana@example.com,{bo}"),
        "--to",
        "general@conference.xmpp.zoom.us",
        "--head",
        "Release",
        text,
    ])
    .code(0)
    .stdout_has("3 recipients, 3 sent");
    let messages = env.emu().messages();
    assert_eq!(messages.len(), 3);
    for m in &messages {
        assert_eq!(m.content["head"]["text"], "Release", "{m:?}");
        assert_eq!(m.content["body"][0]["text"], text, "sent as typed: {m:?}");
    }
    let run = env.run(&["history", "send", "--json"]).code(0).json();
    let run = &run.as_array().unwrap()[0];
    assert_eq!(
        (run["job"].as_str(), run["status"].as_str()),
        (Some("send"), Some("succeeded"))
    );
    let id = run["run_id"].to_string();
    let details = env.run(&["history", "--run", &id, "--json"]).code(0).json();
    assert_eq!(details["vars"]["send_text"], text);

    // A second send is a run of its own, and an unknown person fails that recipient: exit 3.
    env.run(&["send", "--to", "nobody@example.com", "--json", "hello"])
        .code(3);
    assert_eq!(
        env.run(&["history", "send", "--json"])
            .code(0)
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn send_refuses_a_bad_address_or_an_empty_message_before_sending_and_works_beside_serve() {
    let env = Env::new();
    env.login();
    env.run(&["send", "--to", "not an address", "hi"])
        .code(2)
        .stderr_has("not an address");
    env.run(&["send", "--to", "ana@example.com", " "])
        .code(2)
        .stderr_has("the message is empty");
    env.run(&["send", "hi"]).code(2);
    assert!(env.emu().messages().is_empty());

    // `-` reads the message from standard input.
    let mut child = env
        .command(&["send", "--to", "ana@example.com", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"line one\nline two\n").unwrap();
    }
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(
        env.emu().messages()[0].content["body"][0]["text"],
        "line one\nline two"
    );

    let served = Served::start(&env);
    env.run(&["send", "--to", "ana@example.com", "through serve"])
        .code(0)
        .stderr_has("sending through it");
    assert_eq!(
        env.emu().messages()[1].content["body"][0]["text"],
        "through serve"
    );
    drop(served);
}
