//! The history benchmark (issue 25): `cargo bench --bench history [-- 1000 10000 ...]`.
//!
//! Builds the state of a per-minute job with one recipient, run after run, through zoomcast's
//! own store code, writing what a run writes: its record started (with its tick), its
//! recipient marked `sending` and then `sent`, the record finished with its counts, the job's
//! history trimmed to `keep_runs` and `keep_details`, the tick recorded. At each checkpoint
//! (default 1,000, 10,000, 100,000 and 525,600 runs: a year) it measures the real binary:
//! - `run` of the job from process start to the emulator's first accepted send (polled), and
//!   to its exit;
//! - `history JOB` (its default view);
//! - `serve` from process start to its first `/healthz` answer, then a `/metrics` scrape and a
//!   `/healthz` request;
//! - the state directory's size on disk.
//!
//! `--unfolded` builds the state as a release without `keep_runs` would (every record kept,
//! details pruned): with `ZOOMCAST_BENCH_BIN` naming that release's binary, the alternating
//! comparison the README's Performance section reports.

#![allow(clippy::cast_precision_loss)] // counts and seconds, printed

mod common;

use std::io::Read as _;
use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use common::{Emulator, STATE_KEY, Workspace};
use zoomcast::state::retention::{self, Keep};
use zoomcast::state::{Delivery, DeliveryState, Keys, RunStatus, StateKey, Store};

/// The job's name.
const JOB: &str = "minutely";
/// Its one recipient.
const RECIPIENT: &str = "ana@example.com";
/// Measurements per figure; the median is reported.
const SAMPLES: usize = 9;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks
    }
    let unfolded = args.iter().any(|a| a == "--unfolded");
    let mut checkpoints: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if checkpoints.is_empty() {
        checkpoints = vec![1_000, 10_000, 100_000, 525_600];
    }
    checkpoints.sort_unstable();
    let emu = Emulator::start();
    emu.knobs(&serde_json::json!({"latency_ms": 0, "send_rate_limit": null}));
    let ws = Workspace::new(&emu);
    let keep = if unfolded { "" } else { "keep_runs = 1000\n" };
    std::fs::write(
        ws.dir.path().join("jobs").join(format!("{JOB}.toml")),
        format!(
            "schedule = \"* * * * *\"\n{keep}\n[recipients]\nemails = [\"{RECIPIENT}\"]\n\n\
             [message]\nhead = \"Tick\"\nbody = \"Hi {{{{ first_name }}}}\"\n"
        ),
    )
    .unwrap();
    // The first run resolves and caches the recipient's JID, as the first minute would.
    assert!(
        ws.command(&["run", JOB])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    println!(
        "zoomcast history benchmark: a per-minute job, one recipient, {}; binary {}\n",
        if unfolded {
            "every run record kept (a release without keep_runs)"
        } else {
            "keep_runs = 1000"
        },
        common::bin()
    );
    println!(
        "| runs in the state | run: start to first send | run: start to exit | history (default view) | serve: start to /healthz | /metrics scrape | /healthz | state on disk | built in |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut built = 1;
    for target in checkpoints {
        let start = Instant::now();
        build(&ws, built, target, unfolded);
        let build_seconds = start.elapsed().as_secs_f64();
        built = target;
        let row = measure(&emu, &ws);
        // The measuring runs added a few runs of their own.
        built += SAMPLES as u64;
        println!(
            "| {target} | {} | {} | {} | {} | {} | {} | {:.1} MiB | {build_seconds:.0} s |",
            ms(row.first_send),
            ms(row.run),
            ms(row.history),
            ms(row.serve_start),
            ms(row.scrape),
            ms(row.healthz),
            row.state_mib
        );
    }
}

/// Adds runs to the state until it has made `target` (it has made `from`).
fn build(ws: &Workspace, from: u64, target: u64, unfolded: bool) {
    let key = StateKey::parse(STATE_KEY, "ZOOMCAST_STATE_KEY").unwrap();
    let store = Store::open_with(&ws.dir.path().join("state"), Keys::sealed(key)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (runs, deliveries, fires) = (
        store.runs().unwrap(),
        store.deliveries().unwrap(),
        store.fires().unwrap(),
    );
    let job_file = ws.dir.path().join("jobs").join(format!("{JOB}.toml"));
    let first_tick = Utc::now() - TimeDelta::minutes(i64::try_from(target).unwrap());
    let keep = Keep {
        runs: if unfolded { usize::MAX } else { 1000 },
        details: 2,
    };
    for n in from..target {
        let tick = first_tick + TimeDelta::minutes(i64::try_from(n).unwrap());
        runtime.block_on(async {
            let app = ("default", Some("emulated-account-1"));
            let mut record = runs
                .start(JOB, app, Some(job_file.clone()), Some(tick))
                .await
                .unwrap();
            let jid = Some("ana-jid@xmpp.zoom.us".to_owned());
            let mut delivery = Delivery::new(RECIPIENT, DeliveryState::Sending, jid, 1);
            deliveries.set(record.id, &delivery).unwrap();
            deliveries.flush().await.unwrap();
            delivery.state = DeliveryState::Sent {
                message_id: format!("m-{n}"),
            };
            deliveries.set(record.id, &delivery).unwrap();
            deliveries.flush().await.unwrap();
            let (counts, _) = deliveries.tally(record.id).unwrap();
            record.counts = counts;
            record.status = RunStatus::Succeeded;
            record.finished_at = Some(Utc::now());
            runs.put(&record).await.unwrap();
        });
        retention::trim(&runs, &deliveries, JOB, keep).unwrap();
        fires.set(JOB, tick).unwrap();
    }
}

/// One checkpoint's figures, each the median of its samples.
struct Row {
    first_send: Duration,
    run: Duration,
    history: Duration,
    serve_start: Duration,
    scrape: Duration,
    healthz: Duration,
    state_mib: f64,
}

fn measure(emu: &Emulator, ws: &Workspace) -> Row {
    // The first command after the build replays sled's log: the size is read before, and the
    // first `history` is the one a person would wait for.
    let state_mib = size(&ws.dir.path().join("state")) as f64 / (1024.0 * 1024.0);
    let history = median((0..SAMPLES).map(|_| Duration::from_secs_f64(ws.time(&["history", JOB]))));
    let mut first_send = Vec::new();
    let mut whole = Vec::new();
    for _ in 0..SAMPLES {
        let (to_send, to_exit) = timed_run(emu, ws);
        first_send.push(to_send);
        whole.push(to_exit);
    }
    let (serve_start, scrape, healthz) = serve(ws);
    Row {
        first_send: median(first_send),
        run: median(whole),
        history,
        serve_start,
        scrape,
        healthz,
        state_mib,
    }
}

/// A `run` of the job: (process start to the emulator's first accepted send, to exit).
fn timed_run(emu: &Emulator, ws: &Workspace) -> (Duration, Duration) {
    let accepted = || emu.stats()["sends_accepted"].as_u64().unwrap();
    let before = accepted();
    let start = Instant::now();
    let mut child = ws
        .command(&["run", JOB])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut first_send = None;
    loop {
        if first_send.is_none() && accepted() > before {
            first_send = Some(start.elapsed());
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "run {JOB}");
            let exit = start.elapsed();
            return (first_send.unwrap_or(exit), exit);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `serve` on the state: (start to its first `/healthz` answer, a scrape, a `/healthz`).
fn serve(ws: &Workspace) -> (Duration, Duration, Duration) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let start = Instant::now();
    let child = ws
        .command(&["serve", "--listen", &listen])
        .env("ZOOM_WEBHOOK_SECRET", "bench-webhook-secret")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let http = reqwest::blocking::Client::new();
    let get = |path: &str| {
        let at = Instant::now();
        let mut answer = http.get(format!("http://{listen}{path}")).send().ok()?;
        let mut body = String::new();
        answer.read_to_string(&mut body).ok()?;
        assert!(answer.status().is_success(), "{path}: {body}");
        Some(at.elapsed())
    };
    while get("/healthz").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let serve_start = start.elapsed();
    let scrape = median((0..SAMPLES).map(|_| get("/metrics").unwrap()));
    let healthz = median((0..SAMPLES).map(|_| get("/healthz").unwrap()));
    drop(server);
    (serve_start, scrape, healthz)
}

/// A server stopped (SIGTERM, then waited for) when dropped, so its state is free again.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.0);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = self.0.wait();
    }
}

fn median(samples: impl IntoIterator<Item = Duration>) -> Duration {
    let mut all: Vec<Duration> = samples.into_iter().collect();
    all.sort_unstable();
    all[all.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Bytes on disk under `dir` (allocated blocks, as `du` counts).
fn size(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            size(&entry.path())
        } else {
            meta.blocks() * 512
        };
    }
    total
}
