//! End-to-end tests: the real `zoomcast` binary against the in-process Zoom emulator.
//! One integration binary (one link) with a module per capability.

mod harness;

mod auth;
mod demo;
mod emulator;
mod resume;
mod run;
mod schedule;
mod secrets;
mod trust;
mod validate;
