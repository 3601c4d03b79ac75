//! The Users API: `GET /v2/users/{email | id | me}`, which only a user token may call.

use super::client::read_json;
use super::{ZoomClient, ZoomError};
use crate::token::UserToken;
use crate::user::ZoomUser;

/// The longest user field zoomcast accepts (Zoom's ids, JIDs, names and emails are far shorter).
const MAX_FIELD_CHARS: usize = 320;

/// The user, if every field is short and free of control characters: these are stored, sent
/// back to Zoom as `to_jid` and printed.
fn checked(user: ZoomUser) -> Result<ZoomUser, ZoomError> {
    let fields = [
        &user.id,
        &user.email,
        &user.jid,
        &user.account_id,
        &user.first_name,
        &user.last_name,
        &user.display_name,
        &user.role_name,
        &user.role_id,
    ];
    let sound = fields
        .iter()
        .all(|f| f.chars().count() <= MAX_FIELD_CHARS && !f.chars().any(crate::output::is_hidden));
    if sound {
        Ok(user)
    } else {
        Err(ZoomError::Decode(
            "the user object has a field that is too long or holds control characters".into(),
        ))
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
        checked(found)
    }
}
