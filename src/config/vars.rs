//! A job's own template variables: the `[vars]` table (values the job file sets once), and
//! `job`, `run_id` and `now`, which each run sets (`now` is the run's start in the job's
//! timezone, as RFC 3339, for the `date` filter).

use std::collections::BTreeMap;

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

/// The longest value a run may give a variable, in bytes.
pub const MAX_RUN_VALUE: usize = 64 * 1024;

/// Why a run's own value of a variable is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadVar {
    /// The job's `[vars]` does not declare the name.
    #[error("job `{job}` declares no variable `{name}` in [vars]; {}", declared_hint(.declared))]
    Undeclared {
        /// The job.
        job: String,
        /// The name given (cleaned for display).
        name: String,
        /// The names the job declares.
        declared: Vec<String>,
    },
    /// The value is longer than [`MAX_RUN_VALUE`].
    #[error("the value of `{name}` is {len} bytes; at most {MAX_RUN_VALUE} are taken")]
    TooLong {
        /// The variable.
        name: String,
        /// Its value's length.
        len: usize,
    },
    /// `--var` without `=`.
    #[error("`{0}` is not NAME=VALUE")]
    NoValue(String),
}

fn declared_hint(declared: &[String]) -> String {
    if declared.is_empty() {
        "it declares none: add the name to the job file's [vars] with a default value".to_owned()
    } else {
        format!("it declares {}", declared.join(", "))
    }
}

/// A run's own values of `declared` variables (`[vars]` of job `job`), checked: every name
/// declared, every value at most [`MAX_RUN_VALUE`] bytes. The first bad one is the error.
pub fn run_values<'a>(
    job: &str,
    declared: &BTreeMap<String, String>,
    given: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<BTreeMap<String, String>, BadVar> {
    let mut values = BTreeMap::new();
    for (name, value) in given {
        if !declared.contains_key(name) {
            return Err(BadVar::Undeclared {
                job: job.to_owned(),
                name: crate::output::clean(name, 80),
                declared: declared.keys().cloned().collect(),
            });
        }
        if value.len() > MAX_RUN_VALUE {
            return Err(BadVar::TooLong {
                name: name.to_owned(),
                len: value.len(),
            });
        }
        values.insert(name.to_owned(), value.to_owned());
    }
    Ok(values)
}

/// `NAME=VALUE` split at its first `=`.
pub fn split_assignment(text: &str) -> Result<(&str, &str), BadVar> {
    text.split_once('=')
        .ok_or_else(|| BadVar::NoValue(crate::output::clean(text, 80)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> BTreeMap<String, String> {
        BTreeMap::from([("env".to_owned(), "staging".to_owned())])
    }

    #[test]
    fn a_run_may_set_only_declared_variables_with_bounded_values() {
        let ok = run_values("deploy", &declared(), [("env", "prod")]).unwrap();
        assert_eq!(ok["env"], "prod");
        let err = run_values("deploy", &declared(), [("region", "eu")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "job `deploy` declares no variable `region` in [vars]; it declares env"
        );
        let long = "x".repeat(MAX_RUN_VALUE + 1);
        assert!(matches!(
            run_values("deploy", &declared(), [("env", long.as_str())]),
            Err(BadVar::TooLong { .. })
        ));
        let none = run_values("deploy", &BTreeMap::new(), [("env", "x")]).unwrap_err();
        assert!(none.to_string().contains("declares none"), "{none}");
        assert_eq!(split_assignment("a=b=c").unwrap(), ("a", "b=c"));
        assert!(split_assignment("ab").is_err());
    }
}
