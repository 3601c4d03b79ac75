//! End-to-end tests: the real `zoomcast` binary against the in-process Zoom emulator.
//! One integration binary (one link) with a module per capability.

mod harness;

mod accounts;
mod alerts;
mod api;
mod at_rest;
mod auth;
mod browser;
mod cache;
mod channels;
mod cli;
mod console;
mod demo;
mod device;
mod emulator;
mod history;
mod hostile;
mod inproc;
mod messages;
mod on_failure;
mod operators;
mod progress;
mod prometheus;
mod rate_limits;
mod resume;
mod run;
mod schedule;
mod secrets;
mod send;
mod serve;
mod tokens;
mod trust;
mod unattended;
mod validate;
