//! The `deliveries` tree: one entry per (run, recipient) holding where that recipient stands.
//!
//! Keys are the run id (8 bytes, big-endian) followed by the lower-cased email, so one run's
//! deliveries are one contiguous, ordered range.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::codec::{self, decode, encode};
use super::record::Counts;
use super::{Flusher, RunId, StateError};

/// Where one recipient stands in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum DeliveryState {
    /// Not yet sent. Not written any more (a recipient without an entry is pending); kept so
    /// that entries written by earlier builds still read.
    Pending,
    /// The request is (or was, at a crash) in flight.
    Sending,
    /// Zoom accepted the message.
    Sent {
        /// Zoom's message id.
        message_id: String,
    },
    /// Failed permanently, with Zoom's answer.
    Failed {
        /// Zoom's code, when it gave one.
        code: Option<i64>,
        /// What went wrong.
        message: String,
    },
    /// A crash hid the outcome and `on_uncertain = "skip"` said not to resend.
    Uncertain,
    /// Not sent: the recipient told the app's bot `stop`.
    OptedOut,
}

impl DeliveryState {
    /// The state's name as `history` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Sent { .. } => "sent",
            Self::Failed { .. } => "failed",
            Self::Uncertain => "uncertain",
            Self::OptedOut => "opted_out",
        }
    }
}

/// The name of a [`DeliveryState`], as stored: enough to count an entry.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StateName {
    Pending,
    Sending,
    Sent,
    Failed,
    Uncertain,
    OptedOut,
}

/// A stored [`Delivery`] read for its state's name alone (serde skips the other fields).
#[derive(Deserialize)]
struct StateOnly {
    state: StateName,
}

/// One recipient of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The recipient: its email, or the JID of a user or channel addressed by JID,
    /// lower-cased.
    pub email: String,
    /// Where it stands.
    #[serde(flatten)]
    pub state: DeliveryState,
    /// The recipient's JID, once resolved (a resumed run resends without looking it up again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jid: Option<String>,
    /// While `sending`: the message as rendered, so that a resumed run resends exactly what
    /// may already have reached the recipient. Dropped once the outcome is known. (Named apart
    /// from `message`, which a failed state flattens into the same object.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered: Option<Rendered>,
    /// Requests made for this recipient (lookups and sends, retries included).
    pub attempts: u32,
    /// When the state last changed.
    pub updated_at: DateTime<Utc>,
    /// Buttons the recipient pressed on the message, oldest first (the last [`MAX_PRESSES`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presses: Vec<Press>,
    /// When `recall` deleted the sent message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recalled_at: Option<DateTime<Utc>>,
    /// When `edit` last replaced the sent message's card, and a digest of that card (so that
    /// the same edit again changes nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<Edited>,
    /// Reminders to acknowledge the message (`[acknowledge]`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reminders: Vec<Reminder>,
}

/// A reminder for a delivery's message: marked before it is sent (journaled like a send), so
/// that a crash in between is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    /// When it was (to be) sent.
    pub at: DateTime<Utc>,
    /// Whether Zoom answered it (a crash before the answer leaves `false`).
    #[serde(default)]
    pub done: bool,
    /// Why Zoom refused it, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Delivery {
    /// A delivery of `email` in `state`, changed now, with no message kept, no press, recall,
    /// edit or reminder yet.
    pub fn new(email: &str, state: DeliveryState, jid: Option<String>, attempts: u32) -> Self {
        Self {
            email: email.to_owned(),
            state,
            jid,
            rendered: None,
            attempts,
            updated_at: Utc::now(),
            presses: Vec::new(),
            recalled_at: None,
            edited: None,
            reminders: Vec::new(),
        }
    }

    /// The press that acknowledged the message: the first of the button with value `button`.
    pub fn acknowledgement(&self, button: &str) -> Option<&Press> {
        self.presses.iter().find(|p| p.value == button)
    }
}

/// The last edit of a sent message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edited {
    /// When.
    pub at: DateTime<Utc>,
    /// SHA-256 of the card sent in the edit, hex.
    pub digest: String,
}

/// The most button presses kept per delivery.
pub const MAX_PRESSES: usize = 20;

/// Drops the oldest presses beyond [`MAX_PRESSES`], but never the first press of a value
/// (what an acknowledgement is): the oldest repeat goes first.
fn keep_newest_presses(presses: &mut Vec<Press>) {
    while presses.len() > MAX_PRESSES {
        let repeat =
            (0..presses.len()).find(|&i| presses[..i].iter().any(|p| p.value == presses[i].value));
        presses.remove(repeat.unwrap_or(0));
    }
}

/// A button pressed on a sent message (Zoom's `interactive_message_actions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Press {
    /// The button's value.
    pub value: String,
    /// Who pressed it: their chat JID.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A message as rendered for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RenderedWire")]
pub struct Rendered {
    /// The message card (Zoom's `content` object).
    pub content: serde_json::Value,
}

/// How a rendered message is stored: its card; entries of earlier releases hold a head line
/// and a text body instead.
#[derive(Deserialize)]
struct RenderedWire {
    content: Option<serde_json::Value>,
    #[serde(default)]
    head: String,
    #[serde(default)]
    body: String,
}

impl From<RenderedWire> for Rendered {
    fn from(wire: RenderedWire) -> Self {
        Self {
            content: wire
                .content
                .unwrap_or_else(|| crate::card::text(&wire.head, &wire.body)),
        }
    }
}

/// The `deliveries` tree, and `messages`: Zoom's message id of each sent message with buttons
/// to the key of its delivery, so that a button press finds the delivery it belongs to.
#[derive(Clone)]
pub struct Deliveries {
    tree: sled::Tree,
    messages: sled::Tree,
    flusher: Flusher,
}

/// A stored [`Delivery`] read for its message id alone.
#[derive(Deserialize)]
struct MessageOnly {
    #[serde(default)]
    message_id: Option<String>,
}

fn key(run: RunId, email: &str) -> Vec<u8> {
    let mut key = run.key().to_vec();
    key.extend_from_slice(email.as_bytes());
    key
}

impl Deliveries {
    pub(super) fn open(db: &sled::Db, flusher: &Flusher) -> Result<Self, StateError> {
        Ok(Self {
            tree: db.open_tree("deliveries")?,
            messages: db.open_tree("messages")?,
            flusher: flusher.clone(),
        })
    }

    /// Records where a recipient stands (not flushed; see [`Deliveries::flush`]).
    pub fn set(&self, run: RunId, delivery: &Delivery) -> Result<(), StateError> {
        self.tree
            .insert(key(run, &delivery.email), encode(delivery))?;
        Ok(())
    }

    /// Records that `message_id` is the message sent to `email` in `run`, so that a button
    /// press on it finds its delivery (not flushed). Only messages with buttons need it: the
    /// index costs a send a sixth of its CPU.
    pub fn index_message(
        &self,
        message_id: &str,
        run: RunId,
        email: &str,
    ) -> Result<(), StateError> {
        let email = email.to_lowercase();
        self.messages
            .insert(message_id.as_bytes(), key(run, &email))?;
        Ok(())
    }

    /// Records a button press on the message `message_id`, durably; the run and delivery it
    /// belongs to, or `None` for a message zoomcast did not send (or whose run's details were
    /// deleted).
    pub async fn press(
        &self,
        message_id: &str,
        press: Press,
    ) -> Result<Option<(RunId, String)>, StateError> {
        let Some(key) = self.messages.get(message_id.as_bytes())? else {
            return Ok(None);
        };
        let updated = self.update(&key, |delivery| {
            delivery.presses.push(press.clone());
            keep_newest_presses(&mut delivery.presses);
        })?;
        let Some(delivery) = updated else {
            return Ok(None);
        };
        self.flush().await?;
        let run = RunId::from_key(&key[..8]);
        Ok(Some((run, delivery.email)))
    }

    /// Changes the stored delivery of `email` in `run` in place (atomically: a press recorded
    /// meanwhile is kept), not flushed. The delivery as changed, if there is one.
    pub fn modify(
        &self,
        run: RunId,
        email: &str,
        change: impl FnMut(&mut Delivery),
    ) -> Result<Option<Delivery>, StateError> {
        self.update(&key(run, email), change)
    }

    fn update(
        &self,
        key: &[u8],
        mut change: impl FnMut(&mut Delivery),
    ) -> Result<Option<Delivery>, StateError> {
        let mut failure = None;
        let updated = self.tree.update_and_fetch(key, |old| {
            let mut delivery: Delivery = match decode(old?) {
                Ok(delivery) => delivery,
                Err(e) => {
                    failure = Some(e);
                    return old.map(<[u8]>::to_vec);
                }
            };
            change(&mut delivery);
            Some(encode(&delivery))
        })?;
        if let Some(e) = failure {
            return Err(e.into());
        }
        Ok(updated.map(|bytes| decode(&bytes)).transpose()?)
    }

    /// Makes every recorded state durable: the group commit before a batch of sends.
    pub async fn flush(&self) -> Result<(), StateError> {
        self.flusher.flush().await
    }

    /// [`Deliveries::flush`], blocking the thread.
    pub fn flush_blocking(&self) -> Result<(), StateError> {
        self.flusher.flush_blocking()
    }

    /// Forgets a recipient of a run (not flushed): it was marked `sending`, but its request
    /// never reached Zoom, so a resumed run treats it as not yet started.
    pub fn forget(&self, run: RunId, email: &str) -> Result<(), StateError> {
        self.tree.remove(key(run, email))?;
        Ok(())
    }

    /// Where one recipient of a run stands, if it was recorded.
    pub fn get(&self, run: RunId, email: &str) -> Result<Option<Delivery>, StateError> {
        codec::get(&self.tree, key(run, email))
    }

    /// A run's counts, and its recipients that failed or are uncertain, in one scan. Most
    /// entries are sent: only their state's name is read (a whole entry, with its flattened
    /// state, decodes about ten times slower).
    pub fn tally(&self, run: RunId) -> Result<(Counts, Vec<Delivery>), StateError> {
        let mut counts = Counts::default();
        let mut failures = Vec::new();
        for bytes in self.tree.scan_prefix(run.key()).values() {
            let bytes = bytes?;
            let StateOnly { state } = decode(&bytes)?;
            counts.total += 1;
            match state {
                StateName::Sent => counts.sent += 1,
                StateName::Failed => counts.failed += 1,
                StateName::Uncertain => counts.uncertain += 1,
                StateName::OptedOut => counts.opted_out += 1,
                StateName::Pending | StateName::Sending => {}
            }
            if matches!(state, StateName::Failed | StateName::Uncertain) {
                failures.push(decode(&bytes)?);
            }
        }
        Ok((counts, failures))
    }

    /// Turns every `sending` entry of a run into `uncertain`: called when a run has finished
    /// and these recipients were not visited again (the recipient list changed since the crash
    /// that left them). Returns how many there were.
    pub fn settle_sending(&self, run: RunId) -> Result<usize, StateError> {
        let mut settled = 0;
        for entry in self.tree.scan_prefix(run.key()) {
            let (key, bytes) = entry?;
            let mut d: Delivery = decode(&bytes)?;
            if d.state == DeliveryState::Sending {
                d.state = DeliveryState::Uncertain;
                d.rendered = None;
                self.tree.insert(key, encode(&d))?;
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// Deletes every recipient of a run (not flushed): the run keeps only its summary.
    /// Returns how many there were.
    pub fn prune(&self, run: RunId) -> Result<usize, StateError> {
        let mut pruned = 0;
        // Only messages with buttons are indexed: with none, no entry needs decoding.
        let indexed = !self.messages.is_empty();
        for entry in self.tree.scan_prefix(run.key()) {
            let (key, bytes) = entry?;
            if indexed
                && let MessageOnly {
                    message_id: Some(id),
                } = decode(&bytes)?
            {
                self.messages.remove(id.as_bytes())?;
            }
            self.tree.remove(key)?;
            pruned += 1;
        }
        Ok(pruned)
    }

    /// Every recipient of a run, in email order.
    pub fn list(&self, run: RunId) -> Result<Vec<Delivery>, StateError> {
        self.tree
            .scan_prefix(run.key())
            .values()
            .map(|bytes| Ok(decode(&bytes?)?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_sending_entries_are_settled_as_uncertain() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let deliveries = Deliveries::open(&db, &Flusher::new(&db)).unwrap();
        let at = Utc::now();
        let entry = |email: &str, state| Delivery {
            email: email.into(),
            state,
            jid: None,
            rendered: None,
            attempts: 1,
            updated_at: at,
            presses: Vec::new(),
            recalled_at: None,
            edited: None,
            reminders: Vec::new(),
        };
        deliveries
            .set(RunId(1), &entry("a@x.io", DeliveryState::Sending))
            .unwrap();
        deliveries
            .set(
                RunId(1),
                &entry(
                    "b@x.io",
                    DeliveryState::Sent {
                        message_id: "m".into(),
                    },
                ),
            )
            .unwrap();
        deliveries
            .set(RunId(2), &entry("c@x.io", DeliveryState::Sending))
            .unwrap();
        assert_eq!(deliveries.settle_sending(RunId(1)).unwrap(), 1);
        let (counts, failures) = deliveries.tally(RunId(1)).unwrap();
        assert_eq!((counts.total, counts.sent, counts.uncertain), (2, 1, 1));
        assert_eq!(failures[0].email, "a@x.io");
        assert_eq!(
            deliveries.get(RunId(2), "c@x.io").unwrap().unwrap().state,
            DeliveryState::Sending,
            "other runs untouched"
        );
    }

    #[test]
    fn a_tally_counts_every_state_and_returns_the_failed_and_uncertain_whole() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let deliveries = Deliveries::open(&db, &Flusher::new(&db)).unwrap();
        let entry =
            |email: &str, state| Delivery::new(email, state, Some(format!("{email}.jid")), 2);
        let failed = entry(
            "b@x.io",
            DeliveryState::Failed {
                code: Some(4001),
                message: "no such user".into(),
            },
        );
        let uncertain = entry("d@x.io", DeliveryState::Uncertain);
        let sent = DeliveryState::Sent {
            message_id: "m1".into(),
        };
        for d in [
            entry("a@x.io", sent.clone()),
            failed.clone(),
            entry("c@x.io", DeliveryState::Sending),
            uncertain.clone(),
            entry("e@x.io", DeliveryState::Pending),
            entry("f@x.io", sent),
        ] {
            deliveries.set(RunId(3), &d).unwrap();
        }
        deliveries
            .set(RunId(4), &entry("g@x.io", DeliveryState::Uncertain))
            .unwrap();
        let (counts, failures) = deliveries.tally(RunId(3)).unwrap();
        assert_eq!(
            (counts.total, counts.sent, counts.failed, counts.uncertain),
            (6, 2, 1, 1)
        );
        assert_eq!(failures, [failed, uncertain]);
    }

    #[tokio::test]
    async fn a_press_finds_its_delivery_until_the_run_is_pruned() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let deliveries = Deliveries::open(&db, &Flusher::new(&db)).unwrap();
        let sent = Delivery::new(
            "a@x.io",
            DeliveryState::Sent {
                message_id: "m-1".into(),
            },
            None,
            1,
        );
        deliveries.set(RunId(7), &sent).unwrap();
        deliveries.index_message("m-1", RunId(7), "a@x.io").unwrap();
        let press = |value: &str| Press {
            value: value.into(),
            by: "a@xmpp.zoom.us".into(),
            at: Utc::now(),
        };
        for n in 0..=MAX_PRESSES {
            let found = deliveries
                .press("m-1", press(&n.to_string()))
                .await
                .unwrap();
            assert_eq!(found, Some((RunId(7), "a@x.io".to_owned())));
        }
        let kept = &deliveries.get(RunId(7), "a@x.io").unwrap().unwrap().presses;
        assert_eq!(kept.len(), MAX_PRESSES, "the newest presses are kept");
        assert_eq!(kept[0].value, "1");
        assert_eq!(deliveries.press("m-2", press("x")).await.unwrap(), None);
        deliveries.prune(RunId(7)).unwrap();
        assert_eq!(
            deliveries.press("m-1", press("x")).await.unwrap(),
            None,
            "the index goes with the run's details"
        );
        assert!(deliveries.messages.is_empty());
    }
}
