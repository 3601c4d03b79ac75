//! `schedule`: the daemon. Opens the state directory (waiting, up to `--wait`, for a command
//! that holds it), binds the control socket and runs the scheduler service until SIGTERM or
//! SIGINT and the drain after it (see [`crate::schedule::service`]), then exits 0. With
//! `--listen`, the service also serves what `serve` does; `serve` is the same service with no
//! schedule.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::{Context, Outcome};
use crate::control;
use crate::schedule::service::Service;
use crate::server::Limits;
use crate::shutdown::Signals;
use crate::state::Store;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// After SIGTERM or SIGINT, how long running jobs get to finish before they are stopped
    /// (a stopped run resumes at the next start).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// How often the jobs directory is checked for changed files.
    #[arg(long, default_value = "2s", value_parser = super::positive_duration)]
    watch_every: Duration,
    /// Also serve what `serve` serves (webhooks, installs, /healthz, /metrics) at this address.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    limits: ClientLimits,
}

/// What one client may take of the HTTP server.
#[derive(Debug, clap::Args)]
pub(super) struct ClientLimits {
    /// How long a request may take from its headers to its answer, body included (408
    /// after).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::positive_duration)]
    client_timeout: Duration,
    /// How long a new connection gets to send its request headers; it takes no serving slot
    /// meanwhile.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = super::positive_duration)]
    header_timeout: Duration,
    /// The most requests served at once (/healthz and /metrics have slots of their own); a
    /// request that finds none free within a second is answered 503. Four times as many
    /// connections may be open, the oldest idle one closed to make room.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..=65_536)
    )]
    max_connections: u32,
}

impl ClientLimits {
    pub(super) fn limits(&self) -> Limits {
        let max_connections = usize::try_from(self.max_connections).unwrap_or(usize::MAX);
        Limits {
            max_connections,
            max_open: max_connections.saturating_mul(4),
            header_timeout: self.header_timeout,
            client_timeout: self.client_timeout,
        }
    }
}

pub(super) async fn run(ctx: &Context, args: &Args) -> anyhow::Result<Outcome> {
    let listen = args.listen.map(|addr| (addr, args.limits.limits()));
    run_service(ctx, Some(args.watch_every), listen, args.drain).await
}

/// Runs the service: the scheduler when `watch_every` is given (else only runs asked for
/// through the control socket), and the HTTP server when `listen` is.
pub(super) async fn run_service(
    ctx: &Context,
    watch_every: Option<Duration>,
    listen: Option<(SocketAddr, Limits)>,
    drain: Duration,
) -> anyhow::Result<Outcome> {
    // Listening before anything announces the service: a SIGTERM right after start must
    // drain it, not kill it.
    let signals = Signals::listen().context("listening for signals")?;
    // Bound before the state is taken: a port in use is found before anything else is held.
    let http = match listen {
        Some((addr, limits)) => Some((
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr} (is another server using it?)"))?,
            limits,
        )),
        None => None,
    };
    let store = Arc::new(open_store_patiently(ctx).await?);
    // Bound first: commands finding the state locked look for the socket.
    let socket = control::bind(store.dir())
        .with_context(|| format!("opening the control socket in {}", store.dir().display()))?;
    let config = Arc::new(ctx.config.clone());
    let jobs_dir = ctx.jobs_dir.clone();
    let initial = if watch_every.is_some() {
        let loaded = crate::config::jobs_dir::load(&config, &jobs_dir)?;
        tracing::info!(
            "scheduler started (pid {}): {} jobs from {}, {} invalid",
            std::process::id(),
            loaded.jobs.len(),
            jobs_dir.display(),
            loaded.broken.len()
        );
        loaded
    } else {
        crate::config::JobSet::default()
    };
    if let Some((listener, _)) = &http {
        tracing::info!(
            "serving webhooks, /healthz and /metrics on http://{} (pid {})",
            listener.local_addr()?,
            std::process::id()
        );
    }
    Service {
        config,
        store,
        jobs_dir,
        initial,
        listener: socket,
        signals,
        drain,
        watch_every,
        http,
    }
    .run()
    .await?;
    Ok(Outcome::Done)
}

/// Opens the store, waiting (up to `--wait`) for a command that holds it to finish.
async fn open_store_patiently(ctx: &Context) -> anyhow::Result<Store> {
    match super::state::lock_patiently(&ctx.state_dir, &ctx.keys, ctx.wait).await? {
        Ok(store) => Ok(store),
        Err(holder) => anyhow::bail!(
            "{} already holds the state directory {}; one process serves a state directory \
             (stop it, or use another --state)",
            holder.name(),
            ctx.state_dir.display()
        ),
    }
}
