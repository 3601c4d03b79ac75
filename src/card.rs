//! The chatbot message card: Zoom's `content` object, as a job renders it and the Chatbot API
//! receives it, and the limits it is checked against before anything is sent.
//!
//! Shape (Zoom's "Customizing messages" pages and its SDK typings, `zoom/rivet-javascript`
//! `chatbot/chatbot.d.ts`): `{"head": {"text", "sub_head": {"text"}}, "body": [items]}`, each
//! body item `{"type": ...}`: `message` (`text`), `fields` (`items`: `key`, `value`, `short`),
//! `actions` (`items`: `text`, `value`, `style`), `attachments` (`resource_url`, `img_url`,
//! `information.title.text`, `information.description.text`, `ext`, `size`) and `divider`.
//!
//! Limits: Zoom's API reference states none. The numbers below are those of Zoom's own guide
//! for building chatbots (`zoom/skills`, `team-chat/references/message-cards.md`,
//! "Limitations"): the ones Zoom has written down anywhere, unverified against the service.

use serde_json::{Value, json};

/// The longest text of a `message` item, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;
/// The longest button text, in characters.
pub const MAX_BUTTON_TEXT_CHARS: usize = 40;
/// The most buttons Zoom's guide shows in one message. Zoom's buttons page groups the ones
/// beyond an `actions` item's `limit` into a menu and documents no hard maximum, so more is a
/// warning at `validate`, never a refusal.
pub const MAX_BUTTONS: usize = 5;
/// The longest key or value of a field, in characters.
pub const MAX_FIELD_CHARS: usize = 256;
/// The styles a button may have.
pub const BUTTON_STYLES: [&str; 4] = ["Primary", "Default", "Danger", "Disabled"];
/// The body item types zoomcast's job files write.
pub const BLOCK_TYPES: [&str; 5] = ["message", "fields", "actions", "attachments", "divider"];

/// A card of a head line and one text.
pub fn text(head: &str, body: &str) -> Value {
    json!({ "head": { "text": head }, "body": [{ "type": "message", "text": body }] })
}

/// Whether the card has buttons, whose presses Zoom sends back.
pub fn has_buttons(content: &Value) -> bool {
    body_items(content).any(|item| item["type"] == "actions")
}

fn body_items(content: &Value) -> impl Iterator<Item = &Value> {
    content["body"].as_array().into_iter().flatten()
}

/// How deep a content object may nest: Zoom's nest a few levels; JSON readers (`serde_json`'s
/// among them) stop at 128.
const MAX_DEPTH: usize = 32;

/// How deep `value` nests (a scalar is 0).
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(fields) => 1 + fields.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// What is wrong with `content` for Zoom: its shape, and the limits above. Empty when it may
/// be sent.
pub fn problems(content: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if !content.is_object() {
        return vec!["the content is not a JSON object".to_owned()];
    }
    if !content["head"]["text"].is_string() {
        problems.push("the content has no head text (`head.text`)".to_owned());
    }
    if depth(content) > MAX_DEPTH {
        problems.push(format!(
            "the content nests deeper than {MAX_DEPTH} levels; Zoom's messages nest a few"
        ));
    }
    match &content["body"] {
        Value::Null => {}
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                item_problems(i + 1, item, &mut problems);
            }
        }
        _ => problems.push("`body` is not a list of items".to_owned()),
    }
    problems
}

/// The problems of body item `n` (1-based).
fn item_problems(n: usize, item: &Value, problems: &mut Vec<String>) {
    let too_long =
        |text: &Value, max: usize| text.as_str().is_some_and(|t| t.chars().count() > max);
    let mut problem = |what: String| problems.push(format!("body item {n}: {what}"));
    match item["type"].as_str() {
        Some("message") => {
            if !item["text"].is_string() {
                problem("a message item has no text".to_owned());
            } else if too_long(&item["text"], MAX_TEXT_CHARS) {
                problem(format!(
                    "the text is longer than {MAX_TEXT_CHARS} characters"
                ));
            }
        }
        Some("fields") => {
            for field in item["items"].as_array().into_iter().flatten() {
                for part in ["key", "value"] {
                    if too_long(&field[part], MAX_FIELD_CHARS) {
                        problem(format!(
                            "a field's {part} is longer than {MAX_FIELD_CHARS} characters"
                        ));
                    }
                }
            }
        }
        Some("actions") => {
            for button in item["items"].as_array().into_iter().flatten() {
                if too_long(&button["text"], MAX_BUTTON_TEXT_CHARS) {
                    problem(format!(
                        "a button's text is longer than {MAX_BUTTON_TEXT_CHARS} characters"
                    ));
                }
                if let Some(style) = button["style"].as_str()
                    && !BUTTON_STYLES.contains(&style)
                {
                    problem(format!(
                        "button style `{}` is not one of {}",
                        crate::output::clean(style, 40),
                        BUTTON_STYLES.join(", ")
                    ));
                }
            }
        }
        Some(_) => {}
        None => problem("an item has no `type`".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_nested_beyond_what_readers_take_is_refused() {
        let mut deep = json!("leaf");
        for _ in 0..40 {
            deep = json!([deep]);
        }
        let content = json!({ "head": { "text": "Hi" }, "extra": deep });
        let found = problems(&content);
        assert!(
            found.iter().any(|p| p.contains("nests deeper than 32")),
            "{found:?}"
        );
        assert!(problems(&json!({ "head": { "text": "Hi" } })).is_empty());
    }

    #[test]
    fn a_card_within_the_limits_has_no_problems_and_one_beyond_them_says_where() {
        assert!(problems(&text("Hello", "Hi Ana")).is_empty());
        let buttons: Vec<Value> = (0..6)
            .map(|i| json!({ "text": format!("b{i}"), "value": "v", "style": "Primary" }))
            .collect();
        let card = json!({
            "head": { "text": "On call" },
            "body": [
                { "type": "message", "text": "x".repeat(MAX_TEXT_CHARS + 1) },
                { "type": "fields", "items": [{ "key": "k", "value": "v".repeat(257) }] },
                { "type": "actions", "items": buttons },
                { "type": "actions", "items": [{ "text": "a".repeat(41), "value": "v", "style": "Loud" }] },
                { "text": "untyped" },
            ]
        });
        let found = problems(&card);
        for expected in [
            "body item 1: the text is longer than 4096 characters",
            "body item 2: a field's value is longer than 256 characters",
            "body item 4: a button's text is longer than 40 characters",
            "body item 4: button style `Loud` is not one of Primary, Default, Danger, Disabled",
            "body item 5: an item has no `type`",
        ] {
            assert!(found.iter().any(|p| p == expected), "{expected}: {found:?}");
        }
        // Seven buttons are Zoom's to group into a menu: no problem of the card's.
        assert!(!found.iter().any(|p| p.contains("buttons")), "{found:?}");
        assert!(has_buttons(&card));
        assert!(!has_buttons(&text("a", "b")));
        assert_eq!(problems(&json!([1])), ["the content is not a JSON object"]);
        assert_eq!(
            problems(&json!({ "body": [] })),
            ["the content has no head text (`head.text`)"]
        );
    }
}
