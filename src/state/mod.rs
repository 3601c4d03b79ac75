//! The state directory: a sled database plus a lock file and one grant file per app and
//! installing account.
//!
//! ```text
//! state/              0700; zoomcast's entries in it private, no links: see [`private`]
//!   lock              held (flock) by the one zoomcast process using this directory; holds its pid
//!   db/               the sled database: trees grants, bot_tokens, jids, runs, run_ticks,
//!                     job_runs, totals, deliveries, messages, schedule, paces, optouts,
//!                     once, homes, health
//!   grants/APP/ACCOUNT.json  the current grant of app APP in account ACCOUNT, replaced
//!                     atomically on every rotation
//!   control.sock      the scheduler's control socket, while `schedule` runs
//! ```
//!
//! [`Store`] owns the `sled::Db`; no `sled::Tree` leaves this module. Each tree has a typed
//! wrapper with narrow verbs. A database that will not open is reported with the way to
//! recover, never recreated: a lost refresh token costs a person's time.

pub mod alert_groups;
pub mod api_keys;
pub mod codec;
pub mod console;
pub mod deliveries;
pub mod fires;
pub mod flusher;
pub mod grants;
pub mod idempotency;
pub mod jids;
pub mod listing;
pub mod lock;
pub mod offload;
pub mod once;
pub mod optouts;
pub mod paces;
pub mod private;
pub mod record;
pub mod retention;
pub mod runs;
pub mod seal;
mod sweep;
pub mod totals;

use std::path::{Path, PathBuf};

pub use alert_groups::{AlertGroup, AlertGroups};
pub use api_keys::{ApiKey, ApiKeys, KeyError};
pub use console::{Console, Suspension};
pub use deliveries::{Deliveries, Delivery, DeliveryState, Edited, Reminder, Rendered};
pub use fires::Fires;
pub use flusher::Flusher;
pub use grants::{Dead, Grant, Grants, UNIDENTIFIED};
pub use idempotency::{Claim, Idempotency};
pub use jids::{CacheTtl, CachedLookup, Jids};
pub use listing::{RunFilter, ViewStart};
pub use lock::StateLock;
pub use offload::{blocking, off_workers};
pub use once::{Once, Use};
pub use optouts::{OptOut, OptOuts};
pub use paces::Paces;
pub use record::{RunId, RunRecord, RunStatus};
pub use runs::Runs;
pub use seal::{Keys, SealError, StateKey};
pub use totals::Totals;

/// sled's page cache: small, because runs only stream through the state, and memory must not
/// grow with the recipient count (docs/src/performance.md has the figures).
const CACHE_BYTES: u64 = 1024 * 1024;

/// Why the state directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another process holds the lock.
    #[error(
        "the state directory {dir} is in use by another zoomcast process{}; wait for it to \
         finish, or stop it, or use another --state directory",
        holder(*pid, doing.as_deref())
    )]
    Locked {
        /// The state directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it into the lock file.
        pid: Option<u32>,
        /// What the holder said it is doing ("running job 'team'"), if it said.
        doing: Option<String>,
    },
    /// The database exists but sled refuses to open it.
    #[error(
        "the state database {db} cannot be opened: {source}. Nothing was changed. To recover, \
         move {db} aside (keep it for inspection) and run again: run history is lost, but the \
         grants are read back from {grants}, so no new login is needed"
    )]
    Corrupt {
        /// The sled directory.
        db: PathBuf,
        /// The grant files' directory.
        grants: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// The state path exists and is not a directory.
    #[error("the state directory {0} is not a directory; point --state at a directory")]
    NotADirectory(PathBuf),
    /// One of zoomcast's entries in the state directory is a symbolic link.
    #[error(
        "{0} is a symbolic link; zoomcast keeps tokens there and follows no link in its state \
         directory (another user may have planted it). Remove the link, or use another --state"
    )]
    Link(PathBuf),
    /// Something in the state directory belongs to another user.
    #[error("{}", private::foreign_help(path, *owner, *me))]
    Foreign {
        /// The entry.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// This process's effective uid.
        me: u32,
    },
    /// Any other I/O failure.
    #[error("state directory {dir}: {source}")]
    Io {
        /// The state directory.
        dir: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// An app name or account id that cannot name a grant file.
    #[error(
        "`{}` is not an app name or Zoom account id (1 to 64 letters, digits, - and _)",
        crate::output::clean(.0, 80)
    )]
    NotAName(String),
    /// A grant or token sealed with a key that was not given.
    #[error("{what}: {source}")]
    Sealed {
        /// Which copy of what.
        what: String,
        /// Why it does not open.
        source: SealError,
    },
    /// A stored value could not be decoded.
    #[error("state: {0}")]
    Codec(#[from] codec::CodecError),
    /// sled failed on an operation.
    #[error("state database: {0}")]
    Sled(#[from] sled::Error),
}

/// " (pid 42, running job `team`)": who holds the lock, as it said.
pub fn holder(pid: Option<u32>, doing: Option<&str>) -> String {
    let said: Vec<String> = pid
        .map(|p| format!("pid {p}"))
        .into_iter()
        .chain(doing.map(|d| crate::output::clean(d, 120)))
        .collect();
    if said.is_empty() {
        String::new()
    } else {
        format!(" ({})", said.join(", "))
    }
}

/// The open state directory. Dropping it flushes sled and releases the lock.
pub struct Store {
    dir: PathBuf,
    db: sled::Db,
    flusher: Flusher,
    lock: StateLock,
    keys: Keys,
    /// When the `once` tree is next pruned, shared by its handles.
    once_pruned: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// When the `idempotency` tree is next swept, shared by its handles.
    idempotency_swept: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// When the `alert_groups` tree is next swept, shared by its handles.
    alert_groups_swept: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl Store {
    /// Opens the state directory with grants stored in plain form (see [`Store::open_with`]).
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        Self::open_with(dir, Keys::plain())
    }

    /// Opens the state directory, created or made private (see [`private`]), and locks it
    /// against other processes. Grants and bot tokens are stored the way `keys` say: every
    /// one stored otherwise is written again now, after all have been read, so a missing or
    /// wrong key fails here and changes nothing.
    pub fn open_with(dir: &Path, keys: Keys) -> Result<Self, StateError> {
        private::secure(dir)?;
        let lock = StateLock::acquire(dir)?;
        let db_path = dir.join("db");
        let db = sled::Config::new()
            .path(&db_path)
            // LowSpace keeps sled's memory smaller and, for zoomcast's small values, is no
            // slower (docs/src/performance.md).
            .mode(sled::Mode::LowSpace)
            // sled's default page cache is 1 GiB; zoomcast's working set is tiny, and memory
            // must not grow with the recipient count.
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|source| StateError::Corrupt {
                db: db_path.clone(),
                grants: dir.join("grants"),
                source,
            })?;
        let store = Self {
            dir: dir.to_owned(),
            flusher: Flusher::new(&db),
            db,
            lock,
            keys,
            once_pruned: std::sync::Arc::default(),
            idempotency_swept: std::sync::Arc::default(),
            alert_groups_swept: std::sync::Arc::default(),
        };
        let grants = store.grants()?;
        let resealed = grants.reseal()?;
        if resealed > 0 {
            let how = store.keys.write_id().map_or_else(
                || "in plain form".to_owned(),
                |id| format!("encrypted with state key {id}"),
            );
            tracing::info!("stored {resealed} grant(s) {how}");
        }
        grants.move_per_app_grants()?;
        let indexed = store.runs()?.build_indexes()?;
        if indexed > 0 {
            tracing::info!("indexed the {indexed} runs kept and counted each job's totals");
        }
        store.say_once_if_plain()?;
        Ok(store)
    }

    /// Warns, the first time this state directory holds a grant without a state key, that
    /// grants are stored in plain form.
    fn say_once_if_plain(&self) -> Result<(), StateError> {
        const SAID: &[u8] = b"grants stored in plain form";
        let notices = self.db.open_tree("notices")?;
        if self.keys.seals() || notices.contains_key(SAID)? || self.grants()?.all()?.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            "grants in {} are stored in plain form: anyone who can read the state directory \
             (its owner, root, a backup) can use them. Set ZOOMCAST_STATE_KEY_FILE to encrypt \
             them (docs/src/operations.md, Tokens at rest); this is said once",
            self.dir.join("grants").display()
        );
        notices.insert(SAID, &[])?;
        Ok(())
    }

    /// The id of the state key grants are sealed with; `None` when they are stored plain.
    pub fn sealed_with(&self) -> Option<String> {
        self.keys.write_id()
    }

    /// Tells a process that finds the directory locked what this one is doing
    /// ("running job 'team'"); best effort.
    pub fn announce(&self, doing: &str) {
        self.lock.announce(doing);
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `grants` tree and files.
    pub fn grants(&self) -> Result<Grants, StateError> {
        Grants::open(&self.db, &self.flusher, &self.dir, &self.keys)
    }

    /// The `runs` tree.
    pub fn runs(&self) -> Result<Runs, StateError> {
        Runs::open(&self.db, &self.flusher)
    }

    /// The `jids` tree (the email-to-JID cache).
    pub fn jids(&self) -> Result<Jids, StateError> {
        Jids::open(&self.db)
    }

    /// The `schedule` tree (each job's newest tick dealt with).
    pub fn fires(&self) -> Result<Fires, StateError> {
        Fires::open(&self.db, &self.flusher)
    }

    /// The `deliveries` tree.
    pub fn deliveries(&self) -> Result<Deliveries, StateError> {
        Deliveries::open(&self.db, &self.flusher)
    }

    /// Whether the database still reads and writes (the server's `/healthz`): writes a
    /// random key to the `health` tree, reads it back and removes it.
    pub fn check_usable(&self) -> Result<(), StateError> {
        let health = self.db.open_tree("health")?;
        let probe = rand::random::<u64>().to_be_bytes();
        health.insert(probe, &probe)?;
        let read = health.remove(probe)?;
        if read.as_deref() == Some(&probe[..]) {
            Ok(())
        } else {
            Err(StateError::Codec(codec::CodecError::Damaged(
                "a value written to the health tree did not read back".into(),
            )))
        }
    }

    /// The `optouts` tree (users who told a bot `stop`).
    pub fn optouts(&self) -> Result<OptOuts, StateError> {
        OptOuts::open(&self.db, &self.flusher)
    }

    /// The `once` tree (webhook signatures and install states, each accepted once).
    pub fn once(&self) -> Result<Once, StateError> {
        Once::open(&self.db, &self.flusher, self.once_pruned.clone())
    }

    /// The `idempotency` tree (the HTTP API's `Idempotency-Key`s and their runs).
    pub fn idempotency(&self) -> Result<Idempotency, StateError> {
        Idempotency::open(&self.db, &self.flusher, self.idempotency_swept.clone())
    }

    /// The `alert_groups` tree (each Alertmanager group's run).
    pub fn alert_groups(&self) -> Result<AlertGroups, StateError> {
        AlertGroups::open(&self.db, &self.flusher, self.alert_groups_swept.clone())
    }

    /// The `console` tree (the web console's sign-in links, hashed, its signing key and the
    /// jobs it suspended).
    pub fn console(&self) -> Result<Console, StateError> {
        Console::open(&self.db, &self.flusher)
    }

    /// The `api_keys` tree (keys of the HTTP API, hashed).
    pub fn api_keys(&self) -> Result<ApiKeys, StateError> {
        ApiKeys::open(&self.db, &self.flusher)
    }

    /// The `paces` tree (Zoom's rate limits as last measured).
    pub fn paces(&self) -> Result<Paces, StateError> {
        Paces::open(&self.db)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.flusher.flush_blocking() {
            tracing::error!("flushing the state database on exit failed: {e}");
        }
    }
}
