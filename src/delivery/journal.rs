//! [`Journal`]: the delivery journal's group commit.
//!
//! Before a send goes out, its recipient is marked `sending` and that mark is flushed. A
//! sender queues its mark and yields once, so that every other sender ready at that moment
//! queues its own; the first of them to run again writes the whole batch, flushes once and
//! returns, and the rest find their marks on disk. So durability costs one fsync per batch,
//! not per recipient, and a mark never crosses a thread (a hand-off to a writer thread and
//! back would put two thread wake-ups on every send's path). The flush blocks its thread
//! (`block_in_place`, so the runtime's other tasks move on). Marks are inserted by the one
//! writer, so senders do not contend on sled's insert.
//!
//! Outcomes are inserted as they arrive, unflushed; the next group commit makes them durable
//! too. So after a crash, the only recipients whose outcome is unknown are those whose sender
//! had not started its next send: at most one per send slot, which bounds the duplicates a
//! resumed run can cause by `concurrency`.

use std::mem;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::state::blocking;
use crate::state::{Deliveries, Delivery, RunId, StateError};

/// Where a run records its recipients' states. Cheap to clone; clones share the batch.
#[derive(Clone)]
pub struct Journal {
    deliveries: Deliveries,
    batches: Arc<Batches>,
}

/// The journal could not be made durable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the delivery journal could not be written: {0}")]
pub struct JournalError(String);

impl From<StateError> for JournalError {
    fn from(e: StateError) -> Self {
        Self(e.to_string())
    }
}

/// The marks waiting for a flush, and which batches are on disk.
struct Batches {
    state: Mutex<BatchState>,
    /// Woken when a batch is written, or the journal broke.
    written: Notify,
}

#[derive(Default)]
struct BatchState {
    /// The marks queued for the next batch.
    queued: Vec<(RunId, Delivery)>,
    /// The number of the next batch (1, 2, ...): the one `queued` goes out in.
    next: u64,
    /// The number of the newest batch on disk (0: none yet).
    written: u64,
    /// Whether a batch is being written now.
    writing: bool,
    /// Why a write failed. Nothing is acknowledged after that: the run stops.
    broken: Option<JournalError>,
}

/// What a committing sender does next.
enum Turn {
    /// Its mark is on disk.
    Done,
    /// Another sender is writing a batch: wait for it.
    Wait,
    /// Write the queued marks (its own among them): its batch.
    Write(Vec<(RunId, Delivery)>),
}

impl Journal {
    /// The journal of runs whose states go to `deliveries`.
    pub fn new(deliveries: Deliveries) -> Self {
        Self {
            deliveries,
            batches: Arc::new(Batches {
                state: Mutex::new(BatchState {
                    next: 1,
                    ..BatchState::default()
                }),
                written: Notify::new(),
            }),
        }
    }

    /// Records a state durably, together with every other state waiting to be: returns once
    /// it is on disk.
    pub async fn commit(&self, run: RunId, delivery: Delivery) -> Result<(), JournalError> {
        let batch = self.batches.queue(run, delivery);
        // Every sender that is ready now queues its mark before one of them writes the batch.
        tokio::task::yield_now().await;
        let written = self.batches.written.notified();
        tokio::pin!(written);
        loop {
            // Registered before the state is read, so a batch written in between still wakes.
            written.as_mut().enable();
            match self.batches.turn(batch)? {
                Turn::Done => return Ok(()),
                Turn::Write(marks) => return self.write(&marks, batch),
                Turn::Wait => {
                    written.as_mut().await;
                    written.set(self.batches.written.notified());
                }
            }
        }
    }

    /// Forgets a recipient's mark: its request never reached Zoom. Durable with the next
    /// commit; a crash before that leaves the mark, which is only cautious.
    pub fn forget(&self, run: RunId, email: &str) -> Result<(), JournalError> {
        Ok(self.deliveries.forget(run, email)?)
    }

    /// Records a state; durable with the next commit (or the end of the run).
    pub fn record(&self, run: RunId, delivery: &Delivery) -> Result<(), JournalError> {
        Ok(self.deliveries.set(run, delivery)?)
    }

    /// Inserts a batch's marks and flushes, on this thread; then wakes the batch's senders.
    fn write(&self, marks: &[(RunId, Delivery)], number: u64) -> Result<(), JournalError> {
        let result = blocking(|| {
            for (run, delivery) in marks {
                self.deliveries.set(*run, delivery)?;
            }
            self.deliveries.flush_blocking()
        })
        .map_err(JournalError::from);
        self.batches.finish(number, result.clone());
        result
    }
}

impl Batches {
    /// Queues a mark; the answer is the number of the batch it goes out in.
    fn queue(&self, run: RunId, delivery: Delivery) -> u64 {
        let mut state = self.state.lock().expect("journal lock");
        state.queued.push((run, delivery));
        state.next
    }

    /// What the sender of a mark queued for `batch` does now.
    fn turn(&self, batch: u64) -> Result<Turn, JournalError> {
        let mut state = self.state.lock().expect("journal lock");
        if state.written >= batch {
            return Ok(Turn::Done);
        }
        if let Some(broken) = &state.broken {
            return Err(broken.clone());
        }
        if state.writing {
            return Ok(Turn::Wait);
        }
        // Batch `batch` is still queued (a batch leaves the queue only to be written), so it
        // is the next one.
        debug_assert_eq!(state.next, batch);
        state.writing = true;
        state.next += 1;
        Ok(Turn::Write(mem::take(&mut state.queued)))
    }

    /// Records how writing batch `number` went and wakes every waiting sender.
    fn finish(&self, number: u64, result: Result<(), JournalError>) {
        let mut state = self.state.lock().expect("journal lock");
        state.writing = false;
        match result {
            Ok(()) => state.written = number,
            Err(e) => state.broken = Some(e),
        }
        drop(state);
        self.written.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::state::{DeliveryState, Store};

    /// A journal over a fresh state directory, which lives as long as the directory guard.
    fn journal() -> (Journal, Deliveries, Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        let deliveries = store.deliveries().unwrap();
        (Journal::new(deliveries.clone()), deliveries, store, dir)
    }

    fn sending(email: &str) -> Delivery {
        Delivery::new(email, DeliveryState::Sending, None, 0)
    }

    fn batches_written(journal: &Journal) -> u64 {
        journal.batches.state.lock().unwrap().written
    }

    #[tokio::test]
    async fn senders_ready_together_share_one_flush() {
        let (journal, deliveries, _store, _dir) = journal();
        let commits =
            (0..32).map(|i| journal.commit(RunId(7), sending(&format!("r{i}@example.com"))));
        for result in futures::future::join_all(commits).await {
            result.unwrap();
        }
        assert_eq!(
            batches_written(&journal),
            1,
            "one batch for 32 ready senders"
        );
        let marks = deliveries.list(RunId(7)).unwrap();
        assert_eq!(marks.len(), 32);
        assert!(marks.iter().all(|d| d.state == DeliveryState::Sending));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn senders_on_many_tasks_each_return_once_their_mark_is_written() {
        let (journal, deliveries, _store, _dir) = journal();
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let journal = journal.clone();
                tokio::spawn(async move {
                    for i in 0..100 {
                        let email = format!("t{task}-{i}@example.com");
                        journal.commit(RunId(1), sending(&email)).await.unwrap();
                        // Its batch is written: the mark is in the tree.
                        assert!(journal.deliveries.get(RunId(1), &email).unwrap().is_some());
                    }
                })
            })
            .collect();
        let all = futures::future::join_all(tasks);
        let done = tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("no sender waits forever for a batch");
        assert!(done.iter().all(Result::is_ok));
        assert_eq!(deliveries.list(RunId(1)).unwrap().len(), 800);
    }
}
