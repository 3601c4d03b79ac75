//! Renders a job's templates in a child process whose memory is capped, so that a job file
//! whose template grows without bound (`{% set s = s ~ s %}` forty times, a `replace` that
//! squares a text) fails its render, named, instead of exhausting the machine. minijinja
//! bounds recursion and instructions (see [`super::template`]), not the size of values.
//!
//! The child is the binary itself, `zoomcast render-worker` ([`serve`]): it caps its data
//! segment at [`MEMORY_LIMIT`], compiles the message it is sent, and answers one JSON line per
//! request on its stdin. It exits when its parent closes the pipe, or after [`IDLE`] without
//! a request, so an idle job holds no process; the next render starts another. A child that
//! dies during a render (its allocation refused) is asked once more by a new child, then the
//! render fails.
//!
//! Only the binary turns this on ([`enable`]); the library's other users (tests, benchmarks
//! in-process) render in-process.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::template::{Message, MessageTemplate, RenderError};

/// The most memory (data segment: heap and anonymous mappings) a render may take.
pub const MEMORY_LIMIT: u64 = 512 << 20;
/// How long a child waits for a request before it exits.
const IDLE: Duration = Duration::from_secs(30);
/// The argument that makes the binary a render worker.
pub const WORKER_ARG: &str = "render-worker";

static PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Renders in children of `program` (the zoomcast binary) from now on.
pub fn enable(program: PathBuf) {
    let _ = PROGRAM.set(program);
}

/// What a child is asked.
#[derive(Serialize, Deserialize)]
pub(super) enum Request {
    /// The card for these variables.
    Render(BTreeMap<String, String>),
    /// The problems of a test render with these sample values.
    Check(BTreeMap<String, String>),
}

/// What a child answers.
#[derive(Serialize, Deserialize)]
pub(super) enum Answer {
    /// The card, or why it failed.
    Rendered(Result<Value, RenderError>),
    /// The problems found.
    Checked(Vec<(String, String)>),
}

/// The child rendering one message, started when first needed.
pub(super) struct Sandbox {
    program: PathBuf,
    /// The message, as the child is sent it first.
    message: String,
    worker: Mutex<Option<Worker>>,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sandbox {
    /// The sandbox of `message`; `None` when rendering is in-process.
    pub(super) fn new(message: &Message) -> Option<Self> {
        let program = PROGRAM.get()?.clone();
        Some(Self {
            program,
            message: serde_json::to_string(message).expect("a message serializes"),
            worker: Mutex::new(None),
        })
    }

    /// Asks a child; a second child once if the first is gone or dies. `None`: no child
    /// answered (it died rendering, or none could start), and why.
    pub(super) fn ask(&self, request: &Request) -> Result<Answer, String> {
        let mut line = serde_json::to_vec(request).expect("a request serializes");
        line.push(b'\n');
        let mut slot = self.worker.lock().unwrap_or_else(PoisonError::into_inner);
        let mut failure = String::new();
        for _ in 0..2 {
            let worker = match slot.take() {
                Some(worker) => worker,
                None => self
                    .start()
                    .map_err(|e| format!("the renderer did not start: {e}"))?,
            };
            match exchange(worker, &line) {
                Ok((worker, answer)) => {
                    *slot = Some(worker);
                    return Ok(answer);
                }
                Err(e) => failure = e,
            }
        }
        Err(failure)
    }

    fn start(&self) -> std::io::Result<Worker> {
        let mut child = Command::new(&self.program)
            .arg(WORKER_ARG)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        stdin.write_all(format!("{}\n", self.message).as_bytes())?;
        Ok(Worker {
            child,
            stdin,
            stdout,
        })
    }
}

/// One request (a JSON line) and its answer; the worker back if it is still usable.
fn exchange(mut worker: Worker, line: &[u8]) -> Result<(Worker, Answer), String> {
    // One write: the pipe is not buffered.
    worker
        .stdin
        .write_all(line)
        .map_err(|e| format!("the renderer is gone ({e})"))?;
    let mut answer = String::new();
    match worker.stdout.read_line(&mut answer) {
        Ok(n) if n > 0 => serde_json::from_str(&answer)
            .map(|answer| (worker, answer))
            .map_err(|e| format!("the renderer answered something unreadable: {e}")),
        _ => Err(format!(
            "the render needed more than {} MiB of memory, or the renderer died",
            MEMORY_LIMIT >> 20
        )),
    }
}

/// `zoomcast render-worker`: caps its memory, reads the message, then answers requests until
/// its stdin closes or stays silent for [`IDLE`]. Returns the exit code.
pub fn serve() -> i32 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    // Never above a lower limit the process was started under (a container's).
    let cap = getrlimit(Resource::Data)
        .maximum
        .map_or(MEMORY_LIMIT, |hard| hard.min(MEMORY_LIMIT));
    let limit = Rlimit {
        current: Some(cap),
        maximum: Some(cap),
    };
    if setrlimit(Resource::Data, limit).is_err() {
        return 1;
    }
    // Read through a buffer of our own, whose contents [`readable_within`] can see.
    let Ok(fd) = std::os::fd::AsFd::as_fd(&std::io::stdin()).try_clone_to_owned() else {
        return 1;
    };
    let mut input = BufReader::new(std::fs::File::from(fd));
    let mut line = String::new();
    if input.read_line(&mut line).unwrap_or(0) == 0 {
        return 0;
    }
    let Ok(message) = serde_json::from_str::<Message>(&line) else {
        return 1;
    };
    let Ok(template) = MessageTemplate::compile(message) else {
        return 1;
    };
    let mut out = std::io::stdout().lock();
    loop {
        if input.buffer().is_empty() && !readable_within(IDLE) {
            return 0;
        }
        line.clear();
        if input.read_line(&mut line).unwrap_or(0) == 0 {
            return 0;
        }
        let answer = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Render(vars)) => Answer::Rendered(template.render_here(&vars)),
            Ok(Request::Check(sample)) => Answer::Checked(template.check_here(&sample)),
            Err(_) => return 1,
        };
        let written = serde_json::to_writer(&mut out, &answer)
            .map_err(std::io::Error::other)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        if written.is_err() {
            return 0;
        }
    }
}

/// Whether stdin has something to read (or is closed) within `wait`.
fn readable_within(wait: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdin = std::io::stdin();
    let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
}
