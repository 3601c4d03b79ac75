//! The Users API: `GET /v2/users/{email | id | me}`, which only a user token may call.

use serde::{Deserialize, Serialize};

use super::client::read_json;
use super::{ZoomClient, ZoomError};
use crate::auth::token::UserToken;

/// The fields of Zoom's user object that zoomcast uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoomUser {
    /// Zoom's user id.
    pub id: String,
    /// The user's email.
    #[serde(default)]
    pub email: String,
    /// The chat JID (`...@xmpp.zoom.us`), where chatbot messages go.
    pub jid: String,
    /// The user's account.
    #[serde(default)]
    pub account_id: String,
    /// Given name (may be empty).
    #[serde(default)]
    pub first_name: String,
    /// Family name (may be empty).
    #[serde(default)]
    pub last_name: String,
    /// Display name (may be empty).
    #[serde(default)]
    pub display_name: String,
}

impl ZoomClient {
    /// Looks a user up by email or id, or `me` for the authorizing user.
    pub async fn get_user(&self, token: &UserToken, user: &str) -> Result<ZoomUser, ZoomError> {
        let mut url = self.endpoints.api("v2/users");
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push(user);
        }
        read_json(
            self.http
                .get(url)
                .bearer_auth(token.access.expose())
                .send()
                .await,
            &[token.access.expose()],
        )
        .await
    }
}
