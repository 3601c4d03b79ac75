//! The `console` tree: what the web console's sign-in needs (design section 10).
//!
//! - One-time sign-in links (`zoomcast console-link`): only each token's SHA-256 is stored, with
//!   who it names, whether it is read-only and when it expires. Its first use removes it (one
//!   atomic remove, so two browsers racing with one link cannot both sign in).
//! - The key that signs session cookies and CSRF fields: 32 random bytes made on first use, and
//!   made anew by `console-link --end-sessions` (which ends every session).
//!   Whoever reads the state can sign sessions, as they can read its grants: the state
//!   directory is the operator's own (0700).
//! - Jobs suspended or resumed from the console, which hold over the job file's `suspend`
//!   until toggled back.

use chrono::{DateTime, Duration, Utc};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::codec::{self, decode, encode};
use super::{Flusher, StateError};

/// What every sign-in token starts with, so a leaked one is recognised.
pub const TOKEN_PREFIX: &str = "zcl_";

/// The key of the session signing key in the tree.
const SIGNING_KEY: &[u8] = b"signing_key";
/// Where links are kept, by the hex SHA-256 of their token.
const LINK_PREFIX: &str = "link/";
/// Where suspensions set from the console are kept, by job.
const SUSPENSION_PREFIX: &str = "suspension/";

/// One sign-in link, as stored (its token never is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Who it signs in: the name every action of the session is logged with.
    pub name: String,
    /// Whether the session may only look.
    pub read_only: bool,
    /// When it stops working, used or not.
    pub expires_at: DateTime<Utc>,
}

/// A new link: its token (printed once) and what is stored of it.
pub struct NewLink {
    /// `zcl_` and 43 URL-safe characters.
    pub token: secrecy::SecretString,
    /// What is stored.
    pub link: Link,
    /// SHA-256 of the token, hex.
    pub sha256: String,
}

impl std::fmt::Debug for NewLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewLink")
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

/// A fresh link for `name`, valid for `ttl`.
pub fn generate(name: &str, ttl: Duration, read_only: bool) -> NewLink {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    NewLink {
        sha256: hash(&token),
        token: token.into(),
        link: Link {
            name: name.to_owned(),
            read_only,
            expires_at: Utc::now() + ttl,
        },
    }
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A job suspended or resumed from the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    /// Whether the job is suspended.
    pub suspended: bool,
    /// Who toggled it.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// The `console` tree.
#[derive(Clone)]
pub struct Console {
    tree: sled::Tree,
    flusher: Flusher,
}

impl Console {
    pub(super) fn open(db: &sled::Db, flusher: &Flusher) -> Result<Self, StateError> {
        Ok(Self {
            tree: db.open_tree("console")?,
            flusher: flusher.clone(),
        })
    }

    /// Stores a link by its token's hash, durably; links expired by now are dropped.
    pub async fn add_link(&self, link: &Link, sha256: &str) -> Result<(), StateError> {
        self.drop_expired(Utc::now())?;
        self.tree
            .insert(format!("{LINK_PREFIX}{sha256}"), encode(link))?;
        self.flusher.flush().await?;
        Ok(())
    }

    /// Burns the link whose token is `token`: its record if it was stored and has not expired.
    /// A used, expired or unknown token is `None`, and works no more either way.
    pub async fn burn(&self, token: &str) -> Result<Option<Link>, StateError> {
        let key = format!("{LINK_PREFIX}{}", hash(token));
        let Some(stored) = self.tree.remove(key)? else {
            return Ok(None);
        };
        self.flusher.flush().await?;
        let link: Link = decode(&stored)?;
        Ok((link.expires_at > Utc::now()).then_some(link))
    }

    fn drop_expired(&self, now: DateTime<Utc>) -> Result<(), StateError> {
        for entry in self.tree.scan_prefix(LINK_PREFIX) {
            let (key, value) = entry?;
            if decode::<Link>(&value).is_ok_and(|link| link.expires_at <= now) {
                self.tree.remove(key)?;
            }
        }
        Ok(())
    }

    /// The key sessions are signed with, made (and stored durably) on first use.
    pub fn signing_key(&self) -> Result<[u8; 32], StateError> {
        if let Some(key) = self.stored_key()? {
            return Ok(key);
        }
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        // Two processes making one at once: the first stored wins.
        let _ = self.tree.compare_and_swap(
            SIGNING_KEY,
            None::<&[u8]>,
            Some(encode(&hex::encode(key))),
        )?;
        self.flusher.flush_blocking()?;
        Ok(self.stored_key()?.unwrap_or(key))
    }

    /// Replaces the signing key, durably: every session signed so far ends at its next request.
    pub async fn new_signing_key(&self) -> Result<(), StateError> {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        self.tree.insert(SIGNING_KEY, encode(&hex::encode(key)))?;
        self.flusher.flush().await?;
        Ok(())
    }

    fn stored_key(&self) -> Result<Option<[u8; 32]>, StateError> {
        let Some(text) = codec::get::<String>(&self.tree, SIGNING_KEY)? else {
            return Ok(None);
        };
        Ok(hex::decode(text)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()))
    }

    /// How the console last set `job`, if it did.
    pub fn suspension(&self, job: &str) -> Result<Option<Suspension>, StateError> {
        codec::get(&self.tree, suspension_key(job))
    }

    /// Records that `job` was suspended or resumed from the console, durably.
    pub async fn set_suspension(&self, job: &str, value: &Suspension) -> Result<(), StateError> {
        self.tree.insert(suspension_key(job), encode(value))?;
        self.flusher.flush().await?;
        Ok(())
    }
}

fn suspension_key(job: &str) -> Vec<u8> {
    let mut key = SUSPENSION_PREFIX.as_bytes().to_vec();
    key.extend(codec::job_key(job));
    key
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    fn console() -> (tempfile::TempDir, Console) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let console = Console::open(&db, &Flusher::new(&db)).unwrap();
        (dir, console)
    }

    #[tokio::test]
    async fn a_link_works_once_and_only_its_hash_is_stored() {
        let (_dir, console) = console();
        let new = generate("ana", Duration::minutes(15), true);
        let token = new.token.expose_secret().to_owned();
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == 47);
        console.add_link(&new.link, &new.sha256).await.unwrap();
        let stored: Vec<u8> = console
            .tree
            .iter()
            .flat_map(|e| {
                let (k, v) = e.unwrap();
                [k.to_vec(), v.to_vec()].concat()
            })
            .collect();
        assert!(!String::from_utf8_lossy(&stored).contains(&token));

        let link = console.burn(&token).await.unwrap().unwrap();
        assert_eq!((link.name.as_str(), link.read_only), ("ana", true));
        assert_eq!(console.burn(&token).await.unwrap(), None, "burned");
        assert_eq!(console.burn("zcl_guess").await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_expired_link_is_refused_and_dropped() {
        let (_dir, console) = console();
        let old = generate("bo", Duration::seconds(-1), false);
        console.add_link(&old.link, &old.sha256).await.unwrap();
        let token = old.token.expose_secret().to_owned();
        assert_eq!(console.burn(&token).await.unwrap(), None);
        let again = generate("bo", Duration::seconds(-1), false);
        console.add_link(&again.link, &again.sha256).await.unwrap();
        let fresh = generate("cy", Duration::minutes(1), false);
        console.add_link(&fresh.link, &fresh.sha256).await.unwrap();
        assert_eq!(console.tree.scan_prefix(LINK_PREFIX).count(), 1);
    }

    #[tokio::test]
    async fn the_signing_key_is_made_once_and_suspensions_are_kept() {
        let (_dir, console) = console();
        let key = console.signing_key().unwrap();
        assert_eq!(console.signing_key().unwrap(), key);
        console.new_signing_key().await.unwrap();
        let new = console.signing_key().unwrap();
        assert_ne!(new, key);
        assert_eq!(console.signing_key().unwrap(), new);
        assert_eq!(console.suspension("daily").unwrap(), None);
        let s = Suspension {
            suspended: true,
            by: "ana".into(),
            at: Utc::now(),
        };
        console.set_suspension("daily", &s).await.unwrap();
        assert_eq!(console.suspension("daily").unwrap(), Some(s));
        assert_eq!(console.suspension("dail").unwrap(), None);
    }
}
