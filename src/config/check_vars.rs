//! The checker's part for `[vars]` ([`super::vars`]): each a name a template can use that
//! nothing else has, with one value.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;

use super::check::Checker;
use super::vars::{RUN_VARIABLES, is_alert_variable};
use crate::render::BUILTIN_VARIABLES;

/// Whether `name` can be used as a template variable: a letter or `_`, then letters, digits
/// and `_`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Checker<'_> {
    /// `[vars]`: each a name a template can use that no recipient field, CSV column (`columns`)
    /// or run variable has, with a string, number or boolean value. What is not is reported.
    pub(super) fn vars(
        &mut self,
        vars: &BTreeMap<Spanned<String>, Spanned<toml::Value>>,
        columns: &BTreeSet<String>,
    ) -> BTreeMap<String, String> {
        let mut checked = BTreeMap::new();
        for (name, value) in vars {
            let key = name.get_ref();
            let taken = BUILTIN_VARIABLES.contains(&key.as_str())
                || RUN_VARIABLES.contains(&key.as_str())
                || is_alert_variable(key)
                || columns.contains(key);
            if !is_identifier(key) {
                self.report(
                    name.span(),
                    format!(
                        "`{}` cannot be a template variable",
                        crate::output::clean(key, 80)
                    ),
                    "name it with letters, digits and _, starting with a letter",
                );
            } else if taken {
                self.report(
                    name.span(),
                    format!("`{key}` is already a variable of every message (a recipient's field, a column of recipients.file, job, run_id, now, or an alert's field)"),
                    "give the job's variable another name",
                );
            } else if let Some(text) = scalar(value.get_ref()) {
                checked.insert(key.clone(), text);
            } else {
                self.report(
                    value.span(),
                    format!("`{key}` must be a string, a number or true/false"),
                    "write one value; a template can split a string (`{{ x | split(\",\") }}`)",
                );
            }
        }
        checked
    }
}

/// A TOML value as template text, if it is one value.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}
