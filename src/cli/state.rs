//! Where commands read the state: the store itself, or, while `schedule` holds it, the
//! scheduler's control socket. Each method asks one [`Request`] and unwraps its answer, so
//! commands get plain values whichever way the answer came.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use anyhow::{anyhow, bail};
use tokio_util::sync::CancellationToken;

use crate::auth::login;
use crate::config::adhoc::AdHoc;
use crate::control::{self, AppGrant, Checked, GrantView, Holder, Request, Response};
use crate::delivery::{Engines, GrantCheck, RunReport};
use crate::state::console::Link;
use crate::state::{
    ApiKey, Delivery, Grant, KeyError, Keys, OptOut, RunFilter, RunId, RunRecord, StateError,
    Store, Suspension, Totals, ViewStart,
};
use crate::zoom::channels::Channel;

/// How long a command waits for a starting scheduler to bind its socket.
const SOCKET_PATIENCE: Duration = Duration::from_secs(2);

/// Where a command reads the state.
pub(super) enum State {
    /// This process holds the store.
    Local(Arc<Store>),
    /// A scheduler or `serve` holds it (or, for a command that only reads, a command that
    /// answers what it reads); ask it over the control socket in this state directory.
    Daemon(PathBuf, Holder),
}

/// Invalid configuration, job files or arguments reported as text (by the scheduler, or summed
/// up by a command): exit 2, like a local [`crate::config::Invalid`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct InvalidText(pub String);

/// How often a command that writes tries the lock again while another command holds it.
const LOCK_POLL: Duration = Duration::from_millis(200);

/// The read-only answering a command that writes serves on the control socket while it holds
/// the state ([`control::ReadOnly`]); it stops, and the socket goes, when this is dropped.
pub(super) struct Answering {
    stop: CancellationToken,
    socket: PathBuf,
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl State {
    /// For a command that only reads: the store, or the process holding it (a scheduler, or a
    /// command that answers what it reads). A missing state directory is an error naming it:
    /// nothing is created.
    pub(super) async fn open_read(dir: &Path, keys: &Keys) -> anyhow::Result<Self> {
        if !dir.exists() {
            bail!(
                "the state directory {} does not exist: nothing is stored there yet (`zoomcast \
                 auth login` starts one), or --state (ZOOMCAST_STATE) should name another",
                dir.display()
            );
        }
        match Store::open_with(dir, keys.clone()) {
            Ok(store) => Ok(Self::Local(Arc::new(store))),
            Err(StateError::Locked { pid, doing, .. }) if wait_for_socket(dir).await => {
                let holder = holder_of(dir).await.unwrap_or(Holder::Scheduler);
                if holder == Holder::Command {
                    errln!("{}; it answers this", in_use(dir, pid, doing.as_deref()));
                }
                Ok(Self::Daemon(dir.to_owned(), holder))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// For a command that writes: the store, waiting up to `wait` for another command that
    /// holds it ([`lock_patiently`]), and then answering what it reads to the commands beside
    /// it; or the scheduler holding it, which does the work.
    pub(super) async fn open_write(
        dir: &Path,
        keys: &Keys,
        wait: Duration,
    ) -> anyhow::Result<(Self, Option<Answering>)> {
        Ok(match lock_patiently(dir, keys, wait).await? {
            Ok(store) => {
                let store = Arc::new(store);
                let answering = answer_reads(&store);
                (Self::Local(store), answering)
            }
            Err(holder) => (Self::Daemon(dir.to_owned(), holder), None),
        })
    }

    /// Where the newest `limit` runs `filter` shows start (all: `None`).
    pub(super) async fn view_start(
        &self,
        filter: RunFilter,
        limit: Option<usize>,
    ) -> anyhow::Result<ViewStart> {
        match self.ask(&Request::ViewStart { filter, limit }).await? {
            Response::ViewStart(start) => Ok(start),
            _ => Err(unexpected("where the runs start")),
        }
    }

    /// Up to [`control::MAX_PAGE`] runs `filter` shows, oldest first, from run `from` on.
    pub(super) async fn run_page(
        &self,
        filter: RunFilter,
        from: RunId,
    ) -> anyhow::Result<Vec<RunRecord>> {
        let max = control::MAX_PAGE;
        match self.ask(&Request::RunPage { filter, from, max }).await? {
            Response::Runs(runs) => Ok(runs),
            _ => Err(unexpected("runs")),
        }
    }

    /// The totals of `job`, or of every job.
    pub(super) async fn totals(
        &self,
        job: Option<String>,
    ) -> anyhow::Result<Vec<(String, Totals)>> {
        match self.ask(&Request::Totals { job }).await? {
            Response::Totals(totals) => Ok(totals),
            _ => Err(unexpected("totals")),
        }
    }

    /// One run and its deliveries.
    pub(super) async fn run(
        &self,
        id: RunId,
    ) -> anyhow::Result<Option<(RunRecord, Vec<Delivery>)>> {
        match self.ask(&Request::Run { id }).await? {
            Response::Run(found) => Ok(found),
            _ => Err(unexpected("a run")),
        }
    }

    /// The newest run of each job, in order.
    pub(super) async fn latest_runs(
        &self,
        jobs: Vec<String>,
    ) -> anyhow::Result<Vec<Option<RunRecord>>> {
        let count = jobs.len();
        match self.ask(&Request::LatestRuns { jobs }).await? {
            Response::LatestRuns(runs) if runs.len() == count => Ok(runs),
            _ => Err(unexpected("the last runs")),
        }
    }

    /// The grants of these apps and of every other app holding one.
    pub(super) async fn grants(&self, apps: Vec<String>) -> anyhow::Result<Vec<AppGrant>> {
        match self.ask(&Request::Grants { apps }).await? {
            Response::Grants(grants) => Ok(grants),
            _ => Err(unexpected("grants")),
        }
    }

    /// The users who told a bot `stop`, of `app` or of every app.
    pub(super) async fn optouts(&self, app: Option<String>) -> anyhow::Result<Vec<OptOut>> {
        match self.ask(&Request::OptOuts { app }).await? {
            Response::OptOuts(optouts) => Ok(optouts),
            _ => Err(unexpected("opt-outs")),
        }
    }

    /// The id of the state key grants are sealed with (by the scheduler, while one holds the
    /// state); `None`: stored in plain form.
    pub(super) async fn sealed_with(&self) -> anyhow::Result<Option<String>> {
        match self.ask(&Request::AtRest).await? {
            Response::AtRest(id) => Ok(id),
            _ => Err(unexpected("how grants are stored")),
        }
    }

    /// Checks the grants of `apps` with Zoom, as the process holding the state: this one
    /// (with `config`), or the scheduler (with its own).
    pub(super) async fn check_grants(
        &self,
        config: &crate::config::Config,
        apps: Vec<String>,
    ) -> anyhow::Result<Vec<GrantCheck>> {
        if let Self::Local(store) = self {
            let engines = Engines::new(Arc::new(config.clone()), store.clone())?;
            return Ok(engines.check_grants(&apps).await);
        }
        match self.ask(&Request::CheckGrants { apps }).await? {
            Response::GrantChecks(checks) => Ok(checks),
            _ => Err(unexpected("the grants' checks")),
        }
    }

    /// Runs a job in the scheduler.
    pub(super) async fn run_job(
        &self,
        path: PathBuf,
        refresh_cache: bool,
        vars: BTreeMap<String, String>,
    ) -> anyhow::Result<RunReport> {
        match self
            .ask(&Request::RunJob {
                path,
                refresh_cache,
                vars,
            })
            .await?
        {
            Response::Report(record, failures) => Ok(RunReport { record, failures }),
            _ => Err(unexpected("a run report")),
        }
    }

    /// Has the scheduler check a job and its app as `run --dry-run` does: the app, chatbot
    /// JID and recipient count a run would have.
    pub(super) async fn check_job(
        &self,
        path: PathBuf,
        show: usize,
        resolve: bool,
    ) -> anyhow::Result<Checked> {
        let request = Request::CheckJob {
            path,
            show,
            resolve,
        };
        match self.ask(&request).await? {
            Response::Checked(checked) => Ok(checked),
            _ => Err(unexpected("a dry run's answer")),
        }
    }

    /// Stores the grant a login obtained: in the store, or through the scheduler holding it
    /// (which also drops the revoked grant it held in memory). A scheduler that went away
    /// during the login (a restart) leaves the store to this process. Says which stored it.
    pub(super) async fn store_grant(
        &self,
        app: &str,
        grant: &Grant,
        keys: &Keys,
    ) -> anyhow::Result<(GrantView, StoredBy)> {
        let dir = match self {
            Self::Local(store) => return store_locally(store, app, grant).await,
            Self::Daemon(dir, _) => dir,
        };
        let request = Request::StoreGrant {
            app: app.to_owned(),
            grant: Box::new(grant.clone()),
        };
        let asked = match self.ask(&request).await {
            Ok(Response::Stored(view)) => return Ok((view, StoredBy::Holder(self.holder()))),
            Ok(_) => unexpected("the stored grant"),
            Err(e) if e.is::<Refused>() => return Err(e),
            Err(e) => e,
        };
        match Store::open_with(dir, keys.clone()) {
            Ok(store) => store_locally(&store, app, grant).await,
            Err(local) => Err(anyhow!(
                "the new grant could not be stored (the scheduler: {asked:#}; here: {local}); \
                 Zoom revoked the account's earlier grant, so run `zoomcast auth login \
                 --app {app}` again"
            )),
        }
    }

    /// Sends an ad hoc message in the scheduler holding the state.
    pub(super) async fn send(&self, adhoc: AdHoc) -> anyhow::Result<RunReport> {
        match self.ask(&Request::Send(adhoc)).await? {
            Response::Report(record, failures) => Ok(RunReport { record, failures }),
            _ => Err(unexpected("a run report")),
        }
    }

    /// The channels a grant can see, asked of the process holding the state.
    pub(super) async fn channels(
        &self,
        app: String,
        account: Option<String>,
    ) -> anyhow::Result<Vec<Channel>> {
        match self.ask(&Request::Channels { app, account }).await? {
            Response::Channels(channels) => Ok(channels),
            _ => Err(unexpected("the channels")),
        }
    }

    /// The API keys.
    pub(super) async fn api_keys(&self) -> anyhow::Result<Vec<ApiKey>> {
        match self.ask(&Request::ApiKeys).await? {
            Response::ApiKeys(keys) => Ok(keys),
            _ => Err(unexpected("the API keys")),
        }
    }

    /// Stores a new API key's record and hash, here or in the process holding the state.
    pub(super) async fn create_api_key(&self, key: ApiKey, sha256: String) -> anyhow::Result<()> {
        match self {
            Self::Local(store) => Ok(store
                .api_keys()?
                .create(&key, &sha256)
                .await
                .map_err(invalid_key)?),
            Self::Daemon(..) => self.done(&Request::CreateApiKey { key, sha256 }).await,
        }
    }

    /// Stores a console sign-in link, here or in the process holding the state.
    pub(super) async fn add_console_link(&self, link: Link, sha256: String) -> anyhow::Result<()> {
        match self {
            Self::Local(store) => Ok(store.console()?.add_link(&link, &sha256).await?),
            Self::Daemon(..) => self.done(&Request::AddConsoleLink { link, sha256 }).await,
        }
    }

    /// Ends every console session (a new signing key), here or in the process holding the
    /// state.
    pub(super) async fn end_console_sessions(&self) -> anyhow::Result<()> {
        match self {
            Self::Local(store) => Ok(store.console()?.new_signing_key().await?),
            Self::Daemon(..) => self.done(&Request::EndConsoleSessions).await,
        }
    }

    /// How the console last suspended or resumed each of `jobs`.
    pub(super) async fn suspensions(
        &self,
        jobs: Vec<String>,
    ) -> anyhow::Result<Vec<Option<Suspension>>> {
        match self.ask(&Request::Suspensions { jobs }).await? {
            Response::Suspensions(found) => Ok(found),
            _ => Err(unexpected("the suspensions")),
        }
    }

    /// Deletes an API key, here or in the process holding the state.
    pub(super) async fn revoke_api_key(&self, name: String) -> anyhow::Result<()> {
        match self {
            Self::Local(store) => Ok(store.api_keys()?.revoke(&name).await.map_err(invalid_key)?),
            Self::Daemon(..) => self.done(&Request::RevokeApiKey { name }).await,
        }
    }

    async fn done(&self, request: &Request) -> anyhow::Result<()> {
        match self.ask(request).await? {
            Response::Done => Ok(()),
            _ => Err(unexpected("that it was done")),
        }
    }

    /// Who answers for the state: this process, or the one holding it.
    pub(super) fn holder(&self) -> Holder {
        match self {
            Self::Local(_) => Holder::Command,
            Self::Daemon(_, holder) => *holder,
        }
    }

    /// Answers a request, locally or from the scheduler; failures become errors.
    async fn ask(&self, request: &Request) -> anyhow::Result<Response> {
        let response = match self {
            Self::Local(store) => control::answer(store, request)?,
            Self::Daemon(dir, _) => control::ask(dir, request).await?,
        };
        match response {
            Response::Failed(message) => Err(anyhow!(message)),
            Response::Busy => Err(anyhow!(
                "the process holding the state directory only answers what it reads; wait \
                 for it to finish"
            )),
            Response::Refused(message) => Err(Refused(message).into()),
            Response::Invalid(message) => Err(InvalidText(message).into()),
            other => Ok(other),
        }
    }
}

/// Why a login's grant was not stored (by this process or the scheduler): its tokens are for
/// the login to revoke.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct Refused(pub String);

/// Which process stored a login's grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StoredBy {
    /// This one.
    ThisProcess,
    /// The running scheduler or `serve`, which uses it from now on.
    Holder(Holder),
}

/// A login's grant this process stores: issued to the client of this very configuration.
async fn store_locally(
    store: &Store,
    app: &str,
    grant: &Grant,
) -> anyhow::Result<(GrantView, StoredBy)> {
    let admission = login::Admission {
        client_id: &grant.client_id,
        accounts: None,
    };
    match login::store_install(&store.grants()?, app, grant, &admission).await {
        Ok(stored) => Ok((GrantView::from(&stored), StoredBy::ThisProcess)),
        Err(login::InstallError::NotAllowed(refusal)) => Err(Refused(refusal.to_string()).into()),
        Err(e) => Err(e.into()),
    }
}

/// A key refused for its name, or missing, is invalid input (exit 2).
fn invalid_key(e: KeyError) -> anyhow::Error {
    match e {
        KeyError::State(e) => e.into(),
        refused => InvalidText(refused.to_string()).into(),
    }
}

fn unexpected(what: &str) -> anyhow::Error {
    anyhow!("the scheduler answered something else than {what}")
}

/// Opens the store, waiting up to `wait` while another command holds it, and saying once who
/// holds it and what it is doing; or who holds it when that is a scheduler or `serve` (they
/// never let go).
pub(super) async fn lock_patiently(
    dir: &Path,
    keys: &Keys,
    wait: Duration,
) -> anyhow::Result<Result<Store, Holder>> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut said = false;
    loop {
        let locked = match Store::open_with(dir, keys.clone()) {
            Ok(store) => return Ok(Ok(store)),
            Err(locked @ StateError::Locked { .. }) => locked,
            Err(e) => return Err(e.into()),
        };
        if let Some(holder) = holder_of(dir).await.filter(|h| h.serves()) {
            return Ok(Err(holder));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(locked.into());
        }
        if !std::mem::replace(&mut said, true)
            && let StateError::Locked { pid, doing, .. } = &locked
        {
            errln!(
                "{}; waiting for it (up to {}, --wait)",
                in_use(dir, *pid, doing.as_deref()),
                humantime::format_duration(wait)
            );
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
}

/// "the state directory DIR is in use by another zoomcast process (pid 42, running job ...)".
fn in_use(dir: &Path, pid: Option<u32>, doing: Option<&str>) -> String {
    format!(
        "the state directory {} is in use by another zoomcast process{}",
        dir.display(),
        crate::state::holder(pid, doing)
    )
}

/// Serves what `store` reads on the control socket, beside the command holding it; `None` (said
/// in the log) if the socket cannot be bound: commands beside it then wait or fail, as before.
fn answer_reads(store: &Arc<Store>) -> Option<Answering> {
    let listener = match control::bind(store.dir()) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!("commands beside this one cannot read the state: {e}");
            return None;
        }
    };
    let stop = CancellationToken::new();
    let handler = Arc::new(control::ReadOnly {
        store: store.clone(),
    });
    tokio::spawn(control::serve(listener, handler, stop.clone()));
    Some(Answering {
        stop,
        socket: control::socket_path(store.dir()),
    })
}

/// Who holds the state directory, as its control socket says; `None` when nothing answers.
/// A scheduler of an earlier release does not know the question: it says it does not
/// understand, and only schedulers served the socket then.
async fn holder_of(dir: &Path) -> Option<Holder> {
    if !control::socket_path(dir).exists() {
        return None;
    }
    // A holder that does not answer within the socket's patience is taken for none.
    let asked = tokio::time::timeout(SOCKET_PATIENCE, control::ask(dir, &Request::Holder)).await;
    match asked {
        Ok(Ok(Response::Holder(holder))) => Some(holder),
        Ok(Ok(Response::Failed(_))) => Some(Holder::Scheduler),
        _ => None,
    }
}

/// Whether the lock holder serves a control socket; a scheduler that is starting gets a moment
/// to bind it.
async fn wait_for_socket(dir: &Path) -> bool {
    let socket = control::socket_path(dir);
    let start = tokio::time::Instant::now();
    while !socket.exists() {
        if start.elapsed() >= SOCKET_PATIENCE {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}
