//! A run's progress: counters the pipeline bumps, shown as a bar on a terminal (indicatif) or
//! as periodic log lines otherwise (a daemon, a pipe, a CI log).
//!
//! Log lines and the bar share stderr: [`LogWriter`] clears the bar, writes the line and
//! redraws the bar, so a warning during a run does not tear the bar apart.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use tokio::time::Instant;

use crate::state::DeliveryState;

/// How a run shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar on stderr, redrawn a few times a second (drawn only if stderr is a terminal).
    Bar,
    /// A log line at this interval.
    Lines(Duration),
    /// Nothing until the report.
    Off,
}

impl Default for ProgressMode {
    fn default() -> Self {
        Self::Lines(Duration::from_secs(5))
    }
}

/// Every bar of the process, drawn on stderr.
static TERMINAL: LazyLock<MultiProgress> =
    LazyLock::new(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));

/// Stderr for log lines: hides the progress bars while a line is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl std::io::Write for LogWriter {
    /// A line stderr refuses (its reader went away) is dropped: logging never fails a caller.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = TERMINAL.suspend(|| std::io::stderr().write_all(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// What this process has done for a run so far.
pub(super) struct Progress {
    /// The run's recipients (de-duplicated).
    total: u64,
    sent: AtomicU64,
    failed: AtomicU64,
    /// Recipients an earlier process of the run settled, skipped by this one.
    skipped: AtomicU64,
    started: Instant,
}

/// One reading of [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Snapshot {
    sent: u64,
    failed: u64,
    skipped: u64,
    total: u64,
    /// Sends per second by this process.
    rate: f64,
}

impl Snapshot {
    fn done(&self) -> u64 {
        self.sent + self.failed + self.skipped
    }

    fn left(&self) -> u64 {
        self.total.saturating_sub(self.done())
    }

    /// "Ts", or "unknown" before the first send.
    fn eta(&self) -> String {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )] // counts and seconds, for display
        if self.rate > 0.0 {
            format!("{}s", (self.left() as f64 / self.rate).ceil() as u64)
        } else {
            "unknown".into()
        }
    }

    /// For a bar, which shows the position itself: "N sent, M failed, R/s, ETA Ts".
    fn brief(&self) -> String {
        format!(
            "{} sent, {} failed, {:.0}/s, ETA {}",
            self.sent,
            self.failed,
            self.rate,
            self.eta()
        )
    }

    /// For a log line: "N sent, M failed, R/s, about L left, ETA Ts".
    fn describe(&self) -> String {
        let earlier = if self.skipped > 0 {
            format!(" ({} done earlier)", self.skipped)
        } else {
            String::new()
        };
        format!(
            "{} sent, {} failed{earlier}, {:.0}/s, about {} left, ETA {}",
            self.sent,
            self.failed,
            self.rate,
            self.left(),
            self.eta()
        )
    }
}

impl Progress {
    pub(super) fn new(total: usize) -> Self {
        Self {
            total: total as u64,
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Counts a recipient's final state.
    pub(super) fn count(&self, state: &DeliveryState) {
        match state {
            DeliveryState::Sent { .. } => self.sent.fetch_add(1, Ordering::Relaxed),
            DeliveryState::Failed { .. } | DeliveryState::Uncertain => {
                self.failed.fetch_add(1, Ordering::Relaxed)
            }
            // Settled without a send, like a recipient an earlier process settled.
            DeliveryState::OptedOut => self.skipped.fetch_add(1, Ordering::Relaxed),
            DeliveryState::Pending | DeliveryState::Sending => 0,
        };
    }

    /// Recipients sent by this process.
    pub(super) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Counts a recipient an earlier process of the run already settled.
    pub(super) fn skip(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Snapshot {
        let sent = self.sent.load(Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)] // a count, for display
        let rate = sent as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        Snapshot {
            sent,
            failed: self.failed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            total: self.total,
            rate,
        }
    }

    /// Shows the progress of job `job` the way `mode` says, until the future is dropped.
    pub(super) async fn show(&self, mode: ProgressMode, job: &str) -> std::convert::Infallible {
        match mode {
            ProgressMode::Lines(every) => self.log_every(every, job).await,
            ProgressMode::Bar => self.draw(TERMINAL.add(self.bar())).await,
            ProgressMode::Off => std::future::pending().await,
        }
    }

    /// Tells `announce` how far run `run` is every two seconds, until the future is dropped.
    pub(super) async fn announce(
        &self,
        announce: Option<&super::Announce>,
        run: u64,
    ) -> std::convert::Infallible {
        let Some(announce) = announce else {
            return std::future::pending().await;
        };
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            (announce.0)(&format!("run {run}: {}", self.snapshot().describe()));
        }
    }

    async fn log_every(&self, every: Duration, job: &str) -> std::convert::Infallible {
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        loop {
            tick.tick().await;
            tracing::info!("job `{job}`: {}", self.snapshot().describe());
        }
    }

    /// A bar for this run, cleared when the run ends (the report follows).
    fn bar(&self) -> ProgressBar {
        let style = ProgressStyle::with_template("[{bar:20}] {pos}/{len} {wide_msg}")
            .expect("the template is valid")
            .progress_chars("=> ");
        ProgressBar::new(self.total)
            .with_style(style)
            .with_finish(ProgressFinish::AndClear)
    }

    async fn draw(&self, bar: ProgressBar) -> std::convert::Infallible {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            let now = self.snapshot();
            bar.set_message(now.brief());
            bar.set_position(now.done());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_says_what_is_done_what_is_left_and_when_it_ends() {
        let now = Snapshot {
            sent: 300,
            failed: 20,
            skipped: 80,
            total: 1000,
            rate: 100.0,
        };
        assert_eq!(
            now.describe(),
            "300 sent, 20 failed (80 done earlier), 100/s, about 600 left, ETA 6s"
        );
        let stalled = Snapshot {
            rate: 0.0,
            skipped: 0,
            ..now
        };
        assert_eq!(
            stalled.describe(),
            "300 sent, 20 failed, 0/s, about 680 left, ETA unknown"
        );
        assert_eq!(now.brief(), "300 sent, 20 failed, 100/s, ETA 6s");
    }

    #[test]
    fn progress_counts_final_states_and_skips() {
        let progress = Progress::new(5);
        progress.count(&DeliveryState::Sent {
            message_id: "m".into(),
        });
        progress.count(&DeliveryState::Sending);
        progress.count(&DeliveryState::Uncertain);
        progress.count(&DeliveryState::Failed {
            code: None,
            message: "no".into(),
        });
        progress.skip();
        let now = progress.snapshot();
        assert_eq!((now.sent, now.failed, now.skipped), (1, 2, 1));
        assert_eq!((now.done(), now.left()), (4, 1));
    }
}
