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

/// Where the configuration file is looked for when `--config` names none, in order:
/// `zoomcast.toml` in the current directory, `$XDG_CONFIG_HOME/zoomcast/zoomcast.toml` (else
/// `~/.config/zoomcast/zoomcast.toml`), and `/etc/zoomcast/zoomcast.toml`.
pub fn config_candidates(env: impl Fn(&str) -> Option<String>) -> Vec<std::path::PathBuf> {
    use std::path::PathBuf;
    let mut candidates = vec![PathBuf::from("zoomcast.toml")];
    let xdg = env("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        });
    if let Some(dir) = xdg {
        candidates.push(dir.join("zoomcast").join("zoomcast.toml"));
    }
    candidates.push(PathBuf::from("/etc/zoomcast/zoomcast.toml"));
    candidates
}
