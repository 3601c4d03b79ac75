//! Blocking work from async code: [`off_workers`] runs it on tokio's blocking pool, so that
//! other jobs' runs keep the runtime's workers; [`blocking`] runs it on the calling thread and
//! tells a multi-threaded runtime so.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f` (a scan or a batch of writes over the state, a directory read) on tokio's
/// blocking pool: in the scheduler, other jobs' runs share the runtime's workers.
pub async fn off_workers<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f)
        .await
        .expect("work on the state does not panic")
}

/// Runs `f`, which blocks its thread, without stalling the runtime's other tasks where it can:
/// on a worker of tokio's multi-threaded runtime it says so (`block_in_place`), and the
/// worker's queued tasks move on on another thread. Elsewhere (a plain thread, the blocking
/// pool, a single-threaded runtime, where `block_in_place` would panic) it just runs `f`.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
