//! `demo`: start the emulator in-process, authorize against it without a person, run
//! `jobs/example.toml`, and print the report and the messages the emulator received. Then the
//! listening half: serve Zoom's webhooks, have a recipient write `stop` to the bot (the
//! emulator sends the signed event), and run the job again without them; then an admin of a
//! second account installs the app at the server's `/install`, and a job of that account runs.
//! It uses a throw-away state directory, so it never touches `./state`.

use anyhow::{Context as _, bail};
use reqwest::header::LOCATION;

use super::{Context, Outcome};
use crate::auth::login::{self, Pkce};
use std::sync::Arc;

use crate::config::{Config, DEFAULT_APP, Job};
use crate::delivery::{AppEngine, Engines, RunOptions};
use crate::emulator::{EmulatorHandle, Knobs};
use crate::report;
use crate::server::Server;
use tokio_util::sync::CancellationToken;

pub(super) async fn run(ctx: &Context) -> anyhow::Result<Outcome> {
    let knobs = Knobs::default();
    let emulator = EmulatorHandle::start(knobs.clone()).context("starting the emulator")?;
    let url = emulator.url();
    outln!("started the Zoom emulator on {url}");
    // The server's address is the app's redirect URI: installs come back to it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let served = format!("http://{}", listener.local_addr()?);
    let callback = format!("{served}/oauth/callback");
    let mut config = Config::empty();
    for (key, value) in [
        ("redirect_uri", callback.as_str()),
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
        keys: ctx.keys.clone(),
        wait: ctx.wait,
    };
    let engines = Arc::new(Engines::new(
        Arc::new(config),
        Arc::new(demo_ctx.open_store()?),
    )?);
    let demo = engines.app(DEFAULT_APP)?;
    log_in(&demo, &engines).await?;

    let job = Job::load(&example_job(&demo_ctx, &state)?, &demo_ctx.config)?;
    outln!(
        "running job `{}` ({} recipients)",
        job.name,
        job.recipient_count
    );
    let run = engines.run(&job, RunOptions::default()).await?;
    out!("{}", report::run_report_text(&run));
    print_messages(&emulator, 0);

    let stop = CancellationToken::new();
    let serving = tokio::spawn(
        Server::new(engines.clone(), crate::server::Limits::default(), None)
            .serve(listener, stop.clone()),
    );
    let mut knobs = emulator.emulator().knobs();
    knobs.webhook_url = Some(format!("{served}/webhooks/zoom"));
    emulator.emulator().set_knobs(knobs);
    let before = emulator.emulator().messages().len();
    let rerun = listen_and_stop(&emulator, &engines, &job, &served).await?;
    out!("{}", report::run_report_text(&rerun));
    print_messages(&emulator, before);

    let before = emulator.emulator().messages().len();
    install_second_account(&emulator, &served).await?;
    let second = second_account_job(&demo_ctx, &state)?;
    outln!("running job `{}` in the second account", second.name);
    let other = engines.run(&second, RunOptions::default()).await?;
    out!("{}", report::run_report_text(&other));
    print_messages(&emulator, before);
    // The replies in chat go out after the webhooks' answers; the server's drain waits for them.
    stop.cancel();
    serving.await.context("the server stopped")?;
    let failed = [&run, &rerun, &other]
        .iter()
        .any(|r| !r.failures.is_empty());
    Ok(if failed {
        Outcome::SomeRecipientsFailed
    } else {
        Outcome::Done
    })
}

/// `auth login` without a person: the consent step a person would do in a browser is the
/// emulator's, which approves and redirects at once.
async fn log_in(demo: &AppEngine, engines: &Engines) -> anyhow::Result<()> {
    let (app, oauth, zoom) = (&demo.app, &demo.clients.oauth, &demo.clients.zoom);

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
    let grant = login::prepare_login(
        oauth,
        zoom,
        &app.name,
        &code,
        &app.redirect_uri,
        &pkce.verifier,
    )
    .await?;
    let admission = login::Admission {
        client_id: &app.client_id,
        accounts: None,
    };
    let grants = engines.store().grants()?;
    let grant = login::store_install(&grants, &app.name, &grant, &admission).await?;
    outln!(
        "authorized as {} (account {}) with the user token; the bot token comes from client credentials",
        grant.user_email,
        grant.account_id
    );
    Ok(())
}

/// The listening half: a recipient writes `stop` to the bot, the emulator sends the signed
/// event to the server, and the job runs again without them.
async fn listen_and_stop(
    emulator: &EmulatorHandle,
    engines: &Arc<Engines>,
    job: &Job,
    served: &str,
) -> anyhow::Result<crate::delivery::RunReport> {
    outln!("serving Zoom's webhooks on {served}; ana@example.com writes `stop` to the bot");
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
    outln!("running job `{}` again", job.name);
    engines.run(job, RunOptions::default()).await
}

/// An admin of the emulator's second account installs the app from a browser: `/install` sets
/// the state cookie and sends the browser to Zoom, which (the emulator approving at once) sends
/// it back to `/oauth/callback`, where the server stores that account's grant.
async fn install_second_account(emulator: &EmulatorHandle, served: &str) -> anyhow::Result<()> {
    let admin = "admin@second.example";
    let mut knobs = emulator.emulator().knobs();
    knobs.login_as = admin.to_owned();
    emulator.emulator().set_knobs(knobs);
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let install = browser.get(format!("{served}/install")).send().await?;
    let cookie = install
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("/install set no state cookie")?
        .to_owned();
    let consent = browser.get(location(&install)?).send().await?;
    let callback = browser
        .get(location(&consent)?)
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await?;
    if callback.status() != reqwest::StatusCode::FOUND {
        bail!("the install failed: {}", callback.text().await?);
    }
    outln!(
        "{admin}, an admin of the emulator's second account, installed the app at {served}/install; \
         the server stored that account's grant beside the first one's"
    );
    Ok(())
}

/// Where a redirect points.
fn location(response: &reqwest::Response) -> anyhow::Result<String> {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .with_context(|| format!("expected a redirect, got {}", response.status()))
}

/// The example job: `jobs/example.toml` of the jobs directory, or (outside the repository,
/// from an installed binary) the copy built into the binary.
fn example_job(ctx: &Context, state: &tempfile::TempDir) -> anyhow::Result<std::path::PathBuf> {
    let path = ctx.job_path("example");
    if path.exists() {
        return Ok(path);
    }
    let built_in = state.path().join("example.toml");
    std::fs::write(&built_in, include_str!("../../jobs/example.toml"))?;
    Ok(built_in)
}

/// A job of the second account: with two accounts installed, a job names the one it sends in.
fn second_account_job(ctx: &Context, state: &tempfile::TempDir) -> anyhow::Result<Job> {
    let path = state.path().join("second-account.toml");
    std::fs::write(
        &path,
        "description = \"The second account's reminder\"\n\
         account = \"emulated-account-2\"\n\n\
         [recipients]\nemails = [\"gus@second.example\", \"hana@second.example\"]\n\n\
         [message]\nhead = \"Stand-up in 10 minutes\"\n\
         body = \"Hi {{ first_name }}, the second account's stand-up starts at 09:00.\"\n",
    )?;
    Ok(Job::load(&path, &ctx.config)?)
}

/// Prints the messages the emulator delivered, from the `skip`th on.
fn print_messages(emulator: &EmulatorHandle, skip: usize) {
    outln!("messages the emulator delivered:");
    for m in emulator.emulator().messages().into_iter().skip(skip) {
        let body = m.content["body"][0]["text"].as_str().unwrap_or("");
        outln!(
            "  to {:20} {} | {}",
            m.to_email,
            m.content["head"]["text"].as_str().unwrap_or(""),
            body
        );
    }
}
