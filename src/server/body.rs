//! Request bodies, read under a budget of bytes shared by every connection ([`Budget`]), so
//! that however many clients send large bodies at once (well-formed requests whose signature
//! turns out wrong only once the whole body is read), the bodies held in memory stay bounded.
//!
//! - Two lanes: bodies that declare at most [`SMALL_BODY`] (every event Zoom sends is a few
//!   KiB) share [`SMALL_BUDGET`], larger ones [`LARGE_BUDGET`]; a flood of large bodies never
//!   keeps a small one waiting.
//! - A body's declared length is reserved whole, in its lane, when its first bytes arrive: a
//!   client that announces a megabyte and sends nothing holds nothing, and bodies that arrive
//!   are read in the order they got room, none starved by many half-read ones. A body that
//!   declares no length takes room as its bytes arrive.
//! - A body must arrive whole within [`BODY_DEADLINE`] (408 otherwise), and one whose room is
//!   not free within [`BUDGET_PATIENCE`] is answered 503; Zoom sends such an event again.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The largest body of the small lane: Zoom's events are far smaller.
pub const SMALL_BODY: usize = 64 * 1024;
/// The bytes of small bodies held at once, over every connection.
pub const SMALL_BUDGET: usize = 2 * 1024 * 1024;
/// The bytes of larger bodies held at once, over every connection.
pub const LARGE_BUDGET: usize = 8 * 1024 * 1024;

/// How long a request's bytes wait for room in the budget.
pub const BUDGET_PATIENCE: Duration = Duration::from_secs(2);

/// How long a body may take to arrive whole (Zoom waits 3 s for the whole answer).
pub const BODY_DEADLINE: Duration = Duration::from_secs(3);

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
    small: Arc<Semaphore>,
    large: Arc<Semaphore>,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(SMALL_BUDGET, LARGE_BUDGET)
    }
}

impl Budget {
    /// A budget of `small` bytes for small bodies and `large` for the others.
    pub fn new(small: usize, large: usize) -> Self {
        Self {
            small: Arc::new(Semaphore::new(small)),
            large: Arc::new(Semaphore::new(large)),
        }
    }

    /// How many bytes are free now in each lane: (small, large).
    pub fn free(&self) -> (usize, usize) {
        (
            self.small.available_permits(),
            self.large.available_permits(),
        )
    }

    /// Reads `body` (of a request with `headers`), at most `limit` bytes, within
    /// [`BODY_DEADLINE`]: refused at once when its declared length is larger, and as soon as
    /// more arrive. Its bytes take their room in the budget before they are held; the room is
    /// given back when the returned body is dropped.
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
        tokio::time::timeout(BODY_DEADLINE, self.read_frames(body, declared, limit))
            .await
            .unwrap_or(Err(BodyError::Slow))
    }

    /// The frames of `body`: the declared length's room taken at the first, or each one's as
    /// it arrives when none was declared.
    async fn read_frames(
        &self,
        mut body: Body,
        declared: Option<usize>,
        limit: usize,
    ) -> Result<Held, BodyError> {
        let lane = match declared {
            Some(n) if n <= SMALL_BODY => &self.small,
            _ => &self.large,
        };
        let mut held = Held {
            bytes: Vec::new(),
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
                let wanted = declared.unwrap_or(total).max(total);
                held.take(room(lane, wanted - reserved).await?);
                held.bytes.reserve_exact(wanted - held.bytes.len());
            }
            held.bytes.extend_from_slice(&data);
        }
        Ok(held)
    }
}

/// Room for `n` more bytes in `lane`, waiting at most [`BUDGET_PATIENCE`] for it.
async fn room(lane: &Arc<Semaphore>, n: usize) -> Result<OwnedSemaphorePermit, BodyError> {
    let n = u32::try_from(n).map_err(|_| BodyError::Busy)?;
    if let Ok(room) = lane.clone().try_acquire_many_owned(n) {
        return Ok(room);
    }
    match tokio::time::timeout(BUDGET_PATIENCE, lane.clone().acquire_many_owned(n)).await {
        Ok(Ok(room)) => Ok(room),
        _ => Err(BodyError::Busy),
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

    /// A body that announces itself and never sends a byte.
    fn silent() -> Body {
        Body::from_stream(futures::stream::pending::<Result<Vec<u8>, std::io::Error>>())
    }

    #[tokio::test]
    async fn bodies_take_their_room_in_their_lane_until_dropped_and_never_wait_long() {
        tokio::time::pause();
        // Small lane: 100 bytes (bodies of at most SMALL_BODY); large lane: 200 000.
        let budget = Budget::new(100, 200_000);
        let small = budget
            .read(&length(60), Body::from(vec![b'a'; 60]), 1 << 20)
            .await
            .unwrap();
        assert_eq!(small.bytes.len(), 60);
        assert_eq!(budget.free(), (40, 200_000));
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
        assert_eq!(
            budget.free(),
            (40, 200_000),
            "a refused body gives its room back"
        );
        // No room in its lane within the patience: 503; a large body meanwhile has its own.
        let fifty = length(50);
        let busy = budget.read(&fifty, Body::from(vec![b'c'; 50]), 1 << 20);
        assert!(matches!(busy.await, Err(BodyError::Busy)));
        let large = budget
            .read(&length(100_000), Body::from(vec![b'd'; 100_000]), 1 << 20)
            .await
            .unwrap();
        assert_eq!(budget.free(), (40, 100_000));
        drop((small, large));
        assert_eq!(budget.free(), (100, 200_000));
        // Announced and never sent: it holds no room, and gives up at the deadline.
        let reader = budget.clone();
        let waiting = tokio::spawn(async move { reader.read(&length(50), silent(), 1000).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            budget.free(),
            (100, 200_000),
            "a second into it, nothing held"
        );
        assert!(matches!(waiting.await.unwrap(), Err(BodyError::Slow)));
    }
}
