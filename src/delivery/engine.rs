//! [`Engine`]: what every run of a process shares, per app: the Zoom client, the state's
//! trees a run reads and writes, and the account limiters. Its runs' lifecycle is in `run`,
//! their shared requests in `context`.

use std::sync::Arc;

use super::limiters::Limiters;
use crate::state::{Deliveries, Jids, OptOuts, Runs, StateError};
use crate::zoom::ZoomClient;

/// What runs need; one per process, shared by every run (the limiters are per account).
pub struct Engine {
    /// The Zoom client.
    pub zoom: ZoomClient,
    /// The `runs` tree.
    pub runs: Runs,
    /// The `deliveries` tree.
    pub deliveries: Deliveries,
    /// The `jids` tree.
    pub jids: Jids,
    /// The `optouts` tree: recipients who told the bot `stop` are not sent to.
    pub optouts: OptOuts,
    /// The rate limiters of every app and endpoint.
    pub limiters: Arc<Limiters>,
}

impl Engine {
    /// An engine over the state store's trees.
    pub fn new(
        store: &crate::state::Store,
        zoom: ZoomClient,
        limiters: Arc<Limiters>,
    ) -> Result<Self, StateError> {
        Ok(Self {
            zoom,
            runs: store.runs()?,
            deliveries: store.deliveries()?,
            jids: store.jids()?,
            optouts: store.optouts()?,
            limiters,
        })
    }
}
