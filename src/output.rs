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
//! rewrites what they see.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// `text` safe to show a person: control characters and bidirectional formatting characters
/// become U+FFFD, and anything past `max_chars` characters is cut, marked with `…`.
pub fn clean(text: &str, max_chars: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max_chars)
        .map(|c| if is_hidden(c) { '\u{fffd}' } else { c })
        .collect();
    if text.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// A character that changes how text around it is shown rather than showing itself: control
/// characters (ESC, BEL, NUL, ...) and Unicode's bidirectional formatting characters.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
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
}
