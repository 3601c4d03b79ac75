//! [`ZoomUser`]: who a recipient is at Zoom, as the Users API answers and the JID cache keeps
//! it. Vocabulary shared by the Zoom client, the state and the delivery engine.

use serde::{Deserialize, Serialize};

/// The fields of Zoom's user object that zoomcast uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The user's role in the account (`Owner`, `Admin`, `Member`, or a custom role's name):
    /// read from Zoom for the user who authorizes, never kept in the JID cache.
    #[serde(default, skip_serializing)]
    pub role_name: String,
    /// The role's id (`0` owner, `1` admin, `2` member, others custom), likewise.
    #[serde(default, skip_serializing)]
    pub role_id: String,
}

impl ZoomUser {
    /// The user's role as zoomcast records it with a grant: Zoom's role name, or, when Zoom
    /// gave only the id of a built-in role, its name; empty when Zoom said neither.
    pub fn role(&self) -> String {
        match (self.role_name.trim(), self.role_id.trim()) {
            ("", "0") => "Owner".to_owned(),
            ("", "1") => "Admin".to_owned(),
            ("", "2") => "Member".to_owned(),
            (name, _) => name.to_owned(),
        }
    }
}

/// Whether `role` (as [`ZoomUser::role`] records it) is an account's owner or admin: `None`
/// when the role is not known.
pub fn is_admin_role(role: &str) -> Option<bool> {
    if role.is_empty() {
        return None;
    }
    Some(role.eq_ignore_ascii_case("owner") || role.eq_ignore_ascii_case("admin"))
}

/// The longest JID zoomcast takes (Zoom's are about 40 characters).
const MAX_JID_CHARS: usize = 128;

/// Whether `jid` has the form of a Zoom chat user's JID: `LOCAL@xmpp.zoom.us`, the local
/// part letters, digits, `.`, `-` and `_` (lower case, as Zoom writes them).
pub fn is_user_jid(jid: &str) -> bool {
    jid.strip_suffix("@xmpp.zoom.us").is_some_and(is_jid_local)
}

/// Whether `jid` has the form of a Zoom chat channel's JID: `LOCAL@conference.xmpp.zoom.us`.
pub fn is_channel_jid(jid: &str) -> bool {
    jid.strip_suffix("@conference.xmpp.zoom.us")
        .is_some_and(is_jid_local)
}

fn is_jid_local(local: &str) -> bool {
    (1..=MAX_JID_CHARS).contains(&local.len())
        && local
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c))
}

/// Whether `id` has the form of a Zoom account id: 1 to 64 letters, digits, `-` and `_`. The
/// state directory names grant files after accounts, so nothing else is taken for one, even
/// from Zoom.
pub fn is_account_id(id: &str) -> bool {
    is_name(id)
}

/// Whether `name` is 1 to 64 letters, digits, `-` and `_`: safe as a file name and in a URL
/// path. App names and account ids have this form.
pub fn is_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
