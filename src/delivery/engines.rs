//! [`Engines`]: the one place that builds delivery engines. Built once per process from the
//! configuration and the store, it makes each app's [`Engine`] on first use and shares one set
//! of rate limiters between them, since Zoom limits requests per account. `run`, `demo` and
//! the scheduler all run jobs through it.

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
        if let Some(plan) = app.plan {
            self.limiters.know_plan(name, plan);
        }
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
        let from = app.sender().await?;
        app.engine.run(job, &from, options).await
    }
}

impl AppEngine {
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
