//! [`Diagnostic`]: one problem in a configuration or job file, with its place and the fix,
//! rendered like a compiler error; and [`Invalid`], the error that carries them (exit code 2).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where in a file a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The whole line, for the caret display.
    pub text: String,
    /// How many characters the caret underlines.
    pub width: usize,
}

impl Location {
    /// The location of a byte span in `source`.
    pub fn of_span(source: &str, span: Range<usize>) -> Self {
        let start = span.start.min(source.len());
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        // Masked whole before a window is cut from it: a secret across the window's edge
        // would otherwise show in part.
        let text = crate::output::mask_secrets(source[line_start..line_end].trim_end_matches('\r'))
            .into_owned();
        let column = source[line_start..start].chars().count() + 1;
        let width = source[start..span.end.clamp(start, line_end)]
            .chars()
            .count()
            .max(1);
        let (text, column, width) = window(&text, column, width);
        Self {
            line: source[..start].matches('\n').count() + 1,
            column,
            text,
            width,
        }
    }
}

/// The most of a line a diagnostic shows.
const SHOWN_CHARS: usize = 120;
/// How much of the line before the problem the window keeps.
const CONTEXT_CHARS: usize = 40;

/// The part of a long line around `column` (1-based), cleaned of control characters, with the
/// column and caret width moved to match: a file that is not a job file (a key, a password
/// file) must not end up whole in an error.
fn window(line: &str, column: usize, width: usize) -> (String, usize, usize) {
    let skip = column.saturating_sub(1 + CONTEXT_CHARS);
    let mut shown = String::new();
    let mut column = column - skip;
    if skip > 0 {
        shown.push('…');
        column += 1;
    }
    let rest: String = line.chars().skip(skip).collect();
    // What shows as nothing is shown as a mark, in its place (a caret may point at it).
    let cleaned = crate::output::clean(&rest, SHOWN_CHARS);
    shown.extend(cleaned.chars().map(|c| {
        if crate::output::is_hidden(c) {
            '\u{fffd}'
        } else {
            c
        }
    }));
    let room = shown.chars().count().saturating_sub(column - 1);
    let width = width.min(room).max(1);
    (shown, column, width)
}

/// One problem, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, or `None` for the environment and the command line.
    pub path: Option<PathBuf>,
    /// Where in the file.
    pub location: Option<Location>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// Whether it is only a warning: the file is valid, and this is worth a look.
    pub warning: bool,
}

impl Diagnostic {
    /// A problem in a file at a byte span of its `source`.
    pub fn at(path: &Path, source: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            path: Some(path.to_owned()),
            location: Some(Location::of_span(source, span)),
            message: message.into(),
            help: None,
            warning: false,
        }
    }

    /// A problem with a whole file (or, with `path = None`, with the environment).
    pub fn whole(path: Option<&Path>, message: impl Into<String>) -> Self {
        Self {
            path: path.map(Path::to_owned),
            location: None,
            message: message.into(),
            help: None,
            warning: false,
        }
    }

    /// Adds the fix.
    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Makes it a warning.
    #[must_use]
    pub fn as_warning(mut self) -> Self {
        self.warning = true;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.warning { "warning" } else { "error" };
        writeln!(f, "{kind}: {}", self.message)?;
        match (&self.path, &self.location) {
            (Some(path), Some(loc)) => {
                let gutter = " ".repeat(loc.line.to_string().len());
                writeln!(
                    f,
                    "{gutter}--> {}:{}:{}",
                    crate::output::shown_path(path),
                    loc.line,
                    loc.column
                )?;
                writeln!(f, "{gutter} |")?;
                writeln!(f, "{} | {}", loc.line, loc.text)?;
                write!(
                    f,
                    "{gutter} | {}{}",
                    " ".repeat(loc.column - 1),
                    "^".repeat(loc.width)
                )?;
            }
            (Some(path), None) => write!(f, "  --> {}", crate::output::shown_path(path))?,
            (None, _) => {}
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

/// Invalid configuration, job file or arguments: nothing was sent, and the exit code is 2.
#[derive(Debug, thiserror::Error)]
pub struct Invalid {
    /// Every problem found.
    pub diagnostics: Vec<Diagnostic>,
}

impl Invalid {
    /// An error with one problem.
    pub fn one(diagnostic: Diagnostic) -> Self {
        Self {
            diagnostics: vec![diagnostic],
        }
    }
}

/// Whether `e` comes from an invalid job file, configuration or argument (exit 2).
pub fn is_invalid(e: &anyhow::Error) -> bool {
    e.chain().any(<dyn std::error::Error>::is::<Invalid>)
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            d.fmt(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_shown_in_part_around_the_problem() {
        let source = format!(
            "key = \"{}\u{1b}[2J\" bad {}\n",
            "a".repeat(500),
            "z".repeat(500)
        );
        let at = source.find("bad").unwrap();
        let loc = Location::of_span(&source, at..at + 3);
        assert!(loc.text.chars().count() <= SHOWN_CHARS + 2, "{}", loc.text);
        assert!(!loc.text.contains('\u{1b}'));
        let under: String = loc
            .text
            .chars()
            .skip(loc.column - 1)
            .take(loc.width)
            .collect();
        assert_eq!(under, "bad");
    }

    #[test]
    fn a_configured_secret_is_masked_in_an_excerpt_even_across_its_edge() {
        let secret = "Zk3v9QmT2xLp8RwB4nHs6JdYc1GaUe5F";
        crate::output::never_show("the diagnostic test's secret", secret);
        // The window keeps 40 characters before the problem: it starts inside the secret.
        let source = format!("note = \"{secret}{}\" bad\n", "x".repeat(20));
        let at = source.find("bad").unwrap();
        let loc = Location::of_span(&source, at..at + 3);
        for piece in secret.as_bytes().windows(6) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(!loc.text.contains(piece), "{piece} in {}", loc.text);
        }
        let under: String = loc
            .text
            .chars()
            .skip(loc.column - 1)
            .take(loc.width)
            .collect();
        assert_eq!(under, "bad", "the caret still points at the problem");
    }

    #[test]
    fn renders_file_line_column_and_caret() {
        let source = "a = 1\nconcurency = 8\n";
        let d = Diagnostic::at(
            Path::new("jobs/x.toml"),
            source,
            6..16,
            "unknown key `concurency`",
        )
        .help("did you mean `concurrency`?");
        assert_eq!(
            d.to_string(),
            "error: unknown key `concurency`\n --> jobs/x.toml:2:1\n  |\n2 | concurency = 8\n  | ^^^^^^^^^^\n  = help: did you mean `concurrency`?"
        );
    }
}
