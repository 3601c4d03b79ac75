//! The scheduler's core loop: fires each job's ticks on time, catches up after downtime, never
//! runs a job twice at once, resumes interrupted runs at start-up, applies reloaded jobs, and
//! drains on shutdown.
//!
//! Runs start through a [`Launcher`] and time comes from a [`Clock`], so tests drive the loop
//! with paused tokio time and a launcher that only counts. Every tick the loop deals with (run,
//! queued or skipped with a logged reason) is recorded in the `schedule` tree first; a tick's run
//! is identified by job and tick (see [`crate::delivery::RunOptions::scheduled_for`]), so neither
//! a restart nor a reload can give a tick two runs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::slot::{Slot, Tick, catch_up, describe_next, log_skip, next_tick, record_tick, resume};
use crate::server::metrics::{ScheduleBoard, Schedules};

use super::plan::{self, SkipReason};
use crate::config::{Job, JobSet, Overlap};
use crate::state::{Console, Fires, Runs, StateError};

/// The longest the loop sleeps before reading the wall clock again (it may have jumped).
const MAX_NAP: Duration = Duration::from_secs(30);
/// A tick the loop sees this much after it was due was missed (the machine slept, the clock
/// jumped): it goes through `catch_up`, like ticks missed while the scheduler was down.
const LATE: Duration = Duration::from_secs(60);
/// After the drain deadline, how long cancelled runs get to stop and flush their journals.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Where the scheduler reads the time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Starts one run of a job: for schedule tick `tick`, or (`None`) the resumption of a run
/// started by hand. `cancel` fires when the drain deadline passes. The future's output is a
/// one-line summary for the log.
pub trait Launcher: Send + Sync {
    /// Starts the run.
    fn launch(
        &self,
        job: Arc<Job>,
        tick: Option<DateTime<Utc>>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, anyhow::Result<String>>;
}

/// A run to start by hand: given the token that cancels it at shutdown.
pub type ManualRun =
    Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, anyhow::Result<String>> + Send>;

/// How long in-flight runs get, after SIGTERM or SIGINT, before they are told to stop.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The drain deadline.
    pub drain: Duration,
}

/// The scheduler.
pub struct Scheduler<C, L> {
    clock: Arc<C>,
    launcher: Arc<L>,
    fires: Fires,
    runs: Runs,
    /// Where the console's suspensions are kept.
    console: Console,
    settings: Settings,
    slots: BTreeMap<String, Slot>,
    tasks: JoinSet<anyhow::Result<String>>,
    /// The job of each running task: a job runs while one of its tasks does.
    task_jobs: HashMap<tokio::task::Id, String>,
    /// Cancelled at the drain deadline; every run's token is a child.
    runs_cancel: CancellationToken,
    /// Set once shutdown began: nothing new starts.
    stopping: bool,
    /// Work queued by hand ([`Event::Enqueue`]), per job, in order.
    waiting: HashMap<String, VecDeque<ManualRun>>,
    /// Where the jobs' next ticks are posted for the metrics, and the files refused now.
    board: Option<ScheduleBoard>,
    invalid: usize,
}

impl<C: Clock + 'static, L: Launcher + 'static> Scheduler<C, L> {
    /// A scheduler over the `schedule`, `runs` and `console` trees.
    pub fn new(
        clock: Arc<C>,
        launcher: Arc<L>,
        (fires, runs, console): (Fires, Runs, Console),
        settings: Settings,
    ) -> Self {
        Self {
            clock,
            launcher,
            fires,
            runs,
            console,
            settings,
            slots: BTreeMap::new(),
            tasks: JoinSet::new(),
            task_jobs: HashMap::new(),
            runs_cancel: CancellationToken::new(),
            stopping: false,
            waiting: HashMap::new(),
            board: None,
            invalid: 0,
        }
    }

    /// Posts the jobs' next ticks and suspensions on `board` as they change.
    #[must_use]
    pub fn posting_to(mut self, board: ScheduleBoard) -> Self {
        self.board = Some(board);
        self
    }

    /// Posts what the metrics show of the jobs.
    fn post(&self) {
        let Some(board) = &self.board else {
            return;
        };
        let jobs = self
            .slots
            .iter()
            .map(|(name, slot)| (name.clone(), slot.next.map(|t| t.at), slot.suspended))
            .collect();
        let schedules = Schedules {
            jobs,
            invalid: self.invalid,
        };
        *board
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(schedules);
    }

    /// Runs until `shutdown` is cancelled, then drains: in-flight runs get the drain deadline,
    /// then are cancelled (they stop, flush their journals and stay interrupted).
    pub async fn run(
        mut self,
        initial: JobSet,
        mut events: mpsc::Receiver<Event>,
        shutdown: CancellationToken,
    ) -> Result<(), StateError> {
        // At start no run is going yet: a state that cannot be read stops the scheduler.
        self.apply(initial)?;
        loop {
            let now = self.clock.now();
            self.fire_due(now);
            self.post();
            let nap = self.nap(now);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.finished(done);
                }
                Some(event) = events.recv() => match event {
                    // Runs are going: a job whose state cannot be read is logged and left
                    // out, and the others keep their schedules.
                    Event::Reload(set) => {
                        let _ = self.apply(set);
                    }
                    Event::RunNow { job, run } => self.run_now(&job, run),
                    Event::Enqueue { job, run } => self.enqueue(&job, run),
                    Event::Suspend { job, suspended } => self.suspend(&job, suspended),
                },
                () = tokio::time::sleep(nap) => {}
            }
        }
        self.drain().await
    }

    /// Takes a loaded jobs directory: new jobs are added (resuming and catching up), changed
    /// ones replaced, removed ones dropped, and invalid files keep their last good version.
    /// A new job whose state cannot be read is logged and not scheduled; the error returned is
    /// the first such one.
    fn apply(&mut self, set: JobSet) -> Result<(), StateError> {
        let now = self.clock.now();
        let mut seen = Vec::new();
        self.invalid = set.broken.len();
        for (name, why) in &set.broken {
            seen.push(name.clone());
            if self.slots.contains_key(name) {
                tracing::error!(
                    "job `{name}` is invalid now; keeping its last good version:\n{why}"
                );
            } else {
                tracing::error!("job `{name}` is invalid and is not scheduled:\n{why}");
            }
        }
        let mut applied = Ok(());
        for job in set.jobs {
            let name = job.name.clone();
            seen.push(name.clone());
            if let Err(e) = self.upsert(job, now) {
                tracing::error!("job `{name}` is not scheduled: its state could not be read: {e}");
                applied = applied.and(Err(e));
            }
        }
        let gone: Vec<String> = self
            .slots
            .keys()
            .filter(|name| !seen.contains(name))
            .cloned()
            .collect();
        for name in gone {
            tracing::info!(
                "job `{name}` was removed from the jobs directory; it is no longer scheduled"
            );
            self.slots.remove(&name);
        }
        applied
    }

    /// Adds a job, or replaces one reloaded.
    fn upsert(&mut self, job: Job, now: DateTime<Utc>) -> Result<(), StateError> {
        let name = job.name.clone();
        let job = Arc::new(job);
        let suspended = self.console_suspension(&job).unwrap_or(job.suspend);
        if let Some(slot) = self.slots.get_mut(&name) {
            let timing = |j: &Job| {
                (
                    j.schedule.as_ref().map(ToString::to_string),
                    j.timezone,
                    j.policy.jitter,
                )
            };
            if timing(&slot.job) != timing(&job) {
                slot.next = next_tick(&job, now);
                tracing::info!(
                    "job `{name}` reloaded with a new schedule; next tick {}",
                    describe_next(slot.next)
                );
            }
            slot.suspended = suspended;
            slot.job = job;
            return Ok(());
        }
        let mut slot = Slot {
            job: job.clone(),
            next: None,
            queue: VecDeque::new(),
            suspended,
        };
        if slot.suspended {
            // Nothing missed while it was suspended (or the scheduler down) is caught up.
            record_tick(&self.fires, &name, now);
            slot.next = next_tick(&job, now);
            tracing::info!("job `{name}` is suspended: the scheduler passes its ticks over");
            self.slots.insert(name, slot);
            return Ok(());
        }
        if let Some(run) = self.runs.unfinished(&name)? {
            resume(&job, &run, now, &mut slot);
        }
        if let Some(schedule) = &job.schedule {
            match self.fires.last(&name)? {
                // First sight of the job: nothing before now was its to run.
                None => record_tick(&self.fires, &name, now),
                Some(last) => {
                    let missed = plan::ticks_between(schedule, job.timezone, last, now);
                    catch_up(&self.fires, &job, missed, now, &mut slot);
                }
            }
            slot.next = next_tick(&job, now);
        }
        tracing::info!(
            "job `{name}` scheduled; next tick {}",
            describe_next(slot.next)
        );
        self.slots.insert(name.clone(), slot);
        self.start_queued(&name);
        Ok(())
    }

    /// Fires every tick that is due. A tick seen more than [`LATE`] after it was due was
    /// missed (sleep, clock jump) and goes through `catch_up`.
    fn fire_due(&mut self, now: DateTime<Utc>) {
        if self.stopping {
            return;
        }
        let due: Vec<(String, Tick)> = self
            .slots
            .iter()
            .filter_map(|(name, slot)| {
                slot.next
                    .filter(|t| t.due <= now)
                    .map(|t| (name.clone(), t))
            })
            .collect();
        for (name, first) in due {
            let job = self.slots[&name].job.clone();
            let Some(schedule) = &job.schedule else {
                continue;
            };
            let jitter = first.due - first.at;
            let due_until = now - jitter;
            if self.slots[&name].suspended {
                self.pass_over(&name, &job, due_until);
                continue;
            }
            let late_until = due_until - TimeDelta::from_std(LATE).expect("small");
            // Schedules have whole seconds: just before the first due tick, no other is.
            let mut on_time_after = first.at - TimeDelta::milliseconds(1);
            if first.at <= late_until {
                let missed = plan::ticks_between(schedule, job.timezone, on_time_after, late_until);
                let slot = self.slots.get_mut(&name).expect("due slot exists");
                catch_up(&self.fires, &job, missed, now, slot);
                on_time_after = late_until;
            }
            let on_time: Vec<_> =
                plan::ticks_between(schedule, job.timezone, on_time_after, due_until).collect();
            for tick in on_time {
                self.fire(&name, tick);
            }
            if let Some(slot) = self.slots.get_mut(&name) {
                slot.next = next_tick(&job, due_until);
            }
            self.start_queued(&name);
        }
    }

    /// Whether the console suspended (`Some(true)`) or resumed `job`; `None` if it did neither
    /// (or its record cannot be read, which is logged: the file's `suspend` holds).
    fn console_suspension(&self, job: &Job) -> Option<bool> {
        match self.console.suspension(&job.name) {
            Ok(found) => found.map(|s| s.suspended),
            Err(e) => {
                tracing::error!(
                    "job `{}`: the console's suspension could not be read ({e}); its file's \
                     `suspend` holds",
                    job.name
                );
                None
            }
        }
    }

    /// The console suspended or resumed `job` (recorded already): its ticks are passed over
    /// from now, or fire again from the next one (nothing passed over is caught up).
    fn suspend(&mut self, job: &str, suspended: bool) {
        if let Some(slot) = self.slots.get_mut(job) {
            slot.suspended = suspended;
            let what = if suspended { "suspended" } else { "resumed" };
            tracing::info!("job `{job}` {what}; next tick {}", describe_next(slot.next));
        }
    }

    /// Passes a suspended job's ticks due by `until` over, recorded as fired: resuming the job
    /// catches none of them up.
    fn pass_over(&mut self, name: &str, job: &Job, until: DateTime<Utc>) {
        record_tick(&self.fires, name, until);
        tracing::debug!("job `{name}` is suspended: its ticks until {until} are passed over");
        if let Some(slot) = self.slots.get_mut(name) {
            slot.next = next_tick(job, until);
        }
    }

    /// One tick, on time: runs it, or applies `overlap` if the previous run is going.
    fn fire(&mut self, name: &str, tick: DateTime<Utc>) {
        if !self.is_running(name) && self.slots[name].queue.is_empty() {
            self.launch(name, Some(tick)); // records the tick
            return;
        }
        record_tick(&self.fires, name, tick);
        let slot = self.slots.get_mut(name).expect("fired slot exists");
        match slot.job.policy.overlap {
            Overlap::Skip => log_skip(name, tick, SkipReason::Overlap),
            Overlap::Queue => {
                slot.queue.push_back(Some(tick));
                tracing::info!(
                    "job `{name}`: tick {} waits for the previous run to end (overlap = \"queue\"; {} waiting)",
                    tick.to_rfc3339(),
                    slot.queue.len()
                );
            }
        }
    }

    /// Starts a run by hand, unless the job has a run going.
    fn run_now(&mut self, name: &str, run: ManualRun) {
        if self.is_running(name) {
            tracing::warn!("job `{name}`: a run by hand was refused: a run of the job is going");
            return;
        }
        tracing::info!("job `{name}`: starting a run by hand");
        let run = run(self.runs_cancel.child_token());
        self.spawn(name, run);
    }

    /// Queues `run` behind the job's going run and the work queued before it.
    fn enqueue(&mut self, name: &str, run: ManualRun) {
        self.waiting
            .entry(name.to_owned())
            .or_default()
            .push_back(run);
        self.start_queued(name);
    }

    /// Whether a run of the job is going.
    fn is_running(&self, name: &str) -> bool {
        self.task_jobs.values().any(|job| job == name)
    }

    fn spawn(&mut self, name: &str, run: BoxFuture<'static, anyhow::Result<String>>) {
        let handle = self.tasks.spawn(run);
        self.task_jobs.insert(handle.id(), name.to_owned());
    }

    /// Starts the job's next queued run if none is going.
    fn start_queued(&mut self, name: &str) {
        if self.stopping || self.is_running(name) {
            return;
        }
        if let Some(run) = self.waiting.get_mut(name).and_then(VecDeque::pop_front) {
            let run = run(self.runs_cancel.child_token());
            self.spawn(name, run);
            return;
        }
        if let Some(tick) = self
            .slots
            .get_mut(name)
            .and_then(|slot| slot.queue.pop_front())
        {
            self.launch(name, tick);
        }
    }

    fn launch(&mut self, name: &str, tick: Option<DateTime<Utc>>) {
        if let Some(tick) = tick {
            record_tick(&self.fires, name, tick);
            tracing::info!(
                "job `{name}`: starting the run for tick {}",
                tick.to_rfc3339()
            );
        } else {
            tracing::info!("job `{name}`: resuming its interrupted run");
        }
        let job = self.slots[name].job.clone();
        let run = self
            .launcher
            .launch(job, tick, self.runs_cancel.child_token());
        self.spawn(name, run);
    }

    /// A run ended: logs how, and starts what waited for it.
    fn finished(
        &mut self,
        done: Result<(tokio::task::Id, anyhow::Result<String>), tokio::task::JoinError>,
    ) {
        let (id, outcome) = match done {
            Ok((id, outcome)) => (id, outcome),
            Err(e) => (e.id(), Err(anyhow::anyhow!("the run panicked: {e}"))),
        };
        let name = self.task_jobs.remove(&id).unwrap_or_default();
        match outcome {
            // A run's end was logged with its fields already (`report::log_run`); other work
            // (an alert's edit) says how it went here.
            Ok(summary) if summary.is_empty() => {}
            Ok(summary) => tracing::info!(job = name.as_str(), "{summary}"),
            Err(e) => tracing::error!(job = name.as_str(), "job `{name}`: {e:#}"),
        }
        self.start_queued(&name);
    }

    /// How long to sleep: until the next tick is due, at most [`MAX_NAP`].
    fn nap(&self, now: DateTime<Utc>) -> Duration {
        self.slots
            .values()
            .filter_map(|s| s.next)
            .map(|t| (t.due - now).to_std().unwrap_or(Duration::ZERO))
            .min()
            .map_or(MAX_NAP, |d| d.min(MAX_NAP))
    }

    /// Shutdown: nothing new starts; in-flight runs get the drain deadline, then are cancelled
    /// and get [`STOP_GRACE`] to stop and flush.
    async fn drain(mut self) -> Result<(), StateError> {
        self.stopping = true;
        let dropped: usize = self.waiting.values().map(VecDeque::len).sum();
        if dropped > 0 {
            tracing::warn!(
                "{dropped} queued alert runs and edits were not started; runs recorded already \
                 resume with their job's next run"
            );
        }
        self.waiting.clear();
        if self.tasks.is_empty() {
            tracing::info!("stopped; no run was going");
            return Ok(());
        }
        tracing::info!(
            "shutting down: waiting up to {} for {} running jobs to finish",
            humantime::format_duration(self.settings.drain),
            self.tasks.len()
        );
        if self.join_within(self.settings.drain).await {
            tracing::info!("stopped; every run finished");
            return Ok(());
        }
        tracing::warn!(
            "drain deadline passed: stopping {} runs; they resume at the next start",
            self.tasks.len()
        );
        self.runs_cancel.cancel();
        if !self.join_within(STOP_GRACE).await {
            tracing::error!(
                "{} runs did not stop within {}; leaving them (their unconfirmed sends are uncertain at the next start)",
                self.tasks.len(),
                humantime::format_duration(STOP_GRACE)
            );
            self.tasks.abort_all();
        }
        Ok(())
    }

    /// Collects ending runs for at most `limit`; whether every run ended.
    async fn join_within(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        while !self.tasks.is_empty() {
            tokio::select! {
                Some(done) = self.tasks.join_next_with_id() => self.finished(done),
                () = &mut deadline => return false,
            }
        }
        true
    }
}

/// What reaches the loop from outside while it runs.
pub enum Event {
    /// The jobs directory, loaded again (SIGHUP or a changed file).
    Reload(JobSet),
    /// Run a job now (`zoomcast run` beside the daemon). Started unless a run of the job is
    /// going or shutdown began; a refused run is dropped unstarted, which its asker sees.
    RunNow {
        /// The job's name.
        job: String,
        /// The run.
        run: ManualRun,
    },
    /// Work on a job (an alert's run or edit) that waits its turn: started when no run of the
    /// job is going, after the work queued before it. Dropped unstarted at shutdown.
    Enqueue {
        /// The job's name.
        job: String,
        /// The work.
        run: ManualRun,
    },
    /// The console suspended or resumed a job (its record is stored already).
    Suspend {
        /// The job's name.
        job: String,
        /// Whether it is suspended now.
        suspended: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::state::Store;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Wall time that moves with paused tokio time.
    struct PausedClock {
        wall: DateTime<Utc>,
        start: tokio::time::Instant,
    }

    impl Clock for PausedClock {
        fn now(&self) -> DateTime<Utc> {
            self.wall + TimeDelta::from_std(self.start.elapsed()).unwrap()
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Call {
        job: String,
        tick: Option<DateTime<Utc>>,
        started: DateTime<Utc>,
        ended: Option<DateTime<Utc>>,
        cancelled: bool,
    }

    /// Runs that take `run_for` (or stop when cancelled), and a record of them.
    struct Counting {
        clock: Arc<PausedClock>,
        run_for: Duration,
        calls: Arc<Mutex<Vec<Call>>>,
        running: Arc<AtomicUsize>,
        most_at_once: Arc<AtomicUsize>,
    }

    impl Launcher for Counting {
        fn launch(
            &self,
            job: Arc<Job>,
            tick: Option<DateTime<Utc>>,
            cancel: CancellationToken,
        ) -> BoxFuture<'static, anyhow::Result<String>> {
            let (clock, calls, run_for) = (self.clock.clone(), self.calls.clone(), self.run_for);
            let (running, most) = (self.running.clone(), self.most_at_once.clone());
            Box::pin(async move {
                let index = {
                    let mut calls = calls.lock().unwrap();
                    calls.push(Call {
                        job: job.name.clone(),
                        tick,
                        started: clock.now(),
                        ended: None,
                        cancelled: false,
                    });
                    calls.len() - 1
                };
                let now_running = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now_running, Ordering::SeqCst);
                let cancelled = tokio::select! {
                    () = tokio::time::sleep(run_for) => false,
                    () = cancel.cancelled() => true,
                };
                running.fetch_sub(1, Ordering::SeqCst);
                let mut calls = calls.lock().unwrap();
                calls[index].ended = Some(clock.now());
                calls[index].cancelled = cancelled;
                Ok("done".to_owned())
            })
        }
    }

    struct Harness {
        dir: tempfile::TempDir,
        store: Store,
        clock: Arc<PausedClock>,
        launcher: Arc<Counting>,
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    impl Harness {
        fn new(wall: &str, run_for: Duration) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("state")).unwrap();
            let clock = Arc::new(PausedClock {
                wall: at(wall),
                start: tokio::time::Instant::now(),
            });
            let launcher = Arc::new(Counting {
                clock: clock.clone(),
                run_for,
                calls: Arc::default(),
                running: Arc::default(),
                most_at_once: Arc::default(),
            });
            Self {
                dir,
                store,
                clock,
                launcher,
            }
        }

        /// A job `name` with `schedule` and extra top-level keys.
        fn job(&self, name: &str, schedule: &str, extra: &str) -> Job {
            let path = self.dir.path().join(format!("{name}.toml"));
            std::fs::write(
                &path,
                format!(
                    "schedule = \"{schedule}\"\n{extra}\n[recipients]\nemails = [\"ana@example.com\"]\n\
                     [message]\nhead = \"h\"\nbody = \"b\"\n"
                ),
            )
            .unwrap();
            Job::load(&path, &Config::empty()).unwrap()
        }

        fn start(
            &self,
            jobs: Vec<Job>,
            drain: Duration,
        ) -> (
            tokio::task::JoinHandle<Result<(), StateError>>,
            CancellationToken,
            mpsc::Sender<Event>,
        ) {
            let scheduler = Scheduler::new(
                self.clock.clone(),
                self.launcher.clone(),
                (
                    self.store.fires().unwrap(),
                    self.store.runs().unwrap(),
                    self.store.console().unwrap(),
                ),
                Settings { drain },
            );
            let shutdown = CancellationToken::new();
            let (events, rx) = mpsc::channel(4);
            let set = JobSet {
                jobs,
                broken: Vec::new(),
            };
            let task = tokio::spawn(scheduler.run(set, rx, shutdown.clone()));
            (task, shutdown, events)
        }

        /// Runs the scheduler over `jobs` for `span` of virtual time, then shuts it down.
        async fn run_for(&self, jobs: Vec<Job>, span: Duration) {
            let (task, shutdown, _events) = self.start(jobs, Duration::from_secs(60));
            tokio::time::sleep(span).await;
            shutdown.cancel();
            task.await.unwrap().unwrap();
        }

        fn calls(&self) -> Vec<Call> {
            self.launcher.calls.lock().unwrap().clone()
        }

        fn ticks(&self) -> Vec<DateTime<Utc>> {
            self.calls().iter().filter_map(|c| c.tick).collect()
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[tokio::test(start_paused = true)]
    async fn fires_every_tick_once_and_on_time() {
        let h = Harness::new("2026-11-23T10:00:00.500Z", Duration::from_millis(100));
        let job = h.job("pulse", "*/2 * * * * *", "");
        h.run_for(vec![job], secs(10)).await;
        let expected: Vec<_> = ["02", "04", "06", "08", "10"]
            .iter()
            .map(|s| at(&format!("2026-11-23T10:00:{s}Z")))
            .collect();
        assert_eq!(h.ticks(), expected);
        for call in h.calls() {
            let late = call.started - call.tick.unwrap();
            assert!(
                late >= TimeDelta::zero() && late < TimeDelta::milliseconds(50),
                "{call:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn overlap_skip_never_runs_a_job_twice_at_once() {
        let h = Harness::new("2026-11-23T10:00:00.500Z", secs(5));
        let job = h.job("slow", "*/2 * * * * *", "");
        h.run_for(vec![job], secs(20)).await;
        assert_eq!(h.launcher.most_at_once.load(Ordering::SeqCst), 1);
        // 02 runs until 07; 04 and 06 are skipped; 08 runs until 13; ...
        let expected: Vec<_> = ["02", "08", "14", "20"]
            .iter()
            .map(|s| at(&format!("2026-11-23T10:00:{s}Z")))
            .collect();
        assert_eq!(h.ticks(), expected);
    }

    #[tokio::test(start_paused = true)]
    async fn overlap_queue_runs_every_tick_in_turn() {
        let h = Harness::new("2026-11-23T10:00:00.500Z", secs(3));
        let job = h.job("queued", "*/2 * * * * *", "overlap = \"queue\"");
        h.run_for(vec![job], secs(12)).await;
        assert_eq!(h.launcher.most_at_once.load(Ordering::SeqCst), 1);
        let ticks = h.ticks();
        // Started at 02, 05, 08, 11: the ticks 02, 04, 06, 08 in order, none lost.
        let expected: Vec<_> = ["02", "04", "06", "08"]
            .iter()
            .map(|s| at(&format!("2026-11-23T10:00:{s}Z")))
            .collect();
        assert_eq!(ticks, expected);
        let calls = h.calls();
        for pair in calls.windows(2) {
            assert!(pair[1].started >= pair[0].ended.unwrap(), "{pair:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn catch_up_after_downtime() {
        let down_since = at("2026-11-23T09:50:30Z");
        let missed: Vec<_> = (51..=59)
            .map(|m| at(&format!("2026-11-23T09:{m}:00Z")))
            .chain([at("2026-11-23T10:00:00Z")])
            .collect();
        for (extra, expected) in [
            ("catch_up = \"latest\"", vec![missed[9]]),
            ("", vec![missed[9]]),
            ("catch_up = \"all\"", missed.clone()),
            (
                "catch_up = \"all\"\ncatch_up_within = \"150s\"",
                missed[7..].to_vec(),
            ),
            ("catch_up = \"none\"", vec![]),
        ] {
            let h = Harness::new("2026-11-23T10:00:10Z", Duration::from_millis(100));
            let job = h.job("minutely", "0 * * * * *", extra);
            h.store
                .fires()
                .unwrap()
                .set("minutely", down_since)
                .unwrap();
            // 40 s: the missed ticks run, the next regular one (10:01:00) is not due yet.
            h.run_for(vec![job], secs(40)).await;
            assert_eq!(h.ticks(), expected, "{extra}");
            assert_eq!(
                h.store.fires().unwrap().last("minutely").unwrap(),
                Some(missed[9]),
                "{extra}: every missed tick is accounted for"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_job_does_not_catch_up_on_its_past() {
        let h = Harness::new("2026-11-23T10:00:10Z", Duration::from_millis(100));
        let job = h.job("fresh", "0 * * * * *", "catch_up = \"all\"");
        h.run_for(vec![job], secs(40)).await;
        assert!(h.calls().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_never_fires_a_tick_twice() {
        let h = Harness::new("2026-11-23T10:00:50Z", Duration::from_millis(100));
        let job = || h.job("minutely", "0 * * * * *", "catch_up = \"all\"");
        h.run_for(vec![job()], secs(15)).await;
        assert_eq!(h.ticks(), [at("2026-11-23T10:01:00Z")]);
        // Restarted at 10:01:05, within the same minute: nothing is missed, nothing doubles.
        h.run_for(vec![job()], secs(40)).await;
        assert_eq!(h.ticks(), [at("2026-11-23T10:01:00Z")]);
    }

    #[tokio::test(start_paused = true)]
    async fn start_up_resumes_interrupted_runs_that_are_still_current() {
        let h = Harness::new("2026-11-23T10:00:30Z", Duration::from_millis(100));
        let runs = h.store.runs().unwrap();
        // `current` was interrupted during its 10:00 tick; `stale` during a tick that a later
        // one has replaced; `manual` during a run started by hand.
        runs.start(
            "current",
            ("default", None),
            None,
            Some(at("2026-11-23T10:00:00Z")),
        )
        .await
        .unwrap();
        runs.start(
            "stale",
            ("default", None),
            None,
            Some(at("2026-11-23T09:00:00Z")),
        )
        .await
        .unwrap();
        runs.start("manual", ("default", None), None, None)
            .await
            .unwrap();
        let fires = h.store.fires().unwrap();
        fires.set("current", at("2026-11-23T10:00:00Z")).unwrap();
        fires.set("stale", at("2026-11-23T10:00:00Z")).unwrap();
        let jobs = vec![
            h.job("current", "0 * * * *", ""),
            h.job("stale", "0 * * * *", ""),
            h.job("manual", "0 0 1 1 *", ""),
        ];
        h.run_for(jobs, secs(5)).await;
        let mut calls: Vec<_> = h.calls().into_iter().map(|c| (c.job, c.tick)).collect();
        calls.sort();
        assert_eq!(
            calls,
            [
                ("current".to_owned(), Some(at("2026-11-23T10:00:00Z"))),
                ("manual".to_owned(), None)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_drains_then_cancels() {
        // A run that would take 100 s: shutdown at 5 s, drain 3 s, cancelled at 8 s.
        let h = Harness::new("2026-11-23T10:00:00.500Z", secs(100));
        let job = h.job("long", "*/2 * * * * *", "");
        let (task, shutdown, _events) = h.start(vec![job], secs(3));
        tokio::time::sleep(secs(5)).await;
        shutdown.cancel();
        let stopped_at = tokio::time::Instant::now();
        task.await.unwrap().unwrap();
        assert_eq!(
            stopped_at.elapsed(),
            secs(3),
            "returns at the drain deadline"
        );
        let calls = h.calls();
        assert_eq!(calls.len(), 1, "no new run starts during the drain");
        assert!(calls[0].cancelled);
        assert_eq!(calls[0].ended, Some(at("2026-11-23T10:00:08.500Z")));

        // A run that ends within the deadline is left to finish.
        let h = Harness::new("2026-11-23T10:00:00.500Z", secs(4));
        let job = h.job("short", "*/2 * * * * *", "");
        let (task, shutdown, _events) = h.start(vec![job], secs(30));
        tokio::time::sleep(secs(3)).await;
        shutdown.cancel();
        task.await.unwrap().unwrap();
        let calls = h.calls();
        assert_eq!(calls.len(), 1);
        assert!(!calls[0].cancelled);
        assert_eq!(calls[0].ended, Some(at("2026-11-23T10:00:06Z")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_by_hand_is_refused_while_the_job_runs() {
        let h = Harness::new("2026-11-23T10:00:00.500Z", secs(5));
        let (task, shutdown, events) = h.start(vec![h.job("busy", "*/10 * * * * *", "")], secs(5));
        let by_hand = |started: Arc<AtomicUsize>| -> ManualRun {
            Box::new(move |_cancel| {
                Box::pin(async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    Ok("by hand".to_owned())
                })
            })
        };
        let started = Arc::new(AtomicUsize::new(0));
        tokio::time::sleep(secs(2)).await; // before the 10 s tick: accepted
        let job = "busy".to_owned();
        events
            .send(Event::RunNow {
                job: job.clone(),
                run: by_hand(started.clone()),
            })
            .await
            .unwrap();
        tokio::time::sleep(secs(10)).await; // 12 s: the 10 s tick's run goes until 15 s
        events
            .send(Event::RunNow {
                job,
                run: by_hand(started.clone()),
            })
            .await
            .unwrap();
        tokio::time::sleep(secs(1)).await;
        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 1);
        assert_eq!(h.ticks(), [at("2026-11-23T10:00:10Z")]);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_delays_each_tick_by_the_jobs_own_amount() {
        let h = Harness::new("2026-11-23T10:00:30Z", Duration::from_millis(100));
        let job = h.job("spread", "0 * * * * *", "jitter = \"20s\"");
        let delay = TimeDelta::from_std(plan::jitter("spread", secs(20))).unwrap();
        h.run_for(vec![job], secs(180)).await;
        let calls = h.calls();
        assert_eq!(calls.len(), 3);
        for call in calls {
            let late = call.started - call.tick.unwrap();
            assert!(
                late >= delay && late < delay + TimeDelta::milliseconds(50),
                "{call:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reload_applies_changes_and_keeps_the_last_good_version() {
        let h = Harness::new("2026-11-23T10:00:00.500Z", Duration::from_millis(100));
        let (task, shutdown, events) = h.start(vec![h.job("r", "*/2 * * * * *", "")], secs(5));
        tokio::time::sleep(secs(4)).await; // ticks 02, 04
        let reload = |jobs, broken| Event::Reload(JobSet { jobs, broken });
        events
            .send(reload(vec![h.job("r", "*/5 * * * * *", "")], vec![]))
            .await
            .unwrap();
        tokio::time::sleep(secs(6)).await; // ticks 05, 10
        events
            .send(reload(vec![], vec![("r".to_owned(), "bad".to_owned())]))
            .await
            .unwrap();
        tokio::time::sleep(secs(5)).await; // still every 5 s: 15
        events.send(reload(vec![], vec![])).await.unwrap();
        tokio::time::sleep(secs(10)).await; // removed: nothing more
        shutdown.cancel();
        task.await.unwrap().unwrap();
        let expected: Vec<_> = ["02", "04", "05", "10", "15"]
            .iter()
            .map(|s| at(&format!("2026-11-23T10:00:{s}Z")))
            .collect();
        assert_eq!(h.ticks(), expected);
    }

    #[tokio::test(start_paused = true)]
    async fn a_suspended_job_fires_nothing_and_resuming_it_catches_nothing_up() {
        let h = Harness::new("2026-11-23T10:00:00.500Z", Duration::from_millis(100));
        // Down since 09:50 with `catch_up = "all"`: suspended, none of it is caught up either.
        h.store
            .fires()
            .unwrap()
            .set("s", at("2026-11-23T09:50:00Z"))
            .unwrap();
        let job = |extra| h.job("s", "*/2 * * * * *", extra);
        let suspended = "suspend = true\ncatch_up = \"all\"";
        let (task, shutdown, events) = h.start(vec![job(suspended)], secs(5));
        tokio::time::sleep(secs(7)).await; // ticks 02, 04, 06 passed over
        assert!(h.calls().is_empty(), "{:?}", h.calls());
        let reload = |jobs| {
            Event::Reload(JobSet {
                jobs,
                broken: Vec::new(),
            })
        };
        events
            .send(reload(vec![job("catch_up = \"all\"")]))
            .await
            .unwrap();
        tokio::time::sleep(secs(4)).await; // 08, 10
        shutdown.cancel();
        task.await.unwrap().unwrap();
        let expected: Vec<_> = ["08", "10"]
            .iter()
            .map(|s| at(&format!("2026-11-23T10:00:{s}Z")))
            .collect();
        assert_eq!(h.ticks(), expected);
    }

    #[tokio::test(start_paused = true)]
    async fn the_consoles_suspension_holds_over_the_file_and_is_kept_across_a_restart() {
        let h = Harness::new("2026-11-23T10:00:00.500Z", Duration::from_millis(100));
        let job = || h.job("s", "*/2 * * * * *", "");
        let (task, shutdown, events) = h.start(vec![job()], secs(5));
        tokio::time::sleep(secs(3)).await; // 02 runs
        let suspension = crate::state::Suspension {
            suspended: true,
            by: "ana".into(),
            at: chrono::Utc::now(),
        };
        let console = h.store.console().unwrap();
        console.set_suspension("s", &suspension).await.unwrap();
        let event = Event::Suspend {
            job: "s".into(),
            suspended: true,
        };
        events.send(event).await.unwrap();
        tokio::time::sleep(secs(4)).await; // 04, 06 passed over
        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(h.ticks(), [at("2026-11-23T10:00:02Z")]);

        // Started again with the file saying nothing of `suspend`: still suspended.
        let (task, shutdown, events) = h.start(vec![job()], secs(5));
        tokio::time::sleep(secs(3)).await;
        assert_eq!(h.ticks().len(), 1, "{:?}", h.ticks());
        let resumed = crate::state::Suspension {
            suspended: false,
            ..suspension
        };
        console.set_suspension("s", &resumed).await.unwrap();
        let event = Event::Suspend {
            job: "s".into(),
            suspended: false,
        };
        events.send(event).await.unwrap();
        tokio::time::sleep(secs(2)).await; // the next tick runs, nothing missed is caught up
        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(h.ticks().len(), 2, "{:?}", h.ticks());
    }

    #[tokio::test(start_paused = true)]
    async fn daylight_saving_changes_neither_skip_nor_double_a_run() {
        // Fixed times inside the spring-forward gap and inside the repeated hour.
        for (start, zone, schedule, expected) in [
            (
                "2026-03-28T12:00:00Z",
                "Europe/Berlin",
                "30 2 * * *",
                [
                    "2026-03-29T01:00:00Z",
                    "2026-03-30T00:30:00Z",
                    "2026-03-31T00:30:00Z",
                ],
            ),
            (
                "2026-10-24T12:00:00Z",
                "Europe/Berlin",
                "30 2 * * *",
                [
                    "2026-10-25T00:30:00Z",
                    "2026-10-26T01:30:00Z",
                    "2026-10-27T01:30:00Z",
                ],
            ),
            (
                "2026-03-07T12:00:00Z",
                "America/New_York",
                "30 2 * * *",
                [
                    "2026-03-08T07:00:00Z",
                    "2026-03-09T06:30:00Z",
                    "2026-03-10T06:30:00Z",
                ],
            ),
            (
                "2026-10-31T12:00:00Z",
                "America/New_York",
                "30 1 * * *",
                [
                    "2026-11-01T05:30:00Z",
                    "2026-11-02T06:30:00Z",
                    "2026-11-03T06:30:00Z",
                ],
            ),
        ] {
            let h = Harness::new(start, Duration::from_millis(100));
            let job = h.job("nightly", schedule, &format!("timezone = \"{zone}\""));
            h.run_for(vec![job], secs(3 * 24 * 3600)).await;
            let expected: Vec<_> = expected.iter().map(|s| at(s)).collect();
            assert_eq!(h.ticks(), expected, "{zone} from {start}");
        }
    }
}
