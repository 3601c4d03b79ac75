//! [`RenderError`]: why a message could not be rendered for a recipient, as the template
//! ([`super::template`]) and the render worker ([`super::sandbox`]) say it.

use serde::{Deserialize, Serialize};

/// Why a message could not be rendered for a recipient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RenderError {
    /// A template failed.
    #[error("rendering message.{name}: {message}")]
    Text {
        /// Which text.
        name: String,
        /// What failed.
        message: String,
    },
    /// The card breaks Zoom's limits.
    #[error("the rendered message breaks Zoom's limits: {}", .0.join("; "))]
    Card(Vec<String>),
    /// No render could be made, through no fault of the template (the process rendering it
    /// did not start, or was stopped from outside): not a recipient's failure.
    #[error("the message could not be rendered: {0}")]
    Unavailable(String),
}
