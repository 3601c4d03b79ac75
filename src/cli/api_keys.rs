//! `api-key create NAME [--jobs JOB,...]`, `api-key list [--json]` and `api-key revoke NAME`:
//! the keys other systems start runs with over HTTP (design section 9). A key is printed once,
//! on creation; the state keeps only its hash ([`crate::state::api_keys`]).

use secrecy::ExposeSecret as _;

use super::{Context, Outcome};
use crate::state::api_keys;

/// Keys of the HTTP API.
#[derive(Debug, clap::Subcommand)]
pub(super) enum ApiKeyCommand {
    /// Create a key and print it once (only its hash is stored).
    Create(CreateArgs),
    /// List the keys: name, jobs, created, last used (never the key).
    List(ListArgs),
    /// Revoke a key: every request with it is refused from now on.
    Revoke(RevokeArgs),
}

#[derive(Debug, clap::Args)]
pub(super) struct CreateArgs {
    /// Who the key is for (letters, digits, `-`, `_`, `.`), as logs and `list` name it.
    name: String,
    /// The jobs it may start (default: every job).
    #[arg(long, value_name = "JOB,...", value_delimiter = ',')]
    jobs: Option<Vec<String>>,
}

#[derive(Debug, clap::Args)]
pub(super) struct ListArgs {
    /// Print JSON: an array of objects (`name`, `jobs`, `created_at`, `last_used`).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(super) struct RevokeArgs {
    /// The key's name.
    name: String,
}

pub(super) async fn run(ctx: &Context, command: &ApiKeyCommand) -> anyhow::Result<Outcome> {
    match command {
        ApiKeyCommand::Create(args) => create(ctx, args).await,
        ApiKeyCommand::List(args) => list(ctx, args).await,
        ApiKeyCommand::Revoke(args) => {
            let (state, _answering) = ctx.write_state().await?;
            state.revoke_api_key(args.name.clone()).await?;
            errln!(
                "API key `{}` revoked: requests with it are refused",
                args.name
            );
            Ok(Outcome::Done)
        }
    }
}

async fn create(ctx: &Context, args: &CreateArgs) -> anyhow::Result<Outcome> {
    for job in args.jobs.iter().flatten() {
        let toml = std::path::Path::new(job)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        if job.contains(['/', '\\']) || toml {
            return Err(super::state::InvalidText(format!(
                "--jobs: `{job}` is not a job name; name jobs as `zoomcast jobs` lists them"
            ))
            .into());
        }
        if let Some(missing) = ctx.no_such_job(job) {
            return Err(super::state::InvalidText(format!("--jobs: {missing}")).into());
        }
    }
    let new = api_keys::generate(&args.name, args.jobs.clone());
    let (state, _answering) = ctx.write_state().await?;
    state.create_api_key(new.key, new.sha256).await?;
    outln!("{}", new.secret.expose_secret());
    errln!(
        "API key `{}` created; it is shown only now. Send it as `Authorization: Bearer KEY`.",
        args.name
    );
    Ok(Outcome::Done)
}

async fn list(ctx: &Context, args: &ListArgs) -> anyhow::Result<Outcome> {
    let keys = ctx.read_state().await?.api_keys().await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&keys)?);
        return Ok(Outcome::Done);
    }
    if keys.is_empty() {
        outln!("no API keys; `zoomcast api-key create NAME` makes one");
    }
    let when =
        |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for key in &keys {
        let jobs = key
            .jobs
            .as_ref()
            .map_or_else(|| "every job".to_owned(), |jobs| jobs.join(", "));
        let used = key
            .last_used
            .as_ref()
            .map_or_else(|| "never".to_owned(), when);
        outln!(
            "{}  jobs: {jobs}  created {}  last used {used}",
            key.name,
            when(&key.created_at)
        );
    }
    Ok(Outcome::Done)
}
