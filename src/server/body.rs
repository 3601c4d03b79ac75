//! Request bodies, read under one budget of bytes shared by every connection ([`Budget`]), so
//! that however many clients send large bodies at once (well-formed requests whose signature
//! turns out wrong only once the whole body is read), the bodies held in memory stay below
//! [`BODY_BUDGET`]. Room is taken for the bytes that arrived, not for the length a request
//! declares, and a body must arrive whole within [`BODY_DEADLINE`]: a client that announces
//! a megabyte and sends nothing holds nothing, and one that trickles holds little, briefly. A
//! request whose bytes find no room within [`BUDGET_PATIENCE`] is answered 503; Zoom sends
//! such an event again.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The most bytes of request bodies held at once, over every connection.
pub const BODY_BUDGET: usize = 8 * 1024 * 1024;

/// How long a request's bytes wait for room in the budget.
pub const BUDGET_PATIENCE: Duration = Duration::from_secs(2);

/// How long a body may take to arrive whole (Zoom waits 3 s for the whole answer).
pub const BODY_DEADLINE: Duration = Duration::from_secs(3);

/// The most of a declared length reserved in memory before the bytes arrive.
const FIRST_CAPACITY: usize = 64 * 1024;

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// It is larger than the route takes (413).
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// The budget had no room for it in time (503).
    #[error("too many request bodies are being read at once")]
    Busy,
    /// It did not arrive whole within [`BODY_DEADLINE`] (408).
    #[error("the body did not arrive within {} s", BODY_DEADLINE.as_secs())]
    Slow,
    /// The client broke off or sent a malformed body (400).
    #[error("the body could not be read: {0}")]
    Broken(String),
}

/// The bytes of request bodies being held, shared by every connection.
#[derive(Clone)]
pub struct Budget {
    bytes: Arc<Semaphore>,
}

impl Budget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(total)),
        }
    }

    /// How many bytes are free now.
    pub fn free(&self) -> usize {
        self.bytes.available_permits()
    }

    /// Reads `body` (of a request with `headers`), at most `limit` bytes, within
    /// [`BODY_DEADLINE`]: refused at once when its declared length is larger, and as soon as
    /// more arrive. Every byte held takes its room in the budget first; the room is given back
    /// when the returned body is dropped.
    pub async fn read(
        &self,
        headers: &HeaderMap,
        body: Body,
        limit: usize,
    ) -> Result<Held, BodyError> {
        let declared = declared_length(headers);
        if declared.is_some_and(|n| n > limit) {
            return Err(BodyError::TooLarge(limit));
        }
        let capacity = declared.unwrap_or(0).min(FIRST_CAPACITY);
        tokio::time::timeout(BODY_DEADLINE, self.read_frames(body, capacity, limit))
            .await
            .unwrap_or(Err(BodyError::Slow))
    }

    /// The frames of `body`, each taking its room as it arrives.
    async fn read_frames(
        &self,
        mut body: Body,
        capacity: usize,
        limit: usize,
    ) -> Result<Held, BodyError> {
        let mut held = Held {
            bytes: Vec::with_capacity(capacity),
            room: None,
        };
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            let total = held.bytes.len() + data.len();
            if total > limit {
                return Err(BodyError::TooLarge(limit));
            }
            let reserved = held
                .room
                .as_ref()
                .map_or(0, OwnedSemaphorePermit::num_permits);
            if total > reserved {
                held.take(self.room(total - reserved).await?);
            }
            held.bytes.extend_from_slice(&data);
        }
        Ok(held)
    }

    /// Room for `n` more bytes, waiting at most [`BUDGET_PATIENCE`] for it.
    async fn room(&self, n: usize) -> Result<OwnedSemaphorePermit, BodyError> {
        let n = u32::try_from(n).map_err(|_| BodyError::Busy)?;
        if let Ok(room) = self.bytes.clone().try_acquire_many_owned(n) {
            return Ok(room);
        }
        match tokio::time::timeout(BUDGET_PATIENCE, self.bytes.clone().acquire_many_owned(n)).await
        {
            Ok(Ok(room)) => Ok(room),
            _ => Err(BodyError::Busy),
        }
    }
}

/// A body read, holding its room in the budget until dropped.
pub struct Held {
    /// The bytes.
    pub bytes: Vec<u8>,
    room: Option<OwnedSemaphorePermit>,
}

impl Held {
    fn take(&mut self, room: OwnedSemaphorePermit) {
        match &mut self.room {
            Some(held) => held.merge(room),
            None => self.room = Some(room),
        }
    }
}

/// The `Content-Length` a request declares, if it declares one it can be read by.
fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn length(n: usize) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, n.into());
        headers
    }

    #[tokio::test]
    async fn bodies_take_room_until_dropped_and_wait_no_longer_than_the_patience() {
        let budget = Budget::new(100);
        let first = budget
            .read(&length(60), Body::from(vec![b'a'; 60]), 1000)
            .await
            .unwrap();
        assert_eq!(first.bytes.len(), 60);
        assert_eq!(budget.free(), 40);
        // Declared longer than the route takes: refused before a byte is read.
        assert!(matches!(
            budget.read(&length(2000), Body::empty(), 1000).await,
            Err(BodyError::TooLarge(1000))
        ));
        // Not declared, and longer once read.
        assert!(matches!(
            budget
                .read(&HeaderMap::new(), Body::from(vec![b'b'; 1001]), 1000)
                .await,
            Err(BodyError::TooLarge(1000))
        ));
        assert_eq!(budget.free(), 40, "a refused body gives its room back");
        tokio::time::pause();
        let fifty = length(50);
        let busy = budget.read(&fifty, Body::from(vec![b'c'; 50]), 1000);
        assert!(matches!(busy.await, Err(BodyError::Busy)));
        drop(first);
        assert_eq!(budget.free(), 100);
        let undeclared = budget
            .read(&HeaderMap::new(), Body::from(vec![b'd'; 90]), 1000)
            .await
            .unwrap();
        assert_eq!(undeclared.bytes, vec![b'd'; 90]);
        assert_eq!(budget.free(), 10);
        drop(undeclared);
        // Announced and never sent: it holds no room, and gives up at the deadline.
        let silent =
            Body::from_stream(futures::stream::pending::<Result<Vec<u8>, std::io::Error>>());
        let reader = budget.clone();
        let waiting = tokio::spawn(async move { reader.read(&length(50), silent, 1000).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(budget.free(), 100, "a second into it, nothing held");
        assert!(matches!(waiting.await.unwrap(), Err(BodyError::Slow)));
    }
}
