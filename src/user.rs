//! [`ZoomUser`]: who a recipient is at Zoom, as the Users API answers and the JID cache keeps
//! it. Vocabulary shared by the Zoom client, the state and the delivery engine.

use serde::{Deserialize, Serialize};

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
