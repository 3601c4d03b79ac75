//! zoomcast runs declarative notification jobs against Zoom Team Chat: it resolves each
//! recipient's email to a chat JID with the app's **user** token and sends a chatbot message
//! with the app's **bot** token, keeping every piece of state in sled so that unattended runs
//! survive restarts, crashes and token rotation.
//!
//! # Layout
//!
//! - [`cli`]: the command line, one file per command; the only place that prints reports.
//! - [`schedule`]: the scheduler daemon and the planning of missed ticks and jitter.
//! - [`server`]: the HTTP server (`serve`, `schedule --listen`): Zoom's webhooks, `/healthz`,
//!   `/metrics`.
//! - [`control`]: the scheduler's control socket, for commands run beside it.
//! - [`report`]: human and JSON output of runs.
//! - [`shutdown`]: SIGTERM, SIGINT and SIGHUP, one way for every command that runs jobs.
//! - [`delivery`]: one run of a job: resolve, render, send, record.
//! - [`auth`]: the two tokens: login (code + state + PKCE), refresh, the bot token.
//! - [`zoom`]: the HTTP client for the Users and Chatbot APIs, and Zoom's errors.
//! - [`state`]: the state directory: sled trees, lock, grant files.
//! - [`config`]: apps (environment and `zoomcast.toml`), job files, recipients.
//! - [`render`]: a job's message for one recipient: templates, and the memory-capped child
//!   process that renders them.
//! - [`emulator`]: a local Zoom for the demo, the tests and the benchmarks (standalone).
//! - Shared vocabulary, depending on nothing else here: [`token`] (the secret newtypes and the
//!   two token types), [`user`] (a Zoom user), [`card`] (a chatbot message card and its
//!   limits), [`cron`] (crontab expressions with crontab's
//!   meaning, DST-correct), [`output`] (printing that never panics, text safe to show).
//!
//! Dependencies point one way, down this list: `cli` → `schedule` → `server` → `delivery` →
//! `auth` → `zoom`/`state`/`config` → `render` → the vocabulary; `control` and `report` sit beside
//! `schedule` (`control` on `delivery`, `config` and `state`; `report` on `delivery` and
//! `state`). No module depends on one above it. The book's Architecture chapter
//! (`docs/src/architecture.md`) follows each flow (a run, a refresh, an install, an
//! acknowledgement with reminders, an opt-out, a deauthorization) through its files.

#[macro_use]
pub mod output;

pub mod auth;
pub mod card;
pub mod cli;
pub mod config;
pub mod control;
pub mod cron;
pub mod delivery;
pub mod emulator;
pub mod render;
pub mod report;
pub mod schedule;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod token;
pub mod user;
pub mod zoom;
