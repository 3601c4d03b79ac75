//! Injected latency that lasts as long as the knob says.
//!
//! tokio's timer counts whole milliseconds and fires a little late, so a handler's `sleep`
//! would make every emulated request slower than asked, and no client could reach the ideal
//! rate a benchmark compares against. [`Delays`] runs one timer thread that wakes each waiter
//! at its deadline, to within the kernel's timer slack (tens of microseconds).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// The emulator's timer: [`Delays::sleep`] waits on it; its thread ends when it is dropped.
pub(super) struct Delays {
    queue: mpsc::Sender<Waiter>,
}

impl Delays {
    /// Starts the timer thread.
    pub(super) fn start() -> Self {
        let (queue, waiters) = mpsc::channel();
        thread::Builder::new()
            .name("emulator-timer".into())
            .spawn(move || wake_on_time(&waiters))
            .expect("spawn the emulator's timer thread");
        Self { queue }
    }

    /// Waits `duration`, measured from now.
    pub(super) async fn sleep(&self, duration: Duration) {
        let at = Instant::now() + duration;
        let (wake, woken) = oneshot::channel();
        if self.queue.send(Waiter { at, wake }).is_err() || woken.await.is_err() {
            // The timer thread is gone (it never panics; this is belt and braces).
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

/// One sleeping request: its deadline and how to wake it.
struct Waiter {
    at: Instant,
    wake: oneshot::Sender<()>,
}

impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.cmp(&other.at)
    }
}

impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Waiter {}

/// The timer thread: keeps the waiters by deadline and wakes each when it is due, until
/// the [`Delays`] is dropped.
fn wake_on_time(waiters: &mpsc::Receiver<Waiter>) {
    let mut due: BinaryHeap<Reverse<Waiter>> = BinaryHeap::new();
    loop {
        let now = Instant::now();
        while due.peek().is_some_and(|Reverse(first)| first.at <= now) {
            let Reverse(waiter) = due.pop().expect("peeked");
            // A request whose client went away no longer waits: nothing to wake.
            let _ = waiter.wake.send(());
        }
        let next = match due.peek() {
            Some(Reverse(first)) => waiters.recv_timeout(first.at - now),
            None => waiters.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(waiter) => due.push(Reverse(waiter)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleepers_wake_in_deadline_order_and_not_early() {
        let delays = Delays::start();
        let started = Instant::now();
        let order = std::sync::Mutex::new(Vec::new());
        let sleeper = |ms: u64| {
            let (delays, order) = (&delays, &order);
            async move {
                delays.sleep(Duration::from_millis(ms)).await;
                assert!(started.elapsed() >= Duration::from_millis(ms), "woke early");
                order.lock().unwrap().push(ms);
            }
        };
        tokio::join!(sleeper(30), sleeper(10), sleeper(20));
        assert_eq!(*order.lock().unwrap(), [10, 20, 30]);
    }
}
