//! The command line: clap definitions, the shared [`Context`] (config, state and jobs
//! directories), dispatch to one file per command, and the one function that turns an
//! outcome or error into the contract's exit code.

mod amend;
mod api_keys;
mod auth;
mod channels;
mod console;
mod demo;
mod docs;
mod doctor;
mod emulator;
mod health;
mod history;
mod jobs;
mod keys;
mod optouts;
mod run;
mod schedule;
mod send;
mod serve;
mod state;
mod validate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{AppConfig, Config, Invalid};
use crate::delivery::amend::Amend;
use crate::state::Store;
use state::{InvalidText, State};

/// zoomcast: declarative Zoom Team Chat notifications.
#[derive(Debug, Parser)]
#[command(name = "zoomcast", version, about, long_about = None)]
pub struct Cli {
    /// The config file (apps' identities); default `zoomcast.toml` in the current directory,
    /// if it exists.
    #[arg(long, global = true, value_name = "FILE", env = "ZOOMCAST_CONFIG")]
    config: Option<PathBuf>,
    /// The state directory (sled database, lock, grant files).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "ZOOMCAST_STATE",
        default_value = "state"
    )]
    state: PathBuf,
    /// The jobs directory (before the command: `api-key create --jobs` names jobs).
    #[arg(
        long,
        value_name = "DIR",
        env = "ZOOMCAST_JOBS",
        default_value = "jobs"
    )]
    jobs: PathBuf,
    /// How logs are written to stderr: text (for people) or json (one object a line, for a
    /// log collector).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "ZOOMCAST_LOG_FORMAT",
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
    /// How long a command that writes waits while another command holds the state
    /// directory (a scheduler holding it does the work instead).
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        default_value = "10m",
        value_parser = humantime::parse_duration
    )]
    wait: std::time::Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Authorize once as a person, and manage the stored grants.
    #[command(subcommand)]
    Auth(auth::AuthCommand),
    /// Check job files (default: every *.toml in the jobs directory).
    Validate(validate::Args),
    /// Run one job now.
    Run(run::Args),
    /// Send one message without a job file, journaled as a run of the job `send`.
    Send(send::Args),
    /// The channels the authorizing user can see: name and JID.
    Channels(channels::Args),
    /// Run every job on its schedule until SIGINT or SIGTERM.
    Schedule(schedule::Args),
    /// List jobs, their schedules and next fire times.
    Jobs(jobs::Args),
    /// Past runs and their per-recipient outcomes.
    History(history::Args),
    /// Delete every message a run sent (default: the job's newest run).
    Recall(amend::Args),
    /// Replace every message a run sent with the job's card as it renders now.
    Edit(amend::Args),
    /// Recipients who told the bot `stop`, per app and account.
    Optouts(optouts::Args),
    /// Keys for the HTTP API (`/v1` on `serve` and `schedule --listen`).
    #[command(subcommand)]
    ApiKey(api_keys::ApiKeyCommand),
    /// Print a one-time sign-in link to the web console (`/console` on `serve`).
    ConsoleLink(console::Args),
    /// Installs, OAuth redirects, Zoom webhooks, /healthz and /metrics.
    Serve(serve::Args),
    /// A local Zoom emulator (OAuth, Users, Chatbot) for trials and tests.
    ///
    /// It accepts the app with client id `zoomcast-emulator` and client secret
    /// `emulator-client-secret`; its chatbot JID is `v1robotzoomcast@xmpp.zoom.us` and it signs
    /// events with the webhook secret `emulator-webhook-secret`. Point `ZOOM_OAUTH_URL` and
    /// `ZOOM_API_URL` at the address it prints. Its people: admin, ana, bo, chen, dee, eli, fay
    /// @example.com (account emulated-account-1), admin, gus, hana @second.example
    /// (emulated-account-2), and any address at bulk.example.com.
    Emulator(emulator::Args),
    /// Start the emulator in-process and run jobs/example.toml against it.
    Demo,
    /// Check configuration, state, grants, clock and Zoom's reachability; exit 1 if one fails.
    Doctor(doctor::Args),
    /// Tokens at rest: a new state key, or every grant stored again under another.
    #[command(subcommand)]
    State(keys::StateCommand),
    /// Ask a running server for /healthz: exit 0 when healthy (a container's health check).
    Health(health::Args),
    /// Print the shell completion script for SHELL.
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff): `zoomcast man > zoomcast.1`; with --dir, write one page
    /// per subcommand.
    Man(docs::ManArgs),
}

/// How a command ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything done (every recipient delivered).
    Done,
    /// The run finished but some recipients failed permanently.
    SomeRecipientsFailed,
}

/// What every command shares.
pub(crate) struct Context {
    config: Config,
    state_dir: PathBuf,
    jobs_dir: PathBuf,
    /// How grants are stored: sealed with the state key, if one is set.
    keys: crate::state::Keys,
    /// How long a command that writes waits for another command holding the state.
    wait: std::time::Duration,
}

impl Context {
    fn new(
        config: Option<&Path>,
        state: &Path,
        jobs: &Path,
        wait: std::time::Duration,
    ) -> Result<Self, Invalid> {
        let env = |k: &str| std::env::var(k).ok();
        let (path, explicit) = if let Some(p) = config {
            (p.to_owned(), true)
        } else {
            let candidates = crate::config::config_candidates(env);
            let found = candidates.iter().find(|p| p.exists()).cloned();
            (
                found.unwrap_or_else(|| PathBuf::from("zoomcast.toml")),
                false,
            )
        };
        Ok(Self {
            config: Config::load(&path, explicit, env)?,
            state_dir: state.to_owned(),
            jobs_dir: jobs.to_owned(),
            keys: keys::state_keys(&env)?,
            wait,
        })
    }

    fn app(&self, name: &str) -> Result<AppConfig, Invalid> {
        self.config.app(name)
    }

    fn open_store(&self) -> anyhow::Result<Store> {
        Ok(Store::open_with(&self.state_dir, self.keys.clone())?)
    }

    /// The state for a command that only reads: from the store itself or, while another
    /// process holds it, through its control socket. Never created.
    async fn read_state(&self) -> anyhow::Result<State> {
        State::open_read(&self.state_dir, &self.keys).await
    }

    /// The state for a command that writes: the store (waiting for another command holding
    /// it, up to `--wait`), or the scheduler holding it. Hold the `Answering` while working:
    /// it answers what the store reads to the commands beside this one.
    async fn write_state(&self) -> anyhow::Result<(State, Option<state::Answering>)> {
        State::open_write(&self.state_dir, &self.keys, self.wait).await
    }

    /// The store itself, for a command that writes and needs it to itself (waiting up to
    /// `--wait` for another command holding it): not while a scheduler holds it.
    async fn own_store(&self, keys: crate::state::Keys, what: &str) -> anyhow::Result<Store> {
        match state::lock_patiently(&self.state_dir, &keys, self.wait).await? {
            Ok(store) => Ok(store),
            Err(holder) => anyhow::bail!(
                "{} holds the state directory {}; stop it (SIGTERM), then run `zoomcast {what}` \
                 again (it needs the state to itself)",
                holder.name(),
                self.state_dir.display()
            ),
        }
    }

    /// A job argument: a name in the jobs directory, or a path to a file (`oncall.toml` that
    /// is not in the current directory is the jobs directory's).
    fn job_path(&self, job: &str) -> PathBuf {
        let as_path = Path::new(job);
        let toml = as_path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let bare = as_path.components().count() == 1;
        if toml && bare && !as_path.exists() {
            self.jobs_dir.join(as_path)
        } else if toml || !bare {
            as_path.to_owned()
        } else {
            self.jobs_dir.join(format!("{job}.toml"))
        }
    }

    /// A job argument that names no job file, said with the closest job names.
    fn no_such_job(&self, job: &str) -> Option<InvalidText> {
        if self.job_path(job).exists() {
            return None;
        }
        let names: Vec<String> = self
            .job_files()
            .unwrap_or_default()
            .iter()
            .map(|p| crate::config::job_name(p))
            .collect();
        let wanted = job.trim_end_matches(".toml");
        let closest = crate::config::recover::typo_of(wanted, names.iter().map(String::as_str));
        let hint = match (closest, names.is_empty()) {
            (Some(name), _) => format!(" (did you mean `{name}`?)"),
            (None, true) => String::new(),
            (None, false) => format!("; the jobs are: {}", names.join(", ")),
        };
        Some(InvalidText(format!(
            "there is no job `{}` in {}{hint}",
            crate::output::clean(job, 80),
            self.jobs_dir.display()
        )))
    }

    /// Every `*.toml` in the jobs directory, sorted.
    fn job_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        crate::config::jobs_dir::toml_files(&self.jobs_dir)
    }
}

/// A duration above zero, as humantime writes it (`500ms`, `30s`, `1m`): for intervals, which
/// at zero would spin.
fn positive_duration(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be longer than zero, like 5s".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e}; write a duration like 500ms, 5s or 1m")),
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    // The configuration, read only by the commands that need it.
    let ctx = || Context::new(cli.config.as_deref(), &cli.state, &cli.jobs, cli.wait);
    match cli.command {
        Command::Completions(args) => Ok(docs::completions(&args)),
        Command::Man(args) => docs::man(&args),
        Command::Health(args) => health::run(&args).await,
        Command::State(keys::StateCommand::NewKey) => Ok(keys::new_key()),
        Command::State(keys::StateCommand::Rekey(args)) => keys::rekey(&ctx()?, &args).await,
        Command::Auth(command) => auth::run(&ctx()?, command).await,
        Command::Validate(args) => validate::run(&ctx()?, &args),
        Command::Run(args) => run::run(&ctx()?, &args).await,
        Command::Schedule(args) => schedule::run(&ctx()?, &args).await,
        Command::Jobs(args) => jobs::run(&ctx()?, &args).await,
        Command::History(args) => history::run(&ctx()?, &args).await,
        Command::Recall(args) => amend::run(&ctx()?, &args, Amend::Recall).await,
        Command::Edit(args) => amend::run(&ctx()?, &args, Amend::Edit).await,
        Command::Optouts(args) => optouts::run(&ctx()?, &args).await,
        Command::Serve(args) => serve::run(&ctx()?, &args).await,
        Command::Emulator(args) => {
            ctx()?; // it uses none, but a broken one is reported, as for the others
            emulator::run(&args).await
        }
        Command::Demo => demo::run(&ctx()?).await,
        Command::ApiKey(command) => api_keys::run(&ctx()?, &command).await,
        Command::Send(args) => send::run(&ctx()?, &args).await,
        Command::ConsoleLink(args) => console::run(&ctx()?, &args).await,
        Command::Channels(args) => channels::run(&ctx()?, &args).await,
        Command::Doctor(args) => doctor::run(&ctx()?, &args).await,
    }
}

/// The contract's exit codes: 0 done, 3 some recipients failed, 2 invalid configuration, job
/// file or arguments, 1 anything else that stopped the run. Prints the error, once.
pub fn exit_code(result: &anyhow::Result<Outcome>) -> ExitCode {
    // Output that could not be written (a full disk, not a closed pipe) fails a command that
    // otherwise succeeded; a run with failed recipients keeps its exit 3.
    if let (Ok(outcome), Some(failure)) = (result, crate::output::stdout_failure()) {
        errln!("error: writing the output failed: {failure}");
        if *outcome == Outcome::Done {
            return ExitCode::from(1);
        }
    }
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::SomeRecipientsFailed) => ExitCode::from(3),
        Err(e) => {
            if let Some(invalid) = invalid_cause(e) {
                // A diagnostic starts with `error:` already; every final error does.
                let text = invalid.to_string();
                let said = if text.starts_with("error:") {
                    ""
                } else {
                    "error: "
                };
                errln!("{said}{text}");
                ExitCode::from(2)
            } else {
                errln!("error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

/// The invalid job file, configuration or argument that `e` comes from, if that is what
/// failed: such a failure exits 2 with its own text.
fn invalid_cause(e: &anyhow::Error) -> Option<&(dyn std::error::Error + 'static)> {
    e.chain()
        .find(|c| c.is::<Invalid>() || c.is::<InvalidText>())
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object a line: timestamp, level, target, message and fields.
    Json,
}

/// Whether logs are coloured: only on a terminal, and not when `NO_COLOR` is set
/// (<https://no-color.org>).
fn colour() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Logs go to stderr (around any progress bar), filtered by `RUST_LOG` (default: warnings and
/// zoomcast's info lines). A log line that cannot be written is dropped, never reported by a
/// panic: a daemon whose log reader went away must still shut down on SIGTERM.
/// With [`LogFormat::Json`], each line is one JSON object (tracing-subscriber's JSON format).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,zoomcast=info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| crate::delivery::LogWriter)
        .log_internal_errors(false);
    match format {
        LogFormat::Text => logs.with_ansi(colour()).with_target(false).init(),
        LogFormat::Json => logs.json().with_ansi(false).with_target(true).init(),
    }
}
