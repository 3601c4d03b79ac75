//! The `[message]` table as written: [`MessageFile`] mirrors it exactly; the checker
//! ([`super::check_message`]) turns it into the compiled [`crate::render::MessageTemplate`]: a `head` with a text `body`, or with typed
//! `[[message.blocks]]` (message, fields, actions, attachments, divider), or a whole `content`
//! JSON template. Every problem is reported with its line and column: a key in the wrong kind
//! of block, a missing one, a button style Zoom does not have, a template that does not
//! compile or uses a variable nobody has, and a card that breaks Zoom's limits when rendered
//! with sample values.

use serde::Deserialize;
use toml::Spanned;

/// `[message]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageFile {
    pub(super) head: Option<Spanned<String>>,
    pub(super) sub_head: Option<Spanned<String>>,
    pub(super) body: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) blocks: Vec<Spanned<BlockFile>>,
    pub(super) content: Option<Spanned<String>>,
    /// Whether Zoom applies its Markdown parser.
    #[serde(default)]
    pub(super) markdown: bool,
}

/// One `[[message.blocks]]` as written: which keys belong to which `type` is checked after
/// reading, so that a misplaced key is named with its line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BlockFile {
    #[serde(rename = "type")]
    pub(super) kind: Spanned<String>,
    pub(super) text: Option<Spanned<String>>,
    pub(super) items: Option<Spanned<Vec<FieldFile>>>,
    pub(super) buttons: Option<Spanned<Vec<ButtonFile>>>,
    pub(super) resource_url: Option<Spanned<String>>,
    pub(super) img_url: Option<Spanned<String>>,
    pub(super) title: Option<Spanned<String>>,
    pub(super) description: Option<Spanned<String>>,
    pub(super) ext: Option<Spanned<String>>,
    pub(super) size: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FieldFile {
    pub(super) key: Spanned<String>,
    pub(super) value: Spanned<String>,
    #[serde(default)]
    pub(super) short: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ButtonFile {
    pub(super) text: Spanned<String>,
    pub(super) value: Spanned<String>,
    pub(super) style: Option<Spanned<String>>,
}
