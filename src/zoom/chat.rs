//! The Chatbot API, which only a bot token may call: `POST /v2/im/chat/messages` (send),
//! `PUT` (edit) and `DELETE` (delete) `/v2/im/chat/messages/{message_id}`.

use serde::{Deserialize, Serialize};

use super::client::{read_body, read_json, read_success};
use super::{ZoomClient, ZoomError};
use crate::token::BotToken;

/// A chatbot message to one user, in Zoom's published request schema.
#[derive(Debug, Clone, Serialize)]
pub struct ChatMessage {
    /// The bot's JID (Marketplace: Features, Chatbot).
    pub robot_jid: String,
    /// The recipient's JID.
    pub to_jid: String,
    /// The account the bot posts in.
    pub account_id: String,
    /// The JID of the user who authorized the app.
    pub user_jid: String,
    /// The message card (see [`crate::card`]).
    pub content: serde_json::Value,
    /// Whether Zoom applies its Markdown parser.
    pub is_markdown_support: bool,
    /// The message this one replies to (a reminder's original).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// Zoom's 201 answer to a send.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SentMessage {
    /// The new message's id.
    pub message_id: String,
    /// Zoom's send time, `yyyy-MM-dd HH:mm:ss` in UTC.
    #[serde(default)]
    pub sent_time: String,
}

impl SentMessage {
    /// The longest message id or time zoomcast stores: Zoom's ids are a few dozen characters.
    const MAX_CHARS: usize = 200;

    /// True for an answer fit to store and print: short, with no control characters.
    fn is_plausible(&self) -> bool {
        [&self.message_id, &self.sent_time].iter().all(|text| {
            text.chars().count() <= Self::MAX_CHARS && !text.chars().any(crate::output::is_hidden)
        })
    }
}

/// Who a sent message is from, for editing or deleting it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageOwner {
    /// The bot's JID.
    pub robot_jid: String,
    /// The account it was posted in.
    pub account_id: String,
    /// The JID of the user who authorized the app.
    pub user_jid: String,
}

/// An edit: the owner and the new card.
#[derive(Debug, Clone, Serialize)]
struct Edit<'a> {
    #[serde(flatten)]
    owner: &'a MessageOwner,
    content: &'a serde_json::Value,
    is_markdown_support: bool,
}

impl ZoomClient {
    /// Replaces the card of message `id` (`PUT`).
    pub async fn edit_message(
        &self,
        token: &BotToken,
        id: &str,
        owner: &MessageOwner,
        content: &serde_json::Value,
        markdown: bool,
    ) -> Result<(), ZoomError> {
        let body = Edit {
            owner,
            content,
            is_markdown_support: markdown,
        };
        let response = self
            .http
            .put(self.message_url(id)?)
            .bearer_auth(token.access.expose())
            .json(&body)
            .send()
            .await;
        read_success(response, &[token.access.expose()]).await
    }

    /// Deletes message `id` (`DELETE`).
    pub async fn delete_message(
        &self,
        token: &BotToken,
        id: &str,
        owner: &MessageOwner,
    ) -> Result<(), ZoomError> {
        let response = self
            .http
            .delete(self.message_url(id)?)
            .query(owner)
            .bearer_auth(token.access.expose())
            .send()
            .await;
        read_success(response, &[token.access.expose()]).await
    }

    /// `/v2/im/chat/messages/{id}`, the id one path segment whatever it holds.
    fn message_url(&self, id: &str) -> Result<url::Url, ZoomError> {
        let mut url = self.endpoints.api("v2/im/chat/messages");
        url.path_segments_mut()
            .map_err(|()| ZoomError::Decode("the API URL cannot take a path".into()))?
            .push(id);
        Ok(url)
    }

    /// Sends one chatbot message.
    pub async fn send_message(
        &self,
        token: &BotToken,
        message: &ChatMessage,
    ) -> Result<SentMessage, ZoomError> {
        let response = self
            .http
            .post(self.endpoints.api("v2/im/chat/messages"))
            .bearer_auth(token.access.expose())
            .json(message)
            .send()
            .await;
        // Once Zoom has answered 2xx the message is delivered, whatever happens to the body:
        // reading it as a failure would invite a duplicate.
        match response {
            Ok(r) if r.status().is_success() => {
                let status = r.status();
                let body = read_body(r).await.map(|b| b.bytes).unwrap_or_default();
                let sent = serde_json::from_slice::<SentMessage>(&body)
                    .ok()
                    .filter(SentMessage::is_plausible);
                Ok(sent.unwrap_or_else(|| SentMessage {
                    message_id: format!("(zoom answered {status} without a readable message id)"),
                    sent_time: String::new(),
                }))
            }
            other => read_json(other, &[token.access.expose()]).await,
        }
    }
}
