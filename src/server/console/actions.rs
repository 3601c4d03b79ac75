//! The console's sign-in and actions. An action is a form posting the session's `csrf` field;
//! one without it, or from a read-only session, is refused as forbidden. Each is logged with
//! who did it (the `console_user` field), as is every sign-in.

use std::sync::Arc;

use axum::extract::{Path, Query, RawForm, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::session::{self, Session};
use super::{Signed, failure, over_https, page, run_record, signed_in, signing_key, state_failed};
use crate::server::Server;
use crate::server::api::{RunStarter, StartError};
use crate::state::RunRecord;

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    token: Option<String>,
}

/// `GET /console/login?token=...`: burns the link's token and starts a session; a used,
/// expired or unknown token is forbidden and gets no cookie. Without a token: how to get a
/// link.
pub(super) async fn login(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let Some(token) = query.token.filter(|t| !t.is_empty()) else {
        let message = "Sign in with a one-time link made on the host.";
        return page(
            "login.html",
            None,
            json!({"title": "Sign in", "message": message}),
        );
    };
    let console = server.store.console();
    let burned = async { console?.burn(&token).await }.await;
    let link = match burned {
        Ok(Some(link)) => link,
        Ok(None) => {
            tracing::warn!("console: a used, expired or unknown sign-in link was refused");
            let message = "This sign-in link was used already, has expired or was never made. \
                           Make a new one on the host.";
            let mut refused = page(
                "login.html",
                None,
                json!({"title": "Sign in", "message": message}),
            );
            *refused.status_mut() = StatusCode::FORBIDDEN;
            return refused;
        }
        Err(e) => return state_failed(&e),
    };
    let key = match signing_key(&server).await {
        Ok(key) => key,
        Err(refusal) => return refusal,
    };
    let session = Session::new(&link.name, link.read_only);
    tracing::info!(
        console_user = %link.name,
        read_only = link.read_only,
        "console: `{}` signed in{}",
        crate::output::clean(&link.name, 64),
        if link.read_only { " (read-only)" } else { "" }
    );
    let cookie = session.set_cookie(&key, over_https(&server, &headers));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/console")).into_response()
}

/// `POST /console/logout`: ends the session in this browser.
pub(super) async fn logout(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    RawForm(form): RawForm,
) -> Response {
    let signed = match checked(&server, &headers, &form).await {
        Ok(signed) => signed,
        Err(refusal) => return refusal,
    };
    tracing::info!(console_user = %signed.session.name, "console: `{}` signed out", crate::output::clean(&signed.session.name, 64));
    let cookie = session::clear_cookie(over_https(&server, &headers));
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/console/login"),
    )
        .into_response()
}

/// The session of a form whose `csrf` field is the session's own; else the 403 to answer.
async fn checked(server: &Server, headers: &HeaderMap, form: &[u8]) -> Result<Signed, Response> {
    let signed = signed_in(server, headers).await.map_err(|_| {
        failure(
            StatusCode::FORBIDDEN,
            "Sign in first: this form needs a console session.",
        )
    })?;
    let given = url::form_urlencoded::parse(form)
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if signed.session.csrf_matches(&signed.key, &given) {
        Ok(signed)
    } else {
        tracing::warn!(console_user = %signed.session.name, "console: a form without this session's CSRF field was refused");
        Err(failure(
            StatusCode::FORBIDDEN,
            "This form did not carry this session's CSRF field, so it may not come from the \
             console's own page. Reload the page and try again.",
        ))
    }
}

/// The session allowed to act, with the scheduler loop that acts; else the 403 (or 503).
async fn may_act(
    server: &Server,
    headers: &HeaderMap,
    form: &[u8],
) -> Result<(Signed, Arc<dyn RunStarter>), Response> {
    let signed = checked(server, headers, form).await?;
    if signed.session.read_only {
        tracing::warn!(console_user = %signed.session.name, "console: an action of a read-only session was refused");
        return Err(failure(
            StatusCode::FORBIDDEN,
            "This is a read-only session: it may look but not act. Ask for a link made without \
             --read-only.",
        ));
    }
    let starter = server
        .runs
        .clone()
        .ok_or_else(|| failure(StatusCode::SERVICE_UNAVAILABLE, "this process runs no jobs"))?;
    Ok((signed, starter))
}

fn refused(e: &StartError) -> Response {
    failure(e.status(), &e.to_string())
}

/// Runs `action` for a session allowed to act (its name and the scheduler loop); the refusal
/// otherwise.
async fn acting<F, Fut>(server: &Server, headers: &HeaderMap, form: &[u8], action: F) -> Response
where
    F: FnOnce(String, Arc<dyn RunStarter>) -> Fut,
    Fut: std::future::Future<Output = Result<Response, Response>>,
{
    match may_act(server, headers, form).await {
        Ok((signed, starter)) => action(signed.session.name, starter)
            .await
            .unwrap_or_else(|refusal| refusal),
        Err(refusal) => refusal,
    }
}

/// Logs what `who` did (to `job`, and run `run`), and sends the browser `to` the page showing it.
fn done(who: &str, (job, run): (&str, Option<u64>), what: &str, to: &str) -> Response {
    tracing::info!(console_user = %who, job = %job, run_id = run, "console: `{}` {what}", crate::output::clean(who, 64));
    Redirect::to(to).into_response()
}

/// `POST /console/jobs/{job}/run`: runs the job now, as `zoomcast run` would.
pub(super) async fn run_now(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path(job): Path<String>,
    RawForm(form): RawForm,
) -> Response {
    acting(&server, &headers, &form, |who, starter| async move {
        let record = starter
            .start(job, std::collections::BTreeMap::new())
            .await
            .map_err(|e| refused(&e))?;
        let what = format!("started run {} of job `{}`", record.id, record.job);
        let to = format!("/console/runs/{}?done=run", record.id);
        Ok(done(&who, (&record.job, Some(record.id.0)), &what, &to))
    })
    .await
}

/// `POST /console/jobs/{job}/suspend`: suspends the job, or resumes it if suspended.
pub(super) async fn toggle_suspension(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path(job): Path<String>,
    RawForm(form): RawForm,
) -> Response {
    acting(&server, &headers, &form, |who, starter| async move {
        let suspended = starter
            .toggle_suspension(job.clone(), who.clone())
            .await
            .map_err(|e| refused(&e))?;
        let did = if suspended { "suspended" } else { "resumed" };
        let what = format!("{did} job `{job}`");
        Ok(done(
            &who,
            (&job, None),
            &what,
            &format!("/console?done={did}"),
        ))
    })
    .await
}

/// `POST /console/runs/{id}/recall`: queues a recall of every message the run sent.
pub(super) async fn recall(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawForm(form): RawForm,
) -> Response {
    let reader = server.clone();
    acting(&server, &headers, &form, |who, starter| async move {
        let RunRecord { id, job, .. } = run_record(&reader, &id).await?;
        starter
            .recall(job.clone(), id)
            .await
            .map_err(|e| refused(&e))?;
        let what = format!("recalled run {id} of job `{job}`");
        let to = format!("/console/runs/{id}?done=recall");
        Ok(done(&who, (&job, Some(id.0)), &what, &to))
    })
    .await
}
