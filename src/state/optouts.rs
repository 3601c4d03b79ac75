//! The `optouts` tree: the chat users who told an app's bot `stop`, per (app, account). A run
//! of that account skips them. An opt-out is the user's own word, so it is flushed before the
//! bot answers; it is personal data, so deauthorization deletes the account's opt-outs at once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::codec::{self, KEY_FORMAT, decode, encode};
use super::{Flusher, StateError};

/// One user's opt-out, as listed by `optouts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOut {
    /// The app whose bot was told.
    pub app: String,
    /// The user's account.
    pub account: String,
    /// The user's chat JID (lower case, as Zoom writes them).
    pub user_jid: String,
    /// The user's display name, as Zoom sent it.
    pub user_name: String,
    /// When the user opted out.
    pub at: DateTime<Utc>,
}

/// What is stored under a key (the key holds the app, account and JID).
#[derive(Serialize, Deserialize)]
struct Stored {
    user_name: String,
    at: DateTime<Utc>,
}

/// The `optouts` tree.
#[derive(Clone)]
pub struct OptOuts {
    tree: sled::Tree,
    flusher: Flusher,
}

impl OptOuts {
    pub(super) fn open(db: &sled::Db, flusher: &Flusher) -> Result<Self, StateError> {
        Ok(Self {
            tree: db.open_tree("optouts")?,
            flusher: flusher.clone(),
        })
    }

    /// Records that `user_jid` of `account` opted out of `app`'s jobs, durably. Opting out
    /// again keeps the first time.
    pub async fn opt_out(
        &self,
        app: &str,
        account: &str,
        user_jid: &str,
        user_name: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let key = key(app, account, user_jid);
        let stored = Stored {
            user_name: user_name.to_owned(),
            at,
        };
        // Keeps the first opt-out: a repeated `stop` is not news.
        let _ = self
            .tree
            .compare_and_swap(key, None::<&[u8]>, Some(encode(&stored)))?;
        self.flusher.flush().await
    }

    /// Removes `user_jid`'s opt-out, durably; whether there was one.
    pub async fn opt_in(
        &self,
        app: &str,
        account: &str,
        user_jid: &str,
    ) -> Result<bool, StateError> {
        let removed = self.tree.remove(key(app, account, user_jid))?.is_some();
        if removed {
            self.flusher.flush().await?;
        }
        Ok(removed)
    }

    /// Whether `user_jid` of `account` opted out of `app`'s jobs.
    pub fn opted_out(&self, app: &str, account: &str, user_jid: &str) -> Result<bool, StateError> {
        Ok(self.tree.contains_key(key(app, account, user_jid))?)
    }

    /// Every opt-out of `app` (every app with `None`), in key order.
    pub fn list(&self, app: Option<&str>) -> Result<Vec<OptOut>, StateError> {
        let prefix = app.map_or_else(|| vec![KEY_FORMAT], |app| prefix(app, None));
        self.tree
            .scan_prefix(prefix)
            .map(|entry| {
                let (key, value) = entry?;
                parse(&key, &value)
            })
            .collect()
    }

    /// Deletes every opt-out of `app`'s `account`, durably; how many there were.
    pub async fn forget_account(&self, app: &str, account: &str) -> Result<usize, StateError> {
        let mut removed = 0;
        for key in self.tree.scan_prefix(prefix(app, Some(account))).keys() {
            self.tree.remove(key?)?;
            removed += 1;
        }
        self.flusher.flush().await?;
        Ok(removed)
    }
}

/// `KEY_FORMAT`, the app, NUL, then (with an account) the account and NUL.
fn prefix(app: &str, account: Option<&str>) -> Vec<u8> {
    let mut key = vec![KEY_FORMAT];
    key.extend_from_slice(app.as_bytes());
    key.push(0);
    if let Some(account) = account {
        key.extend_from_slice(account.as_bytes());
        key.push(0);
    }
    key
}

/// The key of one opt-out: the prefix of its app and account, then the JID in lower case.
fn key(app: &str, account: &str, user_jid: &str) -> Vec<u8> {
    let mut key = prefix(app, Some(account));
    key.extend_from_slice(user_jid.to_lowercase().as_bytes());
    key
}

fn parse(key: &[u8], value: &[u8]) -> Result<OptOut, StateError> {
    let damaged = || {
        codec::CodecError::Damaged(format!(
            "an opt-out's key {:?}",
            String::from_utf8_lossy(key)
        ))
    };
    let text = std::str::from_utf8(key.get(1..).ok_or_else(damaged)?).map_err(|_| damaged())?;
    let mut parts = text.splitn(3, '\0');
    let (Some(app), Some(account), Some(user_jid)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(damaged().into());
    };
    let stored: Stored = decode(value)?;
    Ok(OptOut {
        app: app.to_owned(),
        account: account.to_owned(),
        user_jid: user_jid.to_owned(),
        user_name: stored.user_name,
        at: stored.at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn optouts() -> OptOuts {
        let db = sled::Config::new().temporary(true).open().unwrap();
        OptOuts::open(&db, &Flusher::new(&db)).unwrap()
    }

    #[tokio::test]
    async fn an_opt_out_is_per_app_and_account_until_the_user_opts_in() {
        let optouts = optouts();
        let at = Utc::now();
        optouts
            .opt_out("a", "acct1", "Ana@XMPP.zoom.us", "Ana", at)
            .await
            .unwrap();
        assert!(optouts.opted_out("a", "acct1", "ana@xmpp.zoom.us").unwrap());
        assert!(!optouts.opted_out("a", "acct2", "ana@xmpp.zoom.us").unwrap());
        assert!(!optouts.opted_out("b", "acct1", "ana@xmpp.zoom.us").unwrap());
        let later = at + chrono::TimeDelta::hours(1);
        optouts
            .opt_out("a", "acct1", "ana@xmpp.zoom.us", "Ana", later)
            .await
            .unwrap();
        let listed = optouts.list(Some("a")).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].at, at, "the first stop is kept");
        assert_eq!(listed[0].user_jid, "ana@xmpp.zoom.us");
        assert!(
            optouts
                .opt_in("a", "acct1", "ana@xmpp.zoom.us")
                .await
                .unwrap()
        );
        assert!(
            !optouts
                .opt_in("a", "acct1", "ana@xmpp.zoom.us")
                .await
                .unwrap()
        );
        assert!(!optouts.opted_out("a", "acct1", "ana@xmpp.zoom.us").unwrap());
    }

    #[tokio::test]
    async fn forgetting_an_account_keeps_every_other_accounts_opt_outs() {
        let optouts = optouts();
        let at = Utc::now();
        for (app, account, jid) in [
            ("a", "acct1", "x@xmpp.zoom.us"),
            ("a", "acct1", "y@xmpp.zoom.us"),
            ("a", "acct10", "x@xmpp.zoom.us"),
            ("b", "acct1", "x@xmpp.zoom.us"),
        ] {
            optouts.opt_out(app, account, jid, "X", at).await.unwrap();
        }
        assert_eq!(optouts.forget_account("a", "acct1").await.unwrap(), 2);
        let left: Vec<_> = optouts
            .list(None)
            .unwrap()
            .into_iter()
            .map(|o| (o.app, o.account))
            .collect();
        assert_eq!(
            left,
            [("a".into(), "acct10".into()), ("b".into(), "acct1".into())],
            "an account whose id starts with the other's is another account"
        );
    }
}
