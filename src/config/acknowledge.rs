//! The `[acknowledge]` table: which button press counts as acknowledging a message, and the
//! reminders the scheduler sends (as replies to the message) to those who have not pressed it.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The shortest `remind_after`: a reminder loop checks every few seconds.
pub(super) const MIN_REMIND_AFTER: Duration = Duration::from_secs(1);
/// The longest `remind_after`: a month.
pub(super) const MAX_REMIND_AFTER: Duration = Duration::from_secs(31 * 24 * 3600);
/// The most reminders to one recipient for one message.
pub const MAX_REMINDERS: u32 = 10;

/// `[acknowledge]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeFile {
    pub(super) button: Spanned<String>,
    pub(super) remind_after: Option<Spanned<String>>,
    pub(super) max_reminders: Option<Spanned<u32>>,
}

/// What counts as acknowledged, and the reminders to those who have not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledge {
    /// The value of the button whose press acknowledges.
    pub button: String,
    /// Reminders: how long after the run started the first is due (and each next one after
    /// that), and how many at most. `None`: no reminders.
    pub reminders: Option<(Duration, u32)>,
}
