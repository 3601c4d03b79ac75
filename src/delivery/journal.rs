//! [`Journal`]: the delivery journal's group commit.
//!
//! Before a send goes out, its recipient is marked `sending` and that mark is flushed. The
//! sender inserts its mark itself, then asks the one writer task for a flush; the writer takes
//! every request waiting at that moment and answers them all with one flush, so durability
//! costs one fsync per batch, not per recipient. Outcomes are inserted as they arrive,
//! unflushed; the next group commit makes them durable too. So after a crash, the only
//! recipients whose outcome is unknown are those whose sender had not started its next send:
//! at most one per send slot, which bounds the duplicates a resumed run can cause by
//! `concurrency`.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::state::{Deliveries, Delivery, RunId, StateError};

type Ack = oneshot::Sender<Result<(), String>>;

/// Where a run records its recipients' states.
#[derive(Clone)]
pub struct Journal {
    deliveries: Deliveries,
    commits: mpsc::Sender<Ack>,
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
    /// Starts the group-commit writer; it ends when the last `Journal` clone is dropped.
    pub fn start(deliveries: Deliveries) -> (Self, JoinHandle<()>) {
        let (commits, rx) = mpsc::channel(1024);
        let writer = tokio::spawn(write_batches(deliveries.clone(), rx));
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
    pub async fn commit(&self, run: RunId, delivery: &Delivery) -> Result<(), JournalError> {
        self.deliveries.set(run, delivery)?;
        let (ack, done) = oneshot::channel();
        self.commits
            .send(ack)
            .await
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

async fn write_batches(deliveries: Deliveries, mut rx: mpsc::Receiver<Ack>) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while let Ok(next) = rx.try_recv() {
            batch.push(next);
        }
        // Every mark in the batch was inserted before its request was sent.
        let result = deliveries.flush().await.map_err(|e| e.to_string());
        for ack in batch.drain(..) {
            let _ = ack.send(result.clone());
        }
    }
}
