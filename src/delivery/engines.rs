//! [`Engines`]: the one place that builds delivery engines. Built once per process from the
//! configuration and the store, it makes each app's [`Engine`] on first use and shares one set
//! of rate limiters between them, one per account, since Zoom limits requests per account (every
//! app installed in it together). `run`, `demo` and the scheduler all run jobs through it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::limiters::Limiters;
use super::{Engine, RunOptions, RunReport, Sender, sender};
use crate::auth::{AppClients, OAuthClient};
use crate::config::{AppConfig, Config, Job};
use crate::state::{StateError, Store};

/// Every app's engine.
pub struct Engines {
    config: Arc<Config>,
    store: Arc<Store>,
    limiters: Arc<Limiters>,
    apps: Mutex<HashMap<String, Arc<AppEngine>>>,
}

/// One app: its resolved configuration, its OAuth client and its engine.
pub struct AppEngine {
    /// The app's configuration.
    pub app: AppConfig,
    /// The app's token endpoint (logins, revocation).
    pub oauth: OAuthClient,
    /// The app's delivery engine (its Zoom client and tokens included).
    pub engine: Engine,
}

impl Engines {
    /// The engines of `config`'s apps over `store`; the limiters start at the paces the store
    /// remembers.
    pub fn new(config: Arc<Config>, store: Arc<Store>) -> Result<Self, StateError> {
        Ok(Self {
            limiters: Arc::new(Limiters::remembering(store.paces()?)),
            config,
            store,
            apps: Mutex::default(),
        })
    }

    /// The configuration the engines were built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store the engines keep their state in.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The engine of app `name`, built on first use.
    pub fn app(&self, name: &str) -> anyhow::Result<Arc<AppEngine>> {
        let mut apps = self.apps.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(app) = apps.get(name) {
            return Ok(app.clone());
        }
        let app = self.config.app(name)?;
        let AppClients {
            zoom,
            oauth,
            tokens,
        } = AppClients::new(&app, self.store.grants()?)?;
        let engine = Engine::new(&self.store, zoom, tokens, self.limiters.clone())?;
        let built = Arc::new(AppEngine { app, oauth, engine });
        apps.insert(name.to_owned(), built.clone());
        Ok(built)
    }

    /// The user-token refreshes of this process, per app built so far: (app, succeeded,
    /// failed).
    pub fn token_refreshes(&self) -> Vec<(String, u64, u64)> {
        let apps = self.apps.lock().unwrap_or_else(PoisonError::into_inner);
        let mut counts: Vec<_> = apps
            .iter()
            .map(|(name, app)| {
                let (ok, failed) = app.engine.tokens.refreshes();
                (name.clone(), ok, failed)
            })
            .collect();
        counts.sort();
        counts
    }

    /// Runs `job` with its app's engine, as that app's sender.
    pub async fn run(&self, job: &Job, options: RunOptions) -> anyhow::Result<RunReport> {
        let app = self.app(&job.app)?;
        let from = app.sender_for(job).await?;
        app.engine.run(job, &from, options).await
    }
}

/// A job names an account the app does not send in.
#[derive(Debug, thiserror::Error)]
#[error(
    "job `{job}` is for account {wanted}, but app `{app}` is authorized for account {held} \
     (`zoomcast auth status`); install the app for account {wanted}, or fix `account` in the job file"
)]
pub struct WrongAccount {
    job: String,
    app: String,
    wanted: String,
    held: String,
}

impl AppEngine {
    /// What `job`'s runs send as: the app's sender, refused when the job names another
    /// account than the one the app sends in.
    pub async fn sender_for(&self, job: &Job) -> anyhow::Result<Sender> {
        let from = self.sender().await?;
        if let Some(plan) = self.app.plan {
            // Zoom's limits are the account's: its limiters start at the plan's.
            self.engine.limiters.know_plan(&from.account_id, plan);
        }
        match &job.account {
            Some(wanted) if *wanted != from.account_id => Err(WrongAccount {
                job: job.name.clone(),
                app: job.app.clone(),
                wanted: wanted.clone(),
                held: from.account_id,
            }
            .into()),
            _ => Ok(from),
        }
    }

    /// What the app's runs send as, checked against its configuration and grant.
    pub async fn sender(&self) -> anyhow::Result<Sender> {
        sender(
            &self.engine.tokens,
            self.app.robot_jid.as_deref(),
            self.app.account_id.as_deref(),
            &self.app.name,
        )
        .await
    }
}
