//! `demo`: start the emulator in-process, authorize against it without a person, run
//! `jobs/example.toml`, and print the report and the messages the emulator received. Then the
//! listening half: serve Zoom's webhooks, have a recipient write `stop` to the bot (the
//! emulator sends the signed event), and run the job again without them.
//! It uses a throw-away state directory, so it never touches `./state`.

use anyhow::{Context as _, bail};
use reqwest::header::LOCATION;

use super::{Context, Outcome};
use crate::auth::login::{self, Pkce};
use std::sync::Arc;

use crate::config::{Config, DEFAULT_APP, Job};
use crate::delivery::{Engines, RunOptions};
use crate::emulator::{EmulatorHandle, Knobs};
use crate::report;
use crate::server::Server;
use tokio_util::sync::CancellationToken;

pub(super) async fn run(ctx: &Context) -> anyhow::Result<Outcome> {
    let knobs = Knobs::default();
    let emulator = EmulatorHandle::start(knobs.clone()).context("starting the emulator")?;
    let url = emulator.url();
    outln!("started the Zoom emulator on {url}");
    let mut config = Config::empty();
    for (key, value) in [
        ("client_id", knobs.client_id.as_str()),
        ("client_secret", knobs.client_secret.as_str()),
        ("robot_jid", knobs.robot_jid.as_str()),
        ("oauth_url", url.as_str()),
        ("api_url", url.as_str()),
        ("webhook_secret_token", knobs.webhook_secret.as_str()),
    ] {
        config.set(DEFAULT_APP, key, value);
    }
    let state = tempfile::Builder::new()
        .prefix("zoomcast-demo-")
        .tempdir()?;
    let demo_ctx = Context {
        config: config.clone(),
        state_dir: state.path().to_owned(),
        jobs_dir: ctx.jobs_dir.clone(),
    };
    let engines = Arc::new(Engines::new(
        Arc::new(config),
        Arc::new(demo_ctx.open_store()?),
    )?);
    let demo = engines.app(DEFAULT_APP)?;
    let (app, oauth, zoom) = (&demo.app, &demo.oauth, &demo.engine.zoom);

    // The consent step a person would do in a browser: the emulator approves and redirects.
    let pkce = Pkce::new();
    let state_param = login::new_state();
    let authorize = oauth.authorize_url(&app.redirect_uri, &state_param, &pkce.challenge);
    let response = zoom
        .http
        .get(authorize)
        .send()
        .await
        .context("opening the emulator's consent page")?;
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some((code, Some(returned_state))) = login::parse_pasted(location) else {
        bail!(
            "the emulator did not redirect with a code (answered {})",
            response.status()
        );
    };
    if returned_state != state_param {
        bail!("the emulator returned another state than the one sent");
    }
    let grant = login::complete(
        oauth,
        zoom,
        &engines.store().grants()?,
        &app.name,
        &code,
        &app.redirect_uri,
        &pkce.verifier,
    )
    .await?;
    outln!(
        "authorized as {} (account {}) with the user token; the bot token comes from client credentials",
        grant.user_email,
        grant.account_id
    );

    let job = Job::load(&demo_ctx.job_path("example"), &demo_ctx.config)?;
    outln!(
        "running job `{}` ({} recipients)",
        job.name,
        job.recipient_count
    );
    let run = engines.run(&job, RunOptions::default()).await?;
    out!("{}", report::run_report_text(&run));
    print_messages(&emulator, 0);
    let before = emulator.emulator().messages().len();
    let rerun = listen_and_stop(&emulator, &engines, &job).await?;
    out!("{}", report::run_report_text(&rerun));
    print_messages(&emulator, before);
    Ok(if run.failures.is_empty() && rerun.failures.is_empty() {
        Outcome::Done
    } else {
        Outcome::SomeRecipientsFailed
    })
}

/// The listening half: `serve` on a free loopback port, a recipient writes `stop` to the bot,
/// and the job runs again without them.
async fn listen_and_stop(
    emulator: &EmulatorHandle,
    engines: &Arc<Engines>,
    job: &Job,
) -> anyhow::Result<crate::delivery::RunReport> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let server = tokio::spawn(
        Server::new(engines.clone(), crate::server::Limits::default())
            .serve(listener, stop.clone()),
    );
    let mut knobs = emulator.emulator().knobs();
    knobs.webhook_url = Some(format!("http://{addr}/webhooks/zoom"));
    emulator.emulator().set_knobs(knobs);
    outln!("serving Zoom's webhooks on http://{addr}; ana@example.com writes `stop` to the bot");
    let answer = reqwest::Client::new()
        .post(format!("{}/_emulator/events", emulator.url()))
        .json(&serde_json::json!({
            "event": "bot_notification", "user": "ana@example.com", "cmd": "stop",
        }))
        .send()
        .await
        .context("asking the emulator to send the event")?;
    let answer: serde_json::Value = answer.json().await?;
    outln!(
        "zoomcast answered the signed event with HTTP {}",
        answer["status"]
    );
    // The reply in chat goes out after the webhook's answer; the server's drain waits for it.
    stop.cancel();
    server.await.context("the server stopped")?;
    outln!("running job `{}` again", job.name);
    engines.run(job, RunOptions::default()).await
}

/// Prints the messages the emulator delivered, from the `skip`th on.
fn print_messages(emulator: &EmulatorHandle, skip: usize) {
    outln!("messages the emulator delivered:");
    for m in emulator.emulator().messages().into_iter().skip(skip) {
        let body = m.content["body"][0]["text"].as_str().unwrap_or("");
        outln!(
            "  to {:18} {} | {}",
            m.to_email,
            m.content["head"]["text"].as_str().unwrap_or(""),
            body
        );
    }
}
