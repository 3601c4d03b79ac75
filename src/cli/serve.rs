//! `serve [--listen ADDR]`: the HTTP server for what Zoom sends back (see [`crate::server`]),
//! with the control socket, so that `run`, `history` and `optouts` work beside it; it
//! schedules nothing (`schedule --listen` does both). Runs until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Context, Outcome};
use crate::server::DEFAULT_LISTEN;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The address to listen on; put a TLS-terminating proxy in front of it.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// After SIGTERM or SIGINT, how long runs started through the control socket get to
    /// finish before they are stopped.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    drain: Duration,
    #[command(flatten)]
    limits: super::schedule::ClientLimits,
}

pub(super) async fn run(ctx: &Context, args: &Args) -> anyhow::Result<Outcome> {
    let listen = Some((args.listen, args.limits.limits()));
    super::schedule::run_service(ctx, None, listen, args.drain).await
}
