//! The Users API: `GET /v2/users/{email | id | me}`, which only a user token may call.

use super::client::read_json;
use super::{ZoomClient, ZoomError};
use crate::token::UserToken;
use crate::user::ZoomUser;

/// The longest user field zoomcast accepts (Zoom's ids, JIDs, names and emails are far shorter).
const MAX_FIELD_CHARS: usize = 320;

/// The user, if every field is short, its identifiers free of hidden characters and its
/// names free of control and bidirectional ones (a name may hold the joiners of its emoji):
/// these are stored, sent back to Zoom as `to_jid` and printed.
fn checked(user: ZoomUser) -> Result<ZoomUser, ZoomError> {
    let short = |f: &String| f.chars().count() <= MAX_FIELD_CHARS;
    let ids = [
        &user.id,
        &user.email,
        &user.jid,
        &user.account_id,
        &user.role_id,
    ];
    let names = [
        &user.first_name,
        &user.last_name,
        &user.display_name,
        &user.role_name,
    ];
    let sound = ids
        .iter()
        .all(|f| short(f) && !f.chars().any(crate::output::is_hidden))
        && names
            .iter()
            .all(|f| short(f) && !f.chars().any(crate::output::is_disruptive));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn user(display_name: &str, email: &str) -> ZoomUser {
        ZoomUser {
            id: "u1".into(),
            email: email.into(),
            jid: "u1@xmpp.zoom.us".into(),
            account_id: "acct".into(),
            display_name: display_name.into(),
            ..ZoomUser::default()
        }
    }

    #[test]
    fn a_name_may_hold_the_joiners_of_its_emoji_and_an_identifier_no_hidden_character() {
        // A technologist emoji (a zero-width joiner) and a Persian name's non-joiner.
        assert!(checked(user("Ana 👩\u{200d}💻", "ana@example.com")).is_ok());
        assert!(checked(user("می\u{200c}خواهم", "ana@example.com")).is_ok());
        assert!(checked(user("Ana\u{202e}", "ana@example.com")).is_err());
        assert!(checked(user("Ana", "ana\u{200b}@example.com")).is_err());
    }
}
