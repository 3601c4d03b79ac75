//! Job files: [`JobFile`] mirrors the TOML exactly (unknown keys are errors, numbers outside
//! their range too), and [`Job`] is what the engine runs. [`super::load`] reads one file into
//! the other through the checker ([`super::check`]), which reports every problem with its file,
//! line and column.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use super::acknowledge::{Acknowledge, AcknowledgeFile};
use super::diagnostic::Diagnostic;
use super::message::MessageFile;
use super::recipients::{self, FileProblem, Recipient};
use crate::cron::Schedule;
use crate::render::MessageTemplate;

/// A job file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    pub(super) description: Option<String>,
    pub(super) schedule: Option<Spanned<String>>,
    pub(super) timezone: Option<Spanned<String>>,
    pub(super) app: Option<Spanned<String>>,
    pub(super) account: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) catch_up: CatchUp,
    pub(super) catch_up_within: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) overlap: Overlap,
    pub(super) jitter: Option<Spanned<String>>,
    #[serde(
        default = "default_keep_runs",
        deserialize_with = "within::<_, _, 1, 1_000_000>"
    )]
    pub(super) keep_runs: NonZeroU32,
    #[serde(default)]
    pub(super) suspend: bool,
    #[serde(default)]
    pub(super) on_failure: Vec<Spanned<String>>,
    pub(super) recipients: Spanned<RecipientsFile>,
    #[serde(default)]
    pub(super) vars: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    pub(super) message: Spanned<MessageFile>,
    pub(super) acknowledge: Option<Spanned<AcknowledgeFile>>,
    #[serde(default)]
    pub(super) delivery: DeliverySettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecipientsFile {
    #[serde(default)]
    pub(super) emails: Vec<Spanned<String>>,
    pub(super) file: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) jids: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) channels: Vec<Spanned<String>>,
}

/// What to do, after a crash, with a send whose outcome is unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUncertain {
    /// Send again: at least once.
    #[default]
    Resend,
    /// Do not send again; report the recipient as uncertain: at most once.
    Skip,
}

/// What the scheduler does, after downtime, with ticks it missed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Skip them all.
    None,
    /// Run the newest one; skip the others.
    #[default]
    Latest,
    /// Run every one, oldest first.
    All,
}

/// What the scheduler does with a tick while the job's previous run is still going.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Skip the tick (logged).
    #[default]
    Skip,
    /// Run it when the previous run ends.
    Queue,
}

/// How the scheduler treats a job's ticks: the top-level `catch_up`, `catch_up_within`,
/// `overlap` and `jitter` keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulePolicy {
    /// Missed ticks after downtime.
    pub catch_up: CatchUp,
    /// Missed ticks older than this are skipped whatever `catch_up` says; `None`: no limit.
    pub catch_up_within: Option<Duration>,
    /// A tick while the previous run is going.
    pub overlap: Overlap,
    /// The most a tick is delayed by; each job gets its own stable delay below it.
    pub jitter: Duration,
}

/// The default of `keep_runs`.
pub const DEFAULT_KEEP_RUNS: u32 = 1000;

fn default_keep_runs() -> NonZeroU32 {
    NonZeroU32::new(DEFAULT_KEEP_RUNS).expect("not zero")
}

/// The default of `[delivery] keep_details`.
pub const DEFAULT_KEEP_DETAILS: u32 = 2;

/// The `[delivery]` table. Every number has a range, checked as the file is read (the error
/// names the key's line and the range), so no setting can overflow the arithmetic built on it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// Requests in flight at once.
    #[serde(deserialize_with = "within::<_, _, 1, 1000>")]
    pub concurrency: NonZeroUsize,
    /// Ceiling for this job's sends per second.
    #[serde(deserialize_with = "optional_within::<_, _, 1, 100_000>")]
    pub rate_per_second: Option<NonZeroU32>,
    /// Attempts per recipient for 429, 5xx and network errors.
    #[serde(deserialize_with = "within::<_, _, 1, 100>")]
    pub max_attempts: NonZeroU32,
    /// After a crash, what to do with sends whose outcome is unknown.
    pub on_uncertain: OnUncertain,
    /// How long a resolved JID is reused before it is looked up again (at most ten years).
    #[serde(deserialize_with = "within::<_, _, 0, 87_600>")]
    pub jid_cache_hours: u32,
    /// How long an unknown email (Zoom's 1001) is remembered (at most a year).
    #[serde(deserialize_with = "within::<_, _, 0, 525_600>")]
    pub jid_miss_minutes: u32,
    /// How many of the job's newest finished runs keep every recipient's outcome; older runs
    /// keep their summary. Stored outcomes cost disk and the memory of every later process.
    #[serde(deserialize_with = "within::<_, _, 1, 10_000>")]
    pub keep_details: NonZeroU32,
}

/// The whole-number types of settings.
trait Count: Sized {
    fn from_u64(n: u64) -> Option<Self>;
}

impl Count for u32 {
    fn from_u64(n: u64) -> Option<Self> {
        Self::try_from(n).ok()
    }
}

impl Count for NonZeroU32 {
    fn from_u64(n: u64) -> Option<Self> {
        Self::new(u32::from_u64(n)?)
    }
}

impl Count for NonZeroUsize {
    fn from_u64(n: u64) -> Option<Self> {
        Self::new(usize::try_from(n).ok()?)
    }
}

/// A whole number from `MIN` to `MAX`, as `T`.
fn within<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Count,
{
    use serde::de::Error;
    let n = i64::deserialize(d)?;
    u64::try_from(n)
        .ok()
        .filter(|n| (MIN..=MAX).contains(n))
        .and_then(T::from_u64)
        .ok_or_else(|| D::Error::custom(format!("{n} is out of range; write {MIN} to {MAX}")))
}

/// [`within`] for a key that may be left out.
fn optional_within<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Count,
{
    within::<D, T, MIN, MAX>(d).map(Some)
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            concurrency: NonZeroUsize::new(8).expect("8 is not zero"),
            rate_per_second: None,
            max_attempts: NonZeroU32::new(5).expect("5 is not zero"),
            on_uncertain: OnUncertain::Resend,
            jid_cache_hours: 24 * 7,
            jid_miss_minutes: 60,
            keep_details: NonZeroU32::new(DEFAULT_KEEP_DETAILS).expect("not zero"),
        }
    }
}

/// A validated job, ready to run.
pub struct Job {
    /// The file stem.
    pub name: String,
    /// The job file.
    pub path: PathBuf,
    /// What it is for.
    pub description: Option<String>,
    /// When it fires; `None` for manual-only jobs.
    pub schedule: Option<Schedule>,
    /// The timezone the schedule is read in.
    pub timezone: Tz,
    /// The app that sends.
    pub app: String,
    /// The Zoom account it sends in, when the job names one (`account`): a run refuses to
    /// send in another.
    pub account: Option<String>,
    /// The inline recipients (`recipients.emails`, `jids` and `channels`), de-duplicated.
    pub inline_recipients: Vec<Recipient>,
    /// The recipients file, read as a stream when the job runs.
    pub recipients_file: Option<PathBuf>,
    /// Unique recipients, counted when the job was validated.
    pub recipient_count: usize,
    /// The `[vars]` table, as template text.
    pub vars: BTreeMap<String, String>,
    /// The message's head and body.
    pub template: MessageTemplate,
    /// Whether Zoom applies Markdown.
    pub markdown: bool,
    /// Which button press acknowledges the message, and the reminders (`[acknowledge]`).
    pub acknowledge: Option<Acknowledge>,
    /// What is valid but worth a look (`validate` prints these).
    pub warnings: Vec<Diagnostic>,
    /// The `[delivery]` settings.
    pub delivery: DeliverySettings,
    /// How the scheduler treats the job's ticks.
    pub policy: SchedulePolicy,
    /// How many of the job's newest runs keep their record (`keep_runs`); older ones are
    /// folded into the job's totals.
    pub keep_runs: NonZeroU32,
    /// Whether the scheduler passes the job's ticks over (`suspend = true`); ticks passed over
    /// are not caught up when it is resumed. `run` still runs it.
    pub suspend: bool,
    /// Who is told when a run partly fails, is aborted or is closed (`on_failure`): emails,
    /// user JIDs, channel JIDs and `#channel-name`s.
    pub on_failure: Vec<String>,
}

/// The job's name: the file stem.
pub fn job_name(path: &Path) -> String {
    path.file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
}

impl Job {
    /// Every recipient, inline ones first, the file's streamed: not yet de-duplicated across
    /// the two (the engine does that as it goes).
    pub fn recipients(
        &self,
    ) -> Result<impl Iterator<Item = Result<Recipient, FileProblem>> + '_, FileProblem> {
        let file = match &self.recipients_file {
            Some(path) => Some(recipients::open_file(path)?.1),
            None => None,
        };
        Ok(self
            .inline_recipients
            .iter()
            .cloned()
            .map(Ok)
            .chain(file.into_iter().flatten()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Invalid};

    fn load(toml_text: &str) -> Result<Job, Invalid> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("standup.toml");
        std::fs::write(&path, toml_text).unwrap();
        let config = Config::load(&dir.path().join("none.toml"), false, |_| None).unwrap();
        Job::load(&path, &config)
    }

    const GOOD: &str = r#"
description = "Daily stand-up"
schedule = "50 8 * * Mon-Fri"
timezone = "Europe/Berlin"

[recipients]
emails = ["Ana@example.com", "bo@example.com", "ana@example.com"]

[message]
head = "Stand-up"
body = "Hi {{ first_name }}"

[delivery]
concurrency = 4
"#;

    #[test]
    fn a_good_job() {
        let job = load(GOOD).unwrap();
        assert_eq!(job.name, "standup");
        assert_eq!(job.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(job.recipient_count, 2, "de-duplicated case-insensitively");
        assert_eq!(job.delivery.concurrency.get(), 4);
        assert_eq!(job.delivery.max_attempts.get(), 5);
        assert_eq!(job.app, "default");
        assert_eq!(job.policy, SchedulePolicy::default());
        assert_eq!(job.policy.catch_up, CatchUp::Latest);
        assert_eq!(job.policy.overlap, Overlap::Skip);
    }

    #[test]
    fn schedule_policy_keys() {
        let text = GOOD.replace(
            "timezone",
            "catch_up = \"all\"\ncatch_up_within = \"6h\"\noverlap = \"queue\"\njitter = \"1m 30s\"\ntimezone",
        );
        let policy = load(&text).unwrap().policy;
        assert_eq!(policy.catch_up, CatchUp::All);
        assert_eq!(policy.catch_up_within, Some(Duration::from_secs(6 * 3600)));
        assert_eq!(policy.overlap, Overlap::Queue);
        assert_eq!(policy.jitter, Duration::from_secs(90));
    }

    fn error_of(text: &str) -> String {
        load(text).err().expect("invalid").to_string()
    }

    #[test]
    fn every_problem_has_a_line_and_column() {
        let cases = [
            (
                GOOD.replace("concurrency = 4", "concurency = 4"),
                "standup.toml:14:1",
                "unknown field `concurency`",
            ),
            (
                GOOD.replace("concurrency = 4", "concurrency = 0"),
                "standup.toml:14:15",
                "0 is out of range; write 1 to 1000",
            ),
            (
                GOOD.replace("concurrency = 4", "concurrency = 100000000"),
                "standup.toml:14:15",
                "100000000 is out of range; write 1 to 1000",
            ),
            (
                GOOD.replace("timezone", "jitter = \"1000000y\"\ntimezone"),
                "standup.toml:4:10",
                "`jitter` is longer than 1day",
            ),
            (
                GOOD.replace("50 8 * * Mon-Fri", "0 0 9 1 1 * 2020"),
                "standup.toml:3:12",
                "can never fire again",
            ),
            (
                GOOD.replace(
                    "Hi {{ first_name }}",
                    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
                ),
                "standup.toml:11:8",
                "recursion limit exceeded",
            ),
            (
                GOOD.replace("Europe/Berlin", "Mars/Olympus"),
                "standup.toml:4:12",
                "unknown timezone `Mars/Olympus`",
            ),
            (
                GOOD.replace("Mon-Fri", "Mon-Fry"),
                "standup.toml:3:12",
                "not a day of the week",
            ),
            (
                GOOD.replace("\"bo@example.com\"", "\"bo\""),
                "standup.toml:7:30",
                "`bo` is not an email address",
            ),
            (
                GOOD.replace("first_name", "frist_name"),
                "standup.toml:11:8",
                "uses `frist_name`",
            ),
            (
                GOOD.replace("{{ first_name }}", "{{ first_name"),
                "standup.toml:11:8",
                "does not compile",
            ),
            (
                GOOD.replace("timezone", "app = \"nope\"\ntimezone"),
                "standup.toml:4:7",
                "no app called `nope`",
            ),
            (
                GOOD.replace("timezone", "jitter = \"soon\"\ntimezone"),
                "standup.toml:4:10",
                "`jitter` is not a duration",
            ),
            (
                GOOD.replace("timezone", "catch_up = \"some\"\ntimezone"),
                "standup.toml:4:12",
                "unknown variant `some`, expected one of `none`, `latest`, `all`",
            ),
            (
                GOOD.replace("timezone", "overlap = \"stack\"\ntimezone"),
                "standup.toml:4:11",
                "expected `skip` or `queue`",
            ),
            (
                GOOD.replace("50 8 * * Mon-Fri", "0 9 30 2 *"),
                "standup.toml:3:12",
                "can never fire",
            ),
        ];
        for (text, place, message) in cases {
            let err = error_of(&text);
            assert!(err.contains(place), "expected {place} in:\n{err}");
            assert!(err.contains(message), "expected {message} in:\n{err}");
        }
    }

    #[test]
    fn csv_columns_are_not_available_to_inline_recipients() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("team.csv"),
            "email,team\nbo@example.com,ops\n",
        )
        .unwrap();
        let job = GOOD
            .replace("[message]", "file = \"team.csv\"\n\n[message]")
            .replace("{{ first_name }}", "{{ team }}");
        let path = dir.path().join("standup.toml");
        std::fs::write(&path, &job).unwrap();
        let config = Config::load(&dir.path().join("none.toml"), false, |_| None).unwrap();
        let err = Job::load(&path, &config).err().unwrap().to_string();
        assert!(
            err.contains("`team`, a column of recipients.file, but the inline recipients"),
            "{err}"
        );
        std::fs::write(
            &path,
            job.replace(
                "emails = [\"Ana@example.com\", \"bo@example.com\", \"ana@example.com\"]\n",
                "",
            ),
        )
        .unwrap();
        let job = Job::load(&path, &config).unwrap();
        let first = job.recipients().unwrap().next().unwrap().unwrap();
        assert_eq!(first.columns["team"], "ops");
    }

    #[test]
    fn all_problems_reported_together() {
        let text = GOOD
            .replace("Europe/Berlin", "Nowhere")
            .replace("first_name", "nobody");
        let err = load(&text).err().unwrap();
        assert_eq!(err.diagnostics.len(), 2, "{err}");
    }
}
