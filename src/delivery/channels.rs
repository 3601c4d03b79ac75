//! Channels by name (`#name`, design section 9): a recipient's channel is found among the
//! channels the authorizing user can see, read once a run (every page, with the user token,
//! paced as lookups), and its JID cached like a person's (the `jids` tree, under `#name`), so
//! later runs need no listing until the cache's time runs out. A name that finds no channel,
//! or several, fails that recipient and says why.

use chrono::Utc;

use super::Stop;
use super::call::{Tries, User, call};
use super::context::ChatCtx;
use crate::state::{CachedLookup, DeliveryState};
use crate::user::ZoomUser;
use crate::zoom::channels::{self, Channel, Found, MAX_PAGES};

impl ChatCtx<'_> {
    /// The JID of the channel `name` (`#...`) names, or the recipient's failure.
    pub(super) async fn channel(&self, name: &str) -> Result<Result<String, DeliveryState>, Stop> {
        let jids = self.engine.jids.of(&self.sender.account_id);
        let key = name.to_lowercase();
        if !self.options.refresh_cache
            && let Some(cached) = jids.get(&key, self.ttl, Utc::now())?
            && let Some(user) = cached.user
        {
            return Ok(Ok(user.jid));
        }
        let listed = self
            .channel_list
            .get_or_try_init(|| self.list_channels())
            .await?;
        let channels = match listed {
            Ok(channels) => channels,
            Err(failed) => return Ok(Err(failed.clone())),
        };
        let found = channels::find(channels, name);
        if let Found::One(jid) = &found {
            let cached = CachedLookup {
                user: Some(ZoomUser {
                    jid: jid.clone(),
                    ..ZoomUser::default()
                }),
                code: None,
                message: String::new(),
                fetched_at: Utc::now(),
            };
            jids.put(&key, &cached)?;
            return Ok(Ok(jid.clone()));
        }
        let message = found.failure(name).unwrap_or_default();
        Ok(Err(DeliveryState::Failed {
            code: None,
            message,
        }))
    }

    /// Every page of the user's channels, or why they could not be read.
    async fn list_channels(&self) -> Result<Result<Vec<Channel>, DeliveryState>, Stop> {
        let zoom = &self.engine.zoom;
        let max = self.job.delivery.max_attempts.get();
        let pace = self.lookup_pace();
        let mut all = Vec::new();
        let mut next = String::new();
        for _ in 0..MAX_PAGES {
            let page_token = next.as_str();
            let answer = call::<User, _, _>(
                &self.sender.tokens,
                &pace,
                max,
                &self.options.cancel,
                &mut Tries::default(),
                |t| async move { zoom.list_channels(&t, page_token).await },
            )
            .await?;
            let listed = match answer {
                Ok(listed) => listed,
                Err(e) => {
                    return Ok(Err(DeliveryState::Failed {
                        code: e.code(),
                        message: format!(
                            "the channel list could not be read: {e} (the app needs the scope \
                             chat_channel:read, or team_chat:read:list_user_channels)"
                        ),
                    }));
                }
            };
            all.extend(listed.channels);
            if listed.next_page_token.is_empty() {
                return Ok(Ok(all));
            }
            next = listed.next_page_token;
        }
        Ok(Err(DeliveryState::Failed {
            code: None,
            message: format!("the channel list did not end after {MAX_PAGES} pages"),
        }))
    }
}
