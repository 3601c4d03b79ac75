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

impl ZoomUser {
    /// The longest field zoomcast accepts (Zoom's ids, JIDs, names and emails are far shorter).
    const MAX_CHARS: usize = 320;

    /// The user, if every field is short and free of control characters: these are stored,
    /// sent back to Zoom as `to_jid` and printed.
    fn checked(self) -> Result<Self, ZoomError> {
        let fields = [
            &self.id,
            &self.email,
            &self.jid,
            &self.account_id,
            &self.first_name,
            &self.last_name,
            &self.display_name,
        ];
        let sound = fields.iter().all(|f| {
            f.chars().count() <= Self::MAX_CHARS && !f.chars().any(crate::output::is_hidden)
        });
        if sound {
            Ok(self)
        } else {
            Err(ZoomError::Decode(
                "the user object has a field that is too long or holds control characters".into(),
            ))
        }
    }
}

impl ZoomClient {
    /// Looks a user up by email or id, or `me` for the authorizing user.
    pub async fn get_user(&self, token: &UserToken, user: &str) -> Result<ZoomUser, ZoomError> {
        let mut url = self.endpoints.api("v2/users");
        url.path_segments_mut()
            .map_err(|()| ZoomError::Decode("the API URL cannot take a path".into()))?
            .push(user);
        let found: ZoomUser = read_json(
            self.http
                .get(url)
                .bearer_auth(token.access.expose())
                .send()
                .await,
            &[token.access.expose()],
        )
        .await?;
        found.checked()
    }
}
