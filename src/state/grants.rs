//! The `grants` tree (one user grant per app) and the `bot_tokens` tree (one cached chatbot
//! token per app), plus the grant files beside the database.
//!
//! A rotated refresh token is the one piece of state whose loss needs a person: the old one is
//! already dead at Zoom. So [`Grants::put`] writes it twice before returning: to
//! `grants/APP.json` (write, fsync, rename, fsync the directory) and to sled (insert, flush).
//! [`Grants::get`] reads both and keeps the newer generation, so a sled database that lost its
//! last writes, or had to be moved aside, loses no grant.

use std::fs::{self, DirBuilder, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::codec::{self, CodecError, decode, encode};
use super::{Flusher, StateError};
use crate::token::{BotToken, RefreshToken, UserToken};

/// A user grant: the refresh token, the current access token, and who authorized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Zoom's id of the authorizing user.
    pub user_id: String,
    /// The authorizing user's email.
    pub user_email: String,
    /// The authorizing user's JID: `user_jid` of every send.
    pub user_jid: String,
    /// The authorizing user's account: `account_id` of every send.
    pub account_id: String,
    /// Scopes Zoom granted, space-separated.
    pub scopes: String,
    /// The one live refresh token.
    pub refresh_token: RefreshToken,
    /// The newest access token.
    pub access: UserToken,
    /// When a person authorized.
    pub authorized_at: DateTime<Utc>,
    /// When the refresh token last rotated (or was issued).
    pub refreshed_at: DateTime<Utc>,
    /// Grows by one on every rotation or login; the newer copy wins on read.
    pub generation: u64,
}

/// The grants of every app.
#[derive(Clone)]
pub struct Grants {
    tree: sled::Tree,
    flusher: Flusher,
    bots: sled::Tree,
    dir: PathBuf,
}

impl Grants {
    pub(super) fn open(
        db: &sled::Db,
        flusher: &Flusher,
        state_dir: &Path,
    ) -> Result<Self, StateError> {
        Ok(Self {
            tree: db.open_tree("grants")?,
            flusher: flusher.clone(),
            bots: db.open_tree("bot_tokens")?,
            dir: state_dir.join("grants"),
        })
    }

    fn file(&self, app: &str) -> PathBuf {
        self.dir.join(format!("{app}.json"))
    }

    /// The current grant of `app`: the newer of the sled copy and the file copy.
    pub fn get(&self, app: &str) -> Result<Option<Grant>, StateError> {
        let in_db: Option<Grant> = match self.tree.get(app)?.map(|bytes| decode(&bytes)) {
            Some(Ok(grant)) => Some(grant),
            Some(Err(e)) => {
                tracing::warn!(
                    app,
                    "the database copy of the grant is unreadable, using the grant file: {e}"
                );
                None
            }
            None => None,
        };
        let in_file = self.read_file(app)?;
        Ok(match (in_db, in_file) {
            (Some(a), Some(b)) => Some(if b.generation > a.generation { b } else { a }),
            (a, b) => a.or(b),
        })
    }

    /// Every app with a stored grant, sorted.
    pub fn apps(&self) -> Result<Vec<String>, StateError> {
        let mut apps: Vec<String> = self
            .tree
            .iter()
            .keys()
            .map(|k| k.map(|k| String::from_utf8_lossy(&k).into_owned()))
            .collect::<Result<_, _>>()?;
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(app) = name.strip_suffix(".json")
                    && !apps.iter().any(|a| a == app)
                {
                    apps.push(app.to_owned());
                }
            }
        }
        apps.sort();
        Ok(apps)
    }

    /// Stores `grant` as the current grant of `app`, durably, before returning.
    pub async fn put(&self, app: &str, grant: &Grant) -> Result<(), StateError> {
        let bytes = encode(grant);
        let (dir, file) = (self.dir.clone(), self.file(app));
        let json = bytes[1..].to_vec();
        tokio::task::spawn_blocking(move || write_atomically(&dir, &file, &json))
            .await
            .expect("the grant-file writer does not panic")
            .map_err(|source| StateError::Io {
                dir: self.dir.clone(),
                source,
            })?;
        self.tree.insert(app, bytes)?;
        self.flusher.flush().await?;
        Ok(())
    }

    /// Deletes the grant of `app` (and its cached bot token) everywhere: the file first, and
    /// durably, so that a failure cannot leave a file that brings the grant back.
    pub async fn delete(&self, app: &str) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            dir: self.dir.clone(),
            source,
        };
        match fs::remove_file(self.file(app)) {
            Ok(()) => File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        self.tree.remove(app)?;
        self.bots.remove(app)?;
        self.flusher.flush().await?;
        Ok(())
    }

    /// The cached chatbot token of `app`, if any.
    pub fn bot_token(&self, app: &str) -> Result<Option<BotToken>, StateError> {
        codec::get(&self.bots, app)
    }

    /// Caches a chatbot token. Not flushed: losing it costs one token request.
    pub fn put_bot_token(&self, app: &str, token: &BotToken) -> Result<(), StateError> {
        self.bots.insert(app, encode(token))?;
        Ok(())
    }

    fn read_file(&self, app: &str) -> Result<Option<Grant>, StateError> {
        match fs::read(self.file(app)) {
            Ok(json) => serde_json::from_slice(&json).map(Some).map_err(|e| {
                CodecError::Damaged(format!("{}: {e}", self.file(app).display())).into()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io {
                dir: self.dir.clone(),
                source,
            }),
        }
    }
}

/// Write to a new temporary file (0600, created exclusively, so a leftover one of any mode is
/// removed rather than reused), fsync it, rename it over `file`, fsync the directory.
fn write_atomically(dir: &Path, file: &Path, contents: &[u8]) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let tmp = file.with_extension("json.tmp");
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut out = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    out.write_all(contents)?;
    out.sync_all()?;
    fs::rename(&tmp, file)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Store;
    use crate::token::AccessToken;

    fn grant(generation: u64) -> Grant {
        Grant {
            user_id: "u1".into(),
            user_email: "admin@example.com".into(),
            user_jid: "u1@xmpp.zoom.us".into(),
            account_id: "acc".into(),
            scopes: "imchat:bot".into(),
            refresh_token: RefreshToken::new(format!("refresh-{generation}")),
            access: UserToken::issued(AccessToken::new("a"), 3600, Utc::now()),
            authorized_at: Utc::now(),
            refreshed_at: Utc::now(),
            generation,
        }
    }

    #[tokio::test]
    async fn the_newer_copy_wins_and_survives_a_lost_database() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let grants = store.grants().unwrap();
            grants.put("default", &grant(1)).await.unwrap();
            grants.put("default", &grant(2)).await.unwrap();
            assert_eq!(grants.get("default").unwrap().unwrap().generation, 2);
        }
        // The database is lost (moved aside, as the recovery message says): the file remains.
        fs::rename(dir.path().join("db"), dir.path().join("db.broken")).unwrap();
        let store = Store::open(dir.path()).unwrap();
        let grants = store.grants().unwrap();
        let got = grants.get("default").unwrap().unwrap();
        assert_eq!(got.refresh_token.expose(), "refresh-2");
        assert_eq!(grants.apps().unwrap(), ["default"]);
        grants.delete("default").await.unwrap();
        assert!(grants.get("default").unwrap().is_none());
    }

    #[tokio::test]
    async fn a_leftover_open_temporary_file_does_not_open_the_grant_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let grants = store.grants().unwrap();
        grants.put("default", &grant(1)).await.unwrap();
        let tmp = dir.path().join("grants/default.json.tmp");
        fs::write(&tmp, "left over").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        grants.put("default", &grant(2)).await.unwrap();
        let file = dir.path().join("grants/default.json");
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!tmp.exists());
        assert_eq!(grants.get("default").unwrap().unwrap().generation, 2);
    }
}
