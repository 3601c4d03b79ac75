//! Shutdown on a signal, one way for every command that runs jobs: SIGTERM, SIGINT (Ctrl-C)
//! and, where nothing reloads, SIGHUP cancel one [`CancellationToken`]; whatever runs watches
//! that token, stops taking new work, finishes what is in flight and records it. A run cut short
//! this way stays interrupted and resumes the next time. Cancelling comes before logging, so a
//! log that cannot be written never keeps the process from stopping.

use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The signals a long-running command handles, listened for from [`Signals::listen`] on.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Starts listening: from here on these signals no longer end the process by default.
    /// Call it before the command announces itself, so that a signal right after start stops
    /// it cleanly.
    pub fn listen() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Cancels `shutdown` on SIGTERM or SIGINT; SIGHUP notifies `reload` if there is one, and
    /// shuts down otherwise. Returns when `done` is cancelled.
    pub async fn handle(
        mut self,
        shutdown: CancellationToken,
        reload: Option<Arc<Notify>>,
        done: CancellationToken,
    ) {
        loop {
            let name = tokio::select! {
                () = done.cancelled() => return,
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
                _ = self.hup.recv() => match &reload {
                    Some(reload) => {
                        reload.notify_one();
                        tracing::info!("SIGHUP: reloading the jobs directory");
                        continue;
                    }
                    None => "SIGHUP",
                },
            };
            let first = !shutdown.is_cancelled();
            shutdown.cancel();
            if first {
                tracing::info!("{name}: shutting down; the work in flight finishes first");
            }
        }
    }
}

/// A shutdown token that SIGTERM, SIGINT and SIGHUP cancel, for a command with nothing to
/// reload; the signals are handled until it is dropped.
pub struct OnSignal {
    token: CancellationToken,
    done: CancellationToken,
}

impl Signals {
    /// Handles the signals from here on by cancelling one token (see [`OnSignal`]).
    pub fn cancel_on_signal(self) -> OnSignal {
        let (token, done) = (CancellationToken::new(), CancellationToken::new());
        tokio::spawn(self.handle(token.clone(), None, done.clone()));
        OnSignal { token, done }
    }
}

impl OnSignal {
    /// The token a signal cancels.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

impl Drop for OnSignal {
    fn drop(&mut self) {
        self.done.cancel();
    }
}
