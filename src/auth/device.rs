//! `auth login --device`: Zoom's device authorization grant (RFC 8628), for a host with no
//! browser and no reachable redirect. zoomcast asks Zoom for a device code, shows the person
//! where to approve it, and polls the token endpoint at the interval Zoom asked for, five
//! seconds slower after each `slow_down`, until the person approves (the grant is stored like
//! a code login's), denies, or the code expires.

use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

use super::login::{InstallError, identified, new_grant};
use super::oauth::{DeviceCode, OAuthClient, OAuthError};
use crate::state::Grant;
use crate::zoom::ZoomClient;

/// What `slow_down` adds to the polling interval (RFC 8628, section 3.5).
const SLOW_DOWN: Duration = Duration::from_secs(5);
/// The shortest and longest intervals zoomcast polls at, whatever Zoom says.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// The longest zoomcast waits for an approval, whatever lifetime Zoom gives the code.
const MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// What one poll learned.
#[derive(Debug, PartialEq, Eq)]
enum Poll {
    /// Not decided yet: poll again after the interval.
    Pending,
    /// Too fast: poll again after a longer interval.
    SlowDown,
    /// The person refused.
    Denied,
    /// The code expired before a decision.
    Expired,
}

/// Reads a refusal of the token endpoint as a step of the device flow, if it is one.
fn as_poll(error: &OAuthError) -> Option<Poll> {
    let OAuthError::Rejected { error, .. } = error else {
        return None;
    };
    match error.as_str() {
        "authorization_pending" => Some(Poll::Pending),
        "slow_down" => Some(Poll::SlowDown),
        "access_denied" => Some(Poll::Denied),
        "expired_token" => Some(Poll::Expired),
        _ => None,
    }
}

/// Runs the device flow for `app`: `show` tells the person where to go. Returns the grant,
/// with who approved it, to be stored (see [`super::login::store_install`]).
pub async fn authorize(
    oauth: &OAuthClient,
    zoom: &ZoomClient,
    app: &str,
    show: impl FnOnce(&DeviceCode),
) -> anyhow::Result<Grant> {
    let code = oauth.device_code().await?;
    show(&code);
    // Bounded whatever Zoom answers: a code lives 15 minutes there.
    let seconds = |s: i64| Duration::from_secs(u64::try_from(s).unwrap_or(0));
    let deadline = Instant::now() + seconds(code.expires_in).min(MAX_LIFETIME);
    let mut interval = seconds(code.interval).clamp(MIN_INTERVAL, MAX_INTERVAL);
    let again = format!("run `zoomcast auth login --device --app {app}` again");
    let response = loop {
        let now = Instant::now();
        if now >= deadline {
            bail!("the code expired before anyone approved it; {again}");
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        match oauth.poll_device(&code.device_code).await {
            Ok(response) => break response,
            Err(e) => match as_poll(&e) {
                Some(Poll::Pending) => {}
                Some(Poll::SlowDown) => interval = (interval + SLOW_DOWN).min(MAX_INTERVAL),
                Some(Poll::Denied) => bail!("the authorization was denied at Zoom; {again}"),
                Some(Poll::Expired) => {
                    bail!("the code expired before anyone approved it; {again}")
                }
                // RFC 8628, 3.5: poll less often after a failure to connect (and a 429).
                None if e.is_transient() => {
                    interval = (interval + SLOW_DOWN).min(MAX_INTERVAL);
                    tracing::warn!("polling Zoom for the authorization failed, retrying: {e}");
                }
                None => return Err(e.into()),
            },
        }
    };
    identified(oauth, zoom, new_grant(oauth, &response)?)
        .await
        .map_err(|e| match e {
            InstallError::Identify(e) => e.context(format!(
                "looking up the authorizing user (GET /v2/users/me) failed, so nothing was \
                 stored and the new tokens were revoked; {again}"
            )),
            other => other.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn refusals_are_read_as_steps_of_the_flow() {
        let refusal = |error: &str| OAuthError::Rejected {
            status: StatusCode::BAD_REQUEST,
            error: error.into(),
            reason: String::new(),
        };
        assert_eq!(
            as_poll(&refusal("authorization_pending")),
            Some(Poll::Pending)
        );
        assert_eq!(as_poll(&refusal("slow_down")), Some(Poll::SlowDown));
        assert_eq!(as_poll(&refusal("access_denied")), Some(Poll::Denied));
        assert_eq!(as_poll(&refusal("expired_token")), Some(Poll::Expired));
        assert_eq!(as_poll(&refusal("invalid_grant")), None);
    }
}
