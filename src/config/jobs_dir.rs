//! The jobs directory: every `*.toml` in it is a job, named by its file stem.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{Config, Job, job_name};

/// The jobs directory as loaded: valid jobs, and files that failed validation (name, why).
#[derive(Default)]
pub struct JobSet {
    /// Valid jobs.
    pub jobs: Vec<Job>,
    /// Invalid files: the job name (escaped: [`crate::output::escaped`]) and the validation
    /// errors.
    pub broken: Vec<(String, String)>,
}

/// Every job file in `dir`: the valid jobs and the invalid files with why.
pub fn load(config: &Config, dir: &Path) -> anyhow::Result<JobSet> {
    let mut set = JobSet::default();
    for path in toml_files(dir)? {
        match Job::load(&path, config) {
            Ok(job) => set.jobs.push(job),
            Err(invalid) => set.broken.push((
                crate::output::escaped(&job_name(&path)),
                invalid.to_string(),
            )),
        }
    }
    Ok(set)
}

/// Every `*.toml` in `dir`, sorted.
pub fn toml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading the jobs directory {}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}
