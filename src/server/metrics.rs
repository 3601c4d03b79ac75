//! `GET /metrics`: Prometheus series, encoded by `prometheus-client` in the `OpenMetrics` text
//! format, or in the Prometheus text format (0.0.4) for a scraper that does not ask for
//! `OpenMetrics` ([`prometheus_text`]). Jobs are labelled `job_name`: Prometheus gives every
//! series the target's own `job` label.
//!
//! The runs' series are read from each job's totals in the store (one entry per job, kept up
//! to date as runs are written and folded: a scrape reads no run record), so runs started by
//! `zoomcast run` in another process are counted too: `zoomcast_runs_total{job_name,outcome}`
//! (runs ended), `zoomcast_deliveries_total{job_name,outcome}`,
//! `zoomcast_rate_limited_total{endpoint}` (the runs' requests Zoom answered 429),
//! `zoomcast_job_last_success_timestamp_seconds{job_name}`,
//! `zoomcast_job_last_run_timestamp_seconds{job_name}`, `zoomcast_run_duration_seconds{job_name}`
//! (a histogram kept in the totals); the grants' `zoomcast_grant_valid{app,
//! account}`. Every counter only grows. What only this process sees is counted in memory:
//! `zoomcast_token_refreshes_total{app,result}`, `zoomcast_webhook_events_total{app,event,
//! verdict}` and `zoomcast_acknowledgements_total{job_name}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Server;
use super::signature::Refused;
use crate::state::off_workers;
use crate::state::totals::{DURATION_BOUNDS, Durations};
use crate::state::{StateError, Store, Totals};

/// The content type of the `OpenMetrics` text format.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the Prometheus text format, for scrapers that do not ask for
/// `OpenMetrics`.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What became of a webhook request.
#[derive(Debug, Clone, Copy)]
pub enum Verdict {
    /// Verified and handled.
    Accepted,
    /// Verified; an event zoomcast has no use for.
    Ignored,
    /// Verified, but not JSON or not the payload the event has.
    Malformed,
    /// Verified, but handling it failed on zoomcast's side.
    Failed,
    /// Refused before the body was read.
    Refused(Refused),
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Ignored => "ignored",
            Self::Malformed => "malformed",
            Self::Failed => "failed",
            Self::Refused(refused) => refused.label(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct EventLabels {
    app: String,
    event: String,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct JobOutcome {
    job_name: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct JobLabel {
    job_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct GrantLabels {
    app: String,
    account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct RefreshLabels {
    app: String,
    result: String,
}

/// What the scheduler of this process says of its jobs, for the metrics: each job's next tick
/// and whether it is suspended, and how many job files it refuses now. Empty where nothing
/// schedules (`serve`).
#[derive(Debug, Clone, Default)]
pub struct Schedules {
    /// Each scheduled job: its name, its next tick, whether it is suspended.
    pub jobs: Vec<(String, Option<chrono::DateTime<chrono::Utc>>, bool)>,
    /// Job files the scheduler refuses now.
    pub invalid: usize,
}

/// Where the scheduler posts its [`Schedules`].
pub type ScheduleBoard = Arc<std::sync::RwLock<Option<Schedules>>>;

/// The series only this process sees.
#[derive(Default)]
pub struct Metrics {
    /// The scheduler's jobs, when a scheduler runs in this process.
    pub schedules: ScheduleBoard,
    webhook_events: Family<EventLabels, Counter>,
    /// Whether any webhook request was counted (an empty family is not exposed).
    any_webhook: std::sync::atomic::AtomicBool,
    /// Presses of a run's acknowledging button, by job.
    acknowledgements: Family<JobLabel, Counter>,
    any_acknowledgement: std::sync::atomic::AtomicBool,
}

impl Metrics {
    /// Counts one press of a run's acknowledging button, on a message of `job`.
    pub fn acknowledged(&self, job: &str) {
        self.any_acknowledgement
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.acknowledgements
            .get_or_create(&JobLabel {
                job_name: label(job),
            })
            .inc();
    }

    /// Counts one webhook request for `app`.
    pub fn webhook(&self, app: &str, event: &str, verdict: Verdict) {
        self.any_webhook
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.webhook_events
            .get_or_create(&EventLabels {
                app: label(app),
                event: label(&crate::output::clean(event, 64)),
                verdict: verdict.label().to_owned(),
            })
            .inc();
    }
}

pub(super) async fn scrape(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    let store = server.store.clone();
    let stored = match off_workers(move || read_stored(&store)).await {
        Ok(stored) => stored,
        Err(e) => return unavailable(&e),
    };
    let mut registry = Registry::default();
    register_totals(&mut registry, &stored.totals);
    register_grants(&mut registry, &stored.grants);
    register_schedules(&mut registry, &server.metrics.schedules);
    register_process(&mut registry, &server);
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the metrics failed\n",
        )
            .into_response();
    }
    if wants_openmetrics(&headers) {
        ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
    } else {
        let text = prometheus_text(&text);
        ([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], text).into_response()
    }
}

/// Whether the scraper asks for `OpenMetrics` (Prometheus does, first, when it can read it).
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|kind| {
            let mut parts = kind.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        })
}

/// The Prometheus text format (0.0.4) of an `OpenMetrics` exposition: a counter's family is
/// named as its samples are (`_total`), and there is no `# EOF` or `# UNIT` line.
fn prometheus_text(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" counter"))
        {
            counters.insert(name.to_owned());
        }
    }
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        text.push_str(renamed.as_deref().unwrap_or(line));
        text.push('\n');
    }
    text
}

fn unavailable(e: &StateError) -> Response {
    tracing::error!("metrics: reading the jobs' totals failed: {e}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the state database is not usable\n",
    )
        .into_response()
}

/// What a scrape reads from the store: every job's totals (one entry per job, however many
/// runs there were), and every grant with whether it works.
struct Stored {
    totals: Vec<(String, Totals)>,
    grants: Vec<(String, String, bool)>,
}

fn read_stored(store: &Store) -> Result<Stored, StateError> {
    let grants = store.grants()?;
    let mut held = Vec::new();
    for (app, account) in grants.all()? {
        let valid = grants
            .get(&app, &account)?
            .is_some_and(|grant| grant.dead.is_none());
        held.push((app, account, valid));
    }
    Ok(Stored {
        totals: store.runs()?.all_totals()?,
        grants: held,
    })
}

/// The series read from each job's totals.
fn register_totals(registry: &mut Registry, totals: &[(String, Totals)]) {
    let mut finished = BTreeMap::<JobOutcome, u64>::new();
    let mut deliveries = BTreeMap::<JobOutcome, u64>::new();
    let mut last_success = BTreeMap::<JobLabel, i64>::new();
    let mut last_run = BTreeMap::<JobLabel, i64>::new();
    let mut limited = BTreeMap::<EndpointLabel, u64>::new();
    for (job, t) in totals {
        for (endpoint, n) in [
            ("users", t.rate_limited.users),
            ("chat", t.rate_limited.chat),
        ] {
            let endpoint = endpoint.to_owned();
            *limited.entry(EndpointLabel { endpoint }).or_default() += n;
        }
        let counts = [
            ("sent", t.deliveries.sent),
            ("failed", t.deliveries.failed),
            ("uncertain", t.deliveries.uncertain),
            ("opted_out", t.deliveries.opted_out),
        ];
        for (outcome, n) in counts {
            deliveries.insert(job_outcome(job, outcome), n);
        }
        for (outcome, n) in t.ended.by_outcome() {
            if n > 0 {
                finished.insert(job_outcome(job, outcome), n);
            }
        }
        if let Some(at) = t.last_success {
            last_success.insert(
                JobLabel {
                    job_name: label(job),
                },
                at.timestamp(),
            );
        }
        if let Some(at) = t.last_run {
            last_run.insert(
                JobLabel {
                    job_name: label(job),
                },
                at.timestamp(),
            );
        }
    }
    let help = "Runs ended, by job and outcome (a run aborted and resumed ends twice)";
    register_counters(registry, "zoomcast_runs", help, finished);
    let help = "Recipients of runs by job and outcome";
    register_counters(registry, "zoomcast_deliveries", help, deliveries);
    let help = "Requests of runs Zoom answered 429, by endpoint";
    register_counters(registry, "zoomcast_rate_limited", help, limited);
    let help = "When each job's newest fully successful run finished";
    register_gauges(
        registry,
        "zoomcast_job_last_success_timestamp_seconds",
        help,
        last_success,
    );
    let help = "When each job's newest run started";
    register_gauges(
        registry,
        "zoomcast_job_last_run_timestamp_seconds",
        help,
        last_run,
    );
    register_durations(registry, totals);
}

/// The run duration histogram of each job whose runs have ended.
fn register_durations(registry: &mut Registry, totals: &[(String, Totals)]) {
    let durations: Vec<(JobLabel, Durations)> = totals
        .iter()
        .filter(|(_, t)| t.durations.count > 0)
        .map(|(job, t)| {
            (
                JobLabel {
                    job_name: label(job),
                },
                t.durations.clone(),
            )
        })
        .collect();
    if !durations.is_empty() {
        registry.register_collector(Box::new(RunDurations(durations)));
    }
}

/// `zoomcast_run_duration_seconds{job_name}`: a histogram kept in each job's totals, encoded
/// as it stands (prometheus-client's own histogram only counts observations in memory).
#[derive(Debug)]
struct RunDurations(Vec<(JobLabel, Durations)>);

impl Collector for RunDurations {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let help = "How long runs took, from their start to each ending, by job.";
        let mut family = encoder.encode_descriptor(
            "zoomcast_run_duration_seconds",
            help,
            None,
            MetricType::Histogram,
        )?;
        for (labels, d) in &self.0 {
            #[allow(clippy::cast_precision_loss)] // seconds and counts far below 2^52
            let buckets: Vec<(f64, u64)> = DURATION_BOUNDS
                .iter()
                .map(|b| *b as f64)
                .chain([f64::MAX])
                .zip(d.buckets.iter().copied().chain(std::iter::repeat(0)))
                .collect();
            #[allow(clippy::cast_precision_loss)]
            let sum = d.sum_ms as f64 / 1000.0;
            family
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(sum, d.count, &buckets, None)?;
        }
        Ok(())
    }
}

/// Registers a family of gauges with these values, unless it has none.
fn register_gauges<L>(registry: &mut Registry, name: &str, help: &str, values: BTreeMap<L, i64>)
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    if values.is_empty() {
        return;
    }
    let family = Family::<L, Gauge>::default();
    for (labels, value) in values {
        family.get_or_create(&labels).set(value);
    }
    registry.register(name, help, family);
}

/// The scheduler's view of its jobs: next ticks, suspensions, refused files.
fn register_schedules(registry: &mut Registry, board: &ScheduleBoard) {
    let Some(schedules) = board
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
    else {
        return;
    };
    let mut next = BTreeMap::new();
    let mut suspended = BTreeMap::new();
    for (job, tick, paused) in &schedules.jobs {
        let labels = JobLabel {
            job_name: label(job),
        };
        if let Some(at) = tick.filter(|_| !paused) {
            next.insert(labels.clone(), at.timestamp());
        }
        suspended.insert(labels, i64::from(*paused));
    }
    let help = "When each scheduled job's next tick is due (none while it is suspended)";
    register_gauges(
        registry,
        "zoomcast_job_next_run_timestamp_seconds",
        help,
        next,
    );
    let help = "Whether each job is suspended (1) or scheduled (0)";
    register_gauges(registry, "zoomcast_job_suspended", help, suspended);
    let invalid = Gauge::<i64>::default();
    invalid.set(i64::try_from(schedules.invalid).unwrap_or(i64::MAX));
    let help = "Job files the scheduler refuses now (see its log, or `zoomcast validate`)";
    registry.register("zoomcast_jobs_invalid", help, invalid);
}

/// Whether each stored grant works: 1, or 0 once Zoom refused it (it is dead until someone
/// authorizes again).
fn register_grants(registry: &mut Registry, grants: &[(String, String, bool)]) {
    let values: BTreeMap<GrantLabels, i64> = grants
        .iter()
        .map(|(app, account, valid)| {
            let labels = GrantLabels {
                app: label(app),
                account: label(account),
            };
            (labels, i64::from(*valid))
        })
        .collect();
    let help = "Whether each account's grant of each app works (0 once Zoom refused it)";
    register_gauges(registry, "zoomcast_grant_valid", help, values);
}

/// The series this process counted.
fn register_process(registry: &mut Registry, server: &Server) {
    let mut refreshes = BTreeMap::new();
    for (app, ok, failed) in server.engines.token_refreshes() {
        for (result, n) in [("ok", ok), ("failed", failed)] {
            let labels = RefreshLabels {
                app: label(&app),
                result: result.to_owned(),
            };
            refreshes.insert(labels, n);
        }
    }
    let help = "User-token refreshes by app and result (this process)";
    register_counters(registry, "zoomcast_token_refreshes", help, refreshes);
    let metrics = &server.metrics;
    if metrics
        .any_webhook
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        registry.register(
            "zoomcast_webhook_events",
            "Webhook requests by app, event and verdict",
            metrics.webhook_events.clone(),
        );
    }
    if metrics
        .any_acknowledgement
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        registry.register(
            "zoomcast_acknowledgements",
            "Presses of a run's acknowledging button, by job (this process)",
            metrics.acknowledgements.clone(),
        );
    }
}

/// Registers a family of counters with these values, unless it has none: an empty family
/// says nothing, and some parsers refuse one.
fn register_counters<L>(registry: &mut Registry, name: &str, help: &str, values: BTreeMap<L, u64>)
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    if values.is_empty() {
        return;
    }
    let family = Family::<L, Counter>::default();
    for (labels, n) in values {
        family.get_or_create(&labels).inc_by(n);
    }
    registry.register(name, help, family);
}

/// A label value as the text format needs it: prometheus-client writes values as given, so a
/// `"` or `\` in a job's or app's name would break the whole scrape.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn job_outcome(job: &str, outcome: &str) -> JobOutcome {
    JobOutcome {
        job_name: label(job),
        outcome: outcome.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::record::Counts;
    use crate::state::runs::records_read;
    use crate::state::{RunId, RunRecord, RunStatus};

    fn succeeded(id: u64, job: &str) -> RunRecord {
        RunRecord {
            finished_at: Some(chrono::Utc::now()),
            status: RunStatus::Succeeded,
            counts: Counts {
                total: 1,
                sent: 1,
                ..Counts::default()
            },
            ..RunRecord::new(RunId(id), job, ("default", None), None)
        }
    }

    fn encoded(totals: &[(String, Totals)]) -> String {
        let mut registry = Registry::default();
        register_totals(&mut registry, totals);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn a_job_name_with_quotes_and_backslashes_keeps_the_scrape_parseable() {
        let mut totals = Totals::default();
        totals.record(None, &succeeded(1, "we\"ird\\job"));
        let text = encoded(&[("we\"ird\\job".into(), totals)]);
        let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&text);
        assert!(parsed.is_ok(), "{text}\n{parsed:?}");
        // Runs, deliveries, 429s, the last success, the last run and the durations.
        assert_eq!(parsed.unwrap().families.len(), 6, "{text}");
    }

    #[test]
    fn a_scrape_reads_no_run_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let runs = store.runs().unwrap();
        let records: Vec<_> = (1..=500).map(|id| succeeded(id, "team")).collect();
        runs.write(&records).unwrap();
        let before = records_read();
        let stored = read_stored(&store).unwrap();
        let text = encoded(&stored.totals);
        assert_eq!(records_read(), before, "the scrape decoded run records");
        assert!(
            text.contains("zoomcast_runs_total{job_name=\"team\",outcome=\"succeeded\"} 500"),
            "{text}"
        );
        assert!(
            text.contains("zoomcast_deliveries_total{job_name=\"team\",outcome=\"sent\"} 500"),
            "{text}"
        );
    }

    #[test]
    fn a_scraper_that_does_not_ask_for_openmetrics_gets_the_prometheus_text_format() {
        let ask = |accept: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, accept.parse().unwrap());
            wants_openmetrics(&headers)
        };
        assert!(ask(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        ));
        assert!(!ask("text/plain;version=0.0.4"));
        assert!(!ask("application/openmetrics-text;q=0,text/plain"));
        assert!(!wants_openmetrics(&HeaderMap::new()));
        let openmetrics = "# HELP zoomcast_runs Runs ended.\n# TYPE zoomcast_runs counter\n\
                           zoomcast_runs_total{job_name=\"a\"} 2\n# HELP zoomcast_grant_valid Valid.\n\
                           # TYPE zoomcast_grant_valid gauge\nzoomcast_grant_valid 1\n# EOF\n";
        assert_eq!(
            prometheus_text(openmetrics),
            "# HELP zoomcast_runs_total Runs ended.\n# TYPE zoomcast_runs_total counter\n\
             zoomcast_runs_total{job_name=\"a\"} 2\n# HELP zoomcast_grant_valid Valid.\n\
             # TYPE zoomcast_grant_valid gauge\nzoomcast_grant_valid 1\n"
        );
    }
}
