//! The delivery benchmark (issue 3): `cargo bench --bench delivery`.
//!
//! Starts `zoomcast emulator` as its own process on loopback, logs in against it, and measures,
//! each side by side in the same run:
//! 1. journaled sends per second with a zero-latency emulator, next to the emulator's own
//!    capacity on the same endpoint measured by a plain load generator;
//! 2. the rate with 50 ms latency and concurrency 32: with the JID cache cold (a lookup and a
//!    send per recipient through the run's 32 request slots) against the ideal 320/s, and warm
//!    (sends only) against the ideal 640/s;
//! 3. a 250-recipient run against a 25/s limit, its 429s with and without `Retry-After`: time
//!    against the ideal 10 s, share of 429s;
//! 4. peak resident memory of a 100,000-recipient run;
//! 5. 2,000 recipients through a plain sequential client (one request at a time, lookup then
//!    send, as a hand-written script would) against zoomcast;
//! 6. two jobs of 150 run at once by one scheduler under a 20/s send limit: the share of
//!    sends answered 429 (the two runs share one limiter);
//! 7. 300 recipients with lookups limited to 30/s and sends to 20/s at once: time against the
//!    slower stage's ideal 15 s, share of requests answered 429.
//!
//! Only loopback is used. Each scenario sets every emulator knob it depends on and logs in to a
//! state directory of its own, so no figure depends on which scenarios ran before and any subset
//! runs alone (`cargo bench --bench delivery -- 3 5`); each zoomcast run is the real binary, timed
//! end to end.

#![allow(clippy::cast_precision_loss)] // request counts and seconds, printed as rates

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The state key of the benchmark's state directories (any 32 bytes, in hex).
const STATE_KEY: &str = "5a6f6f6d636173742062656e63686d61726b2073746174652020206b65792021";
const BIN: &str = env!("CARGO_BIN_EXE_zoomcast");
const CLIENT_ID: &str = "zoomcast-emulator";
const CLIENT_SECRET: &str = "emulator-client-secret";

struct Emulator {
    child: Child,
    /// Kept open: the emulator prints more lines, and a closed pipe would kill it.
    _stdout: BufReader<std::process::ChildStdout>,
    url: String,
    http: reqwest::blocking::Client,
}

impl Emulator {
    fn start() -> Self {
        let mut child = Command::new(BIN)
            .args(["emulator", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("zoomcast emulator starts");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        // "zoom emulator listening on http://127.0.0.1:PORT; ..."
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("the emulator prints its URL first")
            .trim_end_matches(';')
            .to_owned();
        Self {
            child,
            _stdout: stdout,
            url,
            http: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    fn knobs(&self, knobs: &Value) {
        let r = self
            .http
            .post(format!("{}/_emulator/knobs", self.url))
            .json(knobs)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{:?}", r.text());
    }

    fn stats(&self) -> Value {
        self.http
            .get(format!("{}/_emulator/stats", self.url))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A state and jobs directory logged in against the emulator.
struct Workspace {
    dir: tempfile::TempDir,
    emulator_url: String,
}

impl Workspace {
    fn new(emu: &Emulator) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("jobs")).unwrap();
        let ws = Self {
            dir,
            emulator_url: emu.url.clone(),
        };
        let mut login = ws
            .command(&["auth", "login", "--no-browser", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut url = String::new();
        BufReader::new(login.stdout.take().unwrap())
            .read_line(&mut url)
            .unwrap();
        let consent = reqwest::blocking::get(url.trim());
        if consent.is_err() {
            let _ = login.kill();
        }
        consent.expect("the emulator's consent redirects to the login's listener");
        assert!(
            login.wait().unwrap().success(),
            "login against the emulator"
        );
        ws
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("ZOOMCAST_STATE", self.dir.path().join("state"))
            .env("ZOOMCAST_JOBS", self.dir.path().join("jobs"))
            .env("ZOOM_CLIENT_ID", CLIENT_ID)
            .env("ZOOM_CLIENT_SECRET", CLIENT_SECRET)
            .env("ZOOM_ROBOT_JID", "v1robotzoomcast@xmpp.zoom.us")
            .env("ZOOM_OAUTH_URL", &self.emulator_url)
            .env("ZOOM_API_URL", &self.emulator_url)
            .env("ZOOM_REDIRECT_URI", "http://127.0.0.1:4199/oauth/callback")
            .env("RUST_LOG", "warn")
            // Grants sealed, as a deployment keeps them.
            .env("ZOOMCAST_STATE_KEY", STATE_KEY)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit());
        cmd
    }

    /// Writes a job sending to `n` synthetic recipients (a CSV file) with `concurrency`.
    fn job(&self, name: &str, n: usize, concurrency: usize) {
        let path = self.dir.path().join("jobs").join(format!("{name}.csv"));
        let mut csv = String::with_capacity(n * 40);
        csv.push_str("email\n");
        for i in 0..n {
            let _ = writeln!(csv, "p{i}-{name}@bulk.example.com");
        }
        std::fs::write(&path, csv).unwrap();
        let toml = format!(
            "[recipients]\nfile = \"{name}.csv\"\n\n[message]\nhead = \"Notice\"\nbody = \"Hi {{{{ first_name }}}}\"\n\n\
             [delivery]\nconcurrency = {concurrency}\nmax_attempts = 20\n"
        );
        std::fs::write(
            self.dir.path().join("jobs").join(format!("{name}.toml")),
            toml,
        )
        .unwrap();
    }

    /// Runs a command to its end, and returns its wall-clock seconds.
    fn time(&self, args: &[&str]) -> f64 {
        let start = Instant::now();
        let out = self.command(args).stdout(Stdio::null()).status().unwrap();
        assert!(out.success(), "{args:?}");
        start.elapsed().as_secs_f64()
    }

    /// Runs a job under GNU time.
    fn run(&self, job: &str) -> Measured {
        let time_file = self.dir.path().join("time");
        let start = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M %U %S", "-o"])
            .arg(&time_file)
            .arg(BIN)
            .args(["run", job, "--json"])
            .envs(
                self.command(&[])
                    .get_envs()
                    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
            )
            .current_dir(self.dir.path())
            .stderr(Stdio::inherit())
            .output()
            .expect("/usr/bin/time (GNU time) runs zoomcast");
        let wall = start.elapsed().as_secs_f64();
        let time = std::fs::read_to_string(&time_file).unwrap_or_default();
        // The last line: "RSS_KIB USER_SECONDS SYSTEM_SECONDS".
        let fields: Vec<f64> = time
            .lines()
            .last()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        assert_eq!(out.status.code(), Some(0), "run {job}: {report}");
        assert_eq!(fields.len(), 3, "GNU time wrote {time:?}");
        Measured {
            wall,
            rss_mib: fields[0] / 1024.0,
            cpu_seconds: fields[1] + fields[2],
            sent: report["counts"]["sent"].as_f64().unwrap_or(0.0),
            report,
        }
    }
}

/// One run of zoomcast, as GNU time and its report saw it.
struct Measured {
    /// Wall-clock seconds, process start to exit.
    wall: f64,
    /// Peak resident memory.
    rss_mib: f64,
    /// User plus system CPU seconds.
    cpu_seconds: f64,
    /// Recipients sent.
    sent: f64,
    /// The `--json` report.
    report: Value,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.sent / self.wall
    }

    /// CPU microseconds per recipient sent.
    fn cpu_per_send(&self) -> f64 {
        1e6 * self.cpu_seconds / self.sent
    }
}

/// Scenario 2: 50 ms latency, concurrency 32, beside a plain load generator.
fn latency(emu: &Emulator, ws: &Workspace) {
    emu.knobs(&json!({"latency_ms": 50, "send_rate_limit": null}));
    let plain = capacity(emu, 32, 3.0);
    ws.job("latency", 6_400, 32);
    let run = ws.run("latency");
    let (wall, rate) = (run.wall, run.rate());
    // The same job again: its JIDs are cached, so only the sends wait on the emulator.
    let warm = ws.run("latency");
    println!("2. 50 ms latency, 6,400 recipients, concurrency 32");
    println!(
        "   plain load generator, 32 connections, sends only: {plain:6.0} sends/s = {:.1}% of the ideal",
        100.0 * plain / 640.0
    );
    println!(
        "   zoomcast, JID cache cold (lookup + send, 32 request slots in all): {rate:6.0} \
         recipients/s against the ideal 320/s = {:.1}%; {wall:.2} s end to end, of which the \
         run itself {:.2} s",
        100.0 * rate / 320.0,
        run_seconds(&run.report)
    );
    println!(
        "   zoomcast, JID cache warm (sends only): {:6.0} sends/s against the ideal 640/s = \
         {:.1}% (target >= 95%)\n",
        warm.rate(),
        100.0 * warm.rate() / 640.0
    );
}

/// Scenario 4: peak memory of a 100,000-recipient run, and what opening its state costs after.
fn memory(emu: &Emulator) {
    emu.knobs(&json!({"latency_ms": 0, "send_rate_limit": null}));
    // 10,000 too, so that the growth per recipient shows beside the peak. Each is the first run
    // of a fresh state, the worst case: its end also sweeps the JID cache (due once a day).
    let small_ws = Workspace::new(emu);
    small_ws.job("tenk", 10_000, 32);
    let small = small_ws.run("tenk");
    let ws = Workspace::new(emu);
    ws.job("hundredk", 100_000, 32);
    let big = ws.run("hundredk");
    // sled writes its snapshot when it opens a database: the next command replays the
    // run's log once.
    let first_open = ws.time(&["history", "hundredk"]);
    let next_open = ws.time(&["history", "hundredk"]);
    println!("4. 100,000 recipients, zero latency, concurrency 32");
    println!(
        "   peak resident memory {:.1} MiB (target <= 64 MiB); {:.0} sends/s; {} sent",
        big.rss_mib,
        big.rate(),
        big.sent
    );
    println!(
        "   10,000 recipients: {:.1} MiB, so about {:.0} bytes more per recipient",
        small.rss_mib,
        (big.rss_mib - small.rss_mib) * 1024.0 * 1024.0 / 90_000.0
    );
    println!(
        "   the next command (`history`) takes {:.0} ms: sled replays the run's log once; the one after, {:.0} ms\n",
        first_open * 1e3,
        next_open * 1e3
    );
}

/// How long the run itself took, from its record (start of the run to its report).
fn run_seconds(report: &Value) -> f64 {
    let at = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(report[field].as_str().unwrap_or_default())
            .map_or(0, |t| t.timestamp_micros())
    };
    (at("finished_at") - at("started_at")) as f64 / 1e6
}

/// A chatbot token straight from the emulator's token endpoint.
fn bot_token(emu: &Emulator) -> String {
    let answer: Value = reqwest::blocking::Client::new()
        .post(format!("{}/oauth/token", emu.url))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap()
        .json()
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

/// The emulator's capacity on the send endpoint: `conns` plain clients, one request each at a
/// time, for `seconds`, with one valid bot token and message.
fn capacity(emu: &Emulator, conns: usize, seconds: f64) -> f64 {
    let token = bot_token(emu);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("{}/v2/im/chat/messages", emu.url);
        let body = json!({"robot_jid": "v1robotzoomcast@xmpp.zoom.us", "to_jid": "syn-load@xmpp.zoom.us", "account_id": "emulated-account-1",
                          "user_jid": "kdynimt4kpd8kkdqt9fq@xmpp.zoom.us", "content": {"head": {"text": "x"}}});
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
        let start = Instant::now();
        let tasks: Vec<_> = (0..conns)
            .map(|_| {
                let (client, url, body, token) = (client.clone(), url.clone(), body.clone(), token.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while tokio::time::Instant::now() < deadline {
                        let r = client.post(&url).bearer_auth(&token).json(&body).send().await.unwrap();
                        assert_eq!(r.status(), 201);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total as f64 / start.elapsed().as_secs_f64()
    })
}

/// A hand-written script: for each recipient, look up, then send; one request at a time.
fn sequential(emu: &Emulator, ws: &Workspace, n: usize) -> f64 {
    let http = reqwest::blocking::Client::new();
    let grant: Value = serde_json::from_str(
        &std::fs::read_to_string(ws.dir.path().join("state/grants/default.json")).unwrap(),
    )
    .unwrap();
    let user_token = grant["access"]["access"].as_str().unwrap().to_owned();
    let bot = bot_token(emu);
    let start = Instant::now();
    for i in 0..n {
        let user: Value = http
            .get(format!("{}/v2/users/s{i}@bulk.example.com", emu.url))
            .bearer_auth(&user_token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let body = json!({"robot_jid": "v1robotzoomcast@xmpp.zoom.us", "to_jid": user["jid"], "account_id": "emulated-account-1",
                          "user_jid": grant["user_jid"], "content": {"head": {"text": "Notice"}, "body": [{"type": "message", "text": "Hi"}]}});
        let r = http
            .post(format!("{}/v2/im/chat/messages", emu.url))
            .bearer_auth(&bot)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    start.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks
    }
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        std::env::consts::ARCH
    );
    println!(
        "zoomcast delivery benchmark ({machine}); emulator and zoomcast as separate processes on loopback\n"
    );
    // `cargo bench --bench delivery -- 1 3` runs scenarios 1 and 3 only.
    let picked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a.chars().all(|c| c.is_ascii_digit()))
        .collect();
    let run = |n: &str| picked.is_empty() || picked.iter().any(|p| p == n);
    let concurrency: usize = std::env::var("ZOOMCAST_BENCH_CONCURRENCY")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(32);
    let emu = Emulator::start();

    // 1. zero latency: zoomcast against the emulator's capacity.
    if run("1") {
        emu.knobs(&json!({"latency_ms": 0, "send_rate_limit": null}));
        let cap = capacity(&emu, 32, 3.0);
        let ws = Workspace::new(&emu);
        ws.job("zero", 20_000, concurrency);
        let cold = ws.run("zero");
        // The same job again: its 20,000 JIDs are cached, so this is sends and journal only.
        let warm = ws.run("zero");
        println!("1. zero latency, 20,000 recipients, concurrency {concurrency}");
        println!("   emulator capacity (plain load generator, 32 connections): {cap:8.0} sends/s");
        println!(
            "   zoomcast, JID cache cold (lookup + send + journal):       {:8.0} sends/s = {:.1}% of capacity; {:.0} us of CPU per recipient",
            cold.rate(),
            100.0 * cold.rate() / cap,
            cold.cpu_per_send()
        );
        println!(
            "   zoomcast, JID cache warm (send + journal):                {:8.0} sends/s = {:.1}% of capacity (target >= 5,000/s and >= 80%); {:.0} us of CPU per recipient\n",
            warm.rate(),
            100.0 * warm.rate() / cap,
            warm.cpu_per_send()
        );
    }

    // 2. 50 ms latency, concurrency 32.
    if run("2") {
        latency(&emu, &Workspace::new(&emu));
    }

    // 3. a 25/s limit, its 429s with `Retry-After: 1`, then with none (as Zoom's per-second
    // 429s may come); each in a fresh state, so the limit is found anew. The pause lets the
    // emulator's second pass: a fresh state starting in a second another process has just
    // spent measures almost nothing and starts slow (see the README's Limits).
    if run("3") {
        println!("3. 25/s limit, 250 recipients");
        for (style, form) in [("seconds", "Retry-After: 1"), ("absent", "no Retry-After")] {
            std::thread::sleep(Duration::from_secs(2));
            emu.knobs(&json!({"latency_ms": 0, "send_rate_limit": 25, "retry_after": style}));
            let before = emu.stats();
            let ws = Workspace::new(&emu);
            ws.job("limited", 250, 8);
            let run = ws.run("limited");
            let after = emu.stats();
            let limited = after["sends_rate_limited"].as_f64().unwrap()
                - before["sends_rate_limited"].as_f64().unwrap();
            let requests = after["sends_accepted"].as_f64().unwrap()
                - before["sends_accepted"].as_f64().unwrap()
                + limited;
            println!(
                "   {form:15} {:.1} s against the ideal 10.0 s = {:+.0}% (target within 10%); {limited} of {requests} sends answered 429 = {:.1}% (target <= 5%); {} sent",
                run.wall,
                100.0 * (run.wall - 10.0) / 10.0,
                100.0 * limited / requests,
                run.sent
            );
        }
        emu.knobs(&json!({"retry_after": "seconds"}));
        println!();
    }

    // 4. memory of a 100,000-recipient run.
    if run("4") {
        memory(&emu);
    }

    // 5. a sequential script against zoomcast, 2,000 recipients, 5 ms latency for both.
    if run("5") {
        emu.knobs(&json!({"latency_ms": 5, "send_rate_limit": null}));
        let ws = Workspace::new(&emu);
        let script = sequential(&emu, &ws, 2_000);
        ws.job("twothousand", 2_000, 32);
        let wall = ws.run("twothousand").wall;
        println!("5. 2,000 recipients, 5 ms emulator latency");
        println!(
            "   plain sequential client {script:.2} s, zoomcast {wall:.2} s: {:.0}x faster (target >= 20x)\n",
            script / wall
        );
    }

    if run("6") {
        two_jobs_at_once(&emu);
    }
    if run("7") {
        lookups_and_sends_limited(&emu);
    }
}

/// The emulator's count `key` now, less what it was in `before`.
fn counted(emu: &Emulator, before: &Value, key: &str) -> f64 {
    emu.stats()[key].as_f64().unwrap() - before[key].as_f64().unwrap()
}

/// Scenario 6: two jobs at once in one scheduler under a 20/s send limit, from a fresh state.
fn two_jobs_at_once(emu: &Emulator) {
    std::thread::sleep(Duration::from_secs(2)); // let the emulator's second pass
    emu.knobs(&json!({"latency_ms": 0, "send_rate_limit": 20, "lookup_rate_limit": null}));
    let before = emu.stats();
    let ws = Workspace::new(emu);
    for name in ["first", "second"] {
        ws.job(name, 150, 8);
    }
    let mut scheduler = ws
        .command(&["schedule"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = zoomcast::control::socket_path(&ws.dir.path().join("state"));
    while !socket.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let start = Instant::now();
    let runs: Vec<Child> = ["first", "second"]
        .iter()
        .map(|name| {
            ws.command(&["run", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut run in runs {
        assert!(run.wait().unwrap().success(), "a run in the scheduler");
    }
    let wall = start.elapsed().as_secs_f64();
    let _ = Command::new("kill")
        .args(["-TERM", &scheduler.id().to_string()])
        .status();
    let _ = scheduler.wait();
    let limited = counted(emu, &before, "sends_rate_limited");
    let sends = counted(emu, &before, "sends_accepted") + limited;
    println!("6. two jobs of 150 at once in one scheduler, 20/s send limit, fresh state");
    println!(
        "   {wall:.1} s against the ideal 15.0 s; {limited} of {sends} sends answered 429 = {:.1}% (target <= 5%)\n",
        100.0 * limited / sends
    );
}

/// Scenario 7: lookups (30/s) and sends (20/s) limited at once, from a fresh state.
fn lookups_and_sends_limited(emu: &Emulator) {
    std::thread::sleep(Duration::from_secs(2));
    emu.knobs(&json!({"latency_ms": 0, "send_rate_limit": 20, "lookup_rate_limit": 30}));
    let before = emu.stats();
    let ws = Workspace::new(emu);
    ws.job("both", 300, 8);
    let run = ws.run("both");
    let limited =
        counted(emu, &before, "sends_rate_limited") + counted(emu, &before, "lookups_rate_limited");
    let requests =
        counted(emu, &before, "sends_accepted") + counted(emu, &before, "user_lookups") + limited;
    println!("7. 300 recipients, lookups limited to 30/s and sends to 20/s, fresh state");
    println!(
        "   {:.1} s against the slower stage's ideal 15.0 s = {:+.0}%; {limited} of {requests} requests answered 429 = {:.1}% (target <= 5%)",
        run.wall,
        100.0 * (run.wall - 15.0) / 15.0,
        100.0 * limited / requests
    );
    emu.knobs(&json!({"send_rate_limit": null, "lookup_rate_limit": null}));
}
