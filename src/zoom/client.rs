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

/// Reads a success body as `T`, or turns an error answer into a [`ZoomError`].
pub(crate) async fn read_json<T: DeserializeOwned>(
    response: Result<Response, reqwest::Error>,
) -> Result<T, ZoomError> {
    let response = response.map_err(|e| ZoomError::Network(e.without_url()))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| ZoomError::Network(e.without_url()))?;
    if !status.is_success() {
        return Err(ZoomError::from_response(status, &headers, &body));
    }
    serde_json::from_slice(&body).map_err(|e| ZoomError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
