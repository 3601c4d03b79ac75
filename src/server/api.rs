//! `/v1`: the HTTP API other systems start runs with (design section 9).
//!
//! - `POST /v1/jobs/{job}/runs` with an optional `{"vars": {...}}`: 202 with the run once it
//!   is recorded, and `Location: /v1/runs/{id}`. `Idempotency-Key` makes a retry answer with
//!   the first run for 24 hours ([`crate::state::idempotency`]).
//! - `GET /v1/runs/{id}`: the run's status and counts.
//!
//! Every route needs `Authorization: Bearer KEY` ([`authorize`]): no key and a wrong key get
//! the same 401, a key not allowed the job 403. Keys are checked against the state on every
//! request, so a revoked key is refused at once; each use is logged by the key's name. The
//! runs themselves are started by the process's scheduler loop ([`RunStarter`]), so a run the
//! API starts is the same as any other: journaled, resumable, in `history` and the metrics,
//! and refused (409) while the job has a run going.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{MAX_BODY, Server};
use crate::config::vars::BadVar;
use crate::state::idempotency::{self, Claim};
use crate::state::record::Counts;
use crate::state::{ApiKey, RunId, RunRecord, RunStatus, off_workers};

/// How the server starts runs: the process's scheduler loop does, so the job's rules hold.
pub trait RunStarter: Send + Sync + 'static {
    /// Starts a run of `job` with its own `vars` (checked against the job's `[vars]`); the
    /// run's record once it is recorded. The run goes on after the answer.
    fn start(
        &self,
        job: String,
        vars: BTreeMap<String, String>,
    ) -> BoxFuture<'static, Result<RunRecord, StartError>>;

    /// Takes an alert notification for `job`: the first of its group starts a run (recorded
    /// before the answer, sent when the job is free), a later one of an open group edits that
    /// run's messages (queued behind the job's runs). The run's id either way.
    fn alert(&self, job: String, notice: Notice) -> BoxFuture<'static, Result<RunId, StartError>>;

    /// The jobs directory, loaded (the console's jobs page).
    fn jobs(&self) -> BoxFuture<'static, Result<crate::config::JobSet, StartError>>;

    /// Suspends `job` if it runs on its schedule, else resumes it, as `by` asked (the console):
    /// recorded in the state, where it holds over the job file's `suspend`. Whether it is
    /// suspended now.
    fn toggle_suspension(
        &self,
        job: String,
        by: String,
    ) -> BoxFuture<'static, Result<bool, StartError>>;

    /// Queues a recall of run `run` of `job` (every message it sent deleted), behind the job's
    /// runs.
    fn recall(&self, job: String, run: RunId) -> BoxFuture<'static, Result<(), StartError>>;
}

/// An Alertmanager (or Grafana) notification, as a run takes it.
#[derive(Debug, Clone)]
pub struct Notice {
    /// Its `groupKey`: notifications of one group share their messages.
    pub group_key: String,
    /// Whether it resolves the group (`status` is `resolved`).
    pub resolved: bool,
    /// Its fields as the job's alert variables (JSON text).
    pub vars: BTreeMap<String, String>,
}

/// Why a run did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No job file of that name in the jobs directory.
    #[error("there is no job `{0}`")]
    NoJob(String),
    /// A variable the job does not take, or a value too long.
    #[error(transparent)]
    BadVar(#[from] BadVar),
    /// The job has a run going (a job never runs twice at once).
    #[error("job `{0}` has a run going; try again when it ends")]
    Busy(String),
    /// The job file or the configuration is invalid.
    #[error("the job cannot run as configured: {0}")]
    Invalid(String),
    /// The server is shutting down.
    #[error("the server is shutting down; try again")]
    ShuttingDown,
    /// The run failed before it was recorded (a grant missing, Zoom unreachable).
    #[error("{0}")]
    Failed(String),
}

impl StartError {
    /// The HTTP status that answers it.
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Self::NoJob(_) => StatusCode::NOT_FOUND,
            Self::BadVar(_) => StatusCode::BAD_REQUEST,
            Self::Busy(_) => StatusCode::CONFLICT,
            Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Invalid(_) | Self::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A refusal: its status, and a JSON body `{"error": "..."}`.
#[derive(Debug)]
pub(super) struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("a header value"),
            );
        }
        response
    }
}

/// A refusal with `status` saying `message`.
pub(super) fn error(status: StatusCode, message: impl std::fmt::Display) -> ApiError {
    ApiError(status, message.to_string())
}

/// Admits a request whose bearer key is a stored one, and hands the key to the route.
pub(super) async fn authorize(
    State(server): State<Arc<Server>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(presented) = bearer(request.headers()) else {
        return unauthorized().into_response();
    };
    let store = server.store.clone();
    let accepted = off_workers(move || store.api_keys()?.accept(&presented)).await;
    match accepted {
        Ok(Some(key)) => {
            request.extensions_mut().insert(Arc::new(key));
            next.run(request).await
        }
        Ok(None) => unauthorized().into_response(),
        Err(e) => {
            tracing::error!("API: reading the keys failed: {e}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the state database is not usable",
            )
            .into_response()
        }
    }
}

/// The key of `Authorization: Bearer KEY`, if there is one.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim().to_owned())
        .filter(|k| !k.is_empty())
}

/// The same 401 for no key and a wrong one.
fn unauthorized() -> ApiError {
    error(
        StatusCode::UNAUTHORIZED,
        "an API key is needed: `Authorization: Bearer KEY` (`zoomcast api-key create`)",
    )
}

/// 403 unless `key` may start runs of `job`.
pub(super) fn allowed(key: &ApiKey, job: &str) -> Result<(), ApiError> {
    if key.allows(job) {
        Ok(())
    } else {
        tracing::warn!(
            "API key `{}` refused for job `{job}`: not one of its jobs",
            key.name
        );
        Err(error(
            StatusCode::FORBIDDEN,
            format!("this key may not start job `{job}`"),
        ))
    }
}

/// What a run request may carry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    #[serde(default)]
    vars: BTreeMap<String, Scalar>,
}

/// A variable's value: a string, a number or true/false, as in `[vars]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Self::Text(text) => text,
            Self::Number(n) => n.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }
}

/// A run as the API shows it.
#[derive(Debug, Serialize)]
struct RunView {
    run_id: u64,
    job: String,
    #[serde(flatten)]
    status: RunStatus,
    counts: Counts,
    started_at: chrono::DateTime<chrono::Utc>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<RunRecord> for RunView {
    fn from(r: RunRecord) -> Self {
        Self {
            run_id: r.id.0,
            job: r.job,
            status: r.status,
            counts: r.counts,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

/// 202 with the run and where to follow it.
fn accepted(record: RunRecord) -> Response {
    let location = format!("/v1/runs/{}", record.id);
    let mut response = (StatusCode::ACCEPTED, Json(RunView::from(record))).into_response();
    if let Ok(value) = location.parse() {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `POST /v1/jobs/{job}/runs`.
pub(super) async fn start_run(
    State(server): State<Arc<Server>>,
    Extension(key): Extension<Arc<ApiKey>>,
    Path(job): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match start(&server, &key, &job, (&headers, body)).await {
        Ok(record) => accepted(record),
        Err(refused) => refused.into_response(),
    }
}

async fn start(
    server: &Server,
    key: &ApiKey,
    job: &str,
    (headers, body): (&HeaderMap, Body),
) -> Result<RunRecord, ApiError> {
    allowed(key, job)?;
    let runs = starter(server)?;
    let vars = read_vars(server, headers, body).await?;
    let record = match idempotency_key(headers)? {
        Some(idem) => start_once(server, runs.as_ref(), (job, &idem), vars).await?,
        None => runs.start(job.to_owned(), vars).await.map_err(refuse)?,
    };
    tracing::info!(
        "API key `{}` started run {} of job `{job}`",
        key.name,
        record.id
    );
    Ok(record)
}

pub(super) fn refuse(e: StartError) -> ApiError {
    error(e.status(), e)
}

/// What starts this server's runs, if anything does (503 otherwise).
pub(super) fn starter(server: &Server) -> Result<Arc<dyn RunStarter>, ApiError> {
    server.runs.clone().ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server starts no runs",
        )
    })
}

/// The request's body, read under the server's budget (400 if it cannot be).
pub(super) async fn read_body(
    server: &Server,
    headers: &HeaderMap,
    body: Body,
) -> Result<super::body::Held, ApiError> {
    server
        .bodies
        .read(headers, body, MAX_BODY)
        .await
        .map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {e}"),
            )
        })
}

/// The request's `vars`, from its JSON body (which may be empty).
async fn read_vars(
    server: &Server,
    headers: &HeaderMap,
    body: Body,
) -> Result<BTreeMap<String, String>, ApiError> {
    let held = read_body(server, headers, body).await?;
    if held.bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(BTreeMap::new());
    }
    let parsed: StartBody = serde_json::from_slice(&held.bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("the body is not {{\"vars\": {{\"NAME\": \"value\", ...}}}}: {e}"),
        )
    })?;
    Ok(parsed
        .vars
        .into_iter()
        .map(|(k, v)| (k, v.into_text()))
        .collect())
}

/// The `Idempotency-Key` header, if sent: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(text)
            if (1..=idempotency::MAX_KEY).contains(&text.len())
                && text.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(text.to_owned()))
        }
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// Starts the run unless `idem` already started one for `job` (then that run, unchanged).
async fn start_once(
    server: &Server,
    starter: &dyn RunStarter,
    (job, idem): (&str, &str),
    vars: BTreeMap<String, String>,
) -> Result<RunRecord, ApiError> {
    let unusable = |e: crate::state::StateError| {
        tracing::error!("API: the idempotency record failed: {e}");
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the state database is not usable",
        )
    };
    let keys = server.store.idempotency().map_err(unusable)?;
    let (claims, owned) = (keys.clone(), (job.to_owned(), idem.to_owned()));
    let claim = off_workers(move || claims.claim(&owned.0, &owned.1, chrono::Utc::now()))
        .await
        .map_err(unusable)?;
    match claim {
        Claim::Started(run) => return earlier_run(server, run).await,
        Claim::InProgress => {
            return Err(error(
                StatusCode::CONFLICT,
                "a request with this Idempotency-Key is starting its run; try again",
            ));
        }
        Claim::Claimed => {}
    }
    match starter.start(job.to_owned(), vars).await {
        Ok(record) => {
            keys.started(job, idem, record.id).await.map_err(unusable)?;
            Ok(record)
        }
        Err(e) => {
            keys.release(job, idem).map_err(unusable)?;
            Err(refuse(e))
        }
    }
}

/// The run an earlier request with the same key started, as it stands now.
async fn earlier_run(server: &Server, run: RunId) -> Result<RunRecord, ApiError> {
    let store = server.store.clone();
    match off_workers(move || store.runs()?.get(run)).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(error(
            StatusCode::GONE,
            format!("run {run}, started with this Idempotency-Key, is no longer kept"),
        )),
        Err(e) => {
            tracing::error!("API: reading run {run} failed: {e}");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the state database is not usable",
            ))
        }
    }
}

/// `GET /v1/runs/{id}`.
pub(super) async fn get_run(
    State(server): State<Arc<Server>>,
    Extension(key): Extension<Arc<ApiKey>>,
    Path(id): Path<String>,
) -> Response {
    match run_of(&server, &key, &id).await {
        Ok(record) => Json(RunView::from(record)).into_response(),
        Err(refused) => refused.into_response(),
    }
}

async fn run_of(server: &Server, key: &ApiKey, id: &str) -> Result<RunRecord, ApiError> {
    let id = id
        .parse::<RunId>()
        .map_err(|_| error(StatusCode::NOT_FOUND, "there is no such run"))?;
    let store = server.store.clone();
    let record = match off_workers(move || store.runs()?.get(id)).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            return Err(error(
                StatusCode::NOT_FOUND,
                format!("there is no run {id}"),
            ));
        }
        Err(e) => {
            tracing::error!("API: reading run {id} failed: {e}");
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the state database is not usable",
            ));
        }
    };
    allowed(key, &record.job)?;
    tracing::debug!("API key `{}` read run {id}", key.name);
    Ok(record)
}
