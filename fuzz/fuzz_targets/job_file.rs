//! The job-file checker with its templates: any text as `jobs/fuzz.toml` is either a job or a
//! list of problems, never a panic, a hang or unbounded memory; a valid job's message renders
//! (or fails) for its recipients within the template's bounds; problems print.

#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use zoomcast::config::{Config, Job};

/// A jobs directory with a recipients file a fuzzed job may name (`file = "team.csv"`).
static JOBS: LazyLock<(tempfile::TempDir, PathBuf)> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("team.csv"),
        "email,first_name,team\nana@example.com,Ana,ops\nbo@example.com,Bo,dev\n",
    )
    .expect("the recipients file is written");
    let path = dir.path().join("fuzz.toml");
    (dir, path)
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = Config::empty();
    match Job::parse(&JOBS.1, text, &config) {
        Ok(job) => {
            let Ok(recipients) = job.recipients() else {
                return;
            };
            for recipient in recipients.take(3).flatten() {
                let mut vars: BTreeMap<String, String> = recipient.columns.clone();
                vars.insert("email".into(), recipient.email.clone());
                for name in ["first_name", "last_name", "display_name"] {
                    vars.entry(name.into()).or_default();
                }
                let _ = job.template.render(&vars);
            }
        }
        Err(invalid) => {
            let _ = invalid.to_string();
        }
    }
});
