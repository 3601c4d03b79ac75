//! Configuration: the apps' identities (environment and `zoomcast.toml`), job files (their
//! messages compiled by [`crate::render`]) and recipient lists, and the diagnostics that
//! explain what is wrong with them.

pub mod acknowledge;
pub mod adhoc;
pub mod app;
pub mod check;
mod check_acknowledge;
mod check_message;
mod check_vars;
pub mod diagnostic;
pub mod help;
pub mod job;
pub mod jobs_dir;
pub mod load;
pub mod message;
pub mod plan;
pub mod recipients;
pub mod recover;
pub mod sources;
pub mod vars;

pub use app::{AppConfig, Config, DEFAULT_APP, InstallAccounts};
pub use diagnostic::{Diagnostic, Invalid};
pub use job::{CatchUp, DeliverySettings, Job, OnUncertain, Overlap, SchedulePolicy, job_name};
pub use jobs_dir::JobSet;
pub use plan::Plan;
