//! The test harness: an [`Env`] owns a temporary directory (state, jobs), an emulator on its
//! own thread, and runs the real binary with `ZOOM_*` pointing at that emulator.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;
use zoomcast::emulator::{Emulator, EmulatorHandle, Knobs};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub emulator: EmulatorHandle,
}

/// What one run of the binary printed, and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "expected exit {expected}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    /// Stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// The element of a JSON array whose `name` is `name`.
#[track_caller]
pub fn by_name<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|items| items.iter().find(|item| item["name"] == name))
        .unwrap_or_else(|| panic!("no `{name}` in {list}"))
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Env {
    pub fn new() -> Self {
        Self::with_knobs(Knobs::default())
    }

    pub fn with_knobs(knobs: Knobs) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("jobs")).unwrap();
        Self {
            dir,
            emulator: EmulatorHandle::start(knobs).unwrap(),
        }
    }

    pub fn emu(&self) -> &Emulator {
        self.emulator.emulator()
    }

    /// The emulator's base URL.
    pub fn emulator_url(&self) -> String {
        self.emulator.url()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn jobs_dir(&self) -> PathBuf {
        self.dir.path().join("jobs")
    }

    /// Writes `jobs/NAME.toml`.
    pub fn job(&self, name: &str, toml: &str) -> &Self {
        std::fs::write(self.jobs_dir().join(format!("{name}.toml")), toml).unwrap();
        self
    }

    /// Records, as an earlier process would have, that Zoom accepted `per_second` sends in
    /// `account` (the pace a run in that account starts at).
    pub fn remember_send_pace(&self, account: &str, per_second: f64) {
        let store = zoomcast::state::Store::open(&self.state_dir()).unwrap();
        let chat = zoomcast::delivery::limiters::Endpoint::Chat.name();
        store
            .paces()
            .unwrap()
            .remember(account, chat, per_second)
            .unwrap();
    }

    /// Changes some of the emulator's knobs, keeping the others.
    pub fn adjust_knobs(&self, change: impl FnOnce(&mut Knobs)) {
        let mut knobs = self.emu().knobs();
        change(&mut knobs);
        self.emu().set_knobs(knobs);
    }

    /// The binary, with the emulator's app identity in the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let knobs = self.emu().knobs();
        let url = self.emulator.url();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zoomcast"));
        cmd.current_dir(self.dir.path())
            .env("ZOOMCAST_STATE", self.state_dir())
            .env("ZOOMCAST_JOBS", self.jobs_dir())
            // No configuration of the machine's user is read: its own, under the test's dir.
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"))
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("ZOOM_ACCOUNT_ID")
            .env_remove("ZOOM_WEBHOOK_SECRET")
            .env_remove("ZOOMCAST_CONFIG")
            .env_remove("ZOOMCAST_STATE_KEY")
            .env_remove("ZOOMCAST_STATE_KEY_FILE")
            .env_remove("ZOOMCAST_NEW_STATE_KEY")
            .env_remove("ZOOMCAST_NEW_STATE_KEY_FILE")
            .env("ZOOM_CLIENT_ID", &knobs.client_id)
            .env("ZOOM_CLIENT_SECRET", &knobs.client_secret)
            .env("ZOOM_ROBOT_JID", &knobs.robot_jid)
            .env("ZOOM_OAUTH_URL", &url)
            .env("ZOOM_API_URL", &url)
            .env("ZOOM_REDIRECT_URI", "http://127.0.0.1:4199/oauth/callback")
            .stdin(Stdio::null());
        cmd
    }

    /// The binary's command, started by `sh` under `umask` (std offers no safe way to set a
    /// child's umask).
    pub fn command_under_umask(&self, umask: &str, args: &[&str]) -> Command {
        let inner = self.command(args);
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
            .arg(inner.get_program())
            .args(inner.get_args())
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        for (key, value) in inner.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, |_| {})
    }

    /// Runs the binary after `adjust` changed its command (environment, stdin).
    pub fn run_with(&self, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Run {
        let mut cmd = self.command(args);
        adjust(&mut cmd);
        cmd.output().unwrap().into()
    }

    /// Runs the binary on a pseudo-terminal (util-linux `script`), as a user at a terminal
    /// would: returns the exit code and everything the terminal received.
    pub fn run_on_terminal(&self, args: &[&str]) -> (i32, String) {
        let inner = self.command(args);
        let quote =
            |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
        let line: Vec<String> = std::iter::once(inner.get_program())
            .chain(inner.get_args())
            .map(quote)
            .collect();
        let mut cmd = Command::new("script");
        cmd.args(["-qefc", &line.join(" "), "/dev/null"])
            .current_dir(self.dir.path())
            .env("TERM", "xterm")
            .stdin(Stdio::null());
        for (key, value) in inner.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        let out = cmd.output().expect("util-linux `script` runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// `history --json [JOB]`: the runs, oldest first.
    #[track_caller]
    pub fn history(&self, job: Option<&str>) -> Vec<Value> {
        let mut args = vec!["history", "--json"];
        args.extend(job);
        let run = self.run(&args);
        run.code(0);
        run.json().as_array().expect("history is an array").clone()
    }

    /// How many messages the emulator delivered to each recipient.
    pub fn per_recipient(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for m in self.emu().messages() {
            *counts.entry(m.to_email).or_default() += 1;
        }
        counts
    }

    /// Asserts that the emulator delivered to `n` recipients, each exactly once.
    #[track_caller]
    pub fn assert_each_sent_once(&self, n: usize) {
        let per = self.per_recipient();
        assert_eq!(per.len(), n, "{per:?}");
        assert!(per.values().all(|&count| count == 1), "{per:?}");
    }

    /// Starts `auth login --no-browser --port 0` and returns the child and the authorize URL
    /// it printed.
    pub fn start_login(&self, extra_env: &[(&str, &str)]) -> (Child, String) {
        self.start_login_args((&[], &[]), extra_env)
    }

    /// [`Env::start_login`] with more arguments before `auth login` (`--config FILE`) and
    /// after it (`--app NAME`): `args` is (before, after).
    pub fn start_login_args(
        &self,
        (before, after): (&[&str], &[&str]),
        extra_env: &[(&str, &str)],
    ) -> (Child, String) {
        let mut args = before.to_vec();
        args.extend(["auth", "login", "--no-browser", "--port", "0"]);
        args.extend(after);
        let mut cmd = self.command(&args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("http://"),
            "the first line of auth login is the URL: {line:?}"
        );
        (child, line.trim().to_owned())
    }

    /// Logs in the way a person does: the browser opens the URL, the emulator approves and
    /// redirects to the binary's callback listener.
    pub fn login(&self) -> Run {
        self.login_with(&[])
    }

    /// [`Env::login`] with more environment for the binary.
    pub fn login_with(&self, extra_env: &[(&str, &str)]) -> Run {
        self.login_args((&[], &[]), extra_env)
    }

    /// [`Env::login`] with more arguments around `auth login` (see [`Env::start_login_args`]).
    pub fn login_args(&self, args: (&[&str], &[&str]), extra_env: &[(&str, &str)]) -> Run {
        let (child, url) = self.start_login_args(args, extra_env);
        let page = browse(&url);
        assert!(page.contains("zoomcast is authorized"), "{page}");
        let run: Run = child.wait_with_output().unwrap().into();
        run.code(0);
        run
    }

    /// Logs in by pasting `what` (given the redirect URL the emulator answered) on stdin.
    pub fn login_pasting(&self, what: impl Fn(&str) -> String) -> Run {
        let (mut child, url) = self.start_login(&[]);
        let location = consent_redirect(&url);
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{}", what(&location)).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap().into()
    }
}

/// GETs `url` following redirects, as a browser would, and returns the final page.
pub fn browse(url: &str) -> String {
    reqwest::blocking::get(url).unwrap().text().unwrap()
}

/// GETs the consent URL without following the redirect: the URL the browser would land on.
pub fn consent_redirect(url: &str) -> String {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client.get(url).send().unwrap();
    assert_eq!(
        response.status(),
        302,
        "the emulator redirects after consent"
    );
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// `n` synthetic recipients (`PREFIX0@bulk.example.com`, ...), whom the emulator knows.
pub fn bulk_emails(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}{i}@bulk.example.com"))
        .collect()
}

/// A job file sending to `n` synthetic recipients (see [`bulk_emails`]).
pub fn bulk_job(prefix: &str, n: usize) -> String {
    let emails = bulk_emails(prefix, n);
    job_to(&emails.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A job file sending to `emails`.
pub fn job_to(emails: &[&str]) -> String {
    let list: Vec<String> = emails.iter().map(|e| format!("{e:?}")).collect();
    format!(
        "description = \"test\"\n\n[recipients]\nemails = [{}]\n\n[message]\nhead = \"Hello\"\nbody = \"Hi {{{{ first_name }}}} <{{{{ email }}}}>\"\n\n[delivery]\nconcurrency = 4\n",
        list.join(", ")
    )
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Polls `check` every `every` until it gives a value, for at most `limit` (then `None`).
pub fn wait_for<T>(
    limit: std::time::Duration,
    every: std::time::Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let start = std::time::Instant::now();
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Makes a named pipe at `path` (with coreutils' `mkfifo`).
pub fn make_fifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

/// Writes `jobs/people.txt` with `n` synthetic recipients and a job `bulk` sending them a
/// notice at `concurrency`.
pub fn people_job(env: &Env, prefix: &str, n: usize, concurrency: usize) {
    let people = bulk_emails(prefix, n).join("\n");
    std::fs::write(env.jobs_dir().join("people.txt"), people).unwrap();
    env.job(
        "bulk",
        &format!(
            "[recipients]\nfile = \"people.txt\"\n\n[message]\nhead = \"Notice\"\nbody = \"Hi\"\n\n\
             [delivery]\nconcurrency = {concurrency}\n"
        ),
    );
}
