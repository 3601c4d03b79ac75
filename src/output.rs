//! What zoomcast prints for people: [`outln!`](crate::outln) and [`out!`](crate::out) on
//! stdout, [`errln!`](crate::errln) on stderr.
//!
//! `std`'s `println!` panics when stdout is gone (`zoomcast history | head`), and a panic must
//! never be how a command ends. These macros write through [`write_out`] and [`write_err`],
//! which never panic: once stdout refuses a write, nothing more is written there and the
//! command goes on to its natural end (a run still records every outcome). A closed pipe ends
//! the output quietly; any other write failure (a full disk behind `> file`) is reported once
//! at exit by [`stdout_failure`]. A failed write to stderr is dropped: there is nowhere left
//! to say so.
//!
//! Text that came from outside (Zoom's answers, recipients files) goes through [`clean`] before
//! it reaches a terminal or a file a person opens: no escape sequence, bell or bidi override
//! rewrites what they see, and no configured secret ([`never_show`]) is shown.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

/// Set once stdout has refused a write.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first failure of stdout that was not a closed pipe.
static STDOUT_FAILURE: Mutex<Option<String>> = Mutex::new(None);

/// Prints to stdout, never panicking (see the module doc).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_out(format_args!($($arg)*)) };
}

/// Prints a line to stdout, never panicking (see the module doc).
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints a line to stderr, never panicking (see the module doc).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::write_err(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Writes to stdout unless it has already refused a write.
pub fn write_out(args: fmt::Arguments<'_>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != io::ErrorKind::BrokenPipe {
            let mut failure = STDOUT_FAILURE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            failure.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Whether stdout has refused a write (`zoomcast history --all | head`): a long listing stops.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Writes to stderr; a failure is dropped.
pub fn write_err(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// Why stdout stopped taking output, if it failed other than by a closed pipe.
pub fn stdout_failure() -> Option<String> {
    STDOUT_FAILURE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// The configured secrets (client and webhook secrets, the state key), each with what it is,
/// registered as they are read: no text [`clean`] passes, and no excerpt of a file, shows one.
static SECRETS: RwLock<Vec<(String, String)>> = RwLock::new(Vec::new());

/// The shortest secret registered: a shorter value (a test's `s`) would mask ordinary words.
const MIN_SECRET_CHARS: usize = 8;

/// Registers `secret` (`what` it is: "the client secret of app `ops`") as never to be shown.
pub fn never_show(what: &str, secret: &str) {
    let secret = secret.trim();
    if secret.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(PoisonError::into_inner);
    if !secrets.iter().any(|(_, s)| s == secret) {
        secrets.push((what.to_owned(), secret.to_owned()));
    }
}

/// What registered secret `text` contains, if any.
pub fn secret_in(text: &str) -> Option<String> {
    let secrets = SECRETS.read().unwrap_or_else(PoisonError::into_inner);
    secrets
        .iter()
        .find(|(_, secret)| text.contains(secret.as_str()))
        .map(|(what, _)| what.clone())
}

/// `text` with every registered secret in it masked by as many `*`: where the rest of the text
/// stands does not move (a diagnostic's caret still points at its column).
pub fn mask_secrets(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(PoisonError::into_inner);
    let mut masked = Cow::Borrowed(text);
    for (_, secret) in secrets.iter() {
        if masked.contains(secret.as_str()) {
            let stars = "*".repeat(secret.chars().count());
            masked = Cow::Owned(masked.replace(secret.as_str(), &stars));
        }
    }
    masked
}

/// `text` safe to show a person: registered secrets masked ([`mask_secrets`]), what would
/// change how a terminal shows the rest ([`is_disruptive`]) replaced by U+FFFD, and anything
/// past `max_chars` characters cut, marked with `…`.
pub fn clean(text: &str, max_chars: usize) -> String {
    let text = mask_secrets(text);
    let mut out: String = text
        .chars()
        .take(max_chars)
        .map(|c| if is_disruptive(c) { '\u{fffd}' } else { c })
        .collect();
    if text.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// A character that changes how text around it is shown rather than showing itself, or shows
/// as nothing: control characters (ESC, BEL, NUL, ...; Unicode's Cc), format characters
/// (bidirectional overrides, zero-width spaces and joiners, the byte order mark: Cf) and the
/// line and paragraph separators (Zl, Zp). What names a job or a recipient may hold none: two
/// that look the same would be two.
pub fn is_hidden(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    c.is_control()
        || matches!(
            c.general_category(),
            GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
}

/// A character that changes how a terminal shows the text around it: control characters
/// (ESC, BEL, NUL, ...), Unicode's bidirectional formatting characters, and the line and
/// paragraph separators. (Zero-width joiners and the like, which a name in Zoom may hold in
/// its emoji, show as nothing and move nothing: they stay.)
pub fn is_disruptive(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

/// `text` with each hidden character ([`is_hidden`]) written as its escape (`\u{200b}`) and the
/// rest as it is: a name as a person can see it, and find the character to remove.
pub fn escaped(text: &str) -> String {
    text.chars()
        .map(|c| {
            if is_hidden(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A path as [`escaped`] shows it.
pub fn shown_path(path: &std::path::Path) -> String {
    escaped(&path.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_replaces_what_a_terminal_would_obey_and_cuts_long_text() {
        assert_eq!(
            clean("a\u{1b}[2Jb\u{7}\0c\u{202e}d", 100),
            "a\u{fffd}[2Jb\u{fffd}\u{fffd}c\u{fffd}d"
        );
        assert_eq!(clean("héllo wörld", 5), "héllo…");
        assert_eq!(clean("short", 5), "short");
    }

    #[test]
    fn a_registered_secret_is_masked_in_place_and_found() {
        never_show("the test secret", "correct-horse-battery");
        never_show("too short to register", "abc");
        assert_eq!(
            clean("key = \"correct-horse-battery\" # abc", 100),
            "key = \"*********************\" # abc"
        );
        assert_eq!(
            secret_in("x correct-horse-battery y").as_deref(),
            Some("the test secret")
        );
        assert_eq!(secret_in("abc"), None);
    }

    #[test]
    fn a_joiner_in_a_name_is_shown_and_an_override_is_not() {
        assert_eq!(clean("Ana 👩\u{200d}💻", 50), "Ana 👩\u{200d}💻");
        assert_eq!(clean("ana\u{202e}moc", 50), "ana\u{fffd}moc");
    }

    #[test]
    fn invisible_and_format_characters_are_hidden_and_escaped_where_they_stand() {
        for c in [
            '\u{1b}', '\u{7}', '\n', '\u{200b}', '\u{feff}', '\u{202e}', '\u{2066}', '\u{2028}',
            '\u{ad}',
        ] {
            assert!(is_hidden(c), "{c:?}");
        }
        for c in ['a', 'é', '字', ' ', '🦀'] {
            assert!(!is_hidden(c), "{c:?}");
        }
        assert_eq!(
            escaped("ana\u{200b}@example.com"),
            "ana\\u{200b}@example.com"
        );
        assert_eq!(escaped("team\u{1b}[2J"), "team\\u{1b}[2J");
    }
}
