//! [`Stop`]: what ends a whole run, as opposed to failing one recipient. The run keeps its
//! journal, and running the job again picks up where it stopped.

use crate::auth::TokenError;
use crate::zoom::ZoomError;

use super::journal::JournalError;

/// What stops a whole run (as opposed to failing one recipient).
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    /// No token could be had (no grant, grant revoked, token endpoint down).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Zoom kept answering 429, 5xx or nothing, for every attempt.
    #[error(
        "zoom kept failing after {attempts} attempts (last: {last}); the run stopped, and \
         running the job again picks up where it stopped"
    )]
    Unreachable {
        /// Attempts made for the last recipient.
        attempts: u32,
        /// Zoom's last answer.
        last: ZoomError,
    },
    /// Zoom asked to wait longer than a run waits (a daily limit).
    #[error(
        "zoom asks to wait {} minutes before the next request (last: {last}); the run stopped, \
         and running the job again after that picks up where it stopped",
        wait.as_secs().div_ceil(60)
    )]
    RateLimitedFor {
        /// Zoom's `Retry-After` (what is left of it).
        wait: std::time::Duration,
        /// Zoom's answer, or why this request did not even ask.
        last: String,
    },
    /// A token Zoom rejected was renewed, and Zoom rejected the new one too: the app itself
    /// is set up wrong, and retrying would only burn refresh-token rotations.
    #[error("zoom rejected a freshly renewed {kind} token of app `{app}` (last: {last}); {help}")]
    RejectedAfterRenewal {
        /// `user` or `chatbot`.
        kind: &'static str,
        /// The app.
        app: String,
        /// Zoom's answer.
        last: ZoomError,
        /// What to check.
        help: &'static str,
    },
    /// The recipients file changed since it was validated and cannot be read any more.
    #[error(
        "the recipients file cannot be read: {0}; fix it (`zoomcast validate` checks it) and run the job again"
    )]
    Recipients(String),
    /// Zoom does not know the app's bot: every send would be refused the same way, so none is
    /// counted as a recipient's failure.
    #[error(
        "zoom does not know the chatbot that app `{app}` sends as (last: {last}); {}, then run \
         the job again: it picks up where it stopped",
        crate::config::help::robot_jid(app)
    )]
    WrongBot {
        /// The app.
        app: String,
        /// Zoom's answer.
        last: ZoomError,
    },
    /// The message could not be rendered, through no fault of the template (the process that
    /// renders it did not start, or was stopped from outside).
    #[error("{0}; the run stopped, and running the job again picks up where it stopped")]
    Renderer(String),
    /// The process is shutting down; the run stays interrupted and resumes at the next start.
    #[error(
        "stopped for shutdown; the next start of the scheduler (or `zoomcast run`) resumes the run"
    )]
    Shutdown,
    /// The journal could not be written: continuing could lose track of recipients.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The state database could not be read (the journal or the JID cache).
    #[error("the state database failed: {0}")]
    State(#[from] crate::state::StateError),
}
