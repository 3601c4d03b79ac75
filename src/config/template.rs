//! Message templates: `message.head` and `message.body` are minijinja templates over the
//! recipient's fields (`email`, `first_name`, `last_name`, `display_name`), CSV columns, the
//! job's `[vars]` and the run's `job`, `run_id` and `now`. The `date` filter formats a date or
//! date-time (`now`, or a column holding one) with chrono's strftime formats.
//! Undefined variables are errors, caught by `validate` before anything is sent, and so is
//! anything else that would fail every recipient: `validate` renders both templates with
//! sample values ([`MessageTemplate::check_render`]). A render is bounded (recursion depth
//! and minijinja's fuel), so a job file cannot make zoomcast loop or overflow its stack.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::value::Kwargs;
use minijinja::{Environment, UndefinedBehavior};

/// The variables every recipient has.
pub const BUILTIN_VARIABLES: [&str; 4] = ["email", "first_name", "last_name", "display_name"];

/// How deep macros may call each other (minijinja allows 500, which a debug build's stack on
/// a worker thread does not survive).
const MAX_DEPTH: usize = 50;
/// How many instructions one render may run: a message is a few dozen; loops over a CSV
/// column's items a few thousand.
const FUEL: u64 = 200_000;

/// Which of the two templates a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `message.head`.
    Head,
    /// `message.body`.
    Body,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Self::Head => "head",
            Self::Body => "body",
        }
    }
}

/// The compiled head and body of a job's message.
pub struct MessageTemplate {
    env: Environment<'static>,
}

impl MessageTemplate {
    /// Compiles both templates, or says which one has a syntax error.
    pub fn compile(head: &str, body: &str) -> Result<Self, (Part, String)> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_recursion_limit(MAX_DEPTH);
        env.set_fuel(Some(FUEL));
        env.add_filter("date", date);
        for (part, source) in [(Part::Head, head), (Part::Body, body)] {
            env.add_template_owned(part.name(), source.to_owned())
                .map_err(|e| (part, describe(&e)))?;
        }
        Ok(Self { env })
    }

    /// Variables the templates use that are not in `known` nor minijinja's globals (`range`,
    /// `dict`, `namespace`, ...), with the part that uses them.
    pub fn unknown_variables(&self, known: &BTreeSet<String>) -> Vec<(Part, String)> {
        let globals: BTreeSet<&str> = self.env.globals().map(|(name, _)| name).collect();
        let mut unknown = Vec::new();
        for part in [Part::Head, Part::Body] {
            let Ok(template) = self.env.get_template(part.name()) else {
                continue;
            };
            let mut names: Vec<String> = template.undeclared_variables(false).into_iter().collect();
            names.sort();
            unknown.extend(
                names
                    .into_iter()
                    .filter(|n| !known.contains(n) && !globals.contains(n.as_str()))
                    .map(|n| (part, n)),
            );
        }
        unknown
    }

    /// Renders both templates with `sample` values, and says what fails: a recursive macro,
    /// a loop that runs out of fuel, a filter that does not exist.
    pub fn check_render(&self, sample: &BTreeMap<String, String>) -> Vec<(Part, String)> {
        [Part::Head, Part::Body]
            .into_iter()
            .filter_map(|part| {
                let failed = self.render_part(part, sample).err();
                failed.map(|e| (part, describe(&e)))
            })
            .collect()
    }

    /// Renders head and body for one recipient's variables.
    pub fn render(&self, vars: &BTreeMap<String, String>) -> Result<(String, String), String> {
        let render = |part: Part| {
            self.render_part(part, vars)
                .map_err(|e| format!("rendering message.{}: {}", part.name(), describe(&e)))
        };
        Ok((render(Part::Head)?, render(Part::Body)?))
    }

    fn render_part(
        &self,
        part: Part,
        vars: &BTreeMap<String, String>,
    ) -> Result<String, minijinja::Error> {
        self.env
            .get_template(part.name())
            .and_then(|t| t.render(vars))
    }
}

/// The `date` filter: `{{ now | date(format="%d %B %Y") }}`. The value is an RFC 3339
/// date-time (as `now` is), `YYYY-MM-DD HH:MM[:SS]` or `YYYY-MM-DD`; the format is chrono's
/// strftime (default `%Y-%m-%d`), checked before use, so a bad one is an error, not a panic.
#[expect(
    clippy::needless_pass_by_value,
    reason = "minijinja hands keyword arguments to a filter by value"
)]
fn date(value: &str, format: Option<&str>, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    use chrono::format::{DelayedFormat, StrftimeItems};
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    use minijinja::ErrorKind::InvalidOperation;
    let named: Option<&str> = kwargs.get("format")?;
    kwargs.assert_all_used()?;
    let format = named.or(format).unwrap_or("%Y-%m-%d");
    let items = StrftimeItems::new(format).parse().map_err(|_| {
        minijinja::Error::new(
            InvalidOperation,
            format!("`{format}` is not a date format (chrono's strftime: %Y-%m-%d, %d %B, %H:%M)"),
        )
    })?;
    let items = items.iter();
    let formatted: DelayedFormat<_> = if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        at.format_with_items(items)
    } else if let Ok(at) = NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M"))
    {
        at.format_with_items(items)
    } else if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        day.format_with_items(items)
    } else {
        return Err(minijinja::Error::new(
            InvalidOperation,
            format!(
                "`{}` is not a date (write YYYY-MM-DD, YYYY-MM-DD HH:MM, or RFC 3339)",
                crate::output::clean(value, 40)
            ),
        ));
    };
    // A format asking a date for its hour fails here rather than panicking in `to_string`.
    let mut out = String::new();
    std::fmt::Write::write_fmt(&mut out, format_args!("{formatted}")).map_err(|_| {
        minijinja::Error::new(
            InvalidOperation,
            format!(
                "`{format}` asks for more than `{}` has",
                crate::output::clean(value, 40)
            ),
        )
    })?;
    Ok(out)
}

fn describe(e: &minijinja::Error) -> String {
    let text = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    crate::output::clean(&text, 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_finds_unknown_variables() {
        let t = MessageTemplate::compile(
            "Hi {{ first_name }}",
            "for {{ email }} in {{ team }} {{ frist_name }}",
        )
        .unwrap();
        let known: BTreeSet<String> = BUILTIN_VARIABLES
            .iter()
            .map(|s| (*s).to_owned())
            .chain(["team".to_owned()])
            .collect();
        assert_eq!(
            t.unknown_variables(&known),
            [(Part::Body, "frist_name".to_owned())]
        );
        let vars: BTreeMap<String, String> = [
            ("first_name", "Ana"),
            ("email", "ana@x.io"),
            ("team", "ops"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let err = t.render(&vars).unwrap_err();
        assert!(
            err.contains("message.body") && err.contains("undefined"),
            "{err}"
        );
        let t = MessageTemplate::compile("Hi {{ first_name }}", "in {{ team }}").unwrap();
        assert_eq!(t.render(&vars).unwrap(), ("Hi Ana".into(), "in ops".into()));
    }

    #[test]
    fn globals_are_not_unknown_and_what_cannot_render_is_found() {
        let known: BTreeSet<String> = BUILTIN_VARIABLES.iter().map(|s| (*s).to_owned()).collect();
        let t = MessageTemplate::compile(
            "{% for i in range(2) %}{{ i }}{% endfor %}",
            "{% set ns = namespace(n=1) %}{{ dict(a=ns.n) }}",
        )
        .unwrap();
        assert!(t.unknown_variables(&known).is_empty());
        assert!(t.check_render(&BTreeMap::new()).is_empty());
        let recursive =
            MessageTemplate::compile("ok", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")
                .unwrap();
        let problems = recursive.check_render(&BTreeMap::new());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].1.contains("recursion"), "{problems:?}");
        let endless = MessageTemplate::compile(
            "ok",
            "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}",
        )
        .unwrap();
        let problems = endless.check_render(&BTreeMap::new());
        assert!(problems[0].1.contains("fuel"), "{problems:?}");
    }

    #[test]
    fn the_date_filter_formats_dates_and_date_times_and_refuses_what_it_cannot() {
        let render = |body: &str, at: &str| {
            let t = MessageTemplate::compile("", body).unwrap();
            let vars = BTreeMap::from([("at".to_owned(), at.to_owned())]);
            t.render(&vars).map(|(_, body)| body)
        };
        let now = "2026-11-30T09:50:00+01:00";
        assert_eq!(render("{{ at | date }}", now).unwrap(), "2026-11-30");
        assert_eq!(
            render("{{ at | date(format=\"%d %B, %H:%M\") }}", now).unwrap(),
            "30 November, 09:50"
        );
        assert_eq!(
            render("{{ at | date(\"%a %d\") }}", "2026-12-01").unwrap(),
            "Tue 01"
        );
        assert_eq!(
            render("{{ at | date(format=\"%H:%M\") }}", "2026-12-01 17:05").unwrap(),
            "17:05"
        );
        let bad_format = render("{{ at | date(format=\"%Q\") }}", now).unwrap_err();
        assert!(bad_format.contains("is not a date format"), "{bad_format}");
        let not_a_date = render("{{ at | date }}", "next tuesday").unwrap_err();
        assert!(not_a_date.contains("is not a date"), "{not_a_date}");
        let no_hour = render("{{ at | date(format=\"%H\") }}", "2026-12-01").unwrap_err();
        assert!(no_hour.contains("asks for more than"), "{no_hour}");
        let unknown_argument = render("{{ at | date(fmt=\"%Y\") }}", now).unwrap_err();
        assert!(unknown_argument.contains("fmt"), "{unknown_argument}");
    }

    #[test]
    fn syntax_errors_name_the_part() {
        let (part, msg) = MessageTemplate::compile("ok", "{{ unclosed").err().unwrap();
        assert_eq!(part, Part::Body);
        assert!(msg.contains("syntax error"), "{msg}");
    }
}
