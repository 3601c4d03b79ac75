//! [`Flusher`]: the one way zoomcast makes sled's writes durable.
//!
//! A sled flush writes and syncs the whole database's log, so it makes every tree's earlier
//! writes durable. Two rules follow:
//!
//! - **One flush at a time.** sled 0.34.7 can hang when flushes run concurrently
//!   (spacejam/sled#1308, fixed on sled's main branch but never released). Here, the journals
//!   of jobs running together, run records and token rotations all flush, and two of them at
//!   once can both wait forever for a write no thread is doing. So every flush zoomcast asks
//!   for takes one lock. (sled's own periodic flusher thread still writes its buffers on its
//!   own schedule, outside that lock.)
//! - **Waiters share a flush.** A caller that waited for the lock skips its own flush when
//!   another one started after it asked and succeeded: that one already covers its writes. So
//!   a burst of callers costs one or two flushes, not one each.
//!
//! The flush runs on the calling thread (tokio's blocking pool for async callers; a caller on a
//! runtime worker hands the worker's other tasks to another thread first, see [`blocking`]),
//! never through sled's `flush_async`: that one blocks a thread of sled's own pool until the
//! data is written, and the write itself needs a pool thread. 100 concurrent `flush_async`
//! calls hang for good on the first try (see the test below).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::offload::blocking;

use super::StateError;

/// Flushes one sled database, one flush at a time. Cheap to clone.
#[derive(Clone)]
pub struct Flusher {
    db: sled::Db,
    shared: Arc<Shared>,
}

struct Shared {
    /// Held for the duration of a flush.
    turn: Mutex<()>,
    /// Flushes started so far; incremented, under `turn`, just before each one starts.
    started: AtomicU64,
    /// The number (1, 2, ...) of the newest flush that succeeded; 0 before any did.
    succeeded: AtomicU64,
}

impl Flusher {
    /// The flusher of `db`. Create one per database and share it.
    pub fn new(db: &sled::Db) -> Self {
        Self {
            db: db.clone(),
            shared: Arc::new(Shared {
                turn: Mutex::new(()),
                started: AtomicU64::new(0),
                succeeded: AtomicU64::new(0),
            }),
        }
    }

    /// Returns once every write made before the call, to any tree, is on disk. Blocks the
    /// thread (on a runtime worker, through [`blocking`]): from async code, prefer
    /// [`Flusher::flush`].
    pub fn flush_blocking(&self) -> Result<(), StateError> {
        let ticket = self.ticket();
        blocking(|| self.flush_since(ticket))
    }

    /// The number of flushes started so far: a flush numbered above it started after every
    /// write made before it was taken.
    fn ticket(&self) -> u64 {
        self.shared.started.load(Ordering::SeqCst)
    }

    /// Flushes, unless a flush that started since `ticket` was taken succeeded.
    fn flush_since(&self, ticket: u64) -> Result<(), StateError> {
        // A flush that panicked or failed never counts as succeeded, so the lock's poisoning
        // carries nothing the counters do not already say.
        let _turn = self
            .shared
            .turn
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.shared.succeeded.load(Ordering::SeqCst) > ticket {
            // That flush started after the caller's writes, and it succeeded.
            return Ok(());
        }
        let number = self.shared.started.fetch_add(1, Ordering::SeqCst) + 1;
        self.db.flush()?;
        self.shared.succeeded.store(number, Ordering::SeqCst);
        Ok(())
    }

    /// [`Flusher::flush_blocking`] on tokio's blocking pool.
    pub async fn flush(&self) -> Result<(), StateError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.flush_blocking())
            .await
            .expect("a sled flush does not panic")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_caller_skips_its_flush_only_when_one_started_after_it_asked() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let flusher = Flusher::new(&db);
        let asked = flusher.ticket();
        flusher.flush_blocking().unwrap();
        assert_eq!(flusher.ticket(), asked + 1, "a first caller flushes");

        // A caller that asked before that flush started is covered by it.
        flusher.flush_since(asked).unwrap();
        assert_eq!(
            flusher.ticket(),
            asked + 1,
            "covered by the flush after it asked"
        );

        // One that asks now is not: nothing has started since.
        flusher.flush_blocking().unwrap();
        assert_eq!(
            flusher.ticket(),
            asked + 2,
            "a later caller gets its own flush"
        );
    }

    /// On a runtime with a single worker, a task that blocks (as the scheduler's tick records
    /// and the journal's batches do) lets the worker's other tasks run meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_task_that_blocks_lets_the_workers_other_tasks_run() {
        let blocker = tokio::spawn(async {
            let (tx, rx) = std::sync::mpsc::channel();
            // Queued behind this task on the only worker.
            let other = tokio::spawn(async move { tx.send(()).unwrap() });
            let waited = blocking(|| rx.recv_timeout(Duration::from_secs(10)));
            (waited, other)
        });
        let (waited, other) = blocker.await.unwrap();
        assert!(waited.is_ok(), "the other task ran while this one blocked");
        other.await.unwrap();
    }

    /// A single-threaded runtime cannot hand its tasks off: the work just runs.
    #[tokio::test]
    async fn blocking_work_runs_in_place_on_a_single_threaded_runtime() {
        assert_eq!(blocking(|| 7), 7);
    }

    /// With sled's own `flush_async` in place of `Flusher::flush`, this hangs in its first
    /// round (sled 0.34.7, this machine).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hundred_concurrent_flushes_all_finish_and_keep_their_writes() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let flusher = Flusher::new(&db);
        for round in 0..5u32 {
            let writers = (0..100u32).map(|i| {
                let (db, flusher) = (db.clone(), flusher.clone());
                async move {
                    db.insert((round * 1000 + i).to_be_bytes(), &[1])?;
                    flusher.flush().await
                }
            });
            let all = futures::future::join_all(writers);
            let Ok(results) = tokio::time::timeout(Duration::from_secs(30), all).await else {
                // A panic would hang too: dropping the database flushes it.
                errln!("round {round}: the flushes hang");
                std::process::abort();
            };
            assert!(results.iter().all(Result::is_ok), "{results:?}");
        }
        assert_eq!(db.len(), 500);
    }
}
