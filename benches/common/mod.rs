//! What the benchmarks share: the emulator as a process of its own, and a workspace (state and
//! jobs directories) logged in against it, driving the real binary.
//!
//! `ZOOMCAST_BENCH_BIN` names another zoomcast binary to drive (a previous release, for
//! alternating runs); the emulator is always this build's.

#![allow(dead_code)] // each benchmark uses its own part of this module

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use serde_json::Value;

/// The state key of the benchmark's state directories (any 32 bytes, in hex).
pub const STATE_KEY: &str = "5a6f6f6d636173742062656e63686d61726b2073746174652020206b65792021";
/// This build's binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_zoomcast");

/// The zoomcast binary measured: `ZOOMCAST_BENCH_BIN`, else this build's.
pub fn bin() -> String {
    std::env::var("ZOOMCAST_BENCH_BIN").unwrap_or_else(|_| BIN.to_owned())
}
pub const CLIENT_ID: &str = "zoomcast-emulator";
pub const CLIENT_SECRET: &str = "emulator-client-secret";

pub struct Emulator {
    child: Child,
    /// Kept open: the emulator prints more lines, and a closed pipe would kill it.
    _stdout: BufReader<std::process::ChildStdout>,
    pub url: String,
    http: reqwest::blocking::Client,
}

impl Emulator {
    pub fn start() -> Self {
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

    pub fn knobs(&self, knobs: &Value) {
        let r = self
            .http
            .post(format!("{}/_emulator/knobs", self.url))
            .json(knobs)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{:?}", r.text());
    }

    pub fn stats(&self) -> Value {
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
pub struct Workspace {
    pub dir: tempfile::TempDir,
    emulator_url: String,
}

impl Workspace {
    pub fn new(emu: &Emulator) -> Self {
        Self::at(&emu.url)
    }

    /// A workspace logged in against the emulator at `emulator_url`.
    pub fn at(emulator_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("jobs")).unwrap();
        let ws = Self {
            dir,
            emulator_url: emulator_url.to_owned(),
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

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
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
    pub fn job(&self, name: &str, n: usize, concurrency: usize) {
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
    pub fn time(&self, args: &[&str]) -> f64 {
        let start = Instant::now();
        let out = self.command(args).stdout(Stdio::null()).status().unwrap();
        assert!(out.success(), "{args:?}");
        start.elapsed().as_secs_f64()
    }

    /// Runs a job under GNU time.
    pub fn run(&self, job: &str) -> Measured {
        let time_file = self.dir.path().join("time");
        let start = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M %U %S", "-o"])
            .arg(&time_file)
            .arg(bin())
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
pub struct Measured {
    /// Wall-clock seconds, process start to exit.
    pub wall: f64,
    /// Peak resident memory.
    pub rss_mib: f64,
    /// User plus system CPU seconds.
    pub cpu_seconds: f64,
    /// Recipients sent.
    pub sent: f64,
    /// The `--json` report.
    pub report: Value,
}

impl Measured {
    pub fn rate(&self) -> f64 {
        self.sent / self.wall
    }

    /// CPU microseconds per recipient sent.
    pub fn cpu_per_send(&self) -> f64 {
        1e6 * self.cpu_seconds / self.sent
    }
}

/// A chatbot token straight from the emulator's token endpoint.
pub fn bot_token(emu: &Emulator) -> String {
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

/// `serve` as a process of its own (on a free port), its log read on a thread of its own.
pub struct Serve {
    pub child: Child,
    /// Where it listens: `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` over `ws` with `args` and `env`, under `taskset -c 0` when `pinned`.
pub fn serve(ws: &Workspace, pinned: bool, args: &[&str], env: &[(&str, &str)]) -> Serve {
    let base_env: Vec<_> = ws
        .command(&[])
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
        .collect();
    let mut command = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(bin());
        c
    } else {
        Command::new(bin())
    };
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .envs(base_env)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .current_dir(ws.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("serve starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let base = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "serve says where it listens"
        );
        if let Some(at) = line.find("on http://") {
            break line[at + 3..].split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep reading its log, or a full pipe would stop it.
    std::thread::spawn(move || for _ in stderr.lines() {});
    Serve { child, base }
}
