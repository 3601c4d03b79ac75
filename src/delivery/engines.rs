//! [`Engines`]: the one place that builds delivery engines. Built once per process from the
//! configuration and the store, it makes each app's [`Engine`] on first use and shares one set
//! of rate limiters between them, one per account, since Zoom limits requests per account (every
//! app installed in it together). `run`, `demo` and the scheduler all run jobs through it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use super::limiters::Limiters;
use super::{Engine, Preview, RunOptions, RunReport, Sender, sender};
use crate::auth::{AppClients, AppTokens, TokenError};
use crate::config::{AppConfig, Config, Diagnostic, Invalid, Job};
use crate::state::{StateError, Store};
use crate::zoom::channels::Channel;

/// Every app's engine.
pub struct Engines {
    config: Arc<Config>,
    store: Arc<Store>,
    limiters: Arc<Limiters>,
    apps: Mutex<HashMap<String, Arc<AppEngine>>>,
}

/// What Zoom said of one grant when it was checked ([`Engines::check_grants`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GrantCheck {
    /// The app.
    pub app: String,
    /// The account.
    pub account: String,
    /// Whether it works.
    pub ok: bool,
    /// Whether Zoom answered at all (when it did not, the grant is not known to be bad).
    #[serde(default)]
    pub answered: bool,
    /// Who Zoom says authorized it, or why it does not work.
    pub detail: String,
}

/// One app: its resolved configuration, its clients (one token source per installing
/// account) and its engine.
pub struct AppEngine {
    /// The app's configuration.
    pub app: AppConfig,
    /// The app's token endpoint, bot token and accounts' grants.
    pub clients: AppClients,
    /// The app's delivery engine.
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
    pub fn config(&self) -> &Arc<Config> {
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
        let clients = AppClients::new(&app, self.store.grants()?)?;
        let engine = Engine::new(&self.store, clients.zoom.clone(), self.limiters.clone())?;
        let built = Arc::new(AppEngine {
            app,
            clients,
            engine,
        });
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
                let (ok, failed) = app.clients.refreshes();
                (name.clone(), ok, failed)
            })
            .collect();
        counts.sort();
        counts
    }

    /// A dry run of `job` with its app's engine: who it would send as, the first `show` cards,
    /// and (with `resolve`) every recipient looked up.
    pub async fn dry_run(
        &self,
        job: &Job,
        show: usize,
        resolve: bool,
        vars: BTreeMap<String, String>,
    ) -> anyhow::Result<(Sender, Preview)> {
        let app = self.app(&job.app)?;
        let from = app.sender_for(job).await?;
        let options = RunOptions {
            vars,
            ..RunOptions::default()
        };
        let preview = app
            .engine
            .preview(job, &from, show, resolve, options)
            .await?;
        Ok((from, preview))
    }

    /// Checks every grant of `apps` with Zoom, as a run would use it: the access token
    /// refreshed if due, then `GET /v2/users/me`, a rejected token renewed (and a grant Zoom
    /// refuses recorded dead). An app that cannot be built is skipped (its configuration is
    /// another check's).
    pub async fn check_grants(&self, apps: &[String]) -> Vec<GrantCheck> {
        let mut checks = Vec::new();
        for name in apps {
            let Ok(app) = self.app(name) else { continue };
            let installed = match app.clients.installed() {
                Ok(installed) => installed,
                Err(e) => {
                    checks.push(GrantCheck {
                        app: name.clone(),
                        account: String::new(),
                        ok: false,
                        answered: false,
                        detail: e.to_string(),
                    });
                    continue;
                }
            };
            for tokens in installed {
                // One known dead is reported from the store already; Zoom is not asked again.
                if matches!(tokens.grant().await, Err(TokenError::Dead { .. })) {
                    continue;
                }
                checks.push(app.check_grant(&tokens).await);
            }
        }
        checks
    }

    /// The channels the grant of `app` in `account` (default: the app's home account) can
    /// see, by name.
    pub async fn channels(&self, app: &str, account: Option<&str>) -> anyhow::Result<Vec<Channel>> {
        let app = self.app(app)?;
        let tokens = app
            .clients
            .choose(account.or(app.app.account_id.as_deref()))?;
        Ok(app.engine.channels(&tokens).await?)
    }

    /// Runs `job` with its app's engine, as that app's sender; a run that went wrong is told
    /// to the job's `on_failure` addresses.
    pub async fn run(&self, job: &Job, options: RunOptions) -> anyhow::Result<RunReport> {
        let app = self.app(&job.app)?;
        let from = app.sender_for(job).await?;
        let result = app.engine.run(job, &from, options).await;
        self.notify_failure(job, (&app, &from), &result).await;
        result
    }
}

impl AppEngine {
    /// What `job`'s runs send as: the app's install in the account the job names (or, naming
    /// none, the app's configured `account_id`, or its one installing account).
    pub async fn sender_for(&self, job: &Job) -> anyhow::Result<Sender> {
        let named = job.account.as_deref();
        let chosen = self
            .clients
            .choose(named.or(self.app.account_id.as_deref()));
        let tokens = match chosen {
            Err(TokenError::SeveralAccounts { app, accounts }) => {
                return Err(several_accounts(job, &app, &accounts).into());
            }
            chosen => chosen?,
        };
        let from = self.sender(tokens).await?;
        if let Some(plan) = self.app.plan {
            // Zoom's limits are the account's: its limiters start at the plan's.
            self.engine.limiters.know_plan(&from.account_id, plan);
        }
        Ok(from)
    }

    /// What Zoom says of the grant `tokens` hold (see [`Engines::check_grants`]).
    async fn check_grant(&self, tokens: &AppTokens) -> GrantCheck {
        let account = tokens.account().to_owned();
        let (ok, answered, detail) = match self.engine.authorizing_user(tokens).await {
            Ok(me) if me.account_id == account => {
                (true, true, format!("zoom answers for {}", me.email))
            }
            Ok(me) => (
                false,
                true,
                format!(
                    "its user is now in account {}; install the app again",
                    crate::output::clean(&me.account_id, 80)
                ),
            ),
            Err(e) if e.is_transient() => (false, false, format!("zoom did not answer: {e}")),
            Err(e) => (false, true, e.to_string()),
        };
        GrantCheck {
            app: self.app.name.clone(),
            account,
            ok,
            answered,
            detail,
        }
    }

    /// What the app's runs send as in the account of `tokens`, checked against the app's
    /// configuration and that account's grant.
    pub async fn sender(&self, tokens: Arc<AppTokens>) -> anyhow::Result<Sender> {
        sender(tokens, self.app.robot_jid.as_deref(), &self.app.name).await
    }
}

/// The job names no account, and its app has several: which one is the job's to say.
fn several_accounts(job: &Job, app: &str, accounts: &[String]) -> Invalid {
    Invalid::one(
        Diagnostic::whole(
            Some(&job.path),
            format!(
                "job `{}` names no account, and app `{app}` is installed by several: {}",
                job.name,
                accounts.join(", ")
            ),
        )
        .help(format!(
            "add `account = \"{}\"` (or another of them) to the job file",
            accounts[0]
        )),
    )
}
