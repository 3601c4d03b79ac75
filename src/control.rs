//! The control socket, `state/control.sock`: while `schedule` holds the state directory, `run`,
//! `jobs`, `history` and `auth status` from another shell ask the daemon instead of failing on
//! the lock; while a command holds it for a while (a standalone `run`), it answers what it reads
//! ([`ReadOnly`]), and commands that write wait for the lock.
//!
//! One JSON request per connection, one JSON response. The read-only requests are answered
//! by [`answer`] from a [`Store`]: commands use the same function when they hold the store
//! themselves, so what they print does not depend on whether a daemon is running. Responses
//! never carry a secret ([`GrantView`] has no token).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::adhoc::AdHoc;
use crate::delivery::{GrantCheck, Preview};
use crate::state::console::Link;
use crate::state::{
    ApiKey, Dead, Delivery, Grant, OptOut, RunFilter, RunId, RunRecord, StateError, Store,
    Suspension, Totals, ViewStart,
};
use crate::zoom::channels::Channel;

/// The socket's file name in the state directory.
pub const SOCKET: &str = "control.sock";
/// The longest request or response line read.
const MAX_LINE: u64 = 64 << 20;
/// The most runs one page answers (a run's record is about a kilobyte of JSON).
pub const MAX_PAGE: usize = 500;

/// The socket of the daemon holding `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET)
}

/// What a command asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Who holds the state: a scheduler (which runs jobs and stores grants for others), or a
    /// command that only answers what it reads ([`ReadOnly`]).
    Holder,
    /// Every run kept, oldest first, optionally of one job (what releases before paged
    /// listings ask).
    Runs {
        /// Only this job's runs.
        job: Option<String>,
    },
    /// Where the newest `limit` runs `filter` shows start.
    ViewStart {
        /// Which runs.
        filter: RunFilter,
        /// How many of the newest; `None`: all.
        limit: Option<usize>,
    },
    /// Up to `max` runs `filter` shows, oldest first, from run `from` on.
    RunPage {
        /// Which runs.
        filter: RunFilter,
        /// The first run id to look at.
        from: RunId,
        /// The most runs answered.
        max: usize,
    },
    /// The totals of one job, or of every job.
    Totals {
        /// Only this job's.
        job: Option<String>,
    },
    /// One run and its deliveries.
    Run {
        /// The run.
        id: RunId,
    },
    /// The newest run of each job.
    LatestRuns {
        /// The jobs.
        jobs: Vec<String>,
    },
    /// The grants of these apps and of every other app holding one (one per account), without
    /// secrets.
    Grants {
        /// The apps.
        apps: Vec<String>,
    },
    /// Run a job now (in the daemon).
    RunJob {
        /// The job file (absolute).
        path: PathBuf,
        /// Look every recipient up again.
        refresh_cache: bool,
        /// The run's own values of the job's `[vars]` (`run --var`).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        vars: BTreeMap<String, String>,
    },
    /// Check a job and its app with the daemon's configuration and grant, as `run --dry-run`
    /// does; send nothing. (A request of its own, not a flag of `RunJob`: a scheduler of an
    /// older release would ignore the flag and run the job.)
    CheckJob {
        /// The job file (absolute).
        path: PathBuf,
        /// How many recipients' cards to render.
        #[serde(default)]
        show: usize,
        /// Whether to look every recipient up.
        #[serde(default)]
        resolve: bool,
    },
    /// The users who told a bot `stop`, of one app or of every app.
    OptOuts {
        /// Only this app's.
        app: Option<String>,
    },
    /// How grants are stored: the id of the state key they are sealed with, if any.
    AtRest,
    /// Check every grant of these apps with Zoom (a refresh when due, then `/v2/users/me`),
    /// as the process holding the state (it alone may refresh them).
    CheckGrants {
        /// The apps.
        apps: Vec<String>,
    },
    /// Store the grant an `auth login` beside the scheduler obtained, replacing the one of its
    /// account (the socket is the user's own: 0600, and its peer's uid is checked).
    StoreGrant {
        /// The app.
        app: String,
        /// The new grant, tokens and all.
        grant: Box<Grant>,
    },
    /// The channels the grant of `app` in `account` (default: its home) can see.
    Channels {
        /// The app.
        app: String,
        /// The account.
        account: Option<String>,
    },
    /// Send an ad hoc message (`zoomcast send`) as a run of the job `send`.
    Send(AdHoc),
    /// The API keys (never their hashes).
    ApiKeys,
    /// Store a new API key: its record and its hash (the key itself never crosses the socket).
    CreateApiKey {
        /// The record.
        key: ApiKey,
        /// SHA-256 of the key, hex.
        sha256: String,
    },
    /// Delete an API key.
    RevokeApiKey {
        /// Its name.
        name: String,
    },
    /// Store a console sign-in link: its record and its token's hash (the token itself never
    /// crosses the socket).
    AddConsoleLink {
        /// The record.
        link: Link,
        /// SHA-256 of the token, hex.
        sha256: String,
    },
    /// A new console signing key: every console session ends.
    EndConsoleSessions,
    /// How the console last suspended or resumed each of these jobs.
    Suspensions {
        /// The jobs.
        jobs: Vec<String>,
    },
}

/// What the answer is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "response", content = "value", rename_all = "snake_case")]
pub enum Response {
    /// Runs, oldest first.
    Runs(Vec<RunRecord>),
    /// Where a listing starts.
    ViewStart(ViewStart),
    /// Jobs' totals, by job name.
    Totals(Vec<(String, Totals)>),
    /// A run and its deliveries, if it exists.
    Run(Option<(RunRecord, Vec<Delivery>)>),
    /// The newest run of each job asked for, in order.
    LatestRuns(Vec<Option<RunRecord>>),
    /// Each app's grant.
    Grants(Vec<AppGrant>),
    /// A finished run: its record and its failed or uncertain recipients.
    Report(RunRecord, Vec<Delivery>),
    /// A dry run found the job ready to send.
    Checked(Checked),
    /// Opt-outs.
    OptOuts(Vec<OptOut>),
    /// The grant stored (without its tokens).
    Stored(GrantView),
    /// The id of the state key grants are sealed with; `None`: stored in plain form.
    AtRest(Option<String>),
    /// What Zoom said of each grant.
    GrantChecks(Vec<GrantCheck>),
    /// A grant handed over was refused, and why (its tokens are the sender's to revoke).
    Refused(String),
    /// Who holds the state.
    Holder(Holder),
    /// The API keys.
    ApiKeys(Vec<ApiKey>),
    /// Channels, by name.
    Channels(Vec<Channel>),
    /// The console's suspension of each job asked for, in order.
    Suspensions(Vec<Option<Suspension>>),
    /// A write was done.
    Done,
    /// The holder is a command that answers only what it reads; the asker waits for the lock.
    Busy,
    /// The job or configuration is invalid (exit 2).
    Invalid(String),
    /// The request failed.
    Failed(String),
}

/// Who holds the state directory and answers on its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    /// A scheduler (`schedule`): it runs jobs and stores grants for other commands.
    Scheduler,
    /// `serve`, which schedules nothing but runs jobs and stores grants for other commands as
    /// a scheduler does.
    Server,
    /// A command holding the state for a while (a standalone `run`, a recall, a login): it
    /// answers what it reads, and a command that writes waits for it to finish.
    Command,
}

impl Holder {
    /// Whether it runs jobs and stores grants for other commands (a scheduler or `serve`).
    pub fn serves(self) -> bool {
        matches!(self, Self::Scheduler | Self::Server)
    }

    /// How messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Scheduler => "the running scheduler",
            Self::Server => "the running `zoomcast serve`",
            Self::Command => "the zoomcast command holding it",
        }
    }
}

/// Answers beside a command that holds the state for a while: what it reads, from its store
/// (so `history`, `jobs`, `optouts` and `auth status` work beside a standalone `run`); a
/// request to run a job or store a grant is [`Response::Busy`].
pub struct ReadOnly {
    /// The store the command holds.
    pub store: Arc<Store>,
}

impl Handler for ReadOnly {
    fn handle(&self, request: Request) -> BoxFuture<'static, Response> {
        let answer = match request {
            Request::RunJob { .. }
            | Request::CheckJob { .. }
            | Request::StoreGrant { .. }
            | Request::CheckGrants { .. }
            | Request::CreateApiKey { .. }
            | Request::RevokeApiKey { .. }
            | Request::AddConsoleLink { .. }
            | Request::EndConsoleSessions
            | Request::Send(_)
            | Request::Channels { .. } => Response::Busy,
            read => answer(&self.store, &read).unwrap_or_else(|e| Response::Failed(e.to_string())),
        };
        Box::pin(std::future::ready(answer))
    }
}

/// What a dry run found: what a run of the job would send as, and to whom.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checked {
    /// The app it would send as.
    pub app: String,
    /// The chatbot it would send from.
    pub robot_jid: String,
    /// The account it would send in.
    #[serde(default)]
    pub account: String,
    /// The recipients (how many, de-duplicated), the lookups and the first cards.
    #[serde(flatten)]
    pub preview: Preview,
}

/// One grant of an app (an app has one per installing account), or an app without any, as
/// `auth status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppGrant {
    /// The app.
    pub app: String,
    /// Its grant, if it holds one.
    pub grant: Option<GrantView>,
    /// When the cached bot token expires, if one is cached.
    pub bot_expires_at: Option<DateTime<Utc>>,
}

/// A grant without its tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantView {
    /// Zoom's id of the authorizing user.
    pub user_id: String,
    /// Their email.
    pub user_email: String,
    /// Their JID.
    pub user_jid: String,
    /// Their account.
    pub account_id: String,
    /// Granted scopes, space-separated.
    pub scopes: String,
    /// When a person authorized.
    pub authorized_at: DateTime<Utc>,
    /// When the refresh token last rotated.
    pub refreshed_at: DateTime<Utc>,
    /// When the current access token expires.
    pub access_expires_at: DateTime<Utc>,
    /// The OAuth client it was issued to (empty: not recorded).
    #[serde(default)]
    pub client_id: String,
    /// The authorizing user's role (empty: not known).
    #[serde(default)]
    pub role: String,
    /// Since when Zoom refuses it, and why.
    #[serde(default)]
    pub dead: Option<Dead>,
    /// Whether the account is the app's home account, where jobs naming none send.
    #[serde(default)]
    pub home: bool,
}

impl From<&Grant> for GrantView {
    fn from(g: &Grant) -> Self {
        Self {
            client_id: g.client_id.clone(),
            role: g.role.clone(),
            dead: g.dead.clone(),
            home: false,
            user_id: g.user_id.clone(),
            user_email: g.user_email.clone(),
            user_jid: g.user_jid.clone(),
            account_id: g.account_id.clone(),
            scopes: g.scopes.clone(),
            authorized_at: g.authorized_at,
            refreshed_at: g.refreshed_at,
            access_expires_at: g.access.expires_at,
        }
    }
}

impl Checked {
    /// What a dry run of `job` as `from` found.
    pub fn new(job: &crate::config::Job, from: &crate::delivery::Sender, preview: Preview) -> Self {
        Self {
            app: job.app.clone(),
            robot_jid: from.robot_jid.clone(),
            account: from.account_id.clone(),
            preview,
        }
    }
}

/// Answers a read-only request from the store (`RunJob` is the daemon's to answer).
pub fn answer(store: &Store, request: &Request) -> Result<Response, StateError> {
    Ok(match request {
        Request::Runs { job } => Response::Runs(store.runs()?.list(job.as_deref())?),
        Request::ViewStart { filter, limit } => {
            Response::ViewStart(store.runs()?.view_start(filter, *limit)?)
        }
        Request::RunPage { filter, from, max } => {
            Response::Runs(store.runs()?.page(filter, *from, (*max).min(MAX_PAGE))?)
        }
        Request::Totals { job } => {
            let runs = store.runs()?;
            Response::Totals(match job {
                Some(job) => runs
                    .totals(job)?
                    .map(|t| (job.clone(), t))
                    .into_iter()
                    .collect(),
                None => runs.all_totals()?,
            })
        }
        Request::Run { id } => match store.runs()?.get(*id)? {
            Some(record) => Response::Run(Some((record, store.deliveries()?.list(*id)?))),
            None => Response::Run(None),
        },
        Request::LatestRuns { jobs } => Response::LatestRuns(store.runs()?.latest_of(jobs)?),
        Request::Grants { apps } => {
            let grants = store.grants()?;
            let held = grants.all()?;
            let mut rows = Vec::new();
            for app in apps {
                if !held.iter().any(|(a, _)| a == app) {
                    rows.push(AppGrant {
                        app: app.clone(),
                        grant: None,
                        bot_expires_at: grants.bot_token(app)?.map(|b| b.expires_at),
                    });
                }
            }
            for (app, account) in &held {
                let home = grants.home(app)?;
                let grant = grants.get(app, account)?.as_ref().map(|g| GrantView {
                    home: home.as_deref() == Some(account),
                    ..GrantView::from(g)
                });
                rows.push(AppGrant {
                    app: app.clone(),
                    grant,
                    bot_expires_at: grants.bot_token(app)?.map(|b| b.expires_at),
                });
            }
            rows.sort_by(|a, b| a.app.cmp(&b.app));
            Response::Grants(rows)
        }
        Request::OptOuts { app } => Response::OptOuts(store.optouts()?.list(app.as_deref())?),
        Request::AtRest => Response::AtRest(store.sealed_with()),
        Request::Holder => Response::Holder(Holder::Command),
        Request::ApiKeys => Response::ApiKeys(store.api_keys()?.list()?),
        Request::Suspensions { jobs } => {
            let console = store.console()?;
            Response::Suspensions(
                jobs.iter()
                    .map(|job| console.suspension(job))
                    .collect::<Result<_, _>>()?,
            )
        }
        Request::RunJob { .. }
        | Request::CheckJob { .. }
        | Request::StoreGrant { .. }
        | Request::CheckGrants { .. }
        | Request::CreateApiKey { .. }
        | Request::RevokeApiKey { .. }
        | Request::AddConsoleLink { .. }
        | Request::EndConsoleSessions
        | Request::Send(_)
        | Request::Channels { .. } => {
            Response::Failed("this needs the scheduler; none answered".into())
        }
    })
}

/// Answers requests; the daemon implements it.
pub trait Handler: Send + Sync + 'static {
    /// The answer to one request.
    fn handle(&self, request: Request) -> BoxFuture<'static, Response>;
}

/// Binds the socket in `state_dir` (the caller holds the state lock, so a socket file left
/// there is stale and is replaced). Only the owner can connect, three times over: the socket
/// is created under the umask of 077 that opening the store set (never open for an instant)
/// and set to 0600, it sits in the private state directory, and [`serve`] hangs up on a peer
/// of another uid.
pub fn bind(state_dir: &Path) -> std::io::Result<UnixListener> {
    let path = socket_path(state_dir);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(&path)?;
    // Created 0700 under the umask; read and write are all a socket needs.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(listener)
}

/// True when the peer runs as this process's user (`SO_PEERCRED`).
fn same_user(stream: &UnixStream) -> bool {
    let me = crate::state::private::me();
    match stream.peer_cred() {
        Ok(peer) if peer.uid() == me => true,
        Ok(peer) => {
            tracing::warn!(
                "control socket: refused a connection from uid {} (only uid {me} may connect)",
                peer.uid()
            );
            false
        }
        Err(e) => {
            tracing::warn!("control socket: refused a connection of unknown user: {e}");
            false
        }
    }
}

/// How long a stopping server waits for the answers it still owes.
const ANSWER_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves connections until `stop` is cancelled, then waits (at most [`ANSWER_GRACE`]) for
/// the answers still being written: a `run` whose job the shutdown interrupted still hears so.
pub async fn serve<H: Handler>(listener: UnixListener, handler: Arc<H>, stop: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        match accepted {
            Ok((stream, _)) if !same_user(&stream) => drop(stream),
            Ok((stream, _)) => {
                let handler = handler.clone();
                connections.spawn(async move {
                    if let Err(e) = connection(stream, handler.as_ref()).await {
                        tracing::warn!("control socket: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::error!("control socket: accepting failed: {e}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(ANSWER_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "control socket: {} requests were still unanswered at exit",
            connections.len()
        );
    }
}

async fn connection(stream: UnixStream, handler: &impl Handler) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(MAX_LINE);
    let request = reader.read_line(&mut line);
    // A client that connects and says nothing must not hold the connection (or a shutdown).
    tokio::time::timeout(ANSWER_GRACE, request)
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "no request within 5 s")
        })??;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => handler.handle(request).await,
        Err(e) => Response::Failed(format!("a request zoomcast does not understand: {e}")),
    };
    let mut bytes = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.shutdown().await
}

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nothing listens on the socket.
    #[error(
        "the state directory {dir} is locked by another zoomcast process, and no scheduler answers on {socket}; wait for that process to end"
    )]
    NoDaemon {
        /// The state directory.
        dir: PathBuf,
        /// The socket.
        socket: PathBuf,
    },
    /// The conversation broke off.
    #[error("talking to the scheduler over {socket} failed: {source}")]
    Io {
        /// The socket.
        socket: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// Asks the daemon holding `state_dir`.
pub async fn ask(state_dir: &Path, request: &Request) -> Result<Response, ControlError> {
    let socket = socket_path(state_dir);
    let stream = UnixStream::connect(&socket)
        .await
        .map_err(|_| ControlError::NoDaemon {
            dir: state_dir.to_owned(),
            socket: socket.clone(),
        })?;
    let io = |source| ControlError::Io {
        socket: socket.clone(),
        source,
    };
    let (read, mut write) = stream.into_split();
    let mut bytes = serde_json::to_vec(request).expect("requests serialize");
    bytes.push(b'\n');
    write.write_all(&bytes).await.map_err(io)?;
    let mut line = String::new();
    BufReader::new(read)
        .take(MAX_LINE)
        .read_line(&mut line)
        .await
        .map_err(io)?;
    serde_json::from_str(&line).map_err(|e| io(std::io::Error::other(e)))
}
