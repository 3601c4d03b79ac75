//! Tokens at rest. With a state key (`ZOOMCAST_STATE_KEY` or `ZOOMCAST_STATE_KEY_FILE`: 32
//! random bytes), every grant and cached bot token is sealed with XChaCha20-Poly1305 before it
//! reaches sled or a grant file; without one they are stored as plain JSON.
//!
//! A sealed value names its key by a short id (a hash of the key, which tells nothing about
//! it), so a wrong or missing key is refused with both ids before anything is written, and is
//! bound to where it is stored (the value's slot is the AEAD's associated data), so a sealed
//! grant copied into another account's slot does not open.
//!
//! ```text
//! sled value   plain: 0x01 JSON              sealed: 0x02 key-id(8) nonce(24) ciphertext
//! grant file   plain: JSON                   sealed: {"sealed":{"key":ID,"nonce":B64,"data":B64}}
//! ```

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::zeroize::Zeroizing;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The format byte of a plain sled value: the codec's JSON.
const PLAIN: u8 = super::codec::FORMAT_V1;
/// The format byte of a sealed sled value.
const SEALED: u8 = 2;
const ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;

/// Why a stored value does not open, or a key is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Sealed, and no key is set.
    #[error(
        "it is encrypted (state key {stored}) and no state key is set; set ZOOMCAST_STATE_KEY \
         or ZOOMCAST_STATE_KEY_FILE to the key it was stored with"
    )]
    NoKey {
        /// The id of the key it was sealed with.
        stored: String,
    },
    /// Sealed with another key than the one (or two, during a rekey) given.
    #[error(
        "it is encrypted with state key {stored}, but the key given is {given}; give the key it \
         was stored with (a `state rekey` that was interrupted is finished by running it again \
         with both keys)"
    )]
    WrongKey {
        /// The id of the key it was sealed with.
        stored: String,
        /// The ids of the keys given.
        given: String,
    },
    /// The key matches but the value does not open: damaged, or moved from another slot.
    #[error("it does not decrypt with its key: it is damaged, or was copied from another grant")]
    Damaged,
    /// The stored bytes are not a value of either form.
    #[error("it is neither plain nor sealed: {0}")]
    Unreadable(String),
    /// The key text is not 32 bytes in hex or base64.
    #[error(
        "{0} must be 32 random bytes, written as 64 hex digits or in base64 (44 characters); \
         make one with `zoomcast state new-key`"
    )]
    BadKey(String),
}

/// A state key: the cipher and its id.
pub struct StateKey {
    id: [u8; ID_LEN],
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateKey({})", self.id())
    }
}

impl StateKey {
    /// Reads a key written as 64 hex digits or base64; `var` names its source in the error.
    pub fn parse(text: &str, var: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let decoded = Zeroizing::new(if text.len() == 64 {
            hex::decode(text).unwrap_or_default()
        } else {
            BASE64.decode(text).unwrap_or_default()
        });
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| SealError::BadKey(var.to_owned()))?,
        );
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"zoomcast state key id\0")
            .chain_update(bytes)
            .finalize();
        let mut id = [0; ID_LEN];
        id.copy_from_slice(&digest[..ID_LEN]);
        Self {
            id,
            cipher: XChaCha20Poly1305::new(bytes.into()),
        }
    }

    /// A new random key, in base64.
    pub fn generate() -> String {
        BASE64.encode(rand::random::<[u8; 32]>())
    }

    /// The key's id: what sealed values and messages name it by.
    pub fn id(&self) -> String {
        hex::encode(self.id)
    }
}

/// The keys a store opens values with, and the one (if any) it seals new values with.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    write: Option<Arc<StateKey>>,
    read: Vec<Arc<StateKey>>,
}

/// A value read back: its JSON, and whether it must be written again to be stored the way
/// the keys say (plain with a key set, or sealed with another key than the writing one).
pub struct Opened {
    /// The value's JSON.
    pub json: Vec<u8>,
    /// Stored otherwise than the writing key would store it.
    pub stale: bool,
}

impl Keys {
    /// Plain storage.
    pub fn plain() -> Self {
        Self::default()
    }

    /// Sealing with `key` (and opening with it only).
    pub fn sealed(key: StateKey) -> Self {
        let key = Arc::new(key);
        Self {
            write: Some(key.clone()),
            read: vec![key],
        }
    }

    /// For `state rekey`: values open with `old` or `new`, and are written with `new` (plain
    /// when it is `None`).
    pub fn rekeying(old: Option<StateKey>, new: Option<StateKey>) -> Self {
        let new = new.map(Arc::new);
        let read = old.map(Arc::new).into_iter().chain(new.clone()).collect();
        Self { write: new, read }
    }

    /// Whether new values are sealed.
    pub fn seals(&self) -> bool {
        self.write.is_some()
    }

    /// The id of the writing key, if any.
    pub fn write_id(&self) -> Option<String> {
        self.write.as_ref().map(|k| k.id())
    }

    /// `json` as a sled value stored under `slot`.
    pub fn to_db(&self, slot: &[u8], json: &[u8]) -> Vec<u8> {
        match &self.write {
            None => [&[PLAIN][..], json].concat(),
            Some(key) => {
                let (nonce, data) = seal(key, slot, json);
                [&[SEALED][..], &key.id, &nonce, &data].concat()
            }
        }
    }

    /// The JSON of a sled value stored under `slot`.
    pub fn from_db(&self, slot: &[u8], bytes: &[u8]) -> Result<Opened, SealError> {
        match bytes.split_first() {
            Some((&PLAIN, json)) => Ok(self.plain_value(json)),
            Some((&SEALED, rest)) if rest.len() >= ID_LEN + NONCE_LEN => {
                let (id, rest) = rest.split_at(ID_LEN);
                let (nonce, data) = rest.split_at(NONCE_LEN);
                self.open(slot, id, nonce, data)
            }
            Some((format, _)) => Err(SealError::Unreadable(format!("format {format}"))),
            None => Err(SealError::Unreadable("empty".into())),
        }
    }

    /// `json` as the contents of a file holding the value of `slot`.
    pub fn to_file(&self, slot: &[u8], json: &[u8]) -> Vec<u8> {
        match &self.write {
            None => json.to_vec(),
            Some(key) => {
                let (nonce, data) = seal(key, slot, json);
                let file = SealedFile {
                    sealed: Envelope {
                        key: key.id(),
                        nonce: BASE64.encode(nonce),
                        data: BASE64.encode(data),
                    },
                };
                serde_json::to_vec(&file).expect("an envelope serializes")
            }
        }
    }

    /// The JSON of a file holding the value of `slot`.
    pub fn from_file(&self, slot: &[u8], bytes: &[u8]) -> Result<Opened, SealError> {
        let Ok(file) = serde_json::from_slice::<SealedFile>(bytes) else {
            return Ok(self.plain_value(bytes));
        };
        let envelope = file.sealed;
        let unreadable = |what: &str| SealError::Unreadable(format!("its {what} is not base64"));
        let id = hex::decode(&envelope.key).map_err(|_| unreadable("key id"))?;
        let nonce = BASE64
            .decode(&envelope.nonce)
            .map_err(|_| unreadable("nonce"))?;
        let data = BASE64
            .decode(&envelope.data)
            .map_err(|_| unreadable("data"))?;
        if id.len() != ID_LEN || nonce.len() != NONCE_LEN {
            return Err(SealError::Unreadable(
                "its key id or nonce is cut short".into(),
            ));
        }
        self.open(slot, &id, &nonce, &data)
    }

    fn plain_value(&self, json: &[u8]) -> Opened {
        Opened {
            json: json.to_vec(),
            stale: self.seals(),
        }
    }

    fn open(&self, slot: &[u8], id: &[u8], nonce: &[u8], data: &[u8]) -> Result<Opened, SealError> {
        let stored = hex::encode(id);
        let Some(key) = self.read.iter().find(|k| k.id[..] == *id) else {
            return Err(if self.read.is_empty() {
                SealError::NoKey { stored }
            } else {
                let ids: Vec<String> = self.read.iter().map(|k| k.id()).collect();
                SealError::WrongKey {
                    stored,
                    given: ids.join(" or "),
                }
            });
        };
        let payload = Payload {
            msg: data,
            aad: slot,
        };
        let json = key
            .cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| SealError::Damaged)?;
        let stale = self.write.as_ref().is_none_or(|w| w.id[..] != *id);
        Ok(Opened { json, stale })
    }
}

fn seal(key: &StateKey, slot: &[u8], json: &[u8]) -> ([u8; NONCE_LEN], Vec<u8>) {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let payload = Payload {
        msg: json,
        aad: slot,
    };
    let data = key
        .cipher
        .encrypt(XNonce::from_slice(&nonce), payload)
        .expect("XChaCha20-Poly1305 seals any value zoomcast stores");
    (nonce, data)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedFile {
    sealed: Envelope,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    key: String,
    nonce: String,
    data: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StateKey {
        StateKey::parse(&StateKey::generate(), "K").unwrap()
    }

    #[test]
    fn a_key_is_32_bytes_in_hex_or_base64() {
        let hex_key = "00".repeat(32);
        let b64_key = BASE64.encode([0u8; 32]);
        assert_eq!(
            StateKey::parse(&hex_key, "K").unwrap().id(),
            StateKey::parse(&format!("{b64_key}\n"), "K").unwrap().id()
        );
        for bad in ["", "short", &"00".repeat(31), &BASE64.encode([0u8; 16])] {
            let err = StateKey::parse(bad, "ZOOMCAST_STATE_KEY").unwrap_err();
            assert_eq!(err, SealError::BadKey("ZOOMCAST_STATE_KEY".into()));
        }
        let key = key();
        assert!(!format!("{key:?}").contains(&BASE64.encode([0u8; 32])));
    }

    #[test]
    fn sealed_values_open_only_with_their_key_in_their_slot() {
        let keys = Keys::sealed(key());
        let json = br#"{"refresh_token":"rt-secret"}"#;
        for (stored, opened) in [
            (
                keys.to_db(b"a", json),
                Keys::from_db as fn(&Keys, &[u8], &[u8]) -> _,
            ),
            (keys.to_file(b"a", json), Keys::from_file),
        ] {
            assert!(!String::from_utf8_lossy(&stored).contains("rt-secret"));
            let back = opened(&keys, b"a", &stored).unwrap();
            assert_eq!((back.json.as_slice(), back.stale), (&json[..], false));
            assert_eq!(opened(&keys, b"b", &stored).err(), Some(SealError::Damaged));
            assert!(matches!(
                opened(&Keys::sealed(key()), b"a", &stored).err(),
                Some(SealError::WrongKey { .. })
            ));
            assert!(matches!(
                opened(&Keys::plain(), b"a", &stored).err(),
                Some(SealError::NoKey { .. })
            ));
            assert!(opened(&Keys::rekeying(None, None), b"a", &stored).is_err());
        }
    }

    #[test]
    fn plain_values_are_stale_under_a_key_and_a_rekey_reads_both() {
        let old = Keys::sealed(StateKey::parse(&"11".repeat(32), "K").unwrap());
        let plain = Keys::plain().to_db(b"s", b"{}");
        assert!(!Keys::plain().from_db(b"s", &plain).unwrap().stale);
        assert!(old.from_db(b"s", &plain).unwrap().stale);
        let sealed = old.to_db(b"s", b"{}");
        let rekey = Keys::rekeying(
            Some(StateKey::parse(&"11".repeat(32), "K").unwrap()),
            Some(StateKey::parse(&"22".repeat(32), "K").unwrap()),
        );
        let back = rekey.from_db(b"s", &sealed).unwrap();
        assert!(back.stale);
        let resealed = rekey.to_db(b"s", &back.json);
        assert!(!rekey.from_db(b"s", &resealed).unwrap().stale);
        assert!(matches!(
            old.from_db(b"s", &resealed),
            Err(SealError::WrongKey { .. })
        ));
    }
}
