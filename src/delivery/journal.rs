//! [`Journal`]: the delivery journal's group commit.
//!
//! Before a send goes out, its recipient is marked `sending` and that mark is flushed. Each run
//! has a writer thread (a flush blocks): it takes every mark waiting at that moment, inserts
//! them, flushes once and answers them all, so durability costs one fsync per batch, not per
//! recipient. The senders do not insert their marks themselves: 32 tasks inserting at once
//! made sled contend, and a run cost 10 to 15% more CPU. Outcomes are inserted as they arrive,
//! unflushed; the next group commit makes them durable too. So after a crash, the only
//! recipients whose outcome is unknown are those whose sender had not started its next send:
//! at most one per send slot, which bounds the duplicates a resumed run can cause by
//! `concurrency`.

use std::sync::mpsc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::state::{Deliveries, Delivery, RunId, StateError};

type Ack = oneshot::Sender<Result<(), String>>;
type Commit = (RunId, Delivery, Ack);

/// Where a run records its recipients' states.
#[derive(Clone)]
pub struct Journal {
    deliveries: Deliveries,
    commits: mpsc::Sender<Commit>,
}

/// The journal could not be made durable.
#[derive(Debug, thiserror::Error)]
#[error("the delivery journal could not be written: {0}")]
pub struct JournalError(String);

impl From<StateError> for JournalError {
    fn from(e: StateError) -> Self {
        Self(e.to_string())
    }
}

impl Journal {
    /// Starts the group-commit writer, a thread of its own (a flush blocks); it ends when the
    /// last `Journal` clone is dropped, and so does the returned task.
    pub fn start(deliveries: Deliveries) -> (Self, JoinHandle<()>) {
        let (commits, rx) = mpsc::channel();
        let flushes = deliveries.clone();
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || write_batches(&flushes, &rx))
            .expect("the journal thread starts");
        let writer = tokio::task::spawn_blocking(move || {
            thread.join().expect("the journal writer does not panic");
        });
        (
            Self {
                deliveries,
                commits,
            },
            writer,
        )
    }

    /// Records a state durably, together with every other state waiting to be: returns once
    /// it is on disk.
    pub async fn commit(&self, run: RunId, delivery: Delivery) -> Result<(), JournalError> {
        let (ack, done) = oneshot::channel();
        self.commits
            .send((run, delivery, ack))
            .map_err(|_| JournalError("the journal writer stopped".into()))?;
        done.await
            .map_err(|_| JournalError("the journal writer stopped".into()))?
            .map_err(JournalError)
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
}

fn write_batches(deliveries: &Deliveries, rx: &mpsc::Receiver<Commit>) {
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while let Ok(next) = rx.try_recv() {
            batch.push(next);
        }
        let mut result = Ok(());
        for (run, delivery, _) in &batch {
            if let Err(e) = deliveries.set(*run, delivery) {
                result = Err(e.to_string());
            }
        }
        if result.is_ok() {
            result = deliveries.flush_blocking().map_err(|e| e.to_string());
        }
        for (_, _, ack) in batch.drain(..) {
            let _ = ack.send(result.clone());
        }
    }
}
