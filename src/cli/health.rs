//! `health [ADDR]`: asks a running `serve` or `schedule --listen` for `/healthz`, exiting 0
//! when it answers 200 and 1 otherwise: a container's `HEALTHCHECK` in an image with no shell
//! or curl. It needs no configuration.

use std::time::Duration;

use super::Outcome;
use crate::zoom::error::Unreachable;

/// How long the probe waits for an answer.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Where the server listens (its `--listen`).
    #[arg(value_name = "ADDR", default_value = "127.0.0.1:4199")]
    addr: std::net::SocketAddr,
}

pub(super) async fn run(args: &Args) -> anyhow::Result<Outcome> {
    let url = format!("http://{}/healthz", args.addr);
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .no_proxy()
        .build()?;
    let answer = client
        .get(&url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("no answer from {}", Unreachable::from(e)))?;
    let status = answer.status();
    if !status.is_success() {
        let body = answer.text().await.unwrap_or_default();
        anyhow::bail!(
            "{url} answered {status}: {}",
            crate::output::clean(body.trim(), 200)
        );
    }
    outln!("{url}: ok");
    Ok(Outcome::Done)
}
