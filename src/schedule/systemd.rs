//! The service's side of systemd's notification protocol (`Type=notify`, through the
//! sd-notify crate): `READY=1` once the state is open and every socket bound, `WATCHDOG=1`
//! at half the unit's `WatchdogSec=` while the state database reads and writes (so a wedged
//! one gets the service restarted), and `STOPPING=1` when a signal starts the drain. Outside
//! systemd (`NOTIFY_SOCKET` unset) each is a no-op.

use std::sync::Arc;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::state::Store;

/// Tells systemd the service is up.
pub fn ready() {
    say(&[NotifyState::Ready, NotifyState::Status("running")]);
}

/// Tells systemd the service is draining, once `shutdown` is cancelled (or stopping, when
/// the service ends without it: `done`).
pub async fn stopping(shutdown: CancellationToken, done: CancellationToken) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = done.cancelled() => {}
    }
    say(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// Pings systemd's watchdog, if the unit has one, at half its period while the store reads
/// and writes; stops when `done` is cancelled.
pub async fn watchdog(store: Arc<Store>, done: CancellationToken) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut ticks = tokio::time::interval(period / 2);
    loop {
        tokio::select! {
            () = done.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let probe = store.clone();
        match tokio::task::spawn_blocking(move || probe.check_usable()).await {
            Ok(Ok(())) => say(&[NotifyState::Watchdog]),
            Ok(Err(e)) => tracing::error!(
                "the state database is not usable, so systemd's watchdog is not fed: {e}"
            ),
            Err(e) => tracing::error!("the watchdog's probe failed: {e}"),
        }
    }
}

fn say(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("telling systemd the service's state failed: {e}");
    }
}
