//! Renders a job's templates in a child process whose memory and time are capped, so that a
//! job file whose template grows without bound (`{% set s = s ~ s %}` forty times, a `replace`
//! that squares a text) fails its render, named, instead of exhausting the machine. minijinja
//! bounds recursion and instructions (see [`super::template`]), not the size of values nor the
//! time one instruction takes.
//!
//! The child is the running image itself (`/proc/self/exe render-worker`, [`serve`]): it caps
//! its data segment at [`memory_cap`] ([`MEMORY_LIMIT`], or half the memory its cgroup allows
//! when that is less, or a lower limit it was started under: under a container's limit, the
//! render is refused before the kernel kills the container), compiles the message it is sent,
//! and answers one JSON line per request. It is in a process group of its
//! own (Ctrl-C is the parent's to handle), and exits when its parent closes the pipe or after
//! [`IDLE`] without a request. The parent waits at most [`DEADLINE`] for an answer.
//!
//! How a child ended says whose fault a failed render is ([`Failure`]): an allocation refused
//! (the child aborts) or the deadline is the template's; so is a child killed twice while
//! rendering the same request (a kernel out of memory kills by signal, and a template that
//! grows past what the machine has would otherwise stop every resume of its run at the same
//! recipient). Anything else (no child could start, one killed once) is not the template's,
//! and a run stops rather than fail its recipients.
//!
//! Only the binary turns this on ([`enable`]); the library's other users (tests, benchmarks
//! in-process) render in-process.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::RenderError;

/// The most memory (data segment: heap and anonymous mappings) a render may take, unless the
/// process's memory cgroup allows less ([`memory_cap`]).
pub const MEMORY_LIMIT: u64 = 512 << 20;
/// The longest one render may take.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// How long a child waits for a request before it exits.
const IDLE: Duration = Duration::from_secs(30);
/// The longest answer read (a card is a few KiB; Zoom takes at most a few tens).
const MAX_ANSWER: u64 = 4 << 20;
/// The argument that makes the binary a render worker.
pub const WORKER_ARG: &str = "render-worker";

static PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Renders in children of `program` (the zoomcast binary) from now on.
pub fn enable(program: PathBuf) {
    let _ = PROGRAM.set(program);
}

/// Whether this process was started as a render worker (its first argument [`WORKER_ARG`]).
pub fn is_worker() -> bool {
    std::env::args_os().nth(1).is_some_and(|a| a == WORKER_ARG)
}

/// Renders in children of this very binary from now on, even once an upgrade has replaced
/// its file (Linux's `/proc/self/exe` is the running image): a child of another version might
/// not read what it is sent.
pub fn enable_self() {
    let running = std::path::Path::new("/proc/self/exe");
    if running.exists() {
        enable(running.to_owned());
    } else if let Ok(program) = std::env::current_exe() {
        enable(program);
    }
}

/// What a child is asked.
#[derive(Serialize, Deserialize)]
pub(super) enum Request {
    /// The card for these variables.
    Render(BTreeMap<String, String>),
    /// The cards for each of these variables, in order: one request line for a batch,
    /// answered by one [`Answer::Rendered`] line per card as each is made.
    RenderMany(Vec<BTreeMap<String, String>>),
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

/// Why a child gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The template's fault: it needed more memory or time than a render gets.
    Template(String),
    /// Not the template's: no child could start, or one was stopped from outside.
    Renderer(String),
}

/// The child rendering one message, started when first needed. Cheap to clone: clones share
/// the child and the queue.
#[derive(Clone)]
pub(super) struct Sandbox(Arc<Shared>);

struct Shared {
    program: PathBuf,
    /// The message, as the child is sent it first (a JSON line).
    message: Vec<u8>,
    worker: Mutex<Option<Worker>>,
    /// Renders waiting for the next batch ([`Sandbox::render_queued`]).
    queue: Mutex<Queue>,
}

/// The renders waiting, and whether a thread is taking them to the child.
#[derive(Default)]
struct Queue {
    waiting: Vec<(BTreeMap<String, String>, Reply)>,
    draining: bool,
}

/// Where a queued render's answer goes.
type Reply = tokio::sync::oneshot::Sender<Result<Answer, Failure>>;

/// The most renders sent to the child in one exchange.
const MAX_BATCH: usize = 64;

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<std::io::Take<ChildStdout>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sandbox {
    /// The sandbox of `message` (what the child compiles, sent as its first line); `None`
    /// when rendering is in-process.
    pub(super) fn new(message: &impl Serialize) -> Option<Self> {
        let program = PROGRAM.get()?.clone();
        let mut line = serde_json::to_vec(message).expect("a message serializes");
        line.push(b'\n');
        Some(Self(Arc::new(Shared {
            program,
            message: line,
            worker: Mutex::new(None),
            queue: Mutex::new(Queue::default()),
        })))
    }

    /// Asks a child (the running one, unless it has exited, else a new one).
    pub(super) fn ask(&self, request: &Request) -> Result<Answer, Failure> {
        self.0.ask(request)
    }

    /// Renders `vars` in the child together with every other render queued meanwhile: one
    /// pipe round trip per batch, on tokio's blocking pool, instead of one per recipient on
    /// the caller's thread. Whoever finds no batch under way starts one; the others wait
    /// for their answer. A batch the child does not answer whole is asked again one render
    /// at a time, so each failure is the render's own ([`Sandbox::ask`]).
    pub(super) async fn render_queued(
        &self,
        vars: BTreeMap<String, String>,
    ) -> Result<Answer, Failure> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let lead = {
            let mut queue = self.0.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.waiting.push((vars, reply));
            !std::mem::replace(&mut queue.draining, true)
        };
        if lead {
            let shared = self.0.clone();
            tokio::task::spawn_blocking(move || shared.drain());
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Failure::Renderer("the renderer's queue stopped".into())))
    }
}

impl Shared {
    /// Takes the queued renders to the child, a batch at a time, until none is left.
    fn drain(&self) {
        loop {
            let batch: Vec<_> = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.waiting.is_empty() {
                    queue.draining = false;
                    return;
                }
                let n = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..n).collect()
            };
            let (vars, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            for (reply, answer) in replies.into_iter().zip(self.render_batch(&vars)) {
                let _ = reply.send(answer);
            }
        }
    }

    /// The answers to a batch of renders, in order. The child answers each render as it
    /// makes it, so a child that dies is known to have died on the render it had not
    /// answered: that one is asked again in a new child with the rest, and the rules of
    /// [`Sandbox::ask`] hold for each render (killed twice on it: its own failure).
    fn render_batch(&self, batch: &[BTreeMap<String, String>]) -> Vec<Result<Answer, Failure>> {
        if let [vars] = batch {
            return vec![self.ask(&Request::Render(vars.clone()))];
        }
        let mut slot = self.worker.lock().unwrap_or_else(PoisonError::into_inner);
        let mut answers = Vec::with_capacity(batch.len());
        // What happened to the first render not answered yet, in the children before.
        let (mut killed, mut idle) = (None::<String>, false);
        while answers.len() < batch.len() {
            let mut worker = match live(&mut slot).map_or_else(|| self.start(), Ok) {
                Ok(worker) => worker,
                Err(failure) => {
                    answers.resize_with(batch.len(), || Err(failure.clone()));
                    break;
                }
            };
            let rest = batch[answers.len()..].to_vec();
            let mut line = serde_json::to_vec(&Request::RenderMany(rest)).expect("serializes");
            line.push(b'\n');
            let mut ended = send(&mut worker, &line).err();
            while ended.is_none() && answers.len() < batch.len() {
                match receive(&mut worker) {
                    Ok(answer) => {
                        answers.push(Ok(answer));
                        (killed, idle) = (None, false);
                    }
                    Err(end) => ended = Some(end),
                }
            }
            let failed = match ended {
                None => {
                    *slot = Some(worker);
                    None
                }
                Some(Ended::Idle) if !idle => {
                    idle = true;
                    None
                }
                Some(Ended::Idle) => Some(Failure::Renderer(
                    "the renderer exited twice before answering".into(),
                )),
                Some(Ended::Killed(how)) => killed.replace(how.clone()).map(|_| {
                    Failure::Template(format!(
                        "the renderer was killed twice while rendering this message ({how}): \
                         the system stops a process that takes more memory than it has"
                    ))
                }),
                Some(Ended::Failed(failure)) => Some(failure),
            };
            if let Some(failure) = failed {
                answers.push(Err(failure));
                (killed, idle) = (None, false);
            }
        }
        answers
    }

    fn ask(&self, request: &Request) -> Result<Answer, Failure> {
        let mut line = serde_json::to_vec(request).expect("a request serializes");
        line.push(b'\n');
        let mut slot = self.worker.lock().unwrap_or_else(PoisonError::into_inner);
        let mut worker = match live(&mut slot) {
            Some(worker) => worker,
            None => self.start()?,
        };
        let mut answer = exchange(&mut worker, &line);
        // It went idle and exited just as the request came, or it was killed: a new child
        // takes the request once more.
        let killed_before = matches!(answer, Err(Ended::Killed(_)));
        if matches!(answer, Err(Ended::Idle | Ended::Killed(_))) {
            worker = self.start()?;
            answer = exchange(&mut worker, &line);
        }
        match answer {
            Ok(answer) => {
                *slot = Some(worker);
                Ok(answer)
            }
            Err(Ended::Idle) => Err(Failure::Renderer(
                "the renderer exited twice before answering".into(),
            )),
            Err(Ended::Killed(how)) if killed_before => Err(Failure::Template(format!(
                "the renderer was killed twice while rendering this message ({how}): the \
                 system stops a process that takes more memory than it has"
            ))),
            Err(Ended::Killed(how)) => {
                Err(Failure::Renderer(format!("the renderer stopped ({how})")))
            }
            Err(Ended::Failed(failure)) => Err(failure),
        }
    }

    fn start(&self) -> Result<Worker, Failure> {
        let failed =
            |e: std::io::Error| Failure::Renderer(format!("the renderer did not start: {e}"));
        let mut child = Command::new(&self.program)
            .arg(WORKER_ARG)
            .env_clear()
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(failed)?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped").take(0));
        let mut worker = Worker {
            child,
            stdin,
            stdout,
        };
        worker.stdin.write_all(&self.message).map_err(failed)?;
        Ok(worker)
    }
}

/// Why a child gave no answer to a request.
enum Ended {
    /// It exited on its own, as an idle one does.
    Idle,
    /// A signal ended it (other than the abort of a refused allocation): killed from outside,
    /// by a person or by the kernel out of memory.
    Killed(String),
    /// It failed, or ended otherwise.
    Failed(Failure),
}

/// The running child, taken from `slot`, unless it has exited (one idle too long is reaped
/// here).
fn live(slot: &mut Option<Worker>) -> Option<Worker> {
    let mut worker = slot.take()?;
    matches!(worker.child.try_wait(), Ok(None)).then_some(worker)
}

/// One request (a JSON line, in one write: the pipe is not buffered) and its answer.
fn exchange(worker: &mut Worker, line: &[u8]) -> Result<Answer, Ended> {
    send(worker, line)?;
    receive(worker)
}

/// Writes a request line.
fn send(worker: &mut Worker, line: &[u8]) -> Result<(), Ended> {
    worker.stdin.write_all(line).map_err(|_| ended(worker))
}

/// Reads one answer line, waiting at most [`DEADLINE`] for it.
fn receive(worker: &mut Worker) -> Result<Answer, Ended> {
    // A batch's answers may already be in the buffer, read with the one before.
    if worker.stdout.buffer().is_empty()
        && !readable_within(worker.stdout.get_ref().get_ref(), DEADLINE)
    {
        return Err(Ended::Failed(Failure::Template(format!(
            "the render took longer than {} s",
            DEADLINE.as_secs()
        ))));
    }
    worker.stdout.get_mut().set_limit(MAX_ANSWER);
    let mut answer = String::new();
    match worker.stdout.read_line(&mut answer) {
        Ok(n) if n > 0 && answer.ends_with('\n') => serde_json::from_str(&answer).map_err(|e| {
            Ended::Failed(Failure::Renderer(format!(
                "the renderer's answer is unreadable: {e}"
            )))
        }),
        Ok(n) if n > 0 => Err(Ended::Failed(Failure::Template(format!(
            "the rendered message is larger than {} MiB",
            MAX_ANSWER >> 20
        )))),
        _ => Err(ended(worker)),
    }
}

/// Linux's SIGABRT: how a Rust process ends when an allocation is refused.
const SIGABRT: i32 = 6;

/// Why a child that stopped answering ended: an allocation refused is the template's doing;
/// an exit of its own is [`Ended::Idle`]; anything else is not the template's.
fn ended(worker: &mut Worker) -> Ended {
    let _ = worker.child.kill();
    Ended::Failed(match worker.child.wait() {
        Ok(status) if status.signal() == Some(SIGABRT) => Failure::Template(format!(
            "the render needed more than {} MiB of memory",
            memory_cap() >> 20
        )),
        Ok(status) if status.success() => return Ended::Idle,
        Ok(status) if status.signal().is_some() => return Ended::Killed(status.to_string()),
        Ok(status) => Failure::Renderer(format!("the renderer stopped ({status})")),
        Err(e) => Failure::Renderer(format!("the renderer stopped ({e})")),
    })
}

/// The memory a render may take: [`MEMORY_LIMIT`], or half of what this process's memory
/// cgroup allows when that is less (so that under a container's limit, the render is refused
/// by its own cap, named, before the kernel kills it or the service).
pub fn memory_cap() -> u64 {
    static CAP: OnceLock<u64> = OnceLock::new();
    *CAP.get_or_init(|| {
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        cgroup_memory_limit(&cgroup, std::path::Path::new("/sys/fs/cgroup"))
            .map_or(MEMORY_LIMIT, |limit| MEMORY_LIMIT.min(limit / 2))
    })
}

/// The lowest memory limit of the cgroups in `proc_cgroup` (`/proc/self/cgroup`) and their
/// ancestors, read under `root` (`/sys/fs/cgroup`): cgroup v2's `memory.max`, or v1's
/// `memory/.../memory.limit_in_bytes`. `None` when none is set.
fn cgroup_memory_limit(proc_cgroup: &str, root: &std::path::Path) -> Option<u64> {
    let mut places = Vec::new();
    for line in proc_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            places.push((root.to_owned(), path, "memory.max"));
        } else if controllers.split(',').any(|c| c == "memory") {
            places.push((root.join("memory"), path, "memory.limit_in_bytes"));
        }
    }
    let mut lowest: Option<u64> = None;
    for (mount, path, file) in places {
        // The cgroup and each of its ancestors; a namespaced mount shows the container's own
        // cgroup at its root.
        let mut dir = std::path::Path::new(path);
        loop {
            let limit = std::fs::read_to_string(
                mount.join(dir.strip_prefix("/").unwrap_or(dir)).join(file),
            )
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            // v1 writes "no limit" as a number near 2^63.
            .filter(|&bytes| bytes < 1 << 62);
            lowest = match (lowest, limit) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match dir.parent() {
                Some(parent) => dir = parent,
                None => break,
            }
        }
    }
    lowest
}

/// What a child renders with: the message it was sent, compiled.
pub(super) trait Renderer {
    /// The card for these variables.
    fn render(&self, vars: &BTreeMap<String, String>) -> Result<Value, RenderError>;
    /// The problems of a test render with these sample values.
    fn check(&self, sample: &BTreeMap<String, String>) -> Vec<(String, String)>;
}

/// The child's side: caps its memory, reads the message and has `compile` make its
/// [`Renderer`], then answers requests until its stdin closes or stays silent for [`IDLE`].
/// Returns the exit code.
pub(super) fn serve<R: Renderer>(compile: impl FnOnce(&str) -> Option<R>) -> i32 {
    if cap_resources().is_err() {
        return 1;
    }
    // Read through a buffer of our own, whose contents decide whether to wait for more.
    let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() else {
        return 1;
    };
    let mut input = BufReader::new(std::fs::File::from(fd));
    let mut line = String::new();
    if input.read_line(&mut line).unwrap_or(0) == 0 {
        return 0;
    }
    let Some(template) = compile(&line) else {
        return 1;
    };
    let mut out = std::io::stdout().lock();
    loop {
        if input.buffer().is_empty() && !readable_within(input.get_ref(), IDLE) {
            return 0;
        }
        line.clear();
        if input.read_line(&mut line).unwrap_or(0) == 0 {
            return 0;
        }
        let written = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Render(vars)) => {
                answer(&mut out, &Answer::Rendered(template.render(&vars)))
            }
            Ok(Request::Check(sample)) => {
                answer(&mut out, &Answer::Checked(template.check(&sample)))
            }
            // Each card on its own line as soon as it is made: if this child dies, the parent
            // knows which render it died on.
            Ok(Request::RenderMany(batch)) => batch
                .iter()
                .try_for_each(|vars| answer(&mut out, &Answer::Rendered(template.render(vars)))),
            Err(_) => return 1,
        };
        if written.is_err() {
            return 0;
        }
    }
}

/// Writes one answer line, flushed.
fn answer(out: &mut impl Write, answer: &Answer) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, answer).map_err(std::io::Error::other)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// The child's limits: [`memory_cap`] of data (or less, if it was started under less), and
/// no core file (an abort at the cap would write hundreds of MiB).
fn cap_resources() -> rustix::io::Result<()> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Data);
    let cap = [now.current, now.maximum]
        .into_iter()
        .flatten()
        .fold(memory_cap(), u64::min);
    setrlimit(
        Resource::Data,
        Rlimit {
            current: Some(cap),
            maximum: Some(cap),
        },
    )?;
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
}

/// Whether `fd` has something to read (or is closed) within `wait`.
fn readable_within(fd: &impl AsFd, wait: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_memory_limit_of_a_cgroup_and_its_ancestors_is_found_in_either_version() {
        let root = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let file = root.path().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        };
        // cgroup v2: the pod's limit is below the container's "max".
        write("kubepods/pod1/memory.max", "268435456\n");
        write("kubepods/pod1/ctr/memory.max", "max\n");
        let v2 = "0::/kubepods/pod1/ctr\n";
        assert_eq!(cgroup_memory_limit(v2, root.path()), Some(256 << 20));
        // cgroup v1, with "no limit" written as a number near 2^63.
        write("memory/svc/memory.limit_in_bytes", "9223372036854771712\n");
        write("memory/memory.limit_in_bytes", "1073741824\n");
        let v1 = "9:pids:/svc\n4:memory:/svc\n0::/\n";
        assert_eq!(cgroup_memory_limit(v1, root.path()), Some(1 << 30));
        assert_eq!(
            cgroup_memory_limit("4:memory:/none\n", &root.path().join("x")),
            None
        );
    }
}
