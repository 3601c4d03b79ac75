//! [`EngineLauncher`]: how the scheduler's service starts runs, checks jobs and grants, sends
//! reminders and stores a login's grant, with the apps' engines shared by every run of the
//! process (so are the per-account rate limiters); and the hourly keep-alive of idle grants.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::daemon::Launcher;
use crate::auth::keepalive::{KeepAlive, refresh_if_idle};
use crate::auth::login;
use crate::config::Job;
use crate::control::Checked;
use crate::delivery::amend::{Amend, AmendReport};
use crate::delivery::{Engines, GrantCheck, RunOptions, RunReport};
use crate::report;
use crate::state::{Grant, RunId, RunRecord};

/// How often grants are checked for keep-alive.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(3600);

/// Every hour, refreshes each grant (every app, every account) that has not been refreshed for
/// `keepalive_days`.
pub(super) async fn keep_grants_alive(launcher: Arc<EngineLauncher>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(KEEPALIVE_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for name in launcher.engines.config().app_names() {
            launcher.keep_alive(name).await;
        }
    }
}

/// Starts runs with the apps' engines, shared by every run of the process (so are the
/// per-account rate limiters).
pub(super) struct EngineLauncher {
    engines: Arc<Engines>,
}

impl EngineLauncher {
    /// The launcher of runs with `engines`.
    pub(super) fn new(engines: Arc<Engines>) -> Self {
        Self { engines }
    }

    /// Stores the grant of an `auth login` run beside the scheduler, as an install through
    /// `serve` is stored: under the grant's lock, so no refresh uses the revoked one.
    /// An app the scheduler's configuration lacks holds no grant in memory: it is only stored.
    pub(super) async fn store_login(
        &self,
        app: &str,
        grant: Grant,
    ) -> Result<Grant, login::InstallError> {
        let grants = self.engines.store().grants()?;
        let Ok(engine) = self.engines.app(app) else {
            let admission = login::Admission {
                client_id: &grant.client_id,
                accounts: None,
            };
            return login::store_install(&grants, app, &grant, &admission).await;
        };
        // A login run with another configuration than this scheduler's is refused.
        let admission = login::Admission {
            client_id: &engine.app.client_id,
            accounts: None,
        };
        engine
            .clients
            .tokens(&grant.account_id)
            .replace_grant(login::store_install(&grants, app, &grant, &admission))
            .await
    }

    async fn keep_alive(&self, name: &str) {
        let Ok(app) = self.engines.app(name) else {
            return; // an app without client credentials has no grant to keep
        };
        let days = app.app.keepalive_days;
        if days == 0 {
            return;
        }
        let max_idle = TimeDelta::days(i64::from(days));
        let installed = match app.clients.installed() {
            Ok(installed) => installed,
            Err(e) => return tracing::error!("app `{name}`: reading its grants failed: {e}"),
        };
        for tokens in installed {
            let account = tokens.account();
            match refresh_if_idle(&tokens, max_idle, Utc::now()).await {
                Ok(KeepAlive::Refreshed(idle)) => tracing::info!(
                    "app `{name}`: the grant of account {account} refreshed to keep it alive (last refreshed {} days ago; keepalive_days = {days})",
                    idle.num_days()
                ),
                Ok(KeepAlive::Fresh | KeepAlive::NoGrant) => {}
                Err(e) => tracing::error!(
                    "app `{name}`: keep-alive refresh of account {account}'s grant failed: {e}; install the app again for that account if it persists"
                ),
            }
        }
    }

    /// Checks that `job`'s app can send, with this scheduler's configuration and grant:
    /// what a run would send as.
    pub(super) async fn check(
        &self,
        job: &Job,
        show: usize,
        resolve: bool,
    ) -> anyhow::Result<Checked> {
        let (from, preview) = self
            .engines
            .dry_run(job, show, resolve, BTreeMap::new())
            .await?;
        Ok(Checked::new(job, &from, preview))
    }

    /// The channels the grant of `app` in `account` can see.
    pub(super) async fn channels(
        &self,
        app: &str,
        account: Option<&str>,
    ) -> anyhow::Result<Vec<crate::zoom::channels::Channel>> {
        self.engines.channels(app, account).await
    }

    /// Records a new run of `job` with its own `vars`, in the account it sends in, without
    /// starting it (an alert's run, journaled when its notification arrives).
    pub(super) async fn record_run(
        &self,
        job: &Job,
        vars: BTreeMap<String, String>,
    ) -> anyhow::Result<RunRecord> {
        let app = self.engines.app(&job.app)?;
        let from = app.sender_for(job).await?;
        let file = std::path::absolute(&job.path).unwrap_or_else(|_| job.path.clone());
        let record = RunRecord {
            vars,
            ..RunRecord::new(
                RunId(0),
                &job.name,
                (&job.app, Some(&from.account_id)),
                Some(file),
            )
        };
        Ok(app.engine.runs.start_as(record).await?)
    }

    /// Gives run `run` of `job` new values of its variables and edits every message it sent
    /// to the card as it renders with them (an alert group's later notification).
    pub(super) async fn edit_run(
        &self,
        job: &Job,
        (run, vars): (RunId, BTreeMap<String, String>),
        cancel: CancellationToken,
    ) -> anyhow::Result<String> {
        let app = self.engines.app(&job.app)?;
        if let Some(mut record) = app.engine.runs.get(run)? {
            record.vars = vars;
            app.engine.runs.put(&record).await?;
        }
        let report = self.amend_run(job, run, Amend::Edit, cancel).await?;
        Ok(format!(
            "run {run} of job `{}` edited for its alert group: {} messages changed, {} already so, {} failed",
            job.name,
            report.changed,
            report.unchanged,
            report.failed.len()
        ))
    }

    /// Recalls or edits the messages of run `run` of `job`.
    async fn amend_run(
        &self,
        job: &Job,
        run: RunId,
        what: Amend,
        cancel: CancellationToken,
    ) -> anyhow::Result<AmendReport> {
        let app = self.engines.app(&job.app)?;
        let from = app.sender_for(job).await?;
        let options = RunOptions {
            cancel,
            ..RunOptions::default()
        };
        app.engine.amend(job, &from, Some(run), what, options).await
    }

    /// Deletes every message run `run` of `job` sent (the console's recall).
    pub(super) async fn recall_run(
        &self,
        job: &Job,
        run: RunId,
        cancel: CancellationToken,
    ) -> anyhow::Result<String> {
        let report = self.amend_run(job, run, Amend::Recall, cancel).await?;
        Ok(format!(
            "run {run} of job `{}` recalled: {} messages deleted, {} already, {} failed",
            job.name,
            report.changed,
            report.unchanged,
            report.failed.len()
        ))
    }

    /// Checks the grants of `apps` with Zoom, as this process holds them.
    pub(super) async fn check_grants(&self, apps: &[String]) -> Vec<GrantCheck> {
        self.engines.check_grants(apps).await
    }

    /// Sends `job`'s reminders that are due now; how many.
    pub(super) async fn remind(&self, job: &Job, options: RunOptions) -> anyhow::Result<usize> {
        let app = self.engines.app(&job.app)?;
        let from = app.sender_for(job).await?;
        app.engine.remind(job, &from, Utc::now(), options).await
    }

    /// One run of `job` with the app's engine.
    pub(super) fn run(
        &self,
        job: Arc<Job>,
        options: RunOptions,
    ) -> BoxFuture<'static, anyhow::Result<RunReport>> {
        let engines = self.engines.clone();
        Box::pin(async move { engines.run(&job, options).await })
    }
}

impl Launcher for EngineLauncher {
    fn launch(
        &self,
        job: Arc<Job>,
        tick: Option<DateTime<Utc>>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, anyhow::Result<String>> {
        let options = RunOptions {
            scheduled_for: tick,
            cancel,
            ..RunOptions::default()
        };
        let run = self.run(job, options);
        Box::pin(async move {
            report::log_run(&run.await?.record);
            Ok(String::new())
        })
    }
}
