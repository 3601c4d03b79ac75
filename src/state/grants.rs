//! The `grants` tree (one user grant per app and installing account), the `bot_tokens` tree
//! (one cached chatbot token per app: Zoom issues it to the app, for every account), the
//! `homes` tree (each app's home account), plus the grant files beside the database.
//!
//! A rotated refresh token is the one piece of state whose loss needs a person: the old one is
//! already dead at Zoom. So [`Grants::put`] writes it twice before returning: to
//! `grants/APP/ACCOUNT.json` (write, fsync, rename, fsync the directory) and to sled (key
//! `APP\0ACCOUNT`; insert, flush). [`Grants::get`] reads both and keeps the newer generation,
//! so a sled database that lost its last writes, or had to be moved aside, loses no grant.
//!
//! A grant of an earlier release that never learned its account (`GET /v2/users/me` failed
//! after its login) is kept under [`UNIDENTIFIED`] (`grants/APP/@unidentified.json`); it cannot
//! send, and is there to be logged out or replaced.
//!
//! An earlier release kept one grant per app (`grants/APP.json`, sled key `APP`); opening the
//! store moves such a grant under its account, writing the new copy before removing the old.
//! Which of two copies is newer is decided by when a person authorized, then by generation
//! (rotations of one authorization), so a grant from a login made with an older release after
//! a move still wins over the moved one.

use std::fs::{self, DirBuilder, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::codec::CodecError;
use super::seal::{Keys, SealError};
use super::{Flusher, StateError};
use crate::token::{BotToken, RefreshToken, UserToken};
use crate::user::{is_account_id, is_name};

/// The account of a grant (of an earlier release) whose authorizing user was never learned.
pub const UNIDENTIFIED: &str = "";

/// The file name of an unidentified grant; `@` is in no account id.
const UNIDENTIFIED_FILE: &str = "@unidentified.json";

/// A user grant: the refresh token, the current access token, and who authorized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Zoom's id of the authorizing user.
    pub user_id: String,
    /// The authorizing user's email.
    pub user_email: String,
    /// The authorizing user's JID: `user_jid` of every send.
    pub user_jid: String,
    /// The authorizing user's account: `account_id` of every send, and the grant's key.
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
    /// The OAuth client (app) the grant was issued to; empty for a grant of an earlier release.
    #[serde(default)]
    pub client_id: String,
    /// The authorizing user's role in the account when they authorized (`Owner`, `Admin`,
    /// `Member`, a custom role); empty when not known.
    #[serde(default)]
    pub role: String,
    /// Set when Zoom refused the grant (its refresh token is dead): a person must authorize
    /// again, and nothing asks Zoom with it until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead: Option<Dead>,
}

/// When and why Zoom refused a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dead {
    /// When zoomcast learned it.
    pub at: DateTime<Utc>,
    /// What Zoom said.
    pub reason: String,
}

impl Grant {
    /// Whether the authorizing user was an owner or admin of the account (`None`: not known,
    /// as for a grant of an earlier release).
    pub fn by_admin(&self) -> Option<bool> {
        crate::user::is_admin_role(&self.role)
    }
}

/// The grants of every app and account.
#[derive(Clone)]
pub struct Grants {
    tree: sled::Tree,
    flusher: Flusher,
    bots: sled::Tree,
    /// Each app's home account: where a job that names none sends.
    homes: sled::Tree,
    dir: PathBuf,
    keys: Keys,
}

impl Grants {
    /// Opens the trees.
    pub(super) fn open(
        db: &sled::Db,
        flusher: &Flusher,
        state_dir: &Path,
        keys: &Keys,
    ) -> Result<Self, StateError> {
        Ok(Self {
            tree: db.open_tree("grants")?,
            flusher: flusher.clone(),
            bots: db.open_tree("bot_tokens")?,
            homes: db.open_tree("homes")?,
            dir: state_dir.join("grants"),
            keys: keys.clone(),
        })
    }

    fn io(&self) -> impl Fn(std::io::Error) -> StateError + '_ {
        |source| StateError::Io {
            dir: self.dir.clone(),
            source,
        }
    }

    /// The grant file of `app` in `account`; refused for a name that is not a safe file name.
    fn file(&self, app: &str, account: &str) -> Result<PathBuf, StateError> {
        if !is_name(app) {
            return Err(StateError::NotAName(app.to_owned()));
        }
        let name = if account == UNIDENTIFIED {
            UNIDENTIFIED_FILE.to_owned()
        } else if is_account_id(account) {
            format!("{account}.json")
        } else {
            return Err(StateError::NotAName(account.to_owned()));
        };
        Ok(self.dir.join(app).join(name))
    }

    /// The current grant of `app` in `account`: the newer of the sled copy and the file copy.
    pub fn get(&self, app: &str, account: &str) -> Result<Option<Grant>, StateError> {
        let file = self.file(app, account)?;
        let slot = key(app, account);
        let in_db = self.read_db(&slot)?.map(|(grant, _)| grant);
        let in_file = self.read_file(&file, &slot)?.map(|(grant, _)| grant);
        Ok(newer(in_db, in_file))
    }

    /// The accounts holding a grant of `app`, sorted ([`UNIDENTIFIED`] first, if present).
    pub fn accounts(&self, app: &str) -> Result<Vec<String>, StateError> {
        let held = self.listed(Some(app))?;
        Ok(held.into_iter().map(|(_, account)| account).collect())
    }

    /// Every (app, account) with a stored grant, sorted.
    pub fn all(&self) -> Result<Vec<(String, String)>, StateError> {
        self.listed(None)
    }

    /// The (app, account) pairs with a stored grant, of app `only` or of every app: its sled
    /// keys and its directory only, when it is named.
    fn listed(&self, only: Option<&str>) -> Result<Vec<(String, String)>, StateError> {
        let prefix = only.map_or_else(Vec::new, |app| format!("{app}\0").into_bytes());
        let mut all = Vec::new();
        for k in self.tree.scan_prefix(prefix).keys() {
            let k = String::from_utf8_lossy(&k?).into_owned();
            if let Some((app, account)) = k.split_once('\0') {
                all.push((app.to_owned(), account.to_owned()));
            }
        }
        let apps = match only {
            Some(app) => vec![app.to_owned()],
            None => subdirectories(&self.dir),
        };
        for app in apps.into_iter().filter(|a| is_name(a)) {
            for name in file_names(&self.dir.join(&app)) {
                let account = if name == UNIDENTIFIED_FILE {
                    Some(UNIDENTIFIED)
                } else {
                    name.strip_suffix(".json").filter(|a| is_account_id(a))
                };
                if let Some(account) = account {
                    all.push((app.clone(), account.to_owned()));
                }
            }
        }
        all.sort();
        all.dedup();
        Ok(all)
    }

    /// Stores `grant` as the current grant of `app` in its account, durably, before returning.
    pub async fn put(&self, app: &str, grant: &Grant) -> Result<(), StateError> {
        let Copies {
            file,
            in_file,
            key,
            in_db,
        } = self.copies(app, grant)?;
        tokio::task::spawn_blocking(move || write_atomically(&file, &in_file))
            .await
            .expect("the grant-file writer does not panic")
            .map_err(self.io())?;
        self.tree.insert(key, in_db)?;
        self.flusher.flush().await?;
        Ok(())
    }

    /// The two copies of `grant` of `app`, as the keys say to store them.
    fn copies(&self, app: &str, grant: &Grant) -> Result<Copies, StateError> {
        let file = self.file(app, &grant.account_id)?;
        let key = key(app, &grant.account_id);
        let json = serde_json::to_vec(grant).expect("a grant serializes");
        let sealed = sealed_as(&key);
        Ok(Copies {
            file,
            in_file: self.keys.to_file(&sealed, &json),
            in_db: self.keys.to_db(&sealed, &json),
            key,
        })
    }

    /// Writes both copies of `grant` of `app` on this thread, not flushed (opening the store:
    /// the caller flushes once).
    fn write_copies(&self, app: &str, grant: &Grant) -> Result<(), StateError> {
        let copies = self.copies(app, grant)?;
        write_atomically(&copies.file, &copies.in_file).map_err(self.io())?;
        self.tree.insert(copies.key, copies.in_db)?;
        Ok(())
    }

    /// Writes again, the way the keys say, every grant and bot token stored otherwise: sealed
    /// when a key is set and it is plain or sealed with another key (a rekey), plain when no
    /// key is set (a rekey to plain). A value sealed with a key not given is an error, before
    /// anything is written. Returns how many grants were written.
    pub(super) fn reseal(&self) -> Result<usize, StateError> {
        let mut stale = Vec::new();
        for (app, account) in self.all()? {
            let slot = key(&app, &account);
            let in_db = self.read_db(&slot)?;
            // A damaged grant file fails only its own grant (when it is used), not every
            // command: a wrong key is the only error here.
            let in_file = match self.read_file(&self.file(&app, &account)?, &slot) {
                Ok(copy) => copy,
                Err(e @ StateError::Sealed { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!("{e}; that grant is left as it is");
                    continue;
                }
            };
            let outdated = [&in_db, &in_file]
                .iter()
                .any(|copy| copy.as_ref().is_some_and(|(_, stale)| *stale));
            let in_db = in_db.map(|(grant, _)| grant);
            if let Some(grant) = newer(in_db, in_file.map(|(grant, _)| grant))
                && outdated
            {
                stale.push((app, grant));
            }
        }
        for (app, grant) in &stale {
            self.write_copies(app, grant)?;
        }
        for entry in &self.bots {
            let (app, bytes) = entry?;
            let slot = bot_slot(&String::from_utf8_lossy(&app));
            match self.keys.from_db(&slot, &bytes) {
                Ok(opened) if opened.stale => {
                    self.bots
                        .insert(&app, self.keys.to_db(&slot, &opened.json))?;
                }
                Ok(_) => {}
                // A cached token is worth one token request: drop what does not open.
                Err(_) => drop(self.bots.remove(&app)?),
            }
        }
        self.flusher.flush_blocking()?;
        Ok(stale.len())
    }

    /// Deletes the grant of `app` in `account` everywhere: the file (durably), then the sled
    /// copy, flushed. A crash between the two can leave the sled copy, which [`Grants::get`]
    /// then still finds: deleting again (a logout run again, the deauthorization Zoom sends
    /// again when it got no answer) removes it. The app's cached bot token goes with its last
    /// grant.
    pub async fn delete(&self, app: &str, account: &str) -> Result<(), StateError> {
        remove_durably(&self.file(app, account)?).map_err(self.io())?;
        self.tree.remove(key(app, account))?;
        if self.accounts(app)?.is_empty() {
            self.bots.remove(app)?;
        }
        self.flusher.flush().await?;
        Ok(())
    }

    /// The home account of `app` (design section 3: its configured `account_id`, else the
    /// first account that authorized it), if one was recorded.
    pub fn home(&self, app: &str) -> Result<Option<String>, StateError> {
        super::codec::get(&self.homes, app)
    }

    /// Records `account` as the home account of `app` unless one is recorded already;
    /// durably. Whether it was recorded.
    pub async fn adopt_home(&self, app: &str, account: &str) -> Result<bool, StateError> {
        let adopted = self.adopt_home_now(app, account)?;
        if adopted {
            self.flusher.flush().await?;
        }
        Ok(adopted)
    }

    /// Forgets that `account` is the home account of `app` (its grant was logged out), durably;
    /// the next account to authorize, or the one account left, becomes the home.
    pub async fn forget_home(&self, app: &str, account: &str) -> Result<(), StateError> {
        let was = super::codec::encode(&account);
        let forgotten = self
            .homes
            .compare_and_swap(app, Some(was), None::<&[u8]>)?
            .is_ok();
        if forgotten {
            self.flusher.flush().await?;
        }
        Ok(())
    }

    /// [`Grants::adopt_home`] from synchronous code, flushed with sled's next write: losing
    /// it costs only adopting it again.
    pub fn adopt_home_now(&self, app: &str, account: &str) -> Result<bool, StateError> {
        let value = super::codec::encode(&account);
        Ok(self
            .homes
            .compare_and_swap(app, None::<&[u8]>, Some(value))?
            .is_ok())
    }

    /// The cached chatbot token of `app`, if any.
    pub fn bot_token(&self, app: &str) -> Result<Option<BotToken>, StateError> {
        let Some(bytes) = self.bots.get(app)? else {
            return Ok(None);
        };
        let slot = bot_slot(app);
        let opened = self.keys.from_db(&slot, &bytes).map_err(|source| {
            let what = format!("the cached bot token of app `{app}`");
            StateError::Sealed { what, source }
        })?;
        Ok(serde_json::from_slice(&opened.json).ok())
    }

    /// Caches a chatbot token. Not flushed: losing it costs one token request.
    pub fn put_bot_token(&self, app: &str, token: &BotToken) -> Result<(), StateError> {
        let json = serde_json::to_vec(token).expect("a token serializes");
        self.bots
            .insert(app, self.keys.to_db(&bot_slot(app), &json))?;
        Ok(())
    }

    /// The database copy of the grant in `slot`, and whether it is stored otherwise than the
    /// keys say. One that is damaged is skipped with a warning (the file copy is used); one
    /// sealed with a key not given is an error.
    fn read_db(&self, slot: &[u8]) -> Result<Option<(Grant, bool)>, StateError> {
        let Some(bytes) = self.tree.get(slot)? else {
            return Ok(None);
        };
        let what = || format!("the database copy of grant {}", describe(slot));
        let opened = match self.keys.from_db(&sealed_as(slot), &bytes) {
            Ok(opened) => opened,
            Err(source @ (SealError::NoKey { .. } | SealError::WrongKey { .. })) => {
                return Err(StateError::Sealed {
                    what: what(),
                    source,
                });
            }
            Err(e) => {
                tracing::warn!("{} is unreadable, using the grant file: {e}", what());
                return Ok(None);
            }
        };
        match serde_json::from_slice(&opened.json) {
            Ok(grant) => Ok(Some((grant, opened.stale))),
            Err(e) => {
                tracing::warn!("{} is unreadable, using the grant file: {e}", what());
                Ok(None)
            }
        }
    }

    /// The grant in `file` (of `slot`), and whether it is stored otherwise than the keys say.
    fn read_file(&self, file: &Path, slot: &[u8]) -> Result<Option<(Grant, bool)>, StateError> {
        let bytes = match fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                let dir = file.parent().unwrap_or(file).to_owned();
                return Err(StateError::Io { dir, source });
            }
        };
        let damaged = |e: &dyn std::fmt::Display| {
            StateError::from(CodecError::Damaged(format!("{}: {e}", file.display())))
        };
        let opened =
            self.keys
                .from_file(&sealed_as(slot), &bytes)
                .map_err(|source| match source {
                    SealError::NoKey { .. } | SealError::WrongKey { .. } => StateError::Sealed {
                        what: file.display().to_string(),
                        source,
                    },
                    other => damaged(&other),
                })?;
        let grant = serde_json::from_slice(&opened.json).map_err(|e| damaged(&e))?;
        Ok(Some((grant, opened.stale)))
    }

    /// Moves each grant kept per app (`grants/APP.json`, sled key `APP`) under its account:
    /// the newer copy is written in the new place first, then the old ones are removed, so a
    /// crash in between leaves both, and the next open finishes the move. A damaged old file
    /// is left where it is, with a warning.
    pub(super) fn move_per_app_grants(&self) -> Result<(), StateError> {
        let mut apps: Vec<String> = Vec::new();
        for k in self.tree.iter().keys() {
            let k = k?;
            if !k.contains(&0) {
                apps.push(String::from_utf8_lossy(&k).into_owned());
            }
        }
        apps.extend(
            file_names(&self.dir)
                .into_iter()
                .filter_map(|name| name.strip_suffix(".json").map(str::to_owned)),
        );
        apps.sort();
        apps.dedup();
        for app in apps.into_iter().filter(|app| is_name(app)) {
            let old_file = self.dir.join(format!("{app}.json"));
            let in_file = match self.read_file(&old_file, app.as_bytes()) {
                Ok(grant) => grant.map(|(grant, _)| grant),
                Err(e) => {
                    tracing::warn!("the grant of app `{app}` was not moved under its account: {e}");
                    continue;
                }
            };
            let in_db = self.read_db(app.as_bytes())?.map(|(grant, _)| grant);
            let Some(mut grant) = newer(in_db, in_file) else {
                continue;
            };
            if !is_account_id(&grant.account_id) {
                UNIDENTIFIED.clone_into(&mut grant.account_id);
            }
            let account = grant.account_id.clone();
            let current = self.get(&app, &account)?;
            if current.is_none_or(|held| later(&grant, &held)) {
                self.write_copies(&app, &grant)?;
            }
            self.flusher.flush_blocking()?;
            remove_durably(&old_file).map_err(self.io())?;
            self.tree.remove(app.as_bytes())?;
            self.flusher.flush_blocking()?;
            tracing::info!("moved the grant of app `{app}` under its account");
        }
        Ok(())
    }
}

/// A grant as stored: its file and the file's bytes, its sled key and the sled value.
struct Copies {
    file: PathBuf,
    in_file: Vec<u8>,
    key: Vec<u8>,
    in_db: Vec<u8>,
}

/// The sled key of a grant: `APP\0ACCOUNT`.
fn key(app: &str, account: &str) -> Vec<u8> {
    format!("{app}\0{account}").into_bytes()
}

/// What a grant stored under sled key `slot` is sealed as (the AEAD's associated data):
/// `grant\0APP\0ACCOUNT`, so that it opens nowhere else, not even as a bot token.
fn sealed_as(slot: &[u8]) -> Vec<u8> {
    [&b"grant\0"[..], slot].concat()
}

/// What the bot token of `app` is sealed as: `bot\0APP`.
fn bot_slot(app: &str) -> Vec<u8> {
    format!("bot\0{app}").into_bytes()
}

/// A grant's sled key as text: `APP ACCOUNT`.
fn describe(slot: &[u8]) -> String {
    String::from_utf8_lossy(slot).replace('\0', " ")
}

/// The newer of two copies of a grant.
fn newer(a: Option<Grant>, b: Option<Grant>) -> Option<Grant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if later(&b, &a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Whether `a` is a later grant than `b`: authorized later (a new login revokes the one before
/// it), or the same authorization rotated more often.
fn later(a: &Grant, b: &Grant) -> bool {
    (a.authorized_at, a.generation) > (b.authorized_at, b.generation)
}

/// The names of the regular files in `dir` (none if it does not exist).
fn file_names(dir: &Path) -> Vec<String> {
    entries(dir, fs::FileType::is_file)
}

/// The names of the directories in `dir` (none if it does not exist).
fn subdirectories(dir: &Path) -> Vec<String> {
    entries(dir, fs::FileType::is_dir)
}

fn entries(dir: &Path, keep: impl Fn(&fs::FileType) -> bool) -> Vec<String> {
    let Ok(read) = fs::read_dir(dir) else {
        return Vec::new();
    };
    read.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| keep(&t)))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Removes `file` if it exists and fsyncs its directory.
fn remove_durably(file: &Path) -> std::io::Result<()> {
    match fs::remove_file(file) {
        Ok(()) => File::open(file.parent().expect("a grant file has a directory"))?.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Write to a new temporary file (0600, created exclusively, so a leftover one of any mode is
/// removed rather than reused), fsync it, rename it over `file`, fsync the directory (created
/// 0700 with its parents if missing).
fn write_atomically(file: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().expect("a grant file has a directory");
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
    use crate::state::codec::encode;
    use crate::token::AccessToken;

    /// A grant of one authorization (at a fixed time), rotated `generation` times.
    fn grant(account: &str, generation: u64) -> Grant {
        let authorized = DateTime::parse_from_rfc3339("2026-11-01T09:00:00Z").unwrap();
        Grant {
            user_id: "u1".into(),
            user_email: "admin@example.com".into(),
            user_jid: "u1@xmpp.zoom.us".into(),
            account_id: account.into(),
            scopes: "imchat:bot".into(),
            refresh_token: RefreshToken::new(format!("refresh-{account}-{generation}")),
            access: UserToken::issued(AccessToken::new("a"), 3600, Utc::now()),
            authorized_at: authorized.to_utc(),
            refreshed_at: Utc::now(),
            generation,
            client_id: "client".into(),
            role: "Admin".into(),
            dead: None,
        }
    }

    fn refresh_of(grants: &Grants, app: &str, account: &str) -> Option<String> {
        let grant = grants.get(app, account).unwrap()?;
        Some(grant.refresh_token.expose().to_owned())
    }

    #[tokio::test]
    async fn the_newer_copy_wins_and_survives_a_lost_database() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let grants = store.grants().unwrap();
            grants.put("default", &grant("acc", 1)).await.unwrap();
            grants.put("default", &grant("acc", 2)).await.unwrap();
            assert_eq!(grants.get("default", "acc").unwrap().unwrap().generation, 2);
        }
        // The database is lost (moved aside, as the recovery message says): the file remains.
        fs::rename(dir.path().join("db"), dir.path().join("db.broken")).unwrap();
        let store = Store::open(dir.path()).unwrap();
        let grants = store.grants().unwrap();
        assert_eq!(
            refresh_of(&grants, "default", "acc").unwrap(),
            "refresh-acc-2"
        );
        assert_eq!(grants.all().unwrap(), [("default".into(), "acc".into())]);
        grants.delete("default", "acc").await.unwrap();
        assert!(grants.get("default", "acc").unwrap().is_none());
    }

    #[tokio::test]
    async fn a_damaged_grant_file_fails_its_own_grant_only() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let grants = store.grants().unwrap();
            grants.put("default", &grant("acc-A", 1)).await.unwrap();
            grants.put("default", &grant("acc-B", 1)).await.unwrap();
        }
        fs::write(dir.path().join("grants/default/acc-A.json"), "{ not json").unwrap();
        let store = Store::open(dir.path()).unwrap();
        let grants = store.grants().unwrap();
        assert!(grants.get("default", "acc-A").is_err());
        assert_eq!(
            refresh_of(&grants, "default", "acc-B").unwrap(),
            "refresh-acc-B-1"
        );
    }

    #[tokio::test]
    async fn each_account_of_an_app_keeps_its_own_grant() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let grants = store.grants().unwrap();
        grants.put("default", &grant("acc-A", 1)).await.unwrap();
        grants.put("default", &grant("acc-B", 1)).await.unwrap();
        grants.put("other", &grant("acc-A", 1)).await.unwrap();
        grants
            .put_bot_token(
                "default",
                &BotToken::issued(AccessToken::new("bot"), 3600, Utc::now()),
            )
            .unwrap();
        assert_eq!(grants.accounts("default").unwrap(), ["acc-A", "acc-B"]);
        assert!(dir.path().join("grants/default/acc-B.json").exists());

        grants.delete("default", "acc-A").await.unwrap();
        assert_eq!(grants.accounts("default").unwrap(), ["acc-B"]);
        assert_eq!(
            refresh_of(&grants, "default", "acc-B").unwrap(),
            "refresh-acc-B-1"
        );
        assert_eq!(
            refresh_of(&grants, "other", "acc-A").unwrap(),
            "refresh-acc-A-1"
        );
        // The bot token is the app's: it goes with the app's last grant only.
        assert!(grants.bot_token("default").unwrap().is_some());
        grants.delete("default", "acc-B").await.unwrap();
        assert!(grants.bot_token("default").unwrap().is_none());
    }

    #[tokio::test]
    async fn names_that_are_not_safe_file_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let grants = store.grants().unwrap();
        for account in ["../escape", "a/b", ".hidden", "x".repeat(65).as_str()] {
            let refused = grants.put("default", &grant(account, 1)).await;
            assert!(matches!(refused, Err(StateError::NotAName(_))), "{account}");
        }
        assert!(matches!(
            grants.get("../default", "acc"),
            Err(StateError::NotAName(_))
        ));
        assert!(grants.all().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_grant_kept_per_app_by_an_earlier_release_moves_under_its_account() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let grants = store.grants().unwrap();
            // What an earlier release wrote: sled key `default`, file grants/default.json,
            // the file one generation newer (its sled write was lost).
            grants
                .tree
                .insert("default", encode(&grant("acc", 4)))
                .unwrap();
            let file = dir.path().join("grants/default.json");
            write_atomically(&file, &encode(&grant("acc", 5))[1..]).unwrap();
            // And an unidentified grant of another app, in sled only.
            grants.tree.insert("other", encode(&grant("", 1))).unwrap();
            grants.tree.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let grants = store.grants().unwrap();
        assert_eq!(
            grants.all().unwrap(),
            [
                ("default".into(), "acc".into()),
                ("other".into(), UNIDENTIFIED.into())
            ]
        );
        assert_eq!(
            refresh_of(&grants, "default", "acc").unwrap(),
            "refresh-acc-5"
        );
        assert!(!dir.path().join("grants/default.json").exists());
        assert!(dir.path().join("grants/other/@unidentified.json").exists());
        assert!(grants.tree.get("default").unwrap().is_none());
    }

    #[tokio::test]
    async fn a_move_cut_short_by_a_crash_keeps_the_newest_grant() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let grants = store.grants().unwrap();
            // Moved, then rotated once more, then the old file came back (the crash hit
            // before the old copy was removed): the newer, moved grant must win.
            grants.put("default", &grant("acc", 7)).await.unwrap();
            let file = dir.path().join("grants/default.json");
            write_atomically(&file, &encode(&grant("acc", 6))[1..]).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let grants = store.grants().unwrap();
        assert_eq!(
            refresh_of(&grants, "default", "acc").unwrap(),
            "refresh-acc-7"
        );
        assert!(!dir.path().join("grants/default.json").exists());
    }

    #[tokio::test]
    async fn a_login_made_with_an_older_release_after_the_move_wins_over_the_moved_grant() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .grants()
                .unwrap()
                .put("default", &grant("acc", 5))
                .await
                .unwrap();
        }
        // Back on an older release, a person logged in again (Zoom revoked the moved grant):
        // its count of rotations starts again.
        let mut relogin = grant("acc", 1);
        relogin.authorized_at = Utc::now();
        let file = dir.path().join("grants/default.json");
        write_atomically(&file, &encode(&relogin)[1..]).unwrap();
        let store = Store::open(dir.path()).unwrap();
        let grants = store.grants().unwrap();
        assert_eq!(
            refresh_of(&grants, "default", "acc").unwrap(),
            "refresh-acc-1"
        );
        assert!(!file.exists());
    }

    #[tokio::test]
    async fn a_damaged_old_grant_file_is_left_alone_and_opening_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("grants")).unwrap();
        let file = dir.path().join("grants/old.json");
        fs::write(&file, "{not json").unwrap();
        // A directory that is not an app name is not taken for one.
        fs::create_dir_all(dir.path().join("grants/x.bak")).unwrap();
        fs::write(dir.path().join("grants/x.bak/acc.json"), "{}").unwrap();
        let store = Store::open(dir.path()).unwrap();
        let grants = store.grants().unwrap();
        grants.put("default", &grant("acc", 1)).await.unwrap();
        assert_eq!(grants.all().unwrap(), [("default".into(), "acc".into())]);
        assert!(file.exists(), "kept for a person to look at");
    }

    #[tokio::test]
    async fn a_leftover_open_temporary_file_does_not_open_the_grant_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let grants = store.grants().unwrap();
        grants.put("default", &grant("acc", 1)).await.unwrap();
        let tmp = dir.path().join("grants/default/acc.json.tmp");
        fs::write(&tmp, "left over").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        grants.put("default", &grant("acc", 2)).await.unwrap();
        let file = dir.path().join("grants/default/acc.json");
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(dir.path().join("grants/default"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert!(!tmp.exists());
        assert_eq!(grants.get("default", "acc").unwrap().unwrap().generation, 2);
    }
}
