//! `emulator [--port N]`: serve the Zoom emulator on loopback until Ctrl-C.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use super::Outcome;
use crate::emulator::{self, Emulator, Knobs, RetryAfterStyle};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The port (on 127.0.0.1).
    #[arg(long, default_value_t = 4198)]
    port: u16,
    /// Delay before answering each /v2 call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Sends accepted per second; more are answered 429.
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Users API calls (lookups) accepted per second; more are answered 429.
    #[arg(long)]
    lookup_rate_limit: Option<u32>,
    /// The Retry-After form on per-second 429s.
    #[arg(long, value_enum, default_value = "seconds")]
    retry_after: RetryAfterArg,
    /// Sends accepted per day (the day starts at the first send); more are answered 429 with
    /// an ISO date-time Retry-After, as Zoom's daily limit is.
    #[arg(long)]
    daily_limit: Option<u32>,
    /// Fraction (0.0-1.0) of /v2 calls answered with an injected 503.
    #[arg(long, default_value_t = 0.0)]
    fail_5xx: f64,
    /// Lifetime of user access tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    access_ttl: i64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RetryAfterArg {
    Seconds,
    HttpDate,
    Iso,
    Absent,
}

pub(super) async fn run(args: &Args) -> anyhow::Result<Outcome> {
    let knobs = Knobs {
        latency_ms: args.latency_ms,
        send_rate_limit: args.rate_limit,
        lookup_rate_limit: args.lookup_rate_limit,
        send_daily_limit: args.daily_limit,
        retry_after: match args.retry_after {
            RetryAfterArg::Seconds => RetryAfterStyle::Seconds,
            RetryAfterArg::HttpDate => RetryAfterStyle::HttpDate,
            RetryAfterArg::Iso => RetryAfterStyle::Iso,
            RetryAfterArg::Absent => RetryAfterStyle::Absent,
        },
        fail_5xx: args.fail_5xx,
        access_ttl_secs: args.access_ttl,
        ..Knobs::default()
    };
    // Before the address is announced: a signal right after start stops the emulator cleanly.
    let signals = crate::shutdown::Signals::listen().context("listening for signals")?;
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    let url = format!("http://{}", listener.local_addr()?);
    // The emulator's credentials are fixed, public test values, not secrets.
    outln!("zoom emulator listening on {url}; point zoomcast at it with:");
    outln!("  export ZOOM_OAUTH_URL={url} ZOOM_API_URL={url}");
    outln!(
        "  export ZOOM_CLIENT_ID={} ZOOM_CLIENT_SECRET={}",
        knobs.client_id,
        knobs.client_secret
    );
    outln!(
        "  export ZOOM_ROBOT_JID={} ZOOM_REDIRECT_URI=http://127.0.0.1:4199/oauth/callback",
        knobs.robot_jid
    );
    outln!("inspect: {url}/_emulator/messages  {url}/_emulator/stats  {url}/_emulator/knobs");
    let stop = signals.cancel_on_signal();
    emulator::serve(
        listener,
        Arc::new(Emulator::new(knobs)),
        stop.token().cancelled_owned(),
    )
    .await?;
    Ok(Outcome::Done)
}
