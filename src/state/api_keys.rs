//! The `api_keys` tree: the keys other systems start runs with over HTTP (design section 9).
//! Only a key's SHA-256 is stored: a key is 32 random bytes, so a fast hash is as good as a
//! slow one, and the state (or a backup of it) gives nobody a working key. A presented key is
//! hashed and compared with every stored hash in constant time, each one, so neither an
//! answer's content nor its timing says how close a guess came.

use chrono::{DateTime, Utc};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::codec::{decode, encode};
use super::{Flusher, StateError};

/// What every key starts with, so a leaked one is recognised (secret scanners, logs).
pub const KEY_PREFIX: &str = "zck_";

/// One API key, as stored and listed (its hash is never shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The key's name (who uses it), unique.
    pub name: String,
    /// The jobs it may start; `None` for every job.
    pub jobs: Option<Vec<String>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last accepted.
    pub last_used: Option<DateTime<Utc>>,
}

/// What is stored of a key: its record and its SHA-256 (hex).
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    key: ApiKey,
    sha256: String,
}

impl ApiKey {
    /// Whether the key may start runs of `job`.
    pub fn allows(&self, job: &str) -> bool {
        self.jobs
            .as_ref()
            .is_none_or(|jobs| jobs.iter().any(|j| j == job))
    }
}

/// A new key: its text (shown once) and what is stored of it.
pub struct NewKey {
    /// The key itself: `zck_` and 43 URL-safe characters.
    pub secret: secrecy::SecretString,
    /// The record to store.
    pub key: ApiKey,
    /// SHA-256 of the key, hex: all that is stored of it.
    pub sha256: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("key", &self.key.name)
            .finish_non_exhaustive()
    }
}

/// A fresh key named `name` for `jobs` (every job when `None`).
pub fn generate(name: &str, jobs: Option<Vec<String>>) -> NewKey {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let key = ApiKey {
        name: name.to_owned(),
        jobs,
        created_at: Utc::now(),
        last_used: None,
    };
    NewKey {
        sha256: hash(&secret),
        secret: secret.into(),
        key,
    }
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Why a key cannot be created or revoked.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key of that name exists.
    #[error("there is an API key named `{0}` already; revoke it first, or pick another name")]
    Exists(String),
    /// No key of that name.
    #[error("there is no API key named `{0}`; `zoomcast api-key list` shows them")]
    NoSuchKey(String),
    /// The name is empty, too long or not printable.
    #[error("`{0}` cannot name an API key: use 1 to 64 letters, digits, `-`, `_` or `.`")]
    BadName(String),
    /// The state failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// The `api_keys` tree (name to [`ApiKey`]).
#[derive(Clone)]
pub struct ApiKeys {
    tree: sled::Tree,
    flusher: Flusher,
}

impl ApiKeys {
    pub(super) fn open(db: &sled::Db, flusher: &Flusher) -> Result<Self, StateError> {
        Ok(Self {
            tree: db.open_tree("api_keys")?,
            flusher: flusher.clone(),
        })
    }

    /// Stores `key` with its hash `sha256`, durably, unless one of its name exists.
    pub async fn create(&self, key: &ApiKey, sha256: &str) -> Result<(), KeyError> {
        if !valid_name(&key.name) {
            return Err(KeyError::BadName(crate::output::clean(&key.name, 80)));
        }
        let stored = Stored {
            key: key.clone(),
            sha256: sha256.to_owned(),
        };
        let stored = self
            .tree
            .compare_and_swap(key.name.as_bytes(), None::<&[u8]>, Some(encode(&stored)))
            .map_err(StateError::from)?;
        if stored.is_err() {
            return Err(KeyError::Exists(key.name.clone()));
        }
        self.flusher.flush().await?;
        Ok(())
    }

    /// Deletes the key `name`, durably: it is refused from the next request on.
    pub async fn revoke(&self, name: &str) -> Result<(), KeyError> {
        if self
            .tree
            .remove(name.as_bytes())
            .map_err(StateError::from)?
            .is_none()
        {
            return Err(KeyError::NoSuchKey(crate::output::clean(name, 80)));
        }
        self.flusher.flush().await?;
        Ok(())
    }

    /// Every key, by name.
    pub fn list(&self) -> Result<Vec<ApiKey>, StateError> {
        Ok(self.stored()?.into_iter().map(|s| s.key).collect())
    }

    fn stored(&self) -> Result<Vec<Stored>, StateError> {
        self.tree
            .iter()
            .values()
            .map(|v| Ok(decode(&v?)?))
            .collect()
    }

    /// The key whose text is `presented`, if one is: every stored hash is compared, in
    /// constant time. Its last use is recorded (not flushed: a lost timestamp costs nothing).
    pub fn accept(&self, presented: &str) -> Result<Option<ApiKey>, StateError> {
        let wanted = hash(presented);
        let mut found = None;
        for stored in self.stored()? {
            let same = stored.sha256.as_bytes().ct_eq(wanted.as_bytes());
            if bool::from(same) {
                found = Some(stored);
            }
        }
        let Some(mut stored) = found else {
            return Ok(None);
        };
        let old = encode(&stored);
        stored.key.last_used = Some(Utc::now());
        // A key revoked meanwhile stays revoked: only the stored record is updated.
        let name = stored.key.name.clone();
        let _ = self
            .tree
            .compare_and_swap(name.as_bytes(), Some(old), Some(encode(&stored)))?;
        Ok(Some(stored.key))
    }
}

/// Whether `name` can name a key: 1 to 64 of letters, digits, `-`, `_` and `.`.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (tempfile::TempDir, ApiKeys) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let keys = ApiKeys::open(&db, &Flusher::new(&db)).unwrap();
        (dir, keys)
    }

    #[tokio::test]
    async fn a_key_is_accepted_until_revoked_and_only_its_hash_is_stored() {
        let (_dir, keys) = keys();
        let new = generate("alertmanager", Some(vec!["oncall".into()]));
        let secret = secrecy::ExposeSecret::expose_secret(&new.secret).to_owned();
        assert!(
            secret.starts_with(KEY_PREFIX) && secret.len() == 4 + 43,
            "{secret}"
        );
        keys.create(&new.key, &new.sha256).await.unwrap();
        let stored: Vec<u8> = keys.tree.get("alertmanager").unwrap().unwrap().to_vec();
        assert!(!String::from_utf8_lossy(&stored).contains(&secret[4..]));

        let accepted = keys.accept(&secret).unwrap().expect("the key is accepted");
        assert!(accepted.allows("oncall") && !accepted.allows("payroll"));
        assert!(keys.list().unwrap()[0].last_used.is_some());
        assert!(keys.accept("zck_wrong").unwrap().is_none());
        assert!(matches!(
            keys.create(&generate("alertmanager", None).key, "0").await,
            Err(KeyError::Exists(_))
        ));
        assert!(matches!(
            keys.create(&generate("a b", None).key, "0").await,
            Err(KeyError::BadName(_))
        ));

        keys.revoke("alertmanager").await.unwrap();
        assert!(keys.accept(&secret).unwrap().is_none());
        assert!(matches!(
            keys.revoke("alertmanager").await,
            Err(KeyError::NoSuchKey(_))
        ));
    }
}
