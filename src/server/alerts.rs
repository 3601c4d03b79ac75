//! `POST /v1/alertmanager/{job}`: Alertmanager's webhook (payload version 4) and Grafana's
//! webhook contact point (the same shape with more fields, which are accepted), behind an API
//! key like every `/v1` route (design section 9). The payload's fields become the job's alert
//! variables for that run. The first notification of a `groupKey` starts a run; later ones of
//! the same group, resolution included, edit that run's messages in place; after a resolution
//! the next firing one starts a new run (the starter keeps each group's run). The answer,
//! `{"run_id": N}`, comes once the notification is journaled: the run recorded, or the edit
//! queued behind the run it changes.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Map, Value, json};

use super::Server;
use super::api::{ApiError, Notice, allowed, error, read_body, refuse, starter};
use crate::config::vars::alert_values;
use crate::state::{ApiKey, RunId};

/// The longest `groupKey` taken (Alertmanager's are a route's matchers and the group's labels).
const MAX_GROUP_KEY: usize = 8 * 1024;

/// `POST /v1/alertmanager/{job}`.
pub(super) async fn notify(
    State(server): State<Arc<Server>>,
    Extension(key): Extension<Arc<ApiKey>>,
    Path(job): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match take(&server, &key, &job, (&headers, body)).await {
        Ok(run) => Json(json!({ "run_id": run.0 })).into_response(),
        Err(refused) => refused.into_response(),
    }
}

async fn take(
    server: &Server,
    key: &ApiKey,
    job: &str,
    (headers, body): (&HeaderMap, Body),
) -> Result<RunId, ApiError> {
    allowed(key, job)?;
    let runs = starter(server)?;
    let held = read_body(server, headers, body).await?;
    let notice = notice(&held.bytes)?;
    let status = if notice.resolved {
        "resolved"
    } else {
        "firing"
    };
    let run = runs.alert(job.to_owned(), notice).await.map_err(refuse)?;
    tracing::info!(
        "API key `{}`: a {status} alert notification for job `{job}` went to run {run}",
        key.name
    );
    Ok(run)
}

/// The notification in `bytes`, or why it is not one (400).
fn notice(bytes: &[u8]) -> Result<Notice, ApiError> {
    let bad = |why: String| error(StatusCode::BAD_REQUEST, why);
    let payload: Map<String, Value> = serde_json::from_slice(bytes).map_err(|e| {
        bad(format!(
            "the body is not Alertmanager's webhook payload (a JSON object): {e}"
        ))
    })?;
    let text = |name: &str| payload.get(name).and_then(Value::as_str);
    let group_key = text("groupKey")
        .filter(|k| !k.is_empty() && k.len() <= MAX_GROUP_KEY)
        .ok_or_else(|| {
            bad(format!(
                "`groupKey` is missing or not a string of at most {MAX_GROUP_KEY} bytes"
            ))
        })?
        .to_owned();
    let resolved = match text("status") {
        Some("firing") => false,
        Some("resolved") => true,
        _ => return Err(bad("`status` must be \"firing\" or \"resolved\"".into())),
    };
    if !payload.get("alerts").is_some_and(Value::is_array) {
        return Err(bad("`alerts` is missing or not a list".into()));
    }
    Ok(Notice {
        group_key,
        resolved,
        vars: alert_values(&payload),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_needs_a_group_a_status_and_alerts() {
        let ok = notice(
            br#"{"version":"4","status":"resolved","groupKey":"g","alerts":[],"title":"x"}"#,
        )
        .unwrap();
        assert!(ok.resolved);
        assert_eq!(ok.group_key, "g");
        assert_eq!(ok.vars["alerts"], "[]");
        assert_eq!(ok.vars["commonLabels"], "{}", "a missing field is empty");
        for (body, why) in [
            (&b"[1]"[..], "JSON object"),
            (br#"{"status":"firing","alerts":[]}"#, "groupKey"),
            (
                br#"{"status":"pending","groupKey":"g","alerts":[]}"#,
                "status",
            ),
            (br#"{"status":"firing","groupKey":"g"}"#, "alerts"),
        ] {
            let ApiError(status, message) = notice(body).unwrap_err();
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(message.contains(why), "{message}");
        }
    }
}
