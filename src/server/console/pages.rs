//! The console's pages: what each shows, read from the state off the runtime's workers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{chart, failure, page, run_record, signed_in, state_failed, when};
use crate::config::{Job, JobSet};
use crate::control::{self, AppGrant, Request};
use crate::server::Server;
use crate::state::{
    Delivery, DeliveryState, RunId, RunRecord, RunStatus, StateError, Store, Suspension,
    off_workers,
};

/// Runs per page of `/console/runs`.
const RUNS_PER_PAGE: usize = 50;
/// Recipients per page of a run.
const RECIPIENTS_PER_PAGE: usize = 500;
/// The recipient filters of a run's page.
const FILTERS: [&str; 6] = [
    "all",
    "failed",
    "uncertain",
    "sent",
    "acknowledged",
    "waiting",
];

/// A page's answer, or what to answer instead (a redirect to sign in, an error page).
type Answer = Result<Response, Response>;

fn unwrap(answer: Answer) -> Response {
    answer.unwrap_or_else(|refusal| refusal)
}

/// `GET /console`: every job with its schedule, next fire, last run and suspension.
pub(super) async fn jobs(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Query(query): Query<JobsQuery>,
) -> Response {
    unwrap(jobs_page(&server, &headers, query.done.as_deref()).await)
}

async fn jobs_page(server: &Server, headers: &HeaderMap, done: Option<&str>) -> Answer {
    let signed = signed_in(server, headers).await?;
    let Some(starter) = &server.runs else {
        return Err(failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "this process runs no jobs",
        ));
    };
    let set = starter
        .jobs()
        .await
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))?;
    let names: Vec<String> = set.jobs.iter().map(|j| j.name.clone()).collect();
    let store = server.store.clone();
    let (last, suspensions) = off_workers(move || {
        let console = store.console()?;
        let suspensions = names
            .iter()
            .map(|n| console.suspension(n))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, StateError>((store.runs()?.latest_of(&names)?, suspensions))
    })
    .await
    .map_err(|e| state_failed(&e))?;
    let scheduled = scheduled_here(server);
    let rows: Vec<Value> = set
        .jobs
        .iter()
        .zip(last.iter().zip(&suspensions))
        .map(|(job, (last, console))| job_row(job, last.as_ref(), console.as_ref(), &scheduled))
        .collect();
    let JobSet { broken, .. } = set;
    let invalid: Vec<&String> = broken.iter().map(|(name, _)| name).collect();
    Ok(page(
        "jobs.html",
        Some(&signed),
        json!({
            "title": "Jobs", "page": "jobs", "jobs": rows, "invalid": invalid,
            "scheduler": !scheduled.is_empty(),
            "notice": jobs_notice(done),
        }),
    ))
}

/// The next tick of each job this process's scheduler fires (none under `serve`).
fn scheduled_here(server: &Server) -> HashMap<String, Option<chrono::DateTime<Utc>>> {
    let board = server
        .metrics
        .schedules
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    board
        .iter()
        .flat_map(|s| s.jobs.iter())
        .map(|(name, next, _)| (name.clone(), *next))
        .collect()
}

fn job_row(
    job: &Job,
    last: Option<&RunRecord>,
    console: Option<&Suspension>,
    scheduled: &HashMap<String, Option<chrono::DateTime<Utc>>>,
) -> Value {
    let suspended = console.map_or(job.suspend, |s| s.suspended);
    let next = match scheduled.get(&job.name) {
        Some(next) => *next,
        None => job.schedule.as_ref().and_then(|s| {
            s.upcoming(&Utc::now().with_timezone(&job.timezone), 1)
                .first()
                .map(chrono::DateTime::to_utc)
        }),
    };
    json!({
        "name": job.name,
        "description": job.description,
        "schedule": job.schedule.as_ref().map(ToString::to_string),
        "timezone": job.timezone.name(),
        "next": if suspended { None } else { next.map(when) },
        "last": last.map(run_row),
        "suspended": suspended,
        "suspended_by": console.map(|s| format!("{} at {}", s.by, when(s.at))),
    })
}

/// A run as the pages show it.
fn run_row(r: &RunRecord) -> Value {
    let (status, error) = match &r.status {
        RunStatus::Running => ("running", None),
        RunStatus::Succeeded => ("succeeded", None),
        RunStatus::PartlyFailed => ("partly_failed", None),
        RunStatus::Aborted(why) => ("aborted", Some(why.as_str())),
        RunStatus::Closed(why) => ("closed", Some(why.as_str())),
    };
    json!({
        "id": r.id.0, "job": r.job, "app": r.app, "account": r.account,
        "status": status, "error": error, "counts": r.counts,
        "started_at": when(r.started_at), "finished_at": r.finished_at.map(when),
    })
}

/// What the jobs page says after an action (`?done=...`): only these fixed texts, never the
/// query's own.
fn jobs_notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "suspended" => {
            Some("The job is suspended: its schedule's ticks are passed over until it is resumed.")
        }
        "resumed" => {
            Some("The job is resumed: it runs from its next tick (nothing missed is caught up).")
        }
        _ => None,
    }
}

#[derive(Deserialize)]
pub(super) struct JobsQuery {
    /// What an action did.
    done: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RunsQuery {
    /// Only this job's runs.
    job: Option<String>,
    /// Runs started before this one (the next page back).
    before: Option<u64>,
}

/// `GET /console/runs?job=JOB&before=ID`: runs, newest first, a page at a time.
pub(super) async fn runs(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Query(query): Query<RunsQuery>,
) -> Response {
    unwrap(runs_page(&server, &headers, query).await)
}

async fn runs_page(server: &Server, headers: &HeaderMap, query: RunsQuery) -> Answer {
    let signed = signed_in(server, headers).await?;
    let store = server.store.clone();
    let job = query.job.clone().filter(|j| !j.is_empty());
    let before = RunId(query.before.unwrap_or(u64::MAX));
    let listed = job.clone();
    let mut runs = off_workers(move || {
        store
            .runs()?
            .newest_before(listed.as_deref(), before, RUNS_PER_PAGE + 1)
    })
    .await
    .map_err(|e| state_failed(&e))?;
    let more = runs.len() > RUNS_PER_PAGE;
    runs.truncate(RUNS_PER_PAGE);
    let older = more.then(|| runs.last().map(|r| r.id.0)).flatten();
    let rows: Vec<Value> = runs.iter().map(run_row).collect();
    Ok(page(
        "runs.html",
        Some(&signed),
        json!({
            "title": "Runs", "page": "runs", "runs": rows, "job": job,
            "older": older, "paged": query.before.is_some(),
        }),
    ))
}

#[derive(Deserialize)]
pub(super) struct RunQuery {
    /// Which recipients: one of [`FILTERS`].
    state: Option<String>,
    /// The page of recipients, from 0.
    page: Option<usize>,
    /// What an action did (`recall`).
    done: Option<String>,
}

/// `GET /console/runs/{id}`: a run, its recipients a page at a time, the chart of its
/// acknowledgements.
pub(super) async fn run(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<RunQuery>,
) -> Response {
    unwrap(run_page(&server, &headers, &id, query).await)
}

/// A run and its deliveries, or the page to answer instead.
async fn run_and_deliveries(
    server: &Server,
    id: &str,
) -> Result<(RunRecord, Vec<Delivery>), Response> {
    let record = run_record(server, id).await?;
    let (store, id) = (server.store.clone(), record.id);
    let deliveries = off_workers(move || store.deliveries()?.list(id))
        .await
        .map_err(|e| state_failed(&e))?;
    Ok((record, deliveries))
}

async fn run_page(server: &Server, headers: &HeaderMap, id: &str, query: RunQuery) -> Answer {
    let signed = signed_in(server, headers).await?;
    let (record, deliveries) = run_and_deliveries(server, id).await?;
    let state = query
        .state
        .filter(|s| FILTERS.contains(&s.as_str()))
        .unwrap_or_else(|| "all".into());
    let button = record.acknowledge.as_deref();
    let shown: Vec<&Delivery> = deliveries
        .iter()
        .filter(|d| shows(&state, d, button))
        .collect();
    let page_no = query.page.unwrap_or(0);
    let first = (page_no * RECIPIENTS_PER_PAGE).min(shown.len());
    let last = (first + RECIPIENTS_PER_PAGE).min(shown.len());
    let rows: Vec<Value> = shown[first..last]
        .iter()
        .map(|d| recipient_row(d, button))
        .collect();
    let (asked, acknowledged, chart) = acknowledgements(&record, &deliveries);
    let failures = deliveries.iter().filter(|d| is_failure(d)).count();
    let notice = match query.done.as_deref() {
        Some("recall") => Some(
            "The recall is queued: every message of this run is deleted as soon as no other work of its job runs.",
        ),
        Some("run") => Some("The run started."),
        _ => None,
    };
    Ok(page(
        "run.html",
        Some(&signed),
        json!({
            "title": format!("Run {} of {}", record.id, record.job), "page": "runs",
            "run": run_row(&record), "recipients": rows, "filters": FILTERS, "state": state,
            "first": if shown.is_empty() { 0 } else { first + 1 }, "last": last, "shown": shown.len(),
            "previous": page_no.checked_sub(1).filter(|_| first > 0),
            "next": (last < shown.len()).then_some(page_no + 1),
            "acknowledge": button, "asked": asked, "acked": acknowledged, "chart": chart,
            "failures": failures, "details_dropped": record.details_pruned, "notice": notice,
        }),
    ))
}

/// Whether the filter `state` shows `d`.
fn shows(state: &str, d: &Delivery, button: Option<&str>) -> bool {
    let acked = || button.is_some_and(|b| d.acknowledgement(b).is_some());
    match state {
        "failed" => matches!(d.state, DeliveryState::Failed { .. }),
        "uncertain" => matches!(d.state, DeliveryState::Uncertain | DeliveryState::Sending),
        "sent" => matches!(d.state, DeliveryState::Sent { .. }),
        "acknowledged" => acked(),
        "waiting" => button.is_some() && crate::delivery::asks_to_acknowledge(d) && !acked(),
        _ => true,
    }
}

fn is_failure(d: &Delivery) -> bool {
    matches!(
        d.state,
        DeliveryState::Failed { .. } | DeliveryState::Uncertain
    )
}

fn recipient_row(d: &Delivery, button: Option<&str>) -> Value {
    let ack = button.and_then(|b| d.acknowledgement(b));
    let failure = match &d.state {
        DeliveryState::Failed { code, message } => Some(match code {
            Some(code) => format!("{code}: {}", crate::output::clean(message, 300)),
            None => crate::output::clean(message, 300),
        }),
        _ => None,
    };
    json!({
        "recipient": d.email, "state": d.state.name(), "recalled": d.recalled_at.is_some(),
        "ack_by": ack.map(|p| &p.by), "ack_at": ack.map(|p| when(p.at)),
        "failure": failure, "attempts": d.attempts, "updated_at": when(d.updated_at),
    })
}

/// How many were asked to acknowledge, how many did, and the chart of when.
fn acknowledgements(record: &RunRecord, deliveries: &[Delivery]) -> (usize, usize, Option<String>) {
    let Some(button) = record.acknowledge.as_deref() else {
        return (0, 0, None);
    };
    let asked = deliveries
        .iter()
        .filter(|d| crate::delivery::asks_to_acknowledge(d))
        .count();
    let times: Vec<_> = deliveries
        .iter()
        .filter_map(|d| d.acknowledgement(button).map(|p| p.at))
        .collect();
    let count = times.len();
    (
        asked,
        count,
        chart::acknowledgements(record.started_at, times, asked),
    )
}

/// `GET /console/runs/{id}/failures.csv`: the run's failed and uncertain recipients, as
/// `history --failures` writes them.
pub(super) async fn failures_csv(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let answer = async {
        signed_in(&server, &headers).await?;
        let (record, deliveries) = run_and_deliveries(&server, &id).await?;
        let failures: Vec<Delivery> = deliveries.into_iter().filter(is_failure).collect();
        let mut csv = Vec::new();
        crate::report::failures_csv(&mut csv, &failures)
            .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")))?;
        let name = format!("attachment; filename=\"run-{}-failures.csv\"", record.id);
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, name),
            ],
            csv,
        )
            .into_response())
    };
    unwrap(answer.await)
}

/// `GET /console/optouts`.
pub(super) async fn optouts(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    let answer = async {
        let signed = signed_in(&server, &headers).await?;
        let store = server.store.clone();
        let list = off_workers(move || store.optouts()?.list(None))
            .await
            .map_err(|e| state_failed(&e))?;
        let rows: Vec<Value> = list
            .iter()
            .map(|o| json!({"app": o.app, "account": o.account, "user_name": o.user_name, "user_jid": o.user_jid, "at": when(o.at)}))
            .collect();
        Ok(page(
            "optouts.html",
            Some(&signed),
            json!({"title": "Opt-outs", "page": "optouts", "optouts": rows}),
        ))
    };
    unwrap(answer.await)
}

/// `GET /console/grants`: each app's grant per account, and whether tokens are sealed.
pub(super) async fn grants(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    let answer = async {
        let signed = signed_in(&server, &headers).await?;
        let apps: Vec<String> = server.config.app_names().map(str::to_owned).collect();
        let store = server.store.clone();
        let (grants, sealed) = off_workers(move || grant_rows(&store, apps))
            .await
            .map_err(|e| state_failed(&e))?;
        let at_rest = match &sealed {
            Some(id) => format!("sealed (state key {id})"),
            None => "stored in plain form".to_owned(),
        };
        Ok(page(
            "grants.html",
            Some(&signed),
            json!({"title": "Grants", "page": "grants", "grants": grants, "sealed": sealed.is_some(), "at_rest": at_rest}),
        ))
    };
    unwrap(answer.await)
}

fn grant_rows(
    store: &Store,
    apps: Vec<String>,
) -> Result<(Vec<Value>, Option<String>), StateError> {
    let rows = match control::answer(store, &Request::Grants { apps })? {
        control::Response::Grants(rows) => rows,
        _ => Vec::new(),
    };
    let rows = rows.iter().map(grant_row).collect();
    Ok((rows, store.sealed_with()))
}

fn grant_row(row: &AppGrant) -> Value {
    let Some(g) = &row.grant else {
        return json!({"app": row.app});
    };
    json!({
        "app": row.app, "account": g.account_id, "home": g.home, "user": g.user_email,
        "expires": when(g.access_expires_at), "refreshed": when(g.refreshed_at),
        "authorized": when(g.authorized_at),
        "dead": g.dead.as_ref().map(|d| format!("since {}: {}", when(d.at), crate::output::clean(&d.reason, 200))),
    })
}
