//! zoomcast's own clients against an in-process emulator, for tests below the command line:
//! [`Zoom`] (an emulator with an OAuth and a Zoom client and a runtime), a person's consent,
//! and a logged-in state directory.

use std::sync::Arc;

use serde_json::Value;
use zoomcast::auth::OAuthClient;
use zoomcast::auth::login::Pkce;
use zoomcast::emulator::{EmulatorHandle, Knobs};
use zoomcast::token::{BotToken, ClientSecret, UserToken};
use zoomcast::zoom::{Endpoints, ZoomClient};

pub struct Zoom {
    pub handle: EmulatorHandle,
    pub api: ZoomClient,
    pub oauth: OAuthClient,
    pub runtime: tokio::runtime::Runtime,
}

/// The redirect URI the in-process logins use.
pub const REDIRECT: &str = "http://127.0.0.1:4199/oauth/callback";

/// An emulator with `knobs`, and zoomcast's clients pointed at it.
pub fn zoom(knobs: Knobs) -> Zoom {
    let handle = EmulatorHandle::start(knobs.clone()).unwrap();
    let url = url::Url::parse(&handle.url()).unwrap();
    let zoom = ZoomClient::new(Endpoints {
        oauth: url.clone(),
        api: url,
    })
    .unwrap();
    let oauth = OAuthClient::new(
        "default",
        &knobs.client_id,
        ClientSecret::new(knobs.client_secret),
        zoom.clone(),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    Zoom {
        handle,
        api: zoom,
        oauth,
        runtime,
    }
}

impl Zoom {
    /// Sends a raw request (one zoomcast's types would not let it write): status and body.
    pub fn answer(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        self.runtime.block_on(async {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    }

    /// Consent: the code the emulator redirects with.
    pub fn code(&self, pkce: &Pkce) -> String {
        let url = self
            .oauth
            .authorize_url(&REDIRECT.parse().unwrap(), "st", &pkce.challenge);
        let location = crate::harness::consent_redirect(url.as_str());
        let (code, state) = zoomcast::auth::login::parse_pasted(&location).unwrap();
        assert_eq!(state.as_deref(), Some("st"), "state is echoed");
        code
    }

    pub fn login(&self) -> (UserToken, String) {
        let pkce = Pkce::new();
        let code = self.code(&pkce);
        let t = self
            .runtime
            .block_on(
                self.oauth
                    .exchange_code(&code, &REDIRECT.parse().unwrap(), &pkce.verifier),
            )
            .unwrap();
        let refresh = t.refresh_token.unwrap().expose().to_owned();
        (
            UserToken::issued(t.access_token, t.expires_in, chrono::Utc::now()),
            refresh,
        )
    }

    pub fn bot(&self) -> BotToken {
        let t = self
            .runtime
            .block_on(self.oauth.client_credentials())
            .unwrap();
        assert!(
            t.refresh_token.is_none(),
            "client credentials carry no refresh token"
        );
        BotToken::issued(t.access_token, t.expires_in, chrono::Utc::now())
    }
}

/// An emulator, a state store and the app's tokens, logged in.
pub fn logged_in() -> (
    Zoom,
    tempfile::TempDir,
    zoomcast::state::Store,
    Arc<zoomcast::auth::AppTokens>,
) {
    let z = zoom(Knobs::default());
    let dir = tempfile::tempdir().unwrap();
    let store = zoomcast::state::Store::open(dir.path()).unwrap();
    let pkce = Pkce::new();
    let code = z.code(&pkce);
    let knobs = z.handle.emulator().knobs();
    let mut config = zoomcast::config::Config::empty();
    config.set("default", "client_id", &knobs.client_id);
    config.set("default", "client_secret", &knobs.client_secret);
    let app = config.app("default").unwrap();
    let grants = store.grants().unwrap();
    let bot = zoomcast::auth::bot::BotTokens::new(&app.name, z.oauth.clone(), grants.clone());
    let tokens = Arc::new(zoomcast::auth::AppTokens::new(
        &knobs.account_id,
        z.oauth.clone(),
        grants,
        Arc::new(bot),
    ));
    z.runtime.block_on(async {
        let redirect = REDIRECT.parse().unwrap();
        let grant = zoomcast::auth::login::prepare_login(
            &z.oauth,
            &z.api,
            "default",
            &code,
            &redirect,
            &pkce.verifier,
        )
        .await
        .unwrap();
        let admission = zoomcast::auth::login::Admission {
            client_id: z.oauth.client_id(),
            accounts: None,
        };
        zoomcast::auth::login::store_install(
            &store.grants().unwrap(),
            "default",
            &grant,
            &admission,
        )
        .await
        .unwrap();
    });
    (z, dir, store, tokens)
}

/// Writes `DIR/NAME.toml` sending to `emails` and loads it.
pub fn job_in(dir: &std::path::Path, name: &str, emails: &[&str]) -> zoomcast::config::Job {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, crate::harness::job_to(emails)).unwrap();
    zoomcast::config::Job::load(&path, &zoomcast::config::Config::empty()).unwrap()
}
