//! zoomcast runs declarative notification jobs against Zoom Team Chat: it resolves each
//! recipient's email to a chat JID with the app's **user** token and sends a chatbot message
//! with the app's **bot** token, keeping every piece of state in sled so that unattended runs
//! survive restarts, crashes and token rotation.
//!
//! # Layout
//!
//! - [`cli`]: the command line, one file per command; the only place that prints.
//! - [`config`]: apps (environment and `zoomcast.toml`), job files, templates, recipients.
//! - [`schedule`]: crontab expressions with crontab's meaning, DST-correct; the scheduler loop.
//! - [`control`]: the scheduler's control socket, for commands run beside it.
//! - [`auth`]: the two tokens: login (code + state + PKCE), refresh, the bot token.
//! - [`zoom`]: the HTTP client for the Users and Chatbot APIs, and Zoom's errors.
//! - [`delivery`]: one run of a job: resolve, render, send, record.
//! - [`state`]: the state directory: sled trees, lock, grant files.
//! - [`emulator`]: a local Zoom for the demo, the tests and the benchmarks.
//! - [`report`]: human and JSON output of runs.
//! - [`output`]: printing that never panics on a closed stdout or stderr.
//!
//! Dependencies point one way: `cli` → `delivery`/`auth` → `zoom`/`state`/`config`.

#[macro_use]
pub mod output;

pub mod auth;
pub mod cli;
pub mod config;
pub mod control;
pub mod delivery;
pub mod emulator;
pub mod report;
pub mod schedule;
pub mod state;
pub mod zoom;
