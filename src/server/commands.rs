//! What a user writes to the bot (`bot_notification`): `stop` opts them out of every job of
//! their account, `start` opts them back in, anything else gets the help text. The opt-out is
//! stored (durably) before Zoom gets its answer; the reply in chat is sent afterwards, since
//! Zoom waits only 3 seconds for the webhook's answer, along the path of every send (the
//! account's limiter, token renewal, retries).

use std::sync::Arc;

use serde::Deserialize;

use super::Server;
use crate::delivery::AppEngine;
use crate::state::StateError;
use crate::zoom::chat::ChatMessage;

/// `bot_notification`'s payload, the fields zoomcast uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BotNotification {
    account_id: String,
    robot_jid: String,
    user_jid: String,
    #[serde(default)]
    user_name: String,
    /// Where the user wrote: the conversation a reply goes to.
    #[serde(default)]
    to_jid: String,
    cmd: String,
}

/// A command and the reply it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Stop,
    Start,
    Help,
}

impl Command {
    /// The command in what the user wrote: its first word, in any case.
    fn parse(text: &str) -> Self {
        match text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_lowercase()
            .as_str()
        {
            "stop" => Self::Stop,
            "start" => Self::Start,
            _ => Self::Help,
        }
    }
}

const STOPPED: &str =
    "You will get no more notifications from this bot. Write `start` to get them again.";
const STARTED: &str = "You will get this bot's notifications again. Write `stop` to stop them.";
const NOT_STOPPED: &str = "You already get this bot's notifications. Write `stop` to stop them.";
pub(super) const HELP: &str = "This bot sends notifications. Write `stop` to get no more of them, `start` \
    to get them again, or `help` for this text.";

/// Handles one command: records the opt-out or opt-in, then answers in chat.
pub(super) async fn handle(
    server: &Server,
    app: &Arc<AppEngine>,
    notification: BotNotification,
) -> Result<(), StateError> {
    let optouts = server.store.optouts()?;
    let name = &app.app.name;
    let account = &notification.account_id;
    let reply = match Command::parse(&notification.cmd) {
        Command::Stop => {
            optouts
                .opt_out(
                    name,
                    account,
                    &notification.user_jid,
                    &notification.user_name,
                    chrono::Utc::now(),
                )
                .await?;
            tracing::info!("app `{name}`: a user of account {account} opted out");
            STOPPED
        }
        Command::Start => {
            if optouts
                .opt_in(name, account, &notification.user_jid)
                .await?
            {
                tracing::info!("app `{name}`: a user of account {account} opted back in");
                STARTED
            } else {
                NOT_STOPPED
            }
        }
        Command::Help => HELP,
    };
    let app = app.clone();
    server.tasks.spawn(async move {
        if let Err(e) = answer(&app, notification, reply).await {
            tracing::warn!("app `{}`: replying in chat failed: {e}", app.app.name);
        }
    });
    Ok(())
}

/// Sends `text` to the conversation the user wrote in, as the bot, the way every send goes
/// ([`crate::delivery::Engine::reply`]).
async fn answer(
    app: &AppEngine,
    n: BotNotification,
    text: &str,
) -> Result<(), crate::delivery::NotAnswered> {
    let to_jid = if n.to_jid.is_empty() {
        n.user_jid.clone()
    } else {
        n.to_jid
    };
    let tokens = app.clients.tokens(&n.account_id);
    let message = ChatMessage {
        robot_jid: n.robot_jid,
        to_jid,
        account_id: n.account_id,
        user_jid: n.user_jid,
        content: crate::card::text("zoomcast", text),
        is_markdown_support: true,
        reply_to: None,
    };
    app.engine.reply(&tokens, &message).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_word_in_any_case_is_the_command() {
        assert_eq!(Command::parse("stop"), Command::Stop);
        assert_eq!(Command::parse("  STOP please"), Command::Stop);
        assert_eq!(Command::parse("Start"), Command::Start);
        assert_eq!(Command::parse("stopping"), Command::Help);
        assert_eq!(Command::parse(""), Command::Help);
        assert_eq!(Command::parse("help"), Command::Help);
    }
}
