//! `serve` facing strangers on the network: headers checked before a body is read, a flood of
//! large bodies held to a budget, idle connections that take no serving slot, a replay after a
//! restart, and an install's state used twice.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::harness::Env;
use crate::serve::{
    Served, http, optout_count, post, serve_for_installs, signed, start_install, visit,
};

/// The address a `serve` listens on, for raw connections.
fn address(served: &Served) -> String {
    served.base.trim_start_matches("http://").to_owned()
}

/// Writes `head` (and `body`) on a new connection and reads the answer until the server
/// closes it, for at most `patience`: what arrived (empty if nothing did).
fn exchange(addr: &str, head: &str, body: &[u8], patience: Duration) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(patience)).unwrap();
    // The server may answer and close before the body is all written: that is no failure.
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body));
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// A webhook request's head declaring a body of `length` bytes, with `headers` lines.
fn webhook_head(length: usize, headers: &str) -> String {
    format!(
        "POST /webhooks/zoom HTTP/1.1\r\nHost: zoomcast\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n{headers}\r\n"
    )
}

/// The highest resident memory of process `pid` so far (`VmHWM`), in bytes.
fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

#[test]
fn a_webhook_whose_headers_fail_is_refused_before_its_body_is_read() {
    let env = Env::new();
    let served = Served::start_with(&env, |cmd| {
        cmd.args(["--client-timeout", "60s"]);
    });
    let addr = address(&served);
    let now = chrono::Utc::now().timestamp();
    let well_formed = format!("x-zm-signature: v0={}\r\n", "ab".repeat(32));
    for (why, headers) in [
        ("unsigned", String::new()),
        (
            "stale",
            format!("x-zm-request-timestamp: {}\r\n{well_formed}", now - 600),
        ),
        (
            "malformed",
            format!("x-zm-request-timestamp: {now}\r\nx-zm-signature: sha256=zz\r\n"),
        ),
    ] {
        // A megabyte is announced and none is sent: the answer comes without it, long before
        // the 60 s the server gives a request (the client waits 20 s).
        let answer = exchange(
            &addr,
            &webhook_head(1_000_000, &headers),
            b"",
            Duration::from_secs(20),
        );
        assert!(answer.starts_with("HTTP/1.1 401"), "{why}: {answer:?}");
    }
    // Well-formed headers: the body is awaited (and its signature then checked).
    let fresh = format!("x-zm-request-timestamp: {now}\r\n{well_formed}");
    let answer = exchange(
        &addr,
        &webhook_head(2, &fresh),
        b"{}",
        Duration::from_secs(20),
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
    let log = served.stop();
    assert!(log.contains("not signed"), "{log}");
}

#[test]
fn idle_connections_take_no_serving_slot_and_the_oldest_make_room() {
    let env = Env::new();
    // Two serving slots, eight connections open at most, and a minute for headers: without the
    // fix, two silent connections would hold the server for that minute.
    let served = Served::start_with(&env, |cmd| {
        cmd.args([
            "--max-connections",
            "2",
            "--header-timeout",
            "60s",
            "--client-timeout",
            "60s",
        ]);
    });
    let addr = address(&served);
    let mut idle: Vec<TcpStream> = (0..12)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    // Each served beside them, the probe and Zoom alike.
    let health = http().get(served.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    let secret = env.emu().knobs().webhook_secret;
    let event = br#"{"event":"meeting.started","payload":{}}"#;
    let now = chrono::Utc::now().timestamp();
    assert_eq!(post(&served, event, &signed(&secret, now, event)).0, 200);
    // The oldest silent connection was closed to make room, long before its minute.
    let oldest = &mut idle[0];
    oldest
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut rest = Vec::new();
    let closed = match oldest.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "the oldest idle connection is closed");
    served.stop();
}

#[test]
fn a_flood_of_large_wrongly_signed_bodies_costs_bounded_memory() {
    let env = Env::new();
    let served = Served::start(&env);
    let addr = address(&served);
    let pid = served.child.id();
    let before = peak_memory(pid);
    let now = chrono::Utc::now().timestamp();
    // Well-formed headers and a wrong signature: only the whole body tells.
    let headers = format!(
        "x-zm-request-timestamp: {now}\r\nx-zm-signature: v0={}\r\n",
        "cd".repeat(32)
    );
    let head = webhook_head(1 << 20, &headers);
    let body = vec![b' '; 1 << 20];
    let health = std::thread::scope(|scope| {
        let flood: Vec<_> = (0..200)
            .map(|_| {
                let (addr, head, body) = (&addr, &head, &body);
                scope.spawn(move || exchange(addr, head, body, Duration::from_secs(30)))
            })
            .collect();
        let probes: Vec<u16> = (0..5)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(50));
                http()
                    .get(served.url("/healthz"))
                    .send()
                    .map_or(0, |r| r.status().as_u16())
            })
            .collect();
        for answer in flood.into_iter().map(|t| t.join().unwrap()) {
            // Refused (401) once read, or not read for want of room (503) or of time (408), or
            // cut off while sending; never taken.
            assert!(
                answer.is_empty()
                    || answer.starts_with("HTTP/1.1 401")
                    || answer.starts_with("HTTP/1.1 503")
                    || answer.starts_with("HTTP/1.1 408"),
                "{answer:?}"
            );
        }
        probes
    });
    assert_eq!(health, [200; 5], "/healthz answers throughout");
    let peak = peak_memory(pid);
    // 200 bodies of 1 MiB held at once would take 200 MiB more.
    assert!(
        peak < before + (64 << 20),
        "peak {} MiB, {} MiB before the flood",
        peak >> 20,
        before >> 20
    );
    served.stop();
}

#[test]
fn a_signed_stop_replayed_after_a_restart_is_refused() {
    let env = Env::new();
    env.login();
    let secret = env.emu().knobs().webhook_secret;
    let ana = env.emu().directory().find("ana@example.com").unwrap();
    let stop = serde_json::to_vec(&json!({
        "event": "bot_notification",
        "payload": {
            "accountId": ana.account_id, "robotJid": env.emu().knobs().robot_jid,
            "userJid": ana.jid, "userName": "Ana Alves", "toJid": ana.jid, "cmd": "stop",
        },
    }))
    .unwrap();
    let headers = signed(&secret, chrono::Utc::now().timestamp(), &stop);
    let served = Served::start(&env);
    assert_eq!(post(&served, &stop, &headers).0, 200);
    assert_eq!(optout_count(&env), 1);
    let start = crate::serve::emulator_event(
        &env,
        &json!({"event": "bot_notification", "user": "ana@example.com", "cmd": "start"}),
    );
    assert_eq!(start.0, 200);
    assert_eq!(optout_count(&env), 0);
    // Killed, not stopped: what was accepted was on disk before Zoom heard the answer.
    drop(served);
    let served = Served::start(&env);
    assert_eq!(post(&served, &stop, &headers).0, 401, "replayed");
    assert_eq!(optout_count(&env), 0, "ana still gets notifications");
    served.stop();
}

#[test]
fn one_install_allows_one_code_exchange_however_often_its_callback_is_called() {
    let env = Env::new();
    let served = serve_for_installs(&env);
    let (cookie, callback) = start_install(&served);
    let with_code = |code: &str| {
        let mut url = url::Url::parse(&callback).unwrap();
        let state = url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned();
        url.query_pairs_mut()
            .clear()
            .append_pair("code", code)
            .append_pair("state", &state);
        url.to_string()
    };
    for attempt in 0..20 {
        let (status, _, page) = visit(&with_code(&format!("junk-{attempt}")), Some(&cookie));
        assert_eq!(status, 400, "{page}");
    }
    let counted = env.emu().stats();
    assert_eq!(counted.code_exchanges_refused, 1, "{counted:?}");
    // Not even Zoom's real code goes through on a used install.
    let (status, _, page) = visit(&callback, Some(&cookie));
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("already"), "{page}");
    assert_eq!(env.emu().stats().code_exchanges, 0);
    // A new install works.
    let (cookie, callback) = start_install(&served);
    assert_eq!(visit(&callback, Some(&cookie)).0, 302);
    served.stop();
}

#[test]
fn announcing_bodies_and_sending_nothing_holds_no_room() {
    let env = Env::new();
    let served = Served::start_with(&env, |cmd| {
        cmd.args(["--client-timeout", "60s"]);
    });
    let addr = address(&served);
    let now = chrono::Utc::now().timestamp();
    let headers = format!(
        "x-zm-request-timestamp: {now}\r\nx-zm-signature: v0={}\r\n",
        "ef".repeat(32)
    );
    // Twenty clients announce a megabyte each (20 MiB: more than the whole budget), and send
    // nothing.
    let mut silent: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream
                .write_all(webhook_head(1 << 20, &headers).as_bytes())
                .unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Zoom's events get through beside them, small and large.
    let secret = env.emu().knobs().webhook_secret;
    let small = br#"{"event":"meeting.started","payload":{}}"#.to_vec();
    let large = format!(
        r#"{{"event":"meeting.ended","payload":{{"note":"{}"}}}}"#,
        "n".repeat(200_000)
    )
    .into_bytes();
    for body in [small, large] {
        let at = chrono::Utc::now().timestamp();
        assert_eq!(post(&served, &body, &signed(&secret, at, &body)).0, 200);
    }
    // The silent ones are cut off once their bodies are late.
    for stream in &mut silent {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    }
    served.stop();
}
