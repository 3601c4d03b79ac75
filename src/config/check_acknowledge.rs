//! The checker's part for `[acknowledge]` ([`super::acknowledge`]): the button exists on the
//! message, and the reminders' timing is within its range.

use std::time::Duration;

use toml::Spanned;

use super::acknowledge::{
    Acknowledge, AcknowledgeFile, MAX_REMIND_AFTER, MAX_REMINDERS, MIN_REMIND_AFTER,
};
use super::check::Checker;
use crate::render::MessageTemplate;

impl Checker<'_> {
    /// Checks `[acknowledge]` against the message it acknowledges.
    pub(super) fn acknowledge(
        &mut self,
        file: Option<&Spanned<AcknowledgeFile>>,
        template: Option<&MessageTemplate>,
    ) -> Option<Acknowledge> {
        let spanned = file?;
        let ack = spanned.get_ref();
        let button = ack.button.get_ref().clone();
        if button.contains("{{") || button.contains("{%") {
            self.report(
                ack.button.span(),
                "the acknowledging button's value is a template",
                "write the button's value as plain text, here and in the actions block: a press \
                 sends back the value as rendered",
            );
        }
        if let Some(values) = template.and_then(MessageTemplate::button_values)
            && !values.contains(&button.as_str())
        {
            let listed = if values.is_empty() {
                "the message has no buttons; add an actions block".to_owned()
            } else {
                format!("the message's button values: {}", values.join(", "))
            };
            self.report(
                ack.button.span(),
                format!(
                    "no button of the message has the value `{}`",
                    crate::output::clean(&button, 40)
                ),
                listed,
            );
        }
        let remind_after = self.remind_after(ack.remind_after.as_ref());
        let max = match &ack.max_reminders {
            Some(n) if (1..=MAX_REMINDERS).contains(n.get_ref()) => *n.get_ref(),
            Some(n) => {
                self.report(
                    n.span(),
                    format!("`max_reminders` is {}", n.get_ref()),
                    format!("write 1 to {MAX_REMINDERS}"),
                );
                1
            }
            None => 1,
        };
        if ack.max_reminders.is_some() && ack.remind_after.is_none() {
            self.report(
                spanned.span(),
                "`max_reminders` without `remind_after`",
                "add remind_after = \"30m\" (when the first reminder is due), or drop max_reminders",
            );
        }
        Some(Acknowledge {
            button,
            reminders: remind_after.map(|after| (after, max)),
        })
    }

    fn remind_after(&mut self, value: Option<&Spanned<String>>) -> Option<Duration> {
        let value = value?;
        let after = self.duration(Some(value), "remind_after", MAX_REMIND_AFTER)?;
        if after < MIN_REMIND_AFTER {
            self.report(
                value.span(),
                "`remind_after` is shorter than a second",
                "write 1s or more",
            );
            return None;
        }
        Some(after)
    }
}
