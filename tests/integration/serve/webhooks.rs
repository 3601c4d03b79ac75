//! Zoom's signed webhooks: only events Zoom signed are answered (the URL validation too),
//! the app's welcome on install, stalled clients cut off, and `schedule --listen`.

use super::*;

#[test]
fn webhooks_are_answered_only_when_zoom_signed_them() {
    let env = Env::new();
    env.login();
    let served = Served::start(&env);
    let secret = env.emu().knobs().webhook_secret;
    let now = chrono::Utc::now().timestamp();

    // Zoom's URL validation, sent (signed) by the emulator.
    let (status, body) = emulator_event(
        &env,
        &json!({"event": "endpoint.url_validation", "plain_token": "qgg8vlvZRS6UYooatFL8Aw"}),
    );
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(
        answer["encryptedToken"],
        validation_answer(
            &WebhookSecret::new(secret.clone()),
            "qgg8vlvZRS6UYooatFL8Aw"
        )
    );

    let event = br#"{"event":"meeting.started","payload":{}}"#;
    // Unsigned, tampered, signed with another secret, stale: refused before the body is read.
    assert_eq!(post(&served, event, &[]).0, 401, "unsigned");
    let tampered = br#"{"event":"meeting.started","payload":{"x":1}}"#;
    assert_eq!(post(&served, tampered, &signed(&secret, now, event)).0, 401);
    assert_eq!(
        post(&served, event, &signed("another secret", now, event)).0,
        401
    );
    assert_eq!(
        post(&served, event, &signed(&secret, now - 600, event)).0,
        401,
        "stale"
    );
    // An unsigned URL validation would make zoomcast sign any text an attacker chose.
    let validation = br#"{"event":"endpoint.url_validation","payload":{"plainToken":"v0:1:x"}}"#;
    assert_eq!(post(&served, validation, &[]).0, 401);

    // Signed: an event zoomcast has no use for is acknowledged; the same request again is a
    // replay.
    let headers = signed(&secret, now, event);
    assert_eq!(post(&served, event, &headers).0, 200);
    assert_eq!(post(&served, event, &headers).0, 401, "replayed");
    // Signed but not an event, or too large to read.
    let garbage = b"{not json";
    assert_eq!(
        post(&served, garbage, &signed(&secret, now, garbage)).0,
        400
    );
    // Answered before its body is read: written on a raw connection, since the server may
    // close it while the client is still writing (a client library would see a broken pipe).
    let huge = vec![b' '; 2 * 1024 * 1024];
    let headers = signed(&secret, now, &huge)
        .iter()
        .fold(String::new(), |all, (name, value)| {
            all + &format!("{name}: {value}\r\n")
        });
    let head = format!(
        "POST /webhooks/zoom HTTP/1.1\r\nHost: zoomcast\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{headers}\r\n",
        huge.len()
    );
    let answer = {
        use std::io::{Read as _, Write as _};
        let addr = served.base.trim_start_matches("http://").to_owned();
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let _ = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(&huge));
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    };
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    let metrics = scrape(&served);
    let count = |event: &str, verdict: &str| {
        series(
            &metrics,
            "zoomcast_webhook_events",
            &[("event", event), ("verdict", verdict)],
        )
    };
    assert_eq!(count("unverified", "unsigned"), Some(2.0), "{metrics}");
    assert_eq!(count("unverified", "bad_signature"), Some(2.0));
    assert_eq!(count("unverified", "stale"), Some(1.0));
    assert_eq!(count("unverified", "replayed"), Some(1.0));
    assert_eq!(count("meeting.started", "ignored"), Some(1.0));
    assert_eq!(count("endpoint.url_validation", "accepted"), Some(1.0));
    assert_eq!(count("malformed", "malformed"), Some(1.0));
    let log = served.stop();
    assert!(!log.contains(&secret), "the secret is never logged");
}

#[test]
fn installing_the_bot_is_answered_with_the_apps_welcome_message() {
    let env = Env::new();
    std::fs::write(
        env.dir.path().join("zoomcast.toml"),
        "welcome = \"Hi! I post the on-call hand-offs here. Write `stop` to opt out.\"\n",
    )
    .unwrap();
    let served = Served::start_with(&env, |cmd| {
        cmd.arg("--config")
            .arg(env.dir.path().join("zoomcast.toml"));
    });
    let (status, body) = emulator_event(
        &env,
        &json!({"event": "bot_installed", "user": "bo@example.com"}),
    );
    assert_eq!(status, 200, "{body}");
    // A Chatbot Message Object, as Zoom's chatbot authorization page shows it: the card is
    // wrapped in `content`, and nothing else is at the top.
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer.as_object().unwrap().len(), 1, "{answer}");
    let card = &answer["content"];
    assert_eq!(
        card["body"][0]["text"],
        "Hi! I post the on-call hand-offs here. Write `stop` to opt out."
    );
    assert_eq!(card["body"][0]["type"], "message");
    served.stop();
}

#[test]
fn stalled_clients_are_cut_off_and_cannot_take_every_connection() {
    use std::io::{Read, Write};

    let env = Env::new();
    let served = Served::start_with(&env, |cmd| {
        cmd.args(["--client-timeout", "1s", "--max-connections", "2"]);
    });
    let addr = served.base.trim_start_matches("http://").to_owned();
    // Two clients take both connections and never finish their headers.
    let mut stalled: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    // A third is served once the server has cut them off.
    let health = http().get(served.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    for stream in &mut stalled {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut rest = Vec::new();
        // The server closes the connection (with or without an answer first), long before the
        // client's own 20 s would run out.
        let read = stream.read_to_end(&mut rest);
        let closed = match &read {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "{read:?}");
    }
    // A client that sends its headers and then stalls on the body gets 408.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    // (Its headers are those of a signed request: a body is read only after they pass.)
    let at = chrono::Utc::now().timestamp();
    let head = format!(
        "POST /webhooks/zoom HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\
         x-zm-request-timestamp: {at}\r\nx-zm-signature: v0={}\r\n\r\n{{",
        "0".repeat(64)
    );
    slow.write_all(head.as_bytes()).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    served.stop();
}

#[test]
fn schedule_listen_serves_beside_the_scheduler() {
    let env = Env::new();
    env.login();
    env.job("team", &job_to(&["ana@example.com"]));
    let daemon = crate::schedule::Daemon::start(&env, &["--listen", "127.0.0.1:0"]);
    let base = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        served_at(&daemon.log())
    })
    .expect("the scheduler announces where it serves");
    let health = http().get(format!("{base}/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    // The scheduler still runs jobs (here by hand, through its socket), and the server sees them.
    env.run(&["run", "team"]).code(0);
    let metrics = http()
        .get(format!("{base}/metrics"))
        .header("accept", "application/openmetrics-text")
        .send()
        .unwrap()
        .text()
        .unwrap();
    let runs = series(
        &metrics,
        "zoomcast_runs",
        &[("job_name", "team"), ("outcome", "succeeded")],
    );
    assert_eq!(runs, Some(1.0), "{metrics}");
    let (log, _) = daemon.stop();
    assert!(log.contains("scheduler started"), "{log}");
    assert!(
        log.contains("app `default` has no webhook secret token: /webhooks/zoom answers 503"),
        "said once at start, not at the first event: {log}"
    );
}
