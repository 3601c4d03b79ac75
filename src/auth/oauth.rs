//! Calls to Zoom's OAuth token endpoint: the authorization-code exchange, refresh, the
//! client-credentials (bot) grant, the device authorization grant and revocation, with the
//! failures a caller branches on.

use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use crate::token::{AccessToken, ClientSecret, RefreshToken};
use crate::zoom::ZoomClient;
use crate::zoom::client::{read_body, scrub};
use base64::Engine as _;

/// What the token endpoint returns for any grant.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    /// The new access token.
    pub access_token: AccessToken,
    /// The new refresh token (user grants only; the previous one is now dead).
    pub refresh_token: Option<RefreshToken>,
    /// Seconds until the access token expires: any JSON number or numeric string, an hour if
    /// missing or unreadable.
    #[serde(default = "an_hour", deserialize_with = "lenient_seconds")]
    pub expires_in: i64,
    /// Space-separated scopes.
    #[serde(default, deserialize_with = "lenient_text")]
    pub scope: String,
}

/// Zoom's answer to `POST /oauth/devicecode`: what the person is shown, and the device code
/// to poll the token endpoint with.
#[derive(Clone, Deserialize)]
pub struct DeviceCode {
    /// The code the token endpoint is polled with: a bearer credential until it is used.
    pub device_code: String,
    /// The code the person types at `verification_uri`.
    #[serde(deserialize_with = "lenient_text")]
    pub user_code: String,
    /// Where the person goes.
    #[serde(deserialize_with = "lenient_text")]
    pub verification_uri: String,
    /// The same with the user code in it, when Zoom gives one.
    #[serde(default, deserialize_with = "lenient_text")]
    pub verification_uri_complete: String,
    /// Seconds the codes live (Zoom: 900).
    #[serde(default = "fifteen_minutes", deserialize_with = "lenient_seconds")]
    pub expires_in: i64,
    /// Seconds to wait between polls (RFC 8628: 5 when left out).
    #[serde(default = "five_seconds", deserialize_with = "lenient_seconds")]
    pub interval: i64,
}

impl std::fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCode")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

fn fifteen_minutes() -> i64 {
    900
}

fn five_seconds() -> i64 {
    5
}

/// Zoom's documented access-token lifetime, for an answer that leaves `expires_in` out.
fn an_hour() -> i64 {
    3600
}

/// `expires_in` as any JSON number or numeric string, saturated to `i64`; anything else is an
/// hour. A refresh answer is read after Zoom has already rotated the refresh token, so an odd
/// field there must not make zoomcast drop the answer (and with it the only live grant).
fn lenient_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[allow(clippy::cast_possible_truncation)] // `as` saturates, which is what is wanted
    let seconds = match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f as i64),
        _ => None,
    };
    Ok(seconds.unwrap_or_else(an_hour))
}

/// A string field that may be missing, null or of another type (empty then); kept short and
/// free of control characters, since it is stored and printed.
fn lenient_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => crate::output::clean(&s, 1000),
        _ => String::new(),
    })
}

/// The most of Zoom's `reason` (or body) an error keeps.
const MAX_REASON_CHARS: usize = 300;

/// Reads a token endpoint's success answer.
pub fn parse_token_response(body: &[u8]) -> Result<TokenResponse, String> {
    // serde's own message may quote a value of the answer, and the answer holds new tokens:
    // say only where it broke.
    serde_json::from_slice(body).map_err(|e| {
        format!(
            "not a token answer ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })
}

/// A failed call to the token endpoint.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The refresh token (or authorization code) is dead: a person must authorize again.
    #[error(
        "the authorization of app `{app}` is no longer valid (zoom said: {reason}); \
         run `zoomcast auth login --app {app}` to authorize again"
    )]
    GrantRevoked {
        /// The app whose grant died.
        app: String,
        /// Zoom's `reason`.
        reason: String,
    },
    /// Zoom refused an authorization code during `auth login`.
    #[error(
        "zoom refused the authorization code of app `{app}` ({reason}); a code works once and \
         for 5 minutes, and the redirect URI must equal the one registered for the app; run \
         `zoomcast auth login --app {app}` again"
    )]
    CodeRejected {
        /// The app.
        app: String,
        /// Zoom's `reason`.
        reason: String,
    },
    /// Zoom rejected the client id or secret.
    #[error(
        "zoom rejected the client id or secret of app `{app}` ({reason}); check ZOOM_CLIENT_ID \
         and ZOOM_CLIENT_SECRET (or client_id and client_secret in zoomcast.toml)"
    )]
    InvalidClient {
        /// The app.
        app: String,
        /// Zoom's `reason`.
        reason: String,
    },
    /// Any other refusal.
    #[error("zoom's token endpoint answered {status}: {error}: {reason}")]
    Rejected {
        /// HTTP status.
        status: StatusCode,
        /// OAuth `error`.
        error: String,
        /// Zoom's `reason`.
        reason: String,
    },
    /// No answer (connect, timeout).
    #[error("could not reach zoom's token endpoint at {0}")]
    Network(crate::zoom::error::Unreachable),
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    reason: String,
}

/// The token endpoint for one app: its client id and secret, and the HTTP client.
#[derive(Clone, Debug)]
pub struct OAuthClient {
    app: String,
    client_id: String,
    client_secret: ClientSecret,
    zoom: ZoomClient,
}

/// Which grant a token request is for: Zoom's answers mean different things for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    DeviceCode,
}

impl GrantType {
    /// The `grant_type` form field.
    fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }
}

impl OAuthError {
    /// True when asking again later may succeed (network, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network(_) => true,
            Self::Rejected { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
            _ => false,
        }
    }
}

impl OAuthClient {
    /// An OAuth client for the app called `app`.
    pub fn new(app: &str, client_id: &str, client_secret: ClientSecret, zoom: ZoomClient) -> Self {
        Self {
            app: app.to_owned(),
            client_id: client_id.to_owned(),
            client_secret,
            zoom,
        }
    }

    /// The app's client id: every grant it obtains is issued to it.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The consent URL a person opens: code flow with `state` and an S256 PKCE challenge.
    pub fn authorize_url(&self, redirect_uri: &Url, state: &str, challenge: &str) -> Url {
        let mut url = self.zoom.endpoints().oauth("oauth/authorize");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri.as_str())
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        url
    }

    /// Exchanges a single-use authorization code (with its PKCE verifier) for a user grant.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &Url,
        verifier: &str,
    ) -> Result<TokenResponse, OAuthError> {
        self.token(
            GrantType::AuthorizationCode,
            &[
                ("code", code),
                ("redirect_uri", redirect_uri.as_str()),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    /// Refreshes a user grant. On success the presented refresh token is dead.
    pub async fn refresh(&self, refresh_token: &RefreshToken) -> Result<TokenResponse, OAuthError> {
        self.token(
            GrantType::RefreshToken,
            &[("refresh_token", refresh_token.expose())],
        )
        .await
    }

    /// Gets a chatbot token (client-credentials grant).
    pub async fn client_credentials(&self) -> Result<TokenResponse, OAuthError> {
        self.token(GrantType::ClientCredentials, &[]).await
    }

    /// Starts a device authorization: the codes to show the person and to poll with.
    pub async fn device_code(&self) -> Result<DeviceCode, OAuthError> {
        let mut url = self.zoom.endpoints().oauth("oauth/devicecode");
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id);
        let response = self.post_to(url, &[]).await?;
        let (status, body) = self.answer(GrantType::DeviceCode, response, &[]).await?;
        serde_json::from_slice(&body).map_err(|e| OAuthError::Rejected {
            status,
            error: "unreadable answer".into(),
            reason: format!(
                "not a device code answer (line {}, column {})",
                e.line(),
                e.column()
            ),
        })
    }

    /// Polls for the grant of a device authorization. Zoom answers `authorization_pending`,
    /// `slow_down`, `expired_token` or `access_denied` as [`OAuthError::Rejected`] until the
    /// person decides.
    pub async fn poll_device(&self, device_code: &str) -> Result<TokenResponse, OAuthError> {
        self.token(GrantType::DeviceCode, &[("device_code", device_code)])
            .await
    }

    /// Revokes a user grant at Zoom (through its access token).
    pub async fn revoke(&self, token: &AccessToken) -> Result<(), OAuthError> {
        let response = self
            .post("oauth/revoke", &[("token", token.expose())])
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = read_body(response)
            .await
            .map(|b| b.bytes)
            .unwrap_or_default();
        Err(self.classify(GrantType::RefreshToken, status, &body, &[token.expose()]))
    }

    /// A form POST to an OAuth endpoint with the app's Basic credentials.
    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<reqwest::Response, OAuthError> {
        self.post_to(self.zoom.endpoints().oauth(path), form).await
    }

    async fn post_to(
        &self,
        url: Url,
        form: &[(&str, &str)],
    ) -> Result<reqwest::Response, OAuthError> {
        self.zoom
            .http
            .post(url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .form(form)
            .send()
            .await
            .map_err(|e| OAuthError::Network(e.into()))
    }

    /// A token request: `grant`'s `grant_type` and the other `fields`.
    async fn token(
        &self,
        grant: GrantType,
        fields: &[(&str, &str)],
    ) -> Result<TokenResponse, OAuthError> {
        let mut form = vec![("grant_type", grant.as_str())];
        form.extend_from_slice(fields);
        let response = self.post("oauth/token", &form).await?;
        let presented: Vec<&str> = fields
            .iter()
            .filter(|(k, _)| {
                matches!(
                    *k,
                    "code" | "refresh_token" | "code_verifier" | "device_code"
                )
            })
            .map(|(_, v)| *v)
            .collect();
        let (status, body) = self.answer(grant, response, &presented).await?;
        parse_token_response(&body).map_err(|reason| OAuthError::Rejected {
            status,
            error: "unreadable answer".into(),
            reason,
        })
    }

    /// The status and body of a successful answer to a request for `grant`; a failed one is
    /// classified, with the `presented` secrets scrubbed from what Zoom said.
    async fn answer(
        &self,
        grant: GrantType,
        response: reqwest::Response,
        presented: &[&str],
    ) -> Result<(StatusCode, Vec<u8>), OAuthError> {
        let status = response.status();
        let body = read_body(response)
            .await
            .map_err(|e| OAuthError::Network(e.into()))?;
        if status.is_success() {
            Ok((status, body.bytes))
        } else {
            Err(self.classify(grant, status, &body.bytes, presented))
        }
    }

    /// Zoom answers a dead refresh token with 400 (401 before 2022) and `invalid_grant`
    /// (`invalid_request` before 2024); match the class, not the exact text. Zoom has been seen
    /// to quote the presented code in `reason`, so every presented secret is scrubbed from it.
    fn classify(
        &self,
        grant: GrantType,
        status: StatusCode,
        body: &[u8],
        presented: &[&str],
    ) -> OAuthError {
        let ErrorBody { error, reason } = serde_json::from_slice(body).unwrap_or_default();
        let reason = if reason.is_empty() {
            String::from_utf8_lossy(body).into_owned()
        } else {
            reason
        };
        // Everything the request carried that is secret: what it presented, the client
        // secret, and the Basic header's value (base64 of `id:secret`).
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.client_id,
            self.client_secret.expose()
        ));
        let mut secrets = presented.to_vec();
        secrets.extend([self.client_secret.expose(), basic.as_str()]);
        let reason = crate::output::clean(&scrub(reason, &secrets), MAX_REASON_CHARS);
        let error = crate::output::clean(&scrub(error, &secrets), MAX_REASON_CHARS);
        let app = self.app.clone();
        match (error.as_str(), grant) {
            ("invalid_grant" | "invalid_request", GrantType::AuthorizationCode)
                if status.is_client_error() =>
            {
                OAuthError::CodeRejected { app, reason }
            }
            ("invalid_grant" | "invalid_request", GrantType::RefreshToken)
                if status.is_client_error() =>
            {
                OAuthError::GrantRevoked { app, reason }
            }
            ("invalid_client", _) => OAuthError::InvalidClient { app, reason },
            _ => OAuthError::Rejected {
                status,
                error,
                reason,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoom::Endpoints;

    fn client() -> OAuthClient {
        let zoom = ZoomClient::new(Endpoints {
            oauth: Url::parse("http://127.0.0.1:9").unwrap(),
            api: Url::parse("http://127.0.0.1:9").unwrap(),
        })
        .unwrap();
        OAuthClient::new(
            "default",
            "client-id",
            ClientSecret::new("client-secret-1"),
            zoom,
        )
    }

    #[test]
    fn an_error_that_echoes_any_secret_of_the_request_is_scrubbed() {
        let basic = base64::engine::general_purpose::STANDARD.encode("client-id:client-secret-1");
        let body = format!(
            r#"{{"error":"invalid_client","reason":"bad client-secret-1 / Basic {basic} / presented-refresh \u001b[2J"}}"#
        );
        let err = client().classify(
            GrantType::RefreshToken,
            StatusCode::UNAUTHORIZED,
            body.as_bytes(),
            &["presented-refresh"],
        );
        let text = err.to_string();
        for secret in [
            "client-secret-1",
            basic.as_str(),
            "presented-refresh",
            "\u{1b}",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(matches!(err, OAuthError::InvalidClient { .. }), "{err:?}");
    }

    #[test]
    fn a_token_answer_is_read_whatever_its_lifetime_looks_like() {
        for (expires_in, seconds) in [
            ("3599", 3599),
            ("1e14", 100_000_000_000_000),
            ("1e300", i64::MAX),
            ("-7.5", -7),
            ("\"120\"", 120),
            ("null", 3600),
            ("[]", 3600),
        ] {
            let body = format!(
                r#"{{"access_token":"a","refresh_token":"r","expires_in":{expires_in},"scope":7}}"#
            );
            let answer = parse_token_response(body.as_bytes()).unwrap();
            assert_eq!(answer.expires_in, seconds, "{expires_in}");
            assert_eq!(answer.refresh_token.unwrap().expose(), "r");
        }
        let broken = parse_token_response(br#"{"access_token":12345678,"refresh_token":"r"}"#);
        assert!(
            !broken.unwrap_err().contains("12345678"),
            "no value is quoted"
        );
    }
}
