//! The web console's pages for a run of 10,000 recipients, against `serve` as a process of its
//! own: a job to 10,000 synthetic recipients asking for an acknowledgement is run, 2,000 of
//! them press the button (signed webhooks through the emulator), then each page is fetched
//! 50 times one after another with a signed-in session; p50, p99 and max per page.
//!
//! `cargo bench --bench console [-- RECIPIENTS PRESSES]` (defaults 10000 and 2000). The goal
//! (issue 28): every page within 100 ms.

mod common;

use std::time::{Duration, Instant};

use common::{Serve, Workspace, serve};
use serde_json::{Value, json};
use zoomcast::emulator::{EmulatorHandle, Knobs};

/// Fetches of each page.
const FETCHES: usize = 50;

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// The job: `n` recipients, a Done button that acknowledges.
fn acknowledged_job(ws: &Workspace, n: usize) {
    ws.job("bulk", n, 16);
    let path = ws.dir.path().join("jobs/bulk.toml");
    let toml = std::fs::read_to_string(&path).unwrap().replace(
        "body = \"Hi {{ first_name }}\"",
        "\n[[message.blocks]]\ntype = \"actions\"\nbuttons = [{ text = \"Done\", value = \"done\" }]\n\n[acknowledge]\nbutton = \"done\"",
    );
    std::fs::write(path, toml).unwrap();
}

/// `presses` recipients press Done, through the emulator's signed webhooks to `serve`.
fn press(emu: &EmulatorHandle, ws: &Workspace, presses: usize) {
    let out = ws
        .command(&["history", "--run", "1", "--json"])
        .output()
        .unwrap();
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let http = client();
    for d in history["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .take(presses)
    {
        let event = json!({"event": "interactive_message_actions", "user": d["email"],
                           "message_id": d["message_id"], "value": "done"});
        let answer: Value = http
            .post(format!("{}/_emulator/events", emu.url()))
            .json(&event)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(answer["status"], 200, "{answer}");
    }
}

/// A session cookie, from a link `console-link` made.
fn sign_in(ws: &Workspace, served: &Serve) -> String {
    let out = ws
        .command(&["console-link", "--name", "bench"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let answer = client()
        .get(format!("{}{link}", served.base))
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 303);
    let cookie = answer.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    sorted[(sorted.len() - 1) * per_mille / 1000]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let recipients = args.first().copied().unwrap_or(10_000);
    let presses = args.get(1).copied().unwrap_or(2_000);
    let emu = EmulatorHandle::start(Knobs::default()).expect("the emulator starts");
    let ws = Workspace::at(&emu.url());
    acknowledged_job(&ws, recipients);
    ws.run("bulk");
    let secret = emu.emulator().knobs().webhook_secret;
    let served = serve(&ws, false, &[], &[("ZOOM_WEBHOOK_SECRET", &secret)]);
    let mut knobs = emu.emulator().knobs();
    knobs.webhook_url = Some(format!("{}/webhooks/zoom", served.base));
    emu.emulator().set_knobs(knobs);
    press(&emu, &ws, presses);
    let cookie = sign_in(&ws, &served);
    let run = client()
        .get(format!("{}/console/runs/1", served.base))
        .header("cookie", &cookie)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        run.contains(&format!("{presses} of {recipients} (button")) && run.contains("<svg"),
        "every press is recorded, and the page draws them"
    );
    println!(
        "zoomcast console benchmark: a run of {recipients} recipients, {presses} acknowledged; {FETCHES} fetches of each page, one after another"
    );
    let pages = [
        "/console",
        "/console/runs",
        "/console/runs/1",
        "/console/runs/1?state=acknowledged&page=3",
        "/console/runs/1/failures.csv",
        "/console/optouts",
        "/console/grants",
    ];
    let http = client();
    for page in pages {
        let mut times = Vec::with_capacity(FETCHES);
        for _ in 0..FETCHES {
            let started = Instant::now();
            let answer = http
                .get(format!("{}{page}", served.base))
                .header("cookie", &cookie)
                .send()
                .unwrap();
            assert_eq!(answer.status().as_u16(), 200, "{page}");
            let body = answer.bytes().unwrap();
            times.push(started.elapsed());
            assert!(!body.is_empty());
        }
        times.sort();
        println!(
            "{page:45} p50 {:6.1} ms  p99 {:6.1} ms  max {:6.1} ms",
            percentile(&times, 500).as_secs_f64() * 1e3,
            percentile(&times, 990).as_secs_f64() * 1e3,
            times.last().unwrap().as_secs_f64() * 1e3,
        );
    }
}
