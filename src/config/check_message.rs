//! The checker's part for `[message]` ([`super::message`]): which keys belong to which block
//! kind, button styles, the templates compiled and their variables matched to what recipients
//! have, and a test render with sample values.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use toml::Spanned;

use super::check::{Checker, Sample, sample_values};
use super::message::{BlockFile, MessageFile};
use crate::card::{BLOCK_TYPES, BUTTON_STYLES, MAX_BUTTONS};
use crate::render::{BUILTIN_VARIABLES, Block, Message, MessageTemplate, Text};

/// A kind of block: its `type`, the keys it takes and those it needs.
struct Kind {
    name: &'static str,
    takes: &'static [&'static str],
    needs: &'static [&'static str],
}

/// Every kind of block (Zoom's, [`BLOCK_TYPES`]).
const KINDS: [Kind; 5] = [
    Kind {
        name: "message",
        takes: &["text"],
        needs: &["text"],
    },
    Kind {
        name: "fields",
        takes: &["items"],
        needs: &["items"],
    },
    Kind {
        name: "actions",
        takes: &["buttons"],
        needs: &["buttons"],
    },
    Kind {
        name: "attachments",
        takes: &[
            "resource_url",
            "img_url",
            "title",
            "description",
            "ext",
            "size",
        ],
        needs: &["resource_url", "title"],
    },
    Kind {
        name: "divider",
        takes: &[],
        needs: &[],
    },
];

/// Where each text of the message is in the job file.
type Spans = HashMap<String, Range<usize>>;

impl Checker<'_> {
    /// Checks `[message]` and compiles it; `None` (with the problems reported) if it cannot be.
    pub(super) fn message(
        &mut self,
        file: &Spanned<MessageFile>,
        sample: &Sample<'_>,
    ) -> Option<MessageTemplate> {
        let mut spans = Spans::new();
        let message = self.shape(file, &mut spans)?;
        let whole = file.span();
        let span_of = |name: &str| spans.get(name).cloned().unwrap_or_else(|| whole.clone());
        let template = match MessageTemplate::compile(message) {
            Ok(template) => template,
            Err(errors) => {
                for (name, error) in errors {
                    self.report(
                        span_of(&name),
                        format!("message.{name} does not compile: {error}"),
                        "templates use {{ variable }}; see minijinja's syntax",
                    );
                }
                return None;
            }
        };
        self.variables(&template, sample, &span_of);
        Some(template)
    }

    /// The variables the templates use, and a test render with sample values.
    fn variables(
        &mut self,
        template: &MessageTemplate,
        sample: &Sample<'_>,
        span_of: &impl Fn(&str) -> Range<usize>,
    ) {
        let available: Vec<&str> = sample.known.iter().map(String::as_str).collect();
        let unknown = template.unknown_variables(sample.known);
        for (name, var) in &unknown {
            self.report(
                span_of(name),
                format!("the message uses `{var}`, which no recipient has and no [vars] sets"),
                format!("available: {}", available.join(", ")),
            );
        }
        // CSV columns exist only for the file's recipients, not the inline ones.
        let everyones: BTreeSet<String> = BUILTIN_VARIABLES
            .iter()
            .map(|v| (*v).to_owned())
            .chain(sample.job_vars.keys().cloned())
            .collect();
        let csv_only = template.unknown_variables(&everyones);
        for (name, var) in csv_only
            .into_iter()
            .filter(|(_, v)| sample.inline && sample.known.contains(v))
        {
            self.report(
                span_of(&name),
                format!("the message uses `{var}`, a column of recipients.file, but the inline recipients have no such column"),
                "move the inline recipients into the file, or use only email, first_name, last_name and display_name",
            );
        }
        // With unknown variables (reported above) a render would only fail on them again.
        if !unknown.is_empty() {
            return;
        }
        let values = sample_values(sample.known, sample.columns.clone(), sample.job_vars);
        for (name, problem) in template.check_render(&values) {
            self.report(
                span_of(&name),
                format!("the message cannot be rendered: {problem}"),
                "a test render with sample values failed, so every recipient would fail; fix \
                 the message",
            );
        }
    }

    /// Which of the three forms the message takes, with its texts and where they are.
    fn shape(&mut self, file: &Spanned<MessageFile>, spans: &mut Spans) -> Option<Message> {
        let m = file.get_ref();
        let mut text = |name: &str, spanned: &Spanned<String>| {
            spans.insert(name.to_owned(), spanned.span());
            Text::new(name, spanned.get_ref().clone())
        };
        if let Some(content) = &m.content {
            let others = [&m.head, &m.sub_head, &m.body].iter().any(|k| k.is_some());
            if others || !m.blocks.is_empty() {
                self.report(
                    content.span(),
                    "`content` is the whole message: it goes without head, sub_head, body and blocks",
                    "keep either `content` (Zoom's content object as a JSON template) or the other keys",
                );
                return None;
            }
            return Some(Message::Content(text("content", content)));
        }
        let Some(head) = &m.head else {
            self.report(
                file.span(),
                "the message has no `head`",
                "add head = \"...\" (the card's first line), or give the whole card as `content`",
            );
            return None;
        };
        let head = text("head", head);
        let sub_head = m.sub_head.as_ref().map(|s| text("sub_head", s));
        let body = match (&m.body, m.blocks.as_slice()) {
            (Some(body), []) => vec![Block::Message(text("body", body))],
            (None, []) => Vec::new(),
            (Some(body), _) => {
                self.report(
                    body.span(),
                    "the message has both a text `body` and blocks",
                    "move the text into a [[message.blocks]] of type \"message\", or drop the blocks",
                );
                return None;
            }
            (None, blocks) => {
                let mut checked = Vec::new();
                for (i, block) in blocks.iter().enumerate() {
                    checked.extend(self.block(i, block, spans));
                }
                (checked.len() == blocks.len()).then_some(checked)?
            }
        };
        self.button_count(&body, file);
        Some(Message::Card {
            head,
            sub_head,
            body,
        })
    }

    /// Warns of more buttons than Zoom's guide shows in one message.
    fn button_count(&mut self, body: &[Block], file: &Spanned<MessageFile>) {
        let buttons: usize = body
            .iter()
            .map(|b| match b {
                Block::Actions(buttons) => buttons.len(),
                _ => 0,
            })
            .sum();
        if buttons > MAX_BUTTONS {
            self.warn(
                file.span(),
                format!(
                    "the message has {buttons} buttons; Zoom's guide shows {MAX_BUTTONS} in a \
                     message, and groups the rest into a menu"
                ),
                "put the buttons that matter first (an actions block's `limit` says how many \
                 show before the menu)",
            );
        }
    }

    /// Block `i`, with the keys its `type` takes and nothing else.
    fn block(
        &mut self,
        i: usize,
        spanned: &Spanned<BlockFile>,
        spans: &mut Spans,
    ) -> Option<Block> {
        let b = spanned.get_ref();
        let kind = b.kind.get_ref().as_str();
        let at = format!("blocks[{i}]");
        let mut text = |key: &str, spanned: &Spanned<String>| {
            let name = format!("{at}.{key}");
            spans.insert(name.clone(), spanned.span());
            Text::new(name, spanned.get_ref().clone())
        };
        let Some(kind) = KINDS.iter().find(|k| k.name == kind) else {
            self.report(
                b.kind.span(),
                format!("`{}` is not a block type", crate::output::clean(kind, 40)),
                format!("the types are {}", BLOCK_TYPES.join(", ")),
            );
            return None;
        };
        if !self.block_keys(spanned, kind) {
            return None;
        }
        Some(match kind.name {
            "message" => Block::Message(text("text", b.text.as_ref()?)),
            "fields" => {
                let items = b.items.as_ref()?.get_ref().iter().enumerate();
                Block::Fields(
                    items
                        .map(|(n, f)| {
                            let key = text(&format!("items[{n}].key"), &f.key);
                            let value = text(&format!("items[{n}].value"), &f.value);
                            (key, value, f.short)
                        })
                        .collect(),
                )
            }
            "actions" => {
                let mut buttons = Vec::new();
                for (n, button) in b.buttons.as_ref()?.get_ref().iter().enumerate() {
                    let style = self.button_style(button.style.as_ref())?;
                    let label = text(&format!("buttons[{n}].text"), &button.text);
                    let value = text(&format!("buttons[{n}].value"), &button.value);
                    buttons.push((label, value, style));
                }
                Block::Actions(buttons)
            }
            "attachments" => Block::Attachment {
                resource_url: text("resource_url", b.resource_url.as_ref()?),
                img_url: b.img_url.as_ref().map(|s| text("img_url", s)),
                title: text("title", b.title.as_ref()?),
                description: b.description.as_ref().map(|s| text("description", s)),
                ext: b.ext.as_ref().map(|e| e.get_ref().clone()),
                size: b.size.as_ref().map(|s| *s.get_ref()),
            },
            _ => Block::Divider,
        })
    }

    /// Whether block `spanned` has only keys its kind takes and every key it needs (what is
    /// wrong is reported).
    fn block_keys(&mut self, spanned: &Spanned<BlockFile>, kind: &Kind) -> bool {
        let present = present_keys(spanned.get_ref());
        let name = kind.name;
        let mut ok = true;
        for (key, span) in &present {
            if !kind.takes.contains(key) {
                ok = false;
                self.report(
                    span.clone(),
                    format!("a {name} block has no `{key}`"),
                    format!("a {name} block takes {}", describe_keys(kind.takes)),
                );
            }
        }
        for key in kind.needs {
            if !present.iter().any(|(k, _)| k == key) {
                ok = false;
                self.report(
                    spanned.span(),
                    format!("the {name} block has no `{key}`"),
                    format!("a {name} block takes {}", describe_keys(kind.takes)),
                );
            }
        }
        ok
    }

    /// A button's style: one of Zoom's, `Default` if none is given.
    fn button_style(&mut self, style: Option<&Spanned<String>>) -> Option<String> {
        let Some(style) = style else {
            return Some("Default".to_owned());
        };
        if BUTTON_STYLES.contains(&style.get_ref().as_str()) {
            return Some(style.get_ref().clone());
        }
        self.report(
            style.span(),
            format!(
                "`{}` is not a button style",
                crate::output::clean(style.get_ref(), 40)
            ),
            format!("Zoom's button styles are {}", BUTTON_STYLES.join(", ")),
        );
        None
    }
}

/// The keys a block has, with where each is.
fn present_keys(b: &BlockFile) -> Vec<(&'static str, Range<usize>)> {
    let strings = [
        ("text", &b.text),
        ("resource_url", &b.resource_url),
        ("img_url", &b.img_url),
        ("title", &b.title),
        ("description", &b.description),
        ("ext", &b.ext),
    ];
    let mut present: Vec<_> = strings
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| (key, v.span())))
        .collect();
    present.extend(b.items.as_ref().map(|v| ("items", v.span())));
    present.extend(b.buttons.as_ref().map(|v| ("buttons", v.span())));
    present.extend(b.size.as_ref().map(|v| ("size", v.span())));
    present
}

fn describe_keys(keys: &[&str]) -> String {
    if keys.is_empty() {
        "no other keys".to_owned()
    } else {
        keys.iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_type_of_a_card_has_its_keys_and_needs_only_what_it_takes() {
        assert_eq!(KINDS.map(|k| k.name), BLOCK_TYPES);
        for kind in &KINDS {
            for need in kind.needs {
                assert!(kind.takes.contains(need), "{} needs {need}", kind.name);
            }
        }
    }
}
