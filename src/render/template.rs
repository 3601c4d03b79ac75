//! Message templates. Every text of a job's message (`head`, `sub_head`, the `body`, each
//! block's texts, or the whole `content` JSON) is a minijinja template over the recipient's
//! fields (`email`, `first_name`, `last_name`, `display_name`), CSV columns, the job's `[vars]`
//! and the run's `job`, `run_id` and `now`; [`MessageTemplate::render`] builds Zoom's card
//! (see [`crate::card`]) from them for one recipient. The `date` filter formats a date or
//! date-time (`now`, or a column holding one) with chrono's strftime formats; `tojson` writes a
//! value into the `content` JSON safely.
//!
//! Undefined variables are errors, caught by `validate` before anything is sent, and so is
//! anything else that would fail every recipient: `validate` renders every template with
//! sample values ([`MessageTemplate::check_render`]). A render is bounded (recursion depth and
//! minijinja's fuel), so a job file cannot make zoomcast loop or overflow its stack; and, in the
//! binary, runs in a child whose memory is capped ([`super::sandbox`]).

use std::collections::{BTreeMap, BTreeSet};

use minijinja::value::Kwargs;
use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::RenderError;
use super::sandbox::{self, Answer, Failure, Renderer, Request, Sandbox};

/// `zoomcast render-worker`: the child that renders one job's message with its memory capped
/// (see [`super::sandbox`]); its exit code.
pub fn worker() -> i32 {
    sandbox::serve(|line| {
        let message = serde_json::from_str::<Message>(line).ok()?;
        MessageTemplate::compile(message).ok()
    })
}

impl Renderer for MessageTemplate {
    fn render(&self, vars: &BTreeMap<String, String>) -> Result<Value, RenderError> {
        self.render_here(vars)
    }

    fn check(&self, sample: &BTreeMap<String, String>) -> Vec<(String, String)> {
        self.check_here(sample)
    }
}

/// The card in a child's answer to a render.
fn card(answer: Result<Answer, Failure>) -> Result<Value, RenderError> {
    match answer {
        Ok(Answer::Rendered(rendered)) => rendered,
        Ok(Answer::Checked(_)) => Err(RenderError::Text {
            name: "message".into(),
            message: "the renderer misread the request".into(),
        }),
        Err(Failure::Template(message)) => Err(RenderError::Text {
            name: "message".into(),
            message,
        }),
        Err(Failure::Renderer(why)) => Err(RenderError::Unavailable(why)),
    }
}

/// The variables every recipient has.
pub const BUILTIN_VARIABLES: [&str; 4] = ["email", "first_name", "last_name", "display_name"];

/// The variables of an alert (Alertmanager's webhook payload, design section 9), whose values
/// are JSON text: a template reads them as the structured values they are (`alerts` a list,
/// `commonLabels` a map). Every run has them (`crate::config::vars::alert_defaults`).
pub const ALERT_VARIABLES: [&str; 9] = [
    "status",
    "receiver",
    "groupKey",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "truncatedAlerts",
    "alerts",
];

/// How deep macros may call each other (minijinja allows 500, which a debug build's stack on
/// a worker thread does not survive).
const MAX_DEPTH: usize = 50;
/// How many instructions one render may run: a message is a few dozen; loops over a CSV
/// column's items a few thousand.
const FUEL: u64 = 200_000;

/// One template of the message: its name (`head`, `blocks[2].text`, ...: what a problem is
/// reported under) and its source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Text {
    /// Where it sits in the message.
    pub name: String,
    /// The template.
    pub source: String,
}

impl Text {
    /// The template `source`, called `name`.
    pub fn new(name: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            source: source.into(),
        }
    }
}

/// A message as the job file describes it, its texts still templates.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Message {
    /// A card: a head line, perhaps a sub-head, and body items.
    Card {
        /// The head line.
        head: Text,
        /// The line under it.
        sub_head: Option<Text>,
        /// The body items, in order.
        body: Vec<Block>,
    },
    /// Zoom's `content` object as one JSON template.
    Content(Text),
}

/// One body item of a card.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Block {
    /// Text.
    Message(Text),
    /// Key and value pairs; `short` ones sit side by side.
    Fields(Vec<(Text, Text, bool)>),
    /// Buttons: text, value (what a press sends back) and style.
    Actions(Vec<(Text, Text, String)>),
    /// A link to a file or page, with a title.
    Attachment {
        /// The link.
        resource_url: Text,
        /// An image shown with it.
        img_url: Option<Text>,
        /// Its title.
        title: Text,
        /// Its description.
        description: Option<Text>,
        /// The file's extension, if it is one.
        ext: Option<String>,
        /// The file's size in bytes.
        size: Option<u64>,
    },
    /// A line.
    Divider,
}

/// A job's compiled message.
pub struct MessageTemplate {
    env: Environment<'static>,
    message: Message,
    /// Where renders run when the binary caps their memory (see [`super::sandbox`]).
    sandbox: Option<Sandbox>,
    /// Whether a text uses an alert variable, whose JSON text is then read as a value.
    reads_alerts: bool,
}

impl MessageTemplate {
    /// Compiles every text of `message`, or says which ones have a syntax error.
    pub fn compile(message: Message) -> Result<Self, Vec<(String, String)>> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_recursion_limit(MAX_DEPTH);
        env.set_fuel(Some(FUEL));
        env.add_filter("date", date);
        let mut errors = Vec::new();
        for text in texts(&message) {
            if let Err(e) = env.add_template_owned(text.name.clone(), text.source.clone()) {
                errors.push((text.name.clone(), describe(&e)));
            }
        }
        if errors.is_empty() {
            let sandbox = Sandbox::new(&message);
            let reads_alerts = texts(&message).any(|text| {
                env.get_template(&text.name).is_ok_and(|t| {
                    t.undeclared_variables(false)
                        .iter()
                        .any(|v| ALERT_VARIABLES.contains(&v.as_str()))
                })
            });
            Ok(Self {
                env,
                message,
                sandbox,
                reads_alerts,
            })
        } else {
            Err(errors)
        }
    }

    /// The values of the message's buttons, as written; `None` for a `content` template,
    /// whose buttons are known only once rendered.
    pub fn button_values(&self) -> Option<Vec<&str>> {
        let buttons = self.buttons()?;
        Some(buttons.map(|(_, value, _)| value.source.as_str()).collect())
    }

    /// The text (as written) of the button whose value is `value`.
    pub fn button_text(&self, value: &str) -> Option<&str> {
        self.buttons()?
            .find(|(_, v, _)| v.source == value)
            .map(|(text, _, _)| text.source.as_str())
    }

    /// The buttons of a card's actions blocks: text, value, style.
    fn buttons(&self) -> Option<impl Iterator<Item = &(Text, Text, String)>> {
        let Message::Card { body, .. } = &self.message else {
            return None;
        };
        Some(body.iter().flat_map(|block| match block {
            Block::Actions(buttons) => buttons.as_slice(),
            _ => &[],
        }))
    }

    /// Variables the templates use that are not in `known` nor minijinja's globals (`range`,
    /// `dict`, `namespace`, ...), with the name of the text that uses them.
    pub fn unknown_variables(&self, known: &BTreeSet<String>) -> Vec<(String, String)> {
        let globals: BTreeSet<&str> = self.env.globals().map(|(name, _)| name).collect();
        let mut unknown = Vec::new();
        for text in texts(&self.message) {
            let Ok(template) = self.env.get_template(&text.name) else {
                continue;
            };
            let mut names: Vec<String> = template.undeclared_variables(false).into_iter().collect();
            names.sort();
            unknown.extend(
                names
                    .into_iter()
                    .filter(|n| !known.contains(n) && !globals.contains(n.as_str()))
                    .map(|n| (text.name.clone(), n)),
            );
        }
        unknown
    }

    /// Renders the message with `sample` values, and says what fails, with the name of the
    /// text it fails in: a recursive macro, a loop that runs out of fuel, a filter that does
    /// not exist, `content` that is not JSON, a card beyond Zoom's limits (`"message"`).
    pub fn check_render(&self, sample: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let Some(sandbox) = &self.sandbox else {
            return self.check_here(sample);
        };
        match sandbox.ask(&Request::Check(sample.clone())) {
            Ok(Answer::Checked(problems)) => problems,
            Ok(Answer::Rendered(_)) => vec![("message".into(), "the renderer misread".into())],
            Err(Failure::Template(why)) => vec![("message".into(), why)],
            Err(Failure::Renderer(why)) => vec![(
                "message".into(),
                format!("it could not be checked ({why}); run `zoomcast validate` again"),
            )],
        }
    }

    /// [`MessageTemplate::check_render`] in this process.
    fn check_here(&self, sample: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let mut problems: Vec<(String, String)> = texts(&self.message)
            .filter_map(|text| {
                let failed = self.render_text(text, sample).err();
                failed.map(|e| (text.name.clone(), describe(&e)))
            })
            .collect();
        if problems.is_empty() {
            match self.render_here(sample) {
                Ok(_) => {}
                Err(RenderError::Text { name, message }) => problems.push((name, message)),
                Err(RenderError::Card(found)) => {
                    problems.extend(found.into_iter().map(|p| ("message".to_owned(), p)));
                }
                Err(RenderError::Unavailable(why)) => problems.push(("message".to_owned(), why)),
            }
        }
        problems
    }

    /// Whether renders wait for a child process (so a caller on an async runtime may want to
    /// say it blocks).
    pub fn renders_in_child(&self) -> bool {
        self.sandbox.is_some()
    }

    /// Renders the card for one recipient's variables, checked against Zoom's limits.
    pub fn render(&self, vars: &BTreeMap<String, String>) -> Result<Value, RenderError> {
        let Some(sandbox) = &self.sandbox else {
            return self.render_here(vars);
        };
        card(sandbox.ask(&Request::Render(vars.clone())))
    }

    /// [`MessageTemplate::render`] for a caller on the runtime: in the child, batched with
    /// the renders of the run's other recipients (see [`Sandbox::render_queued`]); in this
    /// process when renders are not sandboxed.
    pub async fn render_queued(
        &self,
        vars: BTreeMap<String, String>,
    ) -> Result<Value, RenderError> {
        match &self.sandbox {
            Some(sandbox) => card(sandbox.render_queued(vars).await),
            None => self.render_here(&vars),
        }
    }

    /// [`MessageTemplate::render`] in this process.
    fn render_here(&self, vars: &BTreeMap<String, String>) -> Result<Value, RenderError> {
        let render = |text: &Text| {
            self.render_text(text, vars).map_err(|e| RenderError::Text {
                name: text.name.clone(),
                message: describe(&e),
            })
        };
        let content = match &self.message {
            Message::Content(text) => {
                let json = render(text)?;
                serde_json::from_str(&json).map_err(|e| RenderError::Text {
                    name: text.name.clone(),
                    message: format!(
                        "the rendered content is not JSON ({e}); write values into it as \
                         {{{{ name | tojson }}}}"
                    ),
                })?
            }
            Message::Card {
                head,
                sub_head,
                body,
            } => {
                let mut head = json!({ "text": render(head)? });
                if let Some(sub_head) = sub_head {
                    head["sub_head"] = json!({ "text": render(sub_head)? });
                }
                let body = body
                    .iter()
                    .map(|block| block_json(block, &render))
                    .collect::<Result<Vec<_>, _>>()?;
                json!({ "head": head, "body": body })
            }
        };
        let problems = crate::card::problems(&content);
        if problems.is_empty() {
            Ok(content)
        } else {
            Err(RenderError::Card(problems))
        }
    }

    fn render_text(
        &self,
        text: &Text,
        vars: &BTreeMap<String, String>,
    ) -> Result<String, minijinja::Error> {
        let template = self.env.get_template(&text.name)?;
        if !self.reads_alerts {
            return template.render(vars);
        }
        let context: BTreeMap<&str, minijinja::Value> = vars
            .iter()
            .map(|(name, value)| (name.as_str(), variable(name, value)))
            .collect();
        template.render(context)
    }
}

/// A variable's value for a template: an alert variable's JSON text as the value it holds, any
/// other as text.
fn variable(name: &str, value: &str) -> minijinja::Value {
    if ALERT_VARIABLES.contains(&name)
        && let Ok(json) = serde_json::from_str::<serde_json::Value>(value)
    {
        return minijinja::Value::from_serialize(&json);
    }
    minijinja::Value::from(value)
}

/// Every text of `message`, in order.
fn texts(message: &Message) -> impl Iterator<Item = &Text> {
    let mut all: Vec<&Text> = Vec::new();
    match message {
        Message::Content(text) => all.push(text),
        Message::Card {
            head,
            sub_head,
            body,
        } => {
            all.push(head);
            all.extend(sub_head);
            for block in body {
                match block {
                    Block::Message(text) => all.push(text),
                    Block::Fields(items) => all.extend(items.iter().flat_map(|(k, v, _)| [k, v])),
                    Block::Actions(buttons) => {
                        all.extend(buttons.iter().flat_map(|(t, v, _)| [t, v]));
                    }
                    Block::Attachment {
                        resource_url,
                        img_url,
                        title,
                        description,
                        ..
                    } => {
                        all.extend([resource_url, title]);
                        all.extend(img_url.iter().chain(description));
                    }
                    Block::Divider => {}
                }
            }
        }
    }
    all.into_iter()
}

/// One body item as Zoom's JSON, its texts rendered by `render`.
fn block_json(
    block: &Block,
    render: &impl Fn(&Text) -> Result<String, RenderError>,
) -> Result<Value, RenderError> {
    Ok(match block {
        Block::Message(text) => json!({ "type": "message", "text": render(text)? }),
        Block::Fields(items) => {
            let items = items
                .iter()
                .map(|(key, value, short)| {
                    Ok(json!({ "key": render(key)?, "value": render(value)?, "short": short }))
                })
                .collect::<Result<Vec<_>, RenderError>>()?;
            json!({ "type": "fields", "items": items })
        }
        Block::Actions(buttons) => {
            let items = buttons
                .iter()
                .map(|(text, value, style)| {
                    Ok(json!({ "text": render(text)?, "value": render(value)?, "style": style }))
                })
                .collect::<Result<Vec<_>, RenderError>>()?;
            json!({ "type": "actions", "items": items })
        }
        Block::Attachment {
            resource_url,
            img_url,
            title,
            description,
            ext,
            size,
        } => {
            let mut information = Map::new();
            information.insert("title".into(), json!({ "text": render(title)? }));
            if let Some(description) = description {
                information.insert(
                    "description".into(),
                    json!({ "text": render(description)? }),
                );
            }
            let mut item = json!({
                "type": "attachments",
                "resource_url": render(resource_url)?,
                "information": information,
            });
            if let Some(img_url) = img_url {
                item["img_url"] = json!(render(img_url)?);
            }
            if let Some(ext) = ext {
                item["ext"] = json!(ext);
            }
            if let Some(size) = size {
                item["size"] = json!(size);
            }
            item
        }
        Block::Divider => json!({ "type": "divider" }),
    })
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

    /// A head and a text body.
    fn compile(head: &str, body: &str) -> Result<MessageTemplate, Vec<(String, String)>> {
        MessageTemplate::compile(Message::Card {
            head: Text::new("head", head),
            sub_head: None,
            body: vec![Block::Message(Text::new("body", body))],
        })
    }

    /// The head and body texts of a rendered text card.
    fn texts_of(card: &Value) -> (String, String) {
        let text = |v: &Value| v.as_str().unwrap().to_owned();
        (text(&card["head"]["text"]), text(&card["body"][0]["text"]))
    }

    #[test]
    fn renders_and_finds_unknown_variables() {
        let t = compile(
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
            [("body".to_owned(), "frist_name".to_owned())]
        );
        let vars: BTreeMap<String, String> = [
            ("first_name", "Ana"),
            ("email", "ana@x.io"),
            ("team", "ops"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let err = t.render(&vars).unwrap_err().to_string();
        assert!(
            err.contains("message.body") && err.contains("undefined"),
            "{err}"
        );
        let t = compile("Hi {{ first_name }}", "in {{ team }}").unwrap();
        assert_eq!(
            texts_of(&t.render(&vars).unwrap()),
            ("Hi Ana".into(), "in ops".into())
        );
    }

    #[test]
    fn globals_are_not_unknown_and_what_cannot_render_is_found() {
        let known: BTreeSet<String> = BUILTIN_VARIABLES.iter().map(|s| (*s).to_owned()).collect();
        let t = compile(
            "{% for i in range(2) %}{{ i }}{% endfor %}",
            "{% set ns = namespace(n=1) %}{{ dict(a=ns.n) }}",
        )
        .unwrap();
        assert!(t.unknown_variables(&known).is_empty());
        assert!(t.check_render(&BTreeMap::new()).is_empty());
        let recursive = compile("ok", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").unwrap();
        let problems = recursive.check_render(&BTreeMap::new());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].1.contains("recursion"), "{problems:?}");
        let endless = compile(
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
            let t = compile("", body).unwrap();
            let vars = BTreeMap::from([("at".to_owned(), at.to_owned())]);
            t.render(&vars)
                .map(|card| texts_of(&card).1)
                .map_err(|e| e.to_string())
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
        let errors = compile("ok", "{{ unclosed").err().unwrap();
        let (part, msg) = &errors[0];
        assert_eq!(part, "body");
        assert!(msg.contains("syntax error"), "{msg}");
    }
}
