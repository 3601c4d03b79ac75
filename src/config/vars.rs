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

/// The variables of an alert (design section 9): the fields of Alertmanager's webhook payload
/// (Grafana's webhook contact point sends the same). Every run has them: a run that Alertmanager
/// started holds its notification's values, any other the empty ones ([`ALERT_DEFAULTS`]).
/// Their values are JSON text, which the renderer reads as structured values, so a template can
/// loop over `alerts` and read `commonLabels.severity`.
pub use crate::render::ALERT_VARIABLES;

/// The alert variables of a run no alert started, as JSON text.
pub const ALERT_DEFAULTS: [&str; 9] = ["\"\"", "\"\"", "\"\"", "{}", "{}", "{}", "\"\"", "0", "[]"];

/// Whether `name` is an alert variable, whose value is JSON text.
pub fn is_alert_variable(name: &str) -> bool {
    ALERT_VARIABLES.contains(&name)
}

/// The alert variables with their values for a run no alert started.
pub fn alert_defaults() -> impl Iterator<Item = (String, String)> {
    ALERT_VARIABLES
        .iter()
        .zip(ALERT_DEFAULTS)
        .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
}

/// A notification's alert variables: each field of `payload` that is one, as JSON text (the
/// empty value for a field it lacks).
pub fn alert_values(
    payload: &serde_json::Map<String, serde_json::Value>,
) -> BTreeMap<String, String> {
    alert_defaults()
        .map(|(name, empty)| {
            let value = payload
                .get(&name)
                .map_or(empty, serde_json::Value::to_string);
            (name, value)
        })
        .collect()
}

/// Sample alert variables for a test render: one firing alert with labels, annotations and
/// times, as Alertmanager sends them.
pub fn alert_sample() -> BTreeMap<String, String> {
    let labels = serde_json::json!({ "alertname": "HighLatency", "severity": "critical", "instance": "api-1" });
    let annotations =
        serde_json::json!({ "summary": "p99 latency above 2 s", "description": "sample" });
    let payload = serde_json::json!({
        "status": "firing",
        "receiver": "zoomcast",
        "groupKey": "{}:{alertname=\"HighLatency\"}",
        "groupLabels": { "alertname": "HighLatency" },
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "http://alertmanager.example.com:9093",
        "truncatedAlerts": 0,
        "alerts": [{
            "status": "firing",
            "labels": labels,
            "annotations": annotations,
            "startsAt": "2026-12-07T09:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example.com:9090/graph",
            "fingerprint": "c6a2d6a3b0e1f2a4",
        }],
    });
    match payload {
        serde_json::Value::Object(map) => alert_values(&map),
        _ => BTreeMap::new(),
    }
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

#[cfg(test)]
mod alert_tests {
    use super::*;
    use crate::render::{Message, MessageTemplate, Text};

    #[test]
    fn an_alerts_fields_reach_a_template_as_structured_values() {
        let text = |name: &str, source: &str| Text {
            name: name.into(),
            source: source.into(),
        };
        let message = Message::Card {
            head: text(
                "head",
                "[{{ status | upper }}] {{ commonLabels.alertname }}",
            ),
            sub_head: None,
            body: vec![crate::render::Block::Message(text(
                "body",
                "{% for a in alerts %}{{ a.labels.instance }}: {{ a.annotations.summary }}{% endfor %} ({{ alerts | length }})",
            ))],
        };
        let template = MessageTemplate::compile(message).unwrap();
        let card = template.render(&alert_sample()).unwrap();
        assert_eq!(card["head"]["text"], "[FIRING] HighLatency");
        assert_eq!(card["body"][0]["text"], "api-1: p99 latency above 2 s (1)");
        // A run no alert started has the empty values.
        let empty: BTreeMap<String, String> = alert_defaults().collect();
        let card = template.render(&empty);
        assert!(
            card.is_err(),
            "commonLabels.alertname is undefined on an empty alert"
        );
        let names: Vec<&str> = ALERT_VARIABLES.to_vec();
        assert_eq!(names.len(), ALERT_DEFAULTS.len());
    }
}
