//! The scheduler: the daemon that fires each job on its schedule ([`crate::cron`] holds what a
//! schedule means), and the pure planning of missed ticks and jitter.

pub mod daemon;
pub mod plan;
