//! The exposure benchmark: `cargo bench --bench exposure`.
//!
//! What strangers on the network cost `serve`, measured on loopback against the real binary
//! (no emulator is needed: nothing here reaches Zoom):
//! 1. 300 connections that never send a byte, left open: `/healthz` latency beside them;
//! 2. 200 connections at once, each sending a 1 MiB webhook body under well-formed headers and
//!    a wrong signature (only the whole body tells): `/healthz` latency throughout, and the
//!    answers the flood got;
//!
//! and, for both, the server's peak resident memory (`VmHWM`) against its size before.
//! Goals: at most 64 MiB peak, and every `/healthz` within 1 s.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary measured: this tree's, or another release's for a side-by-side run
/// (`ZOOMCAST_BENCH_BIN=/path/to/zoomcast`).
fn binary() -> String {
    std::env::var("ZOOMCAST_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_zoomcast").to_owned())
}

/// `serve` on a free loopback port, with a state directory of its own.
struct Served {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Served {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        let child = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env("ZOOMCAST_STATE", dir.path().join("state"))
            .env("ZOOM_CLIENT_ID", "bench")
            .env("ZOOM_CLIENT_SECRET", "bench-secret")
            .env("ZOOM_WEBHOOK_SECRET", "bench-webhook-secret")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("zoomcast serve starts");
        let start = Instant::now();
        let addr = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(at) = text.find("on http://") {
                let rest = &text[at + "on http://".len()..];
                break rest.split_whitespace().next().unwrap().to_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "serve did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    /// The highest resident memory so far, in MiB.
    fn peak_mib(&self) -> f64 {
        self.status("VmHWM:")
    }

    /// The resident memory now, in MiB.
    fn resident_mib(&self) -> f64 {
        self.status("VmRSS:")
    }

    fn status(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: f64 = status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap();
        kib / 1024.0
    }

    /// One `/healthz`: its latency, or `None` if it was not answered 200 within 10 s.
    fn probe(&self) -> Option<Duration> {
        let start = Instant::now();
        let mut stream = TcpStream::connect(&self.addr).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
            .ok()?;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        answer.starts_with(b"HTTP/1.1 200").then(|| start.elapsed())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `/healthz` probed every 50 ms while `load` runs on other threads: each probe's latency.
fn probed_while(served: &Served, load: impl FnOnce() + Send) -> Vec<Option<Duration>> {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let probes = scope.spawn(|| {
            let mut latencies = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) || latencies.len() < 10 {
                latencies.push(served.probe());
                std::thread::sleep(Duration::from_millis(50));
            }
            latencies
        });
        load();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        probes.join().unwrap()
    })
}

/// "max 3.1 ms over 40 probes" (or how many went unanswered).
fn summary(latencies: &[Option<Duration>]) -> String {
    let answered: Vec<Duration> = latencies.iter().flatten().copied().collect();
    let missed = latencies.len() - answered.len();
    let max = answered.iter().max().copied().unwrap_or_default();
    let mut text = format!(
        "max {:.1} ms over {} probes",
        max.as_secs_f64() * 1000.0,
        latencies.len()
    );
    if missed > 0 {
        let _ = write!(text, ", {missed} NOT ANSWERED within 10 s");
    }
    text
}

fn idle_connections() {
    let served = Served::start();
    let before = served.resident_mib();
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&served.addr).unwrap())
        .collect();
    let latencies = probed_while(&served, || std::thread::sleep(Duration::from_secs(2)));
    println!(
        "1. 300 idle connections: /healthz {}; peak {:.1} MiB ({:.1} MiB before)",
        summary(&latencies),
        served.peak_mib(),
        before
    );
    drop(idle);
}

fn flood() {
    let served = Served::start();
    let before = served.resident_mib();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let head = format!(
        "POST /webhooks/zoom HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n\
         x-zm-request-timestamp: {now}\r\nx-zm-signature: v0={}\r\n\r\n",
        1 << 20,
        "ab".repeat(32)
    );
    let body = vec![b' '; 1 << 20];
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    let started = Instant::now();
    let latencies = probed_while(&served, || {
        std::thread::scope(|scope| {
            let senders: Vec<_> = (0..200)
                .map(|_| scope.spawn(|| send(&served.addr, &head, &body)))
                .collect();
            for sender in senders {
                *answers.entry(sender.join().unwrap()).or_default() += 1;
            }
        });
    });
    let took = started.elapsed();
    println!(
        "2. 200 concurrent 1 MiB wrongly signed bodies ({:.1} s): answers {answers:?}; /healthz {}; \
         peak {:.1} MiB ({:.1} MiB before)",
        took.as_secs_f64(),
        summary(&latencies),
        served.peak_mib(),
        before
    );
}

/// Sends one request; the answer's status line ("cut off" when none came).
fn send(addr: &str, head: &str, body: &[u8]) -> String {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return "not connected".into();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body));
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.lines()
        .next()
        .filter(|l| !l.is_empty())
        .unwrap_or("cut off")
        .to_owned()
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |n: &str| wanted.is_empty() || wanted.iter().any(|w| w == n);
    if run("1") {
        idle_connections();
    }
    if run("2") {
        flood();
    }
}
