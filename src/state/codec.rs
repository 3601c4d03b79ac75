//! Versioned values and key builders for the sled trees.
//!
//! Every value is one format byte followed by JSON, so a later release can migrate old values
//! instead of misreading them. Run ids are big-endian `u64`s so that keys sort by age.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format byte written today.
pub(super) const FORMAT_V1: u8 = 1;

/// The format byte of keys that carry one (newer trees: `run_ticks`, `schedule`).
pub const KEY_FORMAT: u8 = 1;

/// The key of a job's entry in a tree keyed by job (`schedule`, `totals`): the key format
/// byte, then the job's name.
pub fn job_key(job: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(job.len() + 1);
    key.push(KEY_FORMAT);
    key.extend_from_slice(job.as_bytes());
    key
}

/// A stored value zoomcast cannot read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value was written by a newer zoomcast (or is damaged).
    #[error("a stored value has format {0}, which this zoomcast does not know; upgrade zoomcast")]
    UnknownFormat(u8),
    /// The JSON inside is damaged.
    #[error("a stored value is damaged: {0}")]
    Damaged(String),
}

/// Encodes a value with the current format byte.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![FORMAT_V1];
    serde_json::to_writer(&mut bytes, value).expect("state values serialize to JSON");
    bytes
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, json)) => {
            serde_json::from_slice(json).map_err(|e| CodecError::Damaged(e.to_string()))
        }
        Some((&other, _)) => Err(CodecError::UnknownFormat(other)),
        None => Err(CodecError::Damaged("empty value".into())),
    }
}

/// The value stored under `key` in `tree`, decoded, if there is one.
pub fn get<T: DeserializeOwned>(
    tree: &sled::Tree,
    key: impl AsRef<[u8]>,
) -> Result<Option<T>, super::StateError> {
    match tree.get(key)? {
        Some(bytes) => Ok(Some(decode(&bytes)?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unknown_format() {
        let bytes = encode(&("a", 1));
        assert_eq!(bytes[0], FORMAT_V1);
        assert_eq!(
            decode::<(String, i32)>(&bytes).unwrap(),
            ("a".to_owned(), 1)
        );
        assert!(matches!(
            decode::<(String, i32)>(&[9, b'1']),
            Err(CodecError::UnknownFormat(9))
        ));
        assert!(matches!(
            decode::<(String, i32)>(&[]),
            Err(CodecError::Damaged(_))
        ));
    }
}
