//! [`ZoomClient`]: one shared `reqwest::Client` plus the two base URLs (`ZOOM_OAUTH_URL`,
//! `ZOOM_API_URL`), which is the seam the emulator and tests use to stand in for Zoom.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Response;
use serde::de::DeserializeOwned;
use url::Url;

use super::ZoomError;

/// Where Zoom lives: `https://zoom.us` for OAuth and `https://api.zoom.us` for `/v2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Base of `/oauth/authorize`, `/oauth/token` and `/oauth/revoke`.
    pub oauth: Url,
    /// Base of `/v2/...`.
    pub api: Url,
}

impl Endpoints {
    /// A URL under the API base, e.g. `api("v2/users/me")`.
    pub fn api(&self, path: &str) -> Url {
        join(&self.api, path)
    }

    /// A URL under the OAuth base, e.g. `oauth("oauth/token")`.
    pub fn oauth(&self, path: &str) -> Url {
        join(&self.oauth, path)
    }
}

fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{prefix}/{}", path.trim_start_matches('/')));
    url
}

/// A cheap-to-clone handle for every call zoomcast makes to Zoom.
#[derive(Clone, Debug)]
pub struct ZoomClient {
    pub(crate) http: reqwest::Client,
    pub(crate) endpoints: Arc<Endpoints>,
}

impl ZoomClient {
    /// Builds the client: timeouts on every request, and no redirects followed (an OAuth
    /// endpoint that redirects is a misconfiguration, not something to follow with a secret).
    pub fn new(endpoints: Endpoints) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("zoomcast/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self {
            http,
            endpoints: Arc::new(endpoints),
        })
    }

    /// The base URLs this client talks to.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }
}

/// The most of an answer's body zoomcast reads: Zoom's answers are a few hundred bytes, and a
/// hostile or broken server must not make zoomcast hold more.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An answer's body, read up to [`MAX_BODY_BYTES`].
pub(crate) struct Body {
    /// The bytes read.
    pub bytes: Vec<u8>,
    /// False when the body went on past the cap (the rest was not read).
    pub whole: bool,
}

/// Reads at most [`MAX_BODY_BYTES`] of `response`'s body.
pub(crate) async fn read_body(mut response: Response) -> Result<Body, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(Body {
                bytes,
                whole: false,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Body { bytes, whole: true })
}

/// Accepts any success (whatever its body), or turns an error answer into a [`ZoomError`] as
/// [`read_json`] does.
pub(crate) async fn read_success(
    response: Result<Response, reqwest::Error>,
    presented: &[&str],
) -> Result<(), ZoomError> {
    match response {
        Ok(r) if r.status().is_success() => Ok(()),
        other => read_json::<serde_json::Value>(other, presented)
            .await
            .map(drop),
    }
}

/// Reads a success body as `T`, or turns an error answer into a [`ZoomError`] from which the
/// `presented` secrets (the token the request carried) are scrubbed.
pub(crate) async fn read_json<T: DeserializeOwned>(
    response: Result<Response, reqwest::Error>,
    presented: &[&str],
) -> Result<T, ZoomError> {
    let response = response.map_err(|e| ZoomError::Network(e.into()))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_body(response)
        .await
        .map_err(|e| ZoomError::Network(e.into()))?;
    if !status.is_success() {
        return Err(ZoomError::from_response(
            status,
            &headers,
            &body.bytes,
            presented,
        ));
    }
    if !body.whole {
        return Err(ZoomError::Decode(format!(
            "the answer is larger than {} KiB",
            MAX_BODY_BYTES / 1024
        )));
    }
    serde_json::from_slice(&body.bytes)
        .map_err(|e| ZoomError::Decode(crate::output::clean(&e.to_string(), 200)))
}

/// `text` with every `secrets` value of four characters or more replaced by `[redacted]`, as
/// written and as JSON escapes it (`/` as `\/`).
pub fn scrub(mut text: String, secrets: &[&str]) -> String {
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        for form in [(*secret).to_owned(), secret.replace('/', "\\/")] {
            if text.contains(&form) {
                text = text.replace(&form, "[redacted]");
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server on loopback that answers every request with `status` and a body of `size`
    /// bytes of JSON.
    async fn serve_huge(status: u16, size: usize) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let body = format!(r#"{{"code":1,"message":"{}"}}"#, "x".repeat(size));
        let app = axum::Router::new().fallback(move || {
            let body = body.clone();
            async move { (axum::http::StatusCode::from_u16(status).unwrap(), body) }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[test]
    fn scrub_finds_a_secret_as_written_and_as_json_escapes_it() {
        let text = r#"{"reason":"a/b+c= and a\/b+c= and abc"}"#.to_owned();
        assert_eq!(
            scrub(text, &["a/b+c=", "ab"]),
            r#"{"reason":"[redacted] and [redacted] and abc"}"#
        );
    }

    #[tokio::test]
    async fn a_body_is_read_up_to_the_cap_and_no_further() {
        let api = serve_huge(200, 3 * MAX_BODY_BYTES).await;
        let response = reqwest::get(api).await.unwrap();
        let body = read_body(response).await.unwrap();
        assert!(!body.whole);
        assert_eq!(body.bytes.len(), MAX_BODY_BYTES);
        let small = serve_huge(200, 10).await;
        let body = read_body(reqwest::get(small).await.unwrap()).await.unwrap();
        assert!(body.whole);
        assert_eq!(
            body.bytes.len(),
            r#"{"code":1,"message":"xxxxxxxxxx"}"#.len()
        );
    }

    #[tokio::test]
    async fn a_huge_answer_is_read_only_up_to_the_cap() {
        use crate::token::{AccessToken, UserToken};
        let token = UserToken::issued(AccessToken::new("t"), 3600, chrono::Utc::now());
        for (status, says) in [(200, "larger than 1024 KiB"), (400, "zoom answered 400")] {
            let api = serve_huge(status, 20 * MAX_BODY_BYTES).await;
            let zoom = ZoomClient::new(Endpoints {
                oauth: api.clone(),
                api,
            })
            .unwrap();
            let err = zoom.get_user(&token, "ana@example.com").await.unwrap_err();
            let text = err.to_string();
            assert!(text.contains(says), "{text:.200}");
            assert!(
                text.len() < 1000,
                "the message is cut: {} bytes",
                text.len()
            );
        }
    }

    #[test]
    fn join_keeps_a_base_path() {
        let endpoints = Endpoints {
            oauth: Url::parse("http://127.0.0.1:9/zoom/").unwrap(),
            api: Url::parse("https://api.zoom.us").unwrap(),
        };
        assert_eq!(
            endpoints.oauth("oauth/token").as_str(),
            "http://127.0.0.1:9/zoom/oauth/token"
        );
        assert_eq!(
            endpoints.api("/v2/users/me").as_str(),
            "https://api.zoom.us/v2/users/me"
        );
    }
}
