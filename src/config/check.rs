//! The job-file checker: every key of a parsed [`JobFile`] checked against the configuration,
//! the recipients file read once to count and check it, the schedule's next time found, the
//! message templates compiled, their variables matched to what recipients have, and a test
//! render with sample values. Every problem is collected, each with its place and the fix.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use toml::Spanned;

use super::app::{Config, DEFAULT_APP};
use super::diagnostic::{Diagnostic, Invalid};
use super::job::{Job, JobFile, RecipientsFile, SchedulePolicy, job_name};
use super::recipients::{self, Address, Recipient, is_plausible_email};
use super::vars::run_variables;
use crate::cron::Schedule;
use crate::render::BUILTIN_VARIABLES;
use crate::user::{is_channel_jid, is_user_jid};

/// What the message's templates are checked against.
pub(super) struct Sample<'a> {
    /// Every variable some recipient has.
    pub(super) known: &'a BTreeSet<String>,
    /// Whether some recipients are inline (they have no CSV columns).
    pub(super) inline: bool,
    /// The first file recipient's columns, as sample values.
    pub(super) columns: BTreeMap<String, String>,
    /// The job's `[vars]` and run variables.
    pub(super) job_vars: &'a BTreeMap<String, String>,
}

/// The longest `jitter`: a tick is never delayed by more than a day.
const MAX_JITTER: Duration = Duration::from_secs(24 * 3600);
/// The longest `catch_up_within` that means anything: ten years.
const MAX_CATCH_UP_WITHIN: Duration = Duration::from_secs(3650 * 24 * 3600);

/// The IANA time zone name closest to `name` (a typo or a case slip), if one is close.
fn closest_timezone(name: &str) -> Option<&'static str> {
    let wanted = name.to_lowercase();
    chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name())
        .map(|known| {
            (
                strsim::damerau_levenshtein(&wanted, &known.to_lowercase()),
                known,
            )
        })
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| known)
}

/// How to write a JID of `what` kind, and where to find one.
fn jid_help(what: &str) -> String {
    if what.contains("channel") {
        "write it as xxxx@conference.xmpp.zoom.us (in Zoom: the channel's settings, or the \
         `toJid` of a message sent to the bot there)"
            .to_owned()
    } else {
        "write it as xxxx@xmpp.zoom.us (the `jid` of GET /v2/users/{email}), or list the person \
         under emails"
            .to_owned()
    }
}

/// Values for a test render: a sample person, the first recipient's CSV columns, the job's
/// `[vars]` and run variables, and a placeholder for any other known variable.
pub(super) fn sample_values(
    known: &BTreeSet<String>,
    columns: BTreeMap<String, String>,
    job: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let person = [
        ("email", "ana@example.com"),
        ("first_name", "Ana"),
        ("last_name", "Example"),
        ("display_name", "Ana Example"),
    ];
    let mut sample: BTreeMap<String, String> = known
        .iter()
        .map(|name| (name.clone(), "sample".to_owned()))
        .collect();
    sample.extend(person.map(|(k, v)| (k.to_owned(), v.to_owned())));
    sample.extend(columns);
    sample.extend(job.clone());
    sample
}

/// What [`Checker::recipients`] found.
struct Recipients {
    columns: BTreeSet<String>,
    inline: Vec<Recipient>,
    file: Option<PathBuf>,
    count: usize,
    /// The first recipient of the file's CSV columns, as sample values for a test render.
    sample_columns: BTreeMap<String, String>,
}

/// Checks a parsed job file, collecting every problem before it answers.
pub(super) struct Checker<'a> {
    path: &'a Path,
    source: &'a str,
    problems: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    /// A checker of the job file at `path`, whose text is `source`.
    pub(super) fn new(path: &'a Path, source: &'a str) -> Self {
        Self {
            path,
            source,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(super) fn report(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.problems
            .push(Diagnostic::at(self.path, self.source, span, message).help(help));
    }

    /// Notes what is valid but worth a look.
    pub(super) fn warn(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let warning = Diagnostic::at(self.path, self.source, span, message).help(help);
        self.warnings.push(warning.as_warning());
    }

    /// The scheduling keys: `catch_up`, `catch_up_within`, `overlap` and `jitter`.
    fn policy(&mut self, file: &JobFile) -> SchedulePolicy {
        SchedulePolicy {
            catch_up: file.catch_up,
            catch_up_within: self.duration(
                file.catch_up_within.as_ref(),
                "catch_up_within",
                MAX_CATCH_UP_WITHIN,
            ),
            overlap: file.overlap,
            jitter: self
                .duration(file.jitter.as_ref(), "jitter", MAX_JITTER)
                .unwrap_or_default(),
        }
    }

    /// The `app` key: the default app when left out, else one the configuration has.
    fn app(&mut self, written: Option<&Spanned<String>>, config: &Config) -> String {
        let Some(a) = written else {
            return DEFAULT_APP.to_owned();
        };
        let app = a.get_ref().clone();
        if !config.has_app(&app) {
            let names: Vec<&str> = config.app_names().collect();
            self.report(
                a.span(),
                format!("no app called `{app}` is configured"),
                format!(
                    "configured apps: {}; add [apps.{app}] to zoomcast.toml",
                    names.join(", ")
                ),
            );
        }
        app
    }

    pub(super) fn check(mut self, file: JobFile, config: &Config) -> Result<Job, Invalid> {
        let (schedule, timezone) = self.when(&file);
        let policy = self.policy(&file);
        let app = self.app(file.app.as_ref(), config);
        let account = file.account.as_ref().and_then(|a| self.account(a));
        let Recipients {
            columns,
            inline: inline_recipients,
            file: recipients_file,
            count,
            sample_columns,
        } = self.recipients(&file.recipients);
        let inline = !inline_recipients.is_empty();
        let vars = self.vars(&file.vars, &columns);
        let on_failure = self.on_failure(&file.on_failure);
        // What a run adds: the job's `[vars]`, and `job`, `run_id` and `now` (here, a sample).
        let mut job_vars = vars.clone();
        let tz = timezone.unwrap_or(Tz::UTC);
        job_vars.extend(run_variables(
            &job_name(self.path),
            1,
            chrono::Utc::now(),
            tz,
        ));
        job_vars.extend(super::vars::alert_sample());
        let mut known = columns;
        known.extend(job_vars.keys().cloned());
        let message = Sample {
            known: &known,
            inline,
            columns: sample_columns,
            job_vars: &job_vars,
        };
        let template = self.message(&file.message, &message);
        let acknowledge = self.acknowledge(file.acknowledge.as_ref(), template.as_ref());
        match (
            self.problems.is_empty(),
            schedule.is_some() || file.schedule.is_none(),
            timezone,
            template,
        ) {
            (true, true, Some(timezone), Some(template)) => Ok(Job {
                name: job_name(self.path),
                path: self.path.to_owned(),
                description: file.description,
                schedule,
                timezone,
                app,
                account,
                vars,
                inline_recipients,
                recipients_file,
                recipient_count: count,
                template,
                markdown: file.message.get_ref().markdown,
                acknowledge,
                warnings: std::mem::take(&mut self.warnings),
                delivery: file.delivery,
                policy,
                keep_runs: file.keep_runs,
                suspend: file.suspend,
                on_failure,
            }),
            _ => Err(Invalid {
                diagnostics: self.problems,
            }),
        }
    }

    /// The `schedule` and `timezone` keys; a schedule that can never fire again is reported.
    fn when(&mut self, file: &JobFile) -> (Option<Schedule>, Option<Tz>) {
        let schedule = file.schedule.as_ref().and_then(|s| {
            s.get_ref()
                .parse::<Schedule>()
                .map_err(|e| {
                    self.report(
                        s.span(),
                        e,
                        "write a crontab expression such as \"50 8 * * Mon-Fri\"",
                    );
                })
                .ok()
        });
        let timezone = file.timezone.as_ref().map_or(Some(Tz::UTC), |tz| {
            tz.get_ref()
                .parse::<Tz>()
                .map_err(|_| {
                    let help = match closest_timezone(tz.get_ref()) {
                        Some(name) => format!("did you mean \"{name}\"?"),
                        None => {
                            "use an IANA name such as \"Europe/Berlin\" or \"America/New_York\""
                                .to_owned()
                        }
                    };
                    let shown = crate::output::clean(tz.get_ref(), 80);
                    self.report(tz.span(), format!("unknown timezone `{shown}`"), help);
                })
                .ok()
        });
        if let (Some(s), Some(spanned), Some(tz)) = (&schedule, &file.schedule, timezone)
            && s.next_after(&chrono::Utc::now().with_timezone(&tz))
                .is_none()
        {
            self.report(
                spanned.span(),
                crate::cron::never_fires(spanned.get_ref()),
                "write a schedule with times still to come, or remove `schedule` for a job run \
                 only by hand",
            );
        }
        (schedule, timezone)
    }

    /// The `account` key: a Zoom account id (letters, digits, `-` and `_`, as Zoom writes
    /// them); reported (and `None`) otherwise.
    fn account(&mut self, value: &Spanned<String>) -> Option<String> {
        let id = value.get_ref();
        if crate::user::is_account_id(id) {
            return Some(id.clone());
        }
        self.report(
            value.span(),
            format!("account `{}` is not a Zoom account id", crate::output::clean(id, 80)),
            "write the account id `zoomcast auth status` shows for the app (letters, digits, - and _)",
        );
        None
    }

    /// A duration such as "90s", "15m", "2h" or "1d 12h", at most `max`; reported (and
    /// `None`) if malformed or longer.
    pub(super) fn duration(
        &mut self,
        value: Option<&Spanned<String>>,
        key: &str,
        max: Duration,
    ) -> Option<Duration> {
        let value = value?;
        match humantime::parse_duration(value.get_ref()) {
            Ok(d) if d <= max => Some(d),
            Ok(_) => {
                self.report(
                    value.span(),
                    format!(
                        "`{key}` is longer than {}, the most it may be",
                        humantime::format_duration(max)
                    ),
                    format!(
                        "write a duration from 0s to {}",
                        humantime::format_duration(max)
                    ),
                );
                None
            }
            Err(e) => {
                self.report(
                    value.span(),
                    format!("`{key}` is not a duration: {e}"),
                    "write a duration such as \"90s\", \"15m\", \"2h\" or \"1d 12h\"",
                );
                None
            }
        }
    }

    /// Checks the inline emails and reads the file once (streaming, keeping nothing but a
    /// 16-byte key per email to count them uniquely). Returns the template variables the
    /// recipients have, the inline recipients, the file's path and the unique count.
    fn recipients(&mut self, spanned: &Spanned<RecipientsFile>) -> Recipients {
        let table = spanned.get_ref();
        let mut seen = HashSet::new();
        let mut inline = Vec::new();
        for address in self.inline_addresses(table) {
            let r = Recipient::at(address);
            if seen.insert(recipients::dedupe_key(r.key())) {
                inline.push(r);
            }
        }
        let mut columns: BTreeSet<String> =
            BUILTIN_VARIABLES.iter().map(|v| (*v).to_owned()).collect();
        let mut file_path = None;
        let mut sample_columns = BTreeMap::new();
        if let Some(file) = &table.file {
            let (path, sample) = self.recipients_file(file, &mut seen, &mut columns);
            sample_columns = sample;
            file_path = Some(path);
        }
        let no_list = [&table.emails, &table.jids, &table.channels]
            .iter()
            .all(|list| list.is_empty());
        if no_list && table.file.is_none() {
            self.report(
                spanned.span(),
                "the job has no recipients",
                "add `emails = [...]`, `jids = [...]`, `channels = [...]` or `file = \"...\"` to [recipients]",
            );
        }
        Recipients {
            columns,
            inline,
            file: file_path,
            count: seen.len(),
            sample_columns,
        }
    }

    /// Reads `recipients.file` once, adding each email's key to `seen` and the file's columns
    /// to `columns`; its path, and the first recipient's columns as sample values. The first
    /// problems are reported, the rest counted.
    fn recipients_file(
        &mut self,
        file: &Spanned<String>,
        seen: &mut HashSet<[u8; 16]>,
        columns: &mut BTreeSet<String>,
    ) -> (PathBuf, BTreeMap<String, String>) {
        /// Problems listed per recipients file before the rest are summed up.
        const MAX_LISTED: usize = 20;
        let path = self
            .path
            .parent()
            .unwrap_or(Path::new("."))
            .join(file.get_ref());
        let mut sample = BTreeMap::new();
        let (mut problems, mut extra) = (Vec::new(), 0);
        let mut problem = |p| {
            if problems.len() < MAX_LISTED {
                problems.push(p);
            } else {
                extra += 1;
            }
        };
        match recipients::open_file(&path) {
            Ok((headers, stream)) => {
                columns.extend(
                    headers
                        .into_iter()
                        .filter(|h| !h.eq_ignore_ascii_case("email")),
                );
                for item in stream {
                    match item {
                        Ok(r) => {
                            let key = recipients::dedupe_key(r.key());
                            if seen.is_empty() {
                                sample = r.columns;
                            }
                            seen.insert(key);
                        }
                        Err(p) => problem(p),
                    }
                }
            }
            Err(p) => problem(p),
        }
        for p in problems {
            let at = if p.line > 0 {
                format!("{}:{}: ", path.display(), p.line)
            } else {
                String::new()
            };
            self.report(
                file.span(),
                format!("{at}{}", p.message),
                "fix the recipients file (relative to the job file)",
            );
        }
        if extra > 0 {
            self.report(
                file.span(),
                format!("{}: {extra} more problems", path.display()),
                "fix the ones above first",
            );
        }
        (path, sample)
    }

    /// The inline `emails`, `jids` and `channels`, lower-cased; what is not an address of its
    /// kind is reported.
    fn inline_addresses(&mut self, table: &RecipientsFile) -> Vec<Address> {
        let mut addresses = Vec::new();
        for email in &table.emails {
            if is_plausible_email(email.get_ref()) {
                let address = Address::Email(email.get_ref().to_lowercase());
                addresses.push(address);
            } else {
                // The job file's own text, shown under the error anyway.
                let text = email.get_ref();
                let (message, help) = match text.chars().find(|c| crate::output::is_hidden(*c)) {
                    Some(hidden) => (
                        format!(
                            "`{}` has a control or invisible character ({}): it would be \
                             another recipient that looks the same",
                            crate::output::escaped(&text.chars().take(80).collect::<String>()),
                            hidden.escape_unicode()
                        ),
                        "remove the character (retype the address)",
                    ),
                    None => (
                        format!(
                            "`{}` is not an email address",
                            crate::output::clean(text, 80)
                        ),
                        "write it as name@example.com",
                    ),
                };
                self.report(email.span(), message, help);
            }
        }
        let users = self.jids(&table.jids, is_user_jid, "a chat user's JID");
        addresses.extend(users.into_iter().map(Address::User));
        let (names, jids): (Vec<_>, Vec<_>) = table
            .channels
            .iter()
            .cloned()
            .partition(|c| c.get_ref().starts_with('#'));
        let channels = self.jids(&jids, is_channel_jid, "a channel's JID");
        addresses.extend(channels.into_iter().map(Address::Channel));
        for name in &names {
            match channel_name(name.get_ref()) {
                Ok(name) => addresses.push(Address::ChannelName(name)),
                Err(why) => self.report(
                    name.span(),
                    why,
                    "write `#` and the channel's name as Zoom shows it, or its JID",
                ),
            }
        }
        addresses
    }

    /// The JIDs of `list` that are `what` (lower-cased); the others are reported.
    fn jids(
        &mut self,
        list: &[Spanned<String>],
        valid: fn(&str) -> bool,
        what: &str,
    ) -> Vec<String> {
        let mut jids = Vec::new();
        for jid in list {
            let lower = jid.get_ref().to_lowercase();
            if valid(&lower) {
                jids.push(lower);
            } else {
                let quoted = crate::output::clean(jid.get_ref(), 80);
                self.report(
                    jid.span(),
                    format!("`{quoted}` is not {what}"),
                    jid_help(what),
                );
            }
        }
        jids
    }
}

/// The longest channel name taken after its `#` (Zoom's names are far shorter).
const MAX_CHANNEL_NAME_CHARS: usize = 200;

/// `#name` as a recipient: the name trimmed, with its `#`; or why it cannot be one.
fn channel_name(written: &str) -> Result<String, String> {
    let name = written.trim_start_matches('#').trim();
    if name.is_empty() {
        return Err("`#` names no channel".to_owned());
    }
    if let Some(hidden) = name.chars().find(|c| crate::output::is_hidden(*c)) {
        return Err(format!(
            "`{}` has a control or invisible character ({})",
            crate::output::escaped(&name.chars().take(80).collect::<String>()),
            hidden.escape_unicode()
        ));
    }
    if name.chars().count() > MAX_CHANNEL_NAME_CHARS {
        return Err(format!(
            "the channel name is longer than {MAX_CHANNEL_NAME_CHARS} characters"
        ));
    }
    Ok(format!("#{name}"))
}

impl Checker<'_> {
    /// `on_failure`: each an email, a user JID, a channel JID or `#name`; the others are
    /// reported.
    fn on_failure(&mut self, list: &[Spanned<String>]) -> Vec<String> {
        let mut addresses = Vec::new();
        for address in list {
            let text = address.get_ref().trim();
            let lower = text.to_lowercase();
            let valid = if text.starts_with('#') {
                channel_name(text)
                    .map(|_| ())
                    .map_err(|why| (why, "write `#` and the channel's name"))
            } else if is_channel_jid(&lower)
                || is_user_jid(&lower)
                || recipients::is_plausible_email(&lower)
            {
                Ok(())
            } else {
                Err((
                    format!("`{}` is not an address", crate::output::clean(text, 80)),
                    "an email, a user JID, a channel JID or #channel-name",
                ))
            };
            match valid {
                Ok(()) => addresses.push(text.to_owned()),
                Err((why, help)) => self.report(address.span(), why, help),
            }
        }
        addresses
    }
}
