//! Human and JSON renderings of runs and deliveries, for `run`, `history` and `demo`.
//! Pure: returns strings; the commands print them.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::delivery::RunReport;
use crate::state::{Delivery, DeliveryState, RunRecord, RunStatus, Totals};

fn duration(record: &RunRecord) -> String {
    record.finished_at.map_or_else(
        || "-".to_owned(),
        |end| format!("{:.1}s", (end - record.started_at).as_seconds_f64()),
    )
}

/// Why a run stopped before its end, for a person: `stopped: ...` with what to do, for an
/// aborted or closed run.
pub fn why_stopped(record: &RunRecord) -> Option<String> {
    let (reason, next) = match &record.status {
        RunStatus::Aborted(reason) => (
            reason,
            format!(
                "; `zoomcast run {}` resumes it where it stopped",
                crate::output::escaped(&record.job)
            ),
        ),
        RunStatus::Closed(reason) => (reason, "; it is never resumed".to_owned()),
        _ => return None,
    };
    Some(format!(
        "stopped: {}{next}",
        crate::output::clean(reason, 600)
    ))
}

/// The JSON object of a run record.
pub fn run_json(record: &RunRecord) -> Value {
    let reason = match &record.status {
        RunStatus::Aborted(reason) | RunStatus::Closed(reason) => Some(reason.clone()),
        _ => None,
    };
    let mut value = json!({
        "run_id": record.id.0,
        "job": record.job,
        "app": record.app,
        "status": status_name(&record.status),
        "reason": reason,
        "scheduled_for": record.scheduled_for.map(|t| t.to_rfc3339()),
        "started_at": record.started_at.to_rfc3339(),
        "finished_at": record.finished_at.map(|t| t.to_rfc3339()),
        "counts": record.counts,
        "rate_limited": record.rate_limited,
        "details_pruned": record.details_pruned,
    });
    if !record.vars.is_empty() {
        value["vars"] = json!(record.vars);
    }
    value
}

fn status_name(status: &RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "interrupted",
        RunStatus::Succeeded => "succeeded",
        RunStatus::PartlyFailed => "partly_failed",
        RunStatus::Aborted(_) => "aborted",
        RunStatus::Closed(_) => "closed",
    }
}

/// The JSON object of one delivery.
pub fn delivery_json(d: &Delivery) -> Value {
    let mut value = serde_json::to_value(d).expect("deliveries serialize");
    value["updated_at"] = json!(d.updated_at.to_rfc3339());
    // Who it is for: an email, or the JID of a user or channel addressed by JID. (`email`,
    // the same value, stays for earlier readers.)
    value["recipient"] = json!(d.email);
    if let Some(edited) = &d.edited {
        value["edited_at"] = json!(edited.at.to_rfc3339());
    }
    // The message kept for a resend, and an edit's digest, are the journal's business, not
    // the report's.
    if let Some(fields) = value.as_object_mut() {
        fields.remove("rendered");
        fields.remove("edited");
    }
    value
}

/// A delivery's JSON with `acknowledged` (`{"value", "by", "at"}`, or null) when the run's
/// message asks for an acknowledgement with `button`.
pub fn delivery_json_acknowledged(d: &Delivery, button: Option<&str>) -> Value {
    let mut value = delivery_json(d);
    if let Some(button) = button {
        value["acknowledged"] = d.acknowledgement(button).map_or(
            Value::Null,
            |press| json!({ "value": press.value, "by": press.by, "at": press.at.to_rfc3339() }),
        );
    }
    value
}

/// Who acknowledged a run's message (pressed `button`), and who was sent it and has not.
pub fn acknowledgements_text(deliveries: &[Delivery], button: &str) -> String {
    let sent: Vec<&Delivery> = deliveries
        .iter()
        .filter(|d| crate::delivery::asks_to_acknowledge(d))
        .collect();
    let (acked, waiting): (Vec<&Delivery>, Vec<&Delivery>) = sent
        .iter()
        .partition(|d| d.acknowledgement(button).is_some());
    let mut out = format!(
        "acknowledged (`{}`): {} of {}\n",
        crate::output::clean(button, 40),
        acked.len(),
        sent.len()
    );
    if !waiting.is_empty() {
        let names: Vec<String> = waiting
            .iter()
            .map(|d| crate::output::clean(&d.email, 320))
            .collect();
        let _ = writeln!(out, "  not yet: {}", names.join(", "));
    }
    out
}

/// A finished run: the JSON form.
pub fn run_report_json(report: &RunReport) -> Value {
    let mut value = run_json(&report.record);
    value["failures"] = report.failures.iter().map(delivery_json).collect();
    if let Some(hint) = hint(report) {
        value["hint"] = hint.into();
    }
    value
}

/// A finished run: the human form (summary line, then each failure with Zoom's answer).
pub fn run_report_text(report: &RunReport) -> String {
    let mut out = run_summary(&report.record);
    out.push('\n');
    if !report.failures.is_empty() {
        out.push_str("failed recipients:\n");
        out.push_str(&deliveries_text(&report.failures));
    }
    if let Some(hint) = hint(report) {
        let _ = writeln!(out, "hint: {hint}");
    }
    out
}

/// What to check when nothing was sent and every failure is Zoom's `7004` (likely a wrong
/// `account_id`).
fn hint(report: &RunReport) -> Option<String> {
    let all_refused = report.record.counts.sent == 0
        && !report.failures.is_empty()
        && report.failures.iter().all(|d| {
            matches!(
                d.state,
                DeliveryState::Failed {
                    code: Some(crate::zoom::error::NOT_AUTHORIZED),
                    ..
                }
            )
        });
    all_refused.then(|| {
        format!(
            "every send was refused. {}",
            crate::config::help::account_id(&report.record.app, crate::zoom::error::NOT_AUTHORIZED)
        )
    })
}

/// One line saying how a run went: `run 7 of job `standup` succeeded: 3 recipients, 3 sent, ...`.
pub fn run_summary(r: &RunRecord) -> String {
    let c = &r.counts;
    let opted_out = if c.opted_out > 0 {
        format!(", {} opted out", c.opted_out)
    } else {
        String::new()
    };
    format!(
        "run {} of job `{}` {}: {} recipients, {} sent, {} failed, {} uncertain{opted_out} ({})",
        r.id,
        crate::output::escaped(&r.job),
        r.status,
        c.total,
        c.sent,
        c.failed,
        c.uncertain,
        duration(r)
    )
}

/// Logs how a run ended, with its job, run id, app, account and outcome as fields of their own
/// (for JSON logs); a run that partly failed, was aborted or was closed at WARN.
pub fn log_run(r: &RunRecord) {
    let line = run_summary(r);
    let (job, run_id, app) = (r.job.as_str(), r.id.0, r.app.as_str());
    let (account, outcome) = (r.account.as_deref().unwrap_or(""), status_name(&r.status));
    match r.status {
        RunStatus::Succeeded | RunStatus::Running => {
            tracing::info!(job, run_id, app, account, outcome, "{line}");
        }
        RunStatus::PartlyFailed | RunStatus::Aborted(_) | RunStatus::Closed(_) => {
            tracing::warn!(job, run_id, app, account, outcome, "{line}");
        }
    }
}

/// A table of deliveries: email, state, and the message id or failure reason.
pub fn deliveries_text(deliveries: &[Delivery]) -> String {
    let width = deliveries
        .iter()
        .map(|d| d.email.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = String::new();
    for d in deliveries {
        let detail = match &d.state {
            DeliveryState::Sent { message_id } => format!("message {message_id}"),
            DeliveryState::Failed { message, .. } => crate::output::clean(message, MESSAGE_CHARS),
            DeliveryState::Uncertain => "the outcome of the send was lost in a crash".to_owned(),
            DeliveryState::OptedOut => "not sent: they told the bot `stop`".to_owned(),
            DeliveryState::Pending | DeliveryState::Sending => String::new(),
        };
        let mut detail = detail;
        if let Some(at) = d.recalled_at {
            let _ = write!(
                detail,
                "; recalled at {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
        } else if let Some(edited) = &d.edited {
            let at = edited.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let _ = write!(detail, "; edited at {at}");
        }
        let detail = match d.presses.last() {
            Some(press) => format!(
                "{detail}; pressed `{}` at {}",
                crate::output::clean(&press.value, 64),
                press.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => detail,
        };
        let email = crate::output::clean(&d.email, 320);
        let _ = writeln!(out, "  {email:width$}  {:9}  {detail}", d.state.name());
    }
    out
}

/// Writes failed and uncertain recipients as CSV: `email,state,code,message`. A file (or a
/// path with nothing there) is written whole to a new private file renamed into place, so an
/// existing file keeps neither its mode nor its contents; anything else (`/dev/stdout`, a
/// pipe) is written to as it is. A cell a spreadsheet would run as a formula (starting with
/// `=`, `+`, `-`, `@`, tab or carriage return) is written with a leading `'`, which a
/// recipients file ignores before such a character.
pub fn write_failures_csv(path: &std::path::Path, failures: &[Delivery]) -> anyhow::Result<()> {
    let is_file_or_nothing = match std::fs::metadata(path) {
        Ok(meta) => meta.is_file(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    };
    if !is_file_or_nothing {
        let mut out = std::fs::OpenOptions::new().write(true).open(path)?;
        return failures_csv(&mut out, failures);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    failures_csv(file.as_file_mut(), failures)?;
    file.as_file().sync_all()?;
    file.persist(path)?;
    Ok(())
}

/// The failures CSV itself, written to `out`.
pub fn failures_csv(out: &mut impl std::io::Write, failures: &[Delivery]) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_writer(out);
    out.write_record(["email", "state", "code", "message"])?;
    for d in failures {
        let (code, message) = match &d.state {
            DeliveryState::Failed { code, message } => (
                code.map(|c| c.to_string()).unwrap_or_default(),
                crate::output::clean(message, MESSAGE_CHARS),
            ),
            other => (String::new(), other.name().to_owned()),
        };
        let row = [d.email.as_str(), d.state.name(), &code, &message];
        out.write_record(row.map(|cell| spreadsheet_safe(cell).into_owned()))?;
    }
    out.flush()?;
    Ok(())
}

/// How much of a failure message a report shows.
const MESSAGE_CHARS: usize = 300;

/// A CSV cell that no spreadsheet runs as a formula (OWASP's advice: a leading `'`).
fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// The `history` table: one line per run.
pub fn runs_text(runs: &[RunRecord]) -> String {
    let mut out = runs_header();
    for r in runs {
        out.push_str(&run_line(r));
    }
    out
}

/// The header line of [`runs_text`].
pub fn runs_header() -> String {
    format!(
        "{:>6}  {:20}  {:25}  {:13}  {:>7} {:>7} {:>7}\n",
        "run", "job", "started", "status", "sent", "failed", "total"
    )
}

/// One run's line of [`runs_text`] (fixed widths, so a listing prints a page at a time).
pub fn run_line(r: &RunRecord) -> String {
    format!(
        "{:>6}  {:20}  {:25}  {:13}  {:>7} {:>7} {:>7}\n",
        r.id,
        crate::output::escaped(&r.job),
        r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        r.status.to_string(),
        r.counts.sent,
        r.counts.failed,
        r.counts.total
    )
}

/// A job's totals, as `history` prints them.
pub fn totals_text(job: &str, t: &Totals) -> String {
    let when = |at: Option<DateTime<Utc>>| {
        at.map_or_else(
            || "never".to_owned(),
            |at| at.format("%Y-%m-%d %H:%M UTC").to_string(),
        )
    };
    let e = &t.ended;
    let d = &t.deliveries;
    format!(
        "job `{}`: runs {}, the first {}, the newest {}\n  \
         ended: {} succeeded, {} partly failed, {} aborted, {} closed\n  \
         recipients: {} sent, {} failed, {} uncertain, {} opted out\n  \
         run records kept: {} (keep_runs); older ones folded into these totals: {}\n",
        crate::output::escaped(job),
        t.runs,
        when(t.first_run),
        when(t.last_run),
        e.succeeded,
        e.partly_failed,
        e.aborted,
        e.closed,
        d.sent,
        d.failed,
        d.uncertain,
        d.opted_out,
        t.kept,
        t.folded,
    )
}

/// A job's totals as JSON (`history --totals --json`).
pub fn totals_json(job: &str, t: &Totals) -> Value {
    json!({
        "job": job,
        "runs": t.runs,
        "ended": t.ended,
        "deliveries": t.deliveries,
        "rate_limited": t.rate_limited,
        "first_run": t.first_run.map(|at| at.to_rfc3339()),
        "last_run": t.last_run.map(|at| at.to_rfc3339()),
        "last_success": t.last_success.map(|at| at.to_rfc3339()),
        "kept": t.kept,
        "folded": t.folded,
    })
}
