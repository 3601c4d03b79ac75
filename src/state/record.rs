//! A run's record as the `runs` tree stores it: its id, job, times, status and counts.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A run's id: increasing across restarts, so runs list in the order they started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub u64);

impl RunId {
    /// The big-endian key, which sorts like the number.
    pub fn key(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// The id a key starts with (the inverse of [`RunId::key`]).
    pub fn from_key(key: &[u8]) -> Self {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&key[..8]);
        Self(u64::from_be_bytes(bytes))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for RunId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(RunId)
    }
}

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum RunStatus {
    /// Started and not finished. Only one process uses a state directory, so whoever reads a
    /// `Running` record from another process sees a run that was interrupted.
    Running,
    /// Every recipient was delivered.
    Succeeded,
    /// Finished, with some recipients failed or uncertain.
    PartlyFailed,
    /// Stopped before the end: the reason says why.
    Aborted(String),
    /// Stopped for good, never resumed: the account removed the app (deauthorization), and
    /// the run's per-recipient details were deleted with its data.
    Closed(String),
}

impl RunStatus {
    /// Whether a run in this state is resumed by the next run of its job.
    pub fn is_unfinished(&self) -> bool {
        matches!(self, Self::Running | Self::Aborted(_))
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Running => f.write_str("interrupted"),
            Self::Succeeded => f.write_str("succeeded"),
            Self::PartlyFailed => f.write_str("partly failed"),
            Self::Aborted(_) => f.write_str("aborted"),
            Self::Closed(_) => f.write_str("closed"),
        }
    }
}

/// How many recipients ended where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Recipients in the run (after de-duplication).
    pub total: u64,
    /// Delivered.
    pub sent: u64,
    /// Failed permanently.
    pub failed: u64,
    /// Outcome unknown (a crash hid it).
    pub uncertain: u64,
    /// Not sent: they told the bot `stop` (absent in runs of earlier releases).
    #[serde(default)]
    pub opted_out: u64,
}

/// A run's requests Zoom answered 429, per endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimited {
    /// Lookups (Users API).
    pub users: u64,
    /// Sends (Chatbot API).
    pub chat: u64,
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub id: RunId,
    /// The job's name.
    pub job: String,
    /// The app that sent.
    pub app: String,
    /// The account it sent in; `None` for runs of releases that did not record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished, if it did.
    pub finished_at: Option<DateTime<Utc>>,
    /// Where it stands.
    #[serde(flatten)]
    pub status: RunStatus,
    /// Outcome counts.
    pub counts: Counts,
    /// Requests Zoom answered 429 (absent in runs of earlier releases).
    #[serde(default)]
    pub rate_limited: RateLimited,
    /// How often an interrupted run was picked up again.
    #[serde(default)]
    pub resumes: u32,
    /// The value of the button that acknowledges the run's message (`[acknowledge]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledge: Option<String>,
    /// The schedule tick the run is for; `None` for a run started by hand. A job's tick has
    /// at most one run.
    #[serde(default)]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// True once the run's per-recipient outcomes were deleted to keep the state small (the
    /// job's `keep_details`); its summary stays.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub details_pruned: bool,
    /// The job file the run belongs to (canonical): a run resumes only for that file, not for
    /// another file of the same name. `None` for runs of releases that did not record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_file: Option<PathBuf>,
    /// The run's own values of the job's `[vars]` (`run --var`, the HTTP API), over the job
    /// file's; a resumed, edited or reminded run renders with these again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
}

impl RunRecord {
    /// A run of `job` starting now, in `app` (and `account`, when known), for `job_file`.
    pub fn new(
        id: RunId,
        job: &str,
        (app, account): (&str, Option<&str>),
        job_file: Option<PathBuf>,
    ) -> Self {
        Self {
            id,
            job: job.to_owned(),
            app: app.to_owned(),
            account: account.map(str::to_owned),
            started_at: Utc::now(),
            finished_at: None,
            status: RunStatus::Running,
            counts: Counts::default(),
            rate_limited: RateLimited::default(),
            resumes: 0,
            acknowledge: None,
            scheduled_for: None,
            details_pruned: false,
            job_file,
            vars: BTreeMap::new(),
        }
    }
}
