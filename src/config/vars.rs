//! A job's own template variables: the `[vars]` table (values the job file sets once), and
//! `job`, `run_id` and `now`, which each run sets (`now` is the run's start in the job's
//! timezone, as RFC 3339, for the `date` filter).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The variables each run sets.
pub const RUN_VARIABLES: [&str; 3] = ["job", "run_id", "now"];

/// The run's variables: the job's name, the run's id and its start in `timezone`.
pub fn run_variables(
    job: &str,
    run_id: u64,
    started: DateTime<Utc>,
    timezone: Tz,
) -> [(String, String); 3] {
    [
        ("job".to_owned(), job.to_owned()),
        ("run_id".to_owned(), run_id.to_string()),
        (
            "now".to_owned(),
            started.with_timezone(&timezone).to_rfc3339(),
        ),
    ]
}
