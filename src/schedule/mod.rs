//! The scheduler: the loop that fires each job on its schedule ([`daemon`]; [`crate::cron`]
//! holds what a schedule means), the pure planning of missed ticks and jitter ([`plan`]), and
//! the service around the loop ([`service`]: reload watcher, keep-alive, reminders to
//! acknowledge, control socket), and what starts its runs ([`launcher`]).

pub mod daemon;
mod handler;
mod launcher;
pub mod plan;
mod reminders;
pub mod service;
mod slot;
mod starter;
mod systemd;
mod watch;
