//! The Team Chat channels API: `GET /v2/chat/users/me/channels`, the channels the authorizing
//! user can see (a user token), a page at a time. zoomcast reads every page to address a channel
//! by name (design section 9); Zoom itself addresses channels only by JID.

use serde::{Deserialize, Serialize};

use super::client::read_json;
use super::{ZoomClient, ZoomError};
use crate::token::UserToken;

/// The most channels Zoom gives in one page.
pub const PAGE_SIZE: u32 = 50;
/// The most pages read: 50,000 channels, far beyond any user's, and a bound on what a broken
/// or hostile answer (a `next_page_token` that never ends) can make zoomcast do.
pub const MAX_PAGES: usize = 1000;

/// One channel as Zoom lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// Its name, as people see it.
    pub name: String,
    /// Its JID (`...@conference.xmpp.zoom.us`), what a message is sent to.
    pub jid: String,
}

/// One page of channels.
#[derive(Debug, Deserialize)]
pub struct ChannelPage {
    /// The channels.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// The next page's token; empty on the last page.
    #[serde(default)]
    pub next_page_token: String,
}

impl ZoomClient {
    /// The page of the user's channels `page_token` names (the first for an empty one).
    pub async fn list_channels(
        &self,
        token: &UserToken,
        page_token: &str,
    ) -> Result<ChannelPage, ZoomError> {
        let mut url = self.endpoints.api("v2/chat/users/me/channels");
        url.query_pairs_mut()
            .append_pair("page_size", &PAGE_SIZE.to_string());
        if !page_token.is_empty() {
            url.query_pairs_mut()
                .append_pair("next_page_token", page_token);
        }
        let page: ChannelPage = read_json(
            self.http
                .get(url)
                .bearer_auth(token.access.expose())
                .send()
                .await,
            &[token.access.expose()],
        )
        .await?;
        checked(page)
    }
}

/// The page, if every channel's name and JID are short and free of hidden characters (they
/// are stored, sent back as `to_jid` and printed).
fn checked(page: ChannelPage) -> Result<ChannelPage, ZoomError> {
    let sound =
        |text: &str| text.chars().count() <= 320 && !text.chars().any(crate::output::is_hidden);
    let jid_ok = |jid: &str| crate::user::is_channel_jid(&jid.to_ascii_lowercase());
    if page
        .channels
        .iter()
        .all(|c| sound(&c.name) && sound(&c.jid) && jid_ok(&c.jid))
        && sound(&page.next_page_token)
    {
        Ok(page)
    } else {
        Err(ZoomError::Decode(
            "the channel list has a name or JID that is too long, not a channel's, or holds \
             control characters"
                .into(),
        ))
    }
}

/// What a name finds among channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// One channel: its JID.
    One(String),
    /// None: the closest names (at most three), if any are close.
    Nothing(Vec<String>),
    /// Several channels share the name: their JIDs.
    Several(Vec<String>),
}

/// The channel `#name` (or `name`) names in `channels`: names compare ignoring case and the
/// spaces around them.
pub fn find(channels: &[Channel], name: &str) -> Found {
    let wanted = name.trim_start_matches('#').trim().to_lowercase();
    let same: Vec<&Channel> = channels
        .iter()
        .filter(|c| c.name.trim().to_lowercase() == wanted)
        .collect();
    match same.as_slice() {
        [one] => Found::One(one.jid.to_ascii_lowercase()),
        [] => Found::Nothing(closest(channels, &wanted)),
        several => Found::Several(several.iter().map(|c| c.jid.to_ascii_lowercase()).collect()),
    }
}

/// Up to three names nearest `wanted`, nearest first, each within a third of its length.
fn closest(channels: &[Channel], wanted: &str) -> Vec<String> {
    let mut near: Vec<(usize, &str)> = channels
        .iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(wanted, &c.name.to_lowercase()),
                c.name.as_str(),
            )
        })
        .filter(|(distance, name)| *distance <= 2.max(name.chars().count() / 3))
        .collect();
    near.sort_unstable();
    near.dedup_by(|a, b| a.1 == b.1);
    near.into_iter()
        .take(3)
        .map(|(_, name)| name.to_owned())
        .collect()
}

impl Found {
    /// Why a recipient `#name` cannot be sent to, for the run's report; `None` for one channel.
    pub fn failure(&self, name: &str) -> Option<String> {
        let name = crate::output::clean(name, 80);
        match self {
            Self::One(_) => None,
            Self::Nothing(near) if near.is_empty() => Some(format!(
                "no channel named `{name}` is visible to the authorizing user; `zoomcast channels` lists them"
            )),
            Self::Nothing(near) => Some(format!(
                "no channel named `{name}`; the closest: {}",
                near.iter()
                    .map(|n| format!("#{}", crate::output::clean(n, 80)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Self::Several(jids) => Some(format!(
                "{} channels are named `{name}`: {}; address the one meant by its JID",
                jids.len(),
                jids.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str, jid: &str) -> Channel {
        Channel {
            name: name.into(),
            jid: format!("{jid}@conference.xmpp.zoom.us"),
        }
    }

    #[test]
    fn a_name_finds_one_channel_or_says_which_are_close_or_which_share_it() {
        let channels = [
            channel("General", "general"),
            channel("standup", "standup-eng"),
            channel("standup", "standup-ops"),
            channel("team-01", "team-01"),
            channel("team-02", "team-02"),
        ];
        assert_eq!(
            find(&channels, "#general"),
            Found::One("general@conference.xmpp.zoom.us".into())
        );
        assert_eq!(
            find(&channels, "#genral"),
            Found::Nothing(vec!["General".into()])
        );
        let Found::Nothing(near) = find(&channels, "#team-0") else {
            panic!("no such channel");
        };
        assert_eq!(near, ["team-01", "team-02"]);
        assert_eq!(find(&channels, "#payroll"), Found::Nothing(vec![]));
        let several = find(&channels, "#standup");
        let why = several.failure("#standup").unwrap();
        assert!(
            why.contains("standup-eng@conference.xmpp.zoom.us")
                && why.contains("standup-ops@conference.xmpp.zoom.us"),
            "{why}"
        );
    }
}
