//! The job of `zoomcast send` (design section 9): a message without a job file, run as the
//! job `send`. It is built as a job file would be, and checked by the same checker, so an
//! address is refused with the same words; the head and text are the run's own values of two
//! variables (`send_head`, `send_text`), never template text, so what a person types is sent
//! as typed, and `history --run ID --json` shows it.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Config, Diagnostic, Invalid, Job};

/// The name every ad hoc run is journaled under.
pub const SEND_JOB: &str = "send";
/// The head of a message sent without `--head`.
pub const DEFAULT_HEAD: &str = "Message";

/// What `send` sends, and to whom.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AdHoc {
    /// The app (its configuration's name).
    pub app: String,
    /// The account to send in; `None` for the app's home account.
    pub account: Option<String>,
    /// Emails, user JIDs, channel JIDs and `#channel-name`s.
    pub to: Vec<String>,
    /// The card's head.
    pub head: String,
    /// The card's text.
    pub text: String,
}

impl AdHoc {
    /// The job that sends this, as if read from `path` (never written), and the run's
    /// variables: the head and text.
    pub fn job(
        &self,
        path: &Path,
        config: &Config,
    ) -> Result<(Job, BTreeMap<String, String>), Invalid> {
        let source = self.job_file()?;
        let job = Job::parse(path, &source, config).map_err(on_the_command_line)?;
        let vars = BTreeMap::from([
            ("send_head".to_owned(), self.head.clone()),
            ("send_text".to_owned(), self.text.clone()),
        ]);
        let problems = job.template.check_render(&job_sample(&vars));
        if let Some((_, why)) = problems.into_iter().next() {
            let why = why.replace("body item 1: the text", "TEXT");
            return Err(Invalid::one(Diagnostic::whole(
                None,
                format!("the message cannot be sent: {why}"),
            )));
        }
        Ok((job, vars))
    }

    /// The job file it would be: recipients sorted by kind, and the message's head and body
    /// as the two variables.
    fn job_file(&self) -> Result<String, Invalid> {
        if self.to.is_empty() {
            return Err(Invalid::one(
                Diagnostic::whole(None, "`send` needs at least one --to ADDRESS")
                    .help("an email, a user JID, a channel JID or #channel-name"),
            ));
        }
        let (mut emails, mut jids, mut channels) = (Vec::new(), Vec::new(), Vec::new());
        for address in &self.to {
            let lower = address.to_ascii_lowercase();
            if lower.ends_with("@conference.xmpp.zoom.us") || address.starts_with('#') {
                channels.push(address.clone());
            } else if lower.ends_with("@xmpp.zoom.us") {
                jids.push(address.clone());
            } else {
                emails.push(address.clone());
            }
        }
        let mut recipients = toml::Table::new();
        for (key, list) in [("emails", emails), ("jids", jids), ("channels", channels)] {
            if !list.is_empty() {
                recipients.insert(key.into(), list.into());
            }
        }
        let mut file = toml::Table::new();
        file.insert("description".into(), "zoomcast send".into());
        file.insert("app".into(), self.app.clone().into());
        if let Some(account) = &self.account {
            file.insert("account".into(), account.clone().into());
        }
        file.insert("recipients".into(), recipients.into());
        let message = toml::toml! {
            head = "{{ send_head }}"
            body = "{{ send_text }}"
        };
        file.insert("message".into(), message.into());
        let vars = toml::toml! {
            send_head = ""
            send_text = ""
        };
        file.insert("vars".into(), vars.into());
        toml::to_string(&file).map_err(|e| {
            Invalid::one(Diagnostic::whole(
                None,
                format!("building the message failed: {e}"),
            ))
        })
    }
}

/// The sample values a card is checked with: a recipient's fields, and the run's variables.
fn job_sample(vars: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut sample: BTreeMap<String, String> = ["email", "first_name", "last_name", "display_name"]
        .into_iter()
        .map(|k| (k.to_owned(), String::new()))
        .collect();
    sample.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (k, v) in
        crate::config::vars::run_variables(SEND_JOB, 1, chrono::Utc::now(), chrono_tz::UTC)
    {
        sample.insert(k, v);
    }
    sample
}

/// The checker's findings about the job built from the command line, said of the command line:
/// the built file exists nowhere, so its lines would only confuse.
fn on_the_command_line(invalid: Invalid) -> Invalid {
    let diagnostics = invalid
        .diagnostics
        .into_iter()
        .map(|d| Diagnostic {
            path: None,
            location: None,
            ..d
        })
        .collect();
    Invalid { diagnostics }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_APP;

    fn config() -> Config {
        let mut config = Config::empty();
        config.set(DEFAULT_APP, "client_id", "id");
        config.set(DEFAULT_APP, "client_secret", "secret");
        config
    }

    fn adhoc(to: &[&str], head: &str, text: &str) -> AdHoc {
        AdHoc {
            app: DEFAULT_APP.into(),
            account: None,
            to: to.iter().map(|&a| a.to_owned()).collect(),
            head: head.into(),
            text: text.into(),
        }
    }

    #[test]
    fn addresses_go_to_their_lists_and_the_text_is_a_value_not_a_template() {
        let to = [
            "ana@example.com",
            "ana0001@xmpp.zoom.us",
            "general@conference.xmpp.zoom.us",
        ];
        let (job, vars) = adhoc(&to, "Release", "{{ x }}")
            .job(Path::new("send.toml"), &config())
            .unwrap();
        assert_eq!(job.name, SEND_JOB);
        assert_eq!(job.recipient_count, 3);
        assert_eq!(vars["send_text"], "{{ x }}");
        let card = job.template.render(&job_sample(&vars)).unwrap();
        assert_eq!(card["body"][0]["text"], "{{ x }}");
    }

    #[test]
    fn a_text_beyond_zooms_limit_or_no_address_is_refused_in_the_command_lines_words() {
        let long = "x".repeat(5000);
        let Err(err) =
            adhoc(&["ana@example.com"], "h", &long).job(Path::new("send.toml"), &config())
        else {
            panic!("a text of 5,000 characters is refused");
        };
        let err = err.to_string();
        assert!(err.contains("TEXT is longer than 4096 characters"), "{err}");
        assert!(!err.contains("send.toml"), "{err}");
        let Err(none) = adhoc(&[], "h", "x").job(Path::new("send.toml"), &config()) else {
            panic!("no address is refused");
        };
        assert!(none.to_string().contains("--to"));
    }
}
