//! Failure notices (`on_failure`, design section 10): when a run partly fails, is aborted or
//! is closed, one card goes to each of the job's `on_failure` addresses, saying which run, its
//! counts, why it stopped, its first five failures and the command that shows them all. It is
//! sent as `zoomcast send` sends (a fresh run of the job `on_failure`, journaled), so a notice
//! that fails is in `history` and the log, and is never itself notified.

use std::fmt::Write as _;
use std::sync::Arc;

use super::engines::{AppEngine, Engines};
use super::{RunOptions, RunReport, Sender};
use crate::config::Job;
use crate::config::adhoc::AdHoc;
use crate::state::{Delivery, RunRecord, RunStatus};

/// The most failures a notice lists.
const LISTED: usize = 5;

impl Engines {
    /// Tells `job`'s `on_failure` addresses how its run went, if it went wrong: `result` is
    /// the run's, sent by `app` as `from`. A notice that cannot be sent is logged.
    pub async fn notify_failure(
        &self,
        job: &Job,
        (app, from): (&Arc<AppEngine>, &Sender),
        result: &anyhow::Result<RunReport>,
    ) {
        if job.on_failure.is_empty() {
            return;
        }
        let Some((record, failures)) = self.went_wrong(job, result) else {
            return;
        };
        let adhoc = AdHoc {
            app: job.app.clone(),
            account: Some(from.account_id.clone()),
            to: job.on_failure.clone(),
            head: format!("Run {} of job `{}` {}", record.id, job.name, record.status),
            text: notice_text(&record, &failures),
        };
        let path = self.store().dir().join("on_failure.toml");
        let sent = match adhoc.job(&path, self.config()) {
            Ok((notice, vars)) => {
                let options = RunOptions {
                    vars,
                    fresh: true,
                    ..RunOptions::default()
                };
                app.engine.run(&notice, from, options).await
            }
            Err(invalid) => Err(invalid.into()),
        };
        match sent {
            Ok(report) if report.failures.is_empty() => tracing::info!(
                "the failure notice of run {} of job `{}` was sent (run {} of job `on_failure`)",
                record.id,
                job.name,
                report.record.id
            ),
            Ok(report) => tracing::error!(
                "the failure notice of run {} of job `{}` reached {} of its {} addresses; see `zoomcast history --run {}`",
                record.id,
                job.name,
                report.record.counts.sent,
                report.record.counts.total,
                report.record.id
            ),
            Err(e) => tracing::error!(
                "the failure notice of run {} of job `{}` could not be sent: {e:#}",
                record.id,
                job.name
            ),
        }
    }

    /// The run's record and failures, if it partly failed, was aborted or was closed. A run
    /// that stopped with an error is read back from the store (its newest run).
    fn went_wrong(
        &self,
        job: &Job,
        result: &anyhow::Result<RunReport>,
    ) -> Option<(RunRecord, Vec<Delivery>)> {
        let (record, failures) = if let Ok(report) = result {
            (report.record.clone(), report.failures.clone())
        } else {
            let runs = self.store().runs().ok()?;
            let newest = runs.latest_of(std::slice::from_ref(&job.name)).ok()?;
            let record = newest.into_iter().next().flatten()?;
            let tallied = self.store().deliveries().ok()?.tally(record.id);
            (
                record,
                tallied.map(|(_, failures)| failures).unwrap_or_default(),
            )
        };
        matches!(
            record.status,
            RunStatus::PartlyFailed | RunStatus::Aborted(_) | RunStatus::Closed(_)
        )
        .then_some((record, failures))
    }
}

/// What a notice says: the counts, why the run stopped, the first failures, and where the rest
/// are.
fn notice_text(record: &RunRecord, failures: &[Delivery]) -> String {
    let c = &record.counts;
    let mut text = format!(
        "{} recipients: {} sent, {} failed, {} uncertain, {} opted out.",
        c.total, c.sent, c.failed, c.uncertain, c.opted_out
    );
    if let RunStatus::Aborted(why) | RunStatus::Closed(why) = &record.status {
        let _ = write!(text, "\nStopped: {}", crate::output::clean(why, 300));
    }
    if !failures.is_empty() {
        text.push_str("\nFirst failures:");
        for d in failures.iter().take(LISTED) {
            let why = match &d.state {
                crate::state::DeliveryState::Failed { message, .. } => message.as_str(),
                other => other.name(),
            };
            let _ = write!(
                text,
                "\n- {}: {}",
                crate::output::clean(&d.email, 120),
                crate::output::clean(why, 200)
            );
        }
    }
    let _ = write!(text, "\nAll of them: zoomcast history --run {}", record.id);
    text
}
