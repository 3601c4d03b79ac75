//! Reading a job file: [`Job::load`] reads it (a regular file of at most
//! [`MAX_JOB_FILE_BYTES`]), refuses what must not be read on (a hidden character in its name,
//! a secret, text that is not TOML), parses it, blanking out each statement serde stops at so
//! that every mistake is reported at once ([`super::recover`]), and hands it to the checker
//! ([`super::check`]).

use std::path::Path;

use super::app::Config;
use super::check::Checker;
use super::diagnostic::{Diagnostic, Invalid, Location};
use super::job::{Job, JobFile, job_name};
use super::{recipients, recover};

impl Job {
    /// Reads and validates a job file; every problem found is reported at once.
    pub fn load(path: &Path, config: &Config) -> Result<Self, Invalid> {
        let source = read_job_file(path).map_err(|e| {
            Invalid::one(
                Diagnostic::whole(Some(path), format!("cannot read the job file: {e}")).help(
                    "give the name of a job in the jobs directory, or a path to a .toml file",
                ),
            )
        })?;
        Self::parse(path, &source, config)
    }

    /// Validates the text of the job file at `path` (its recipients file, if any, is read
    /// relative to `path`). Every mistake is reported at once: one that serde stops at is
    /// blanked out and the file read again ([`super::recover`]).
    pub fn parse(path: &Path, source: &str, config: &Config) -> Result<Self, Invalid> {
        if let Some(hidden) = job_name(path)
            .chars()
            .find(|c| crate::output::is_hidden(*c))
        {
            return Err(Invalid::one(hidden_in_name(path, hidden)));
        }
        if let Some(found) = secret_in(source) {
            // Reported without the file's lines, which would show the secret.
            return Err(Invalid::one(Diagnostic::whole(Some(path), found).help(
                "a job file is read by whoever runs the job: keep secrets in the environment \
                 or zoomcast.toml, and remove this one (rotate it if the file was shared)",
            )));
        }
        if let Err(e) = toml::from_str::<toml::Table>(source) {
            return Err(Invalid::one(not_toml(path, source, &e)));
        }
        let mut problems = Vec::new();
        let mut text = source.to_owned();
        for _ in 0..recover::MAX_ROUNDS {
            match toml::from_str::<JobFile>(&text) {
                Ok(file) => {
                    let checked = Checker::new(path, source).check(file, config);
                    return match checked {
                        Ok(job) if problems.is_empty() => Ok(job),
                        Ok(_) => Err(Invalid {
                            diagnostics: problems,
                        }),
                        Err(invalid) => {
                            problems.extend(invalid.diagnostics);
                            Err(Invalid {
                                diagnostics: problems,
                            })
                        }
                    };
                }
                Err(e) => {
                    problems.push(read_error(path, source, &e));
                    let next = e.span().and_then(|s| recover::statement_at(&text, s.start));
                    match next {
                        Some(statement) => text = recover::blank(&text, statement),
                        None => break,
                    }
                }
            }
        }
        Err(Invalid {
            diagnostics: problems,
        })
    }
}

/// A job whose name (its file name) holds a character that shows as something else or as
/// nothing: every listing, log line and metric would show another name, or none.
fn hidden_in_name(path: &Path, hidden: char) -> Diagnostic {
    Diagnostic::whole(
        Some(path),
        format!(
            "the job's name, `{}`, has a control, bidirectional or invisible character ({})",
            crate::output::escaped(&job_name(path)),
            hidden.escape_unicode()
        ),
    )
    .help("rename the file: a job is named after its file, and names are shown everywhere")
}

/// A file that is not TOML at all: where it breaks, and none of its content. It may be
/// anything (a state key or a password file linked into the jobs directory by mistake).
fn not_toml(path: &Path, source: &str, e: &toml::de::Error) -> Diagnostic {
    let message = e.message().trim().replace('\n', "; ");
    let place = e.span().map_or_else(String::new, |span| {
        let at = Location::of_span(source, span);
        format!(" at line {}, column {}", at.line, at.column)
    });
    Diagnostic::whole(
        Some(path),
        format!("this is not a TOML file: {message}{place}"),
    )
    .help(
        "its lines are not shown, since a file that is not TOML may hold anything (a key, a \
         password); fix the TOML at that place, or move the file out of the jobs directory",
    )
}

/// serde's complaint about the file, with the closest known key for a misspelled one. A line
/// that may hold a secret (`secret`, `token`, `password` in it) is not shown.
fn read_error(path: &Path, source: &str, e: &toml::de::Error) -> Diagnostic {
    let message = e.message().trim();
    let d = match e.span() {
        Some(span) if may_hold_a_secret(source, &span) => {
            let line = source[..span.start.min(source.len())].matches('\n').count() + 1;
            Diagnostic::whole(
                Some(path),
                format!("line {line}: {message} (the line is not shown: it may hold a secret)"),
            )
        }
        Some(span) => Diagnostic::at(path, source, span, message),
        None => Diagnostic::whole(Some(path), message),
    };
    match recover::closest_key(message) {
        Some(key) => d.help(format!("did you mean `{key}`?")),
        None => d.help("see the job file format in docs/src/jobs.md"),
    }
}

/// Whether the line around `span` names a secret.
fn may_hold_a_secret(source: &str, span: &std::ops::Range<usize>) -> bool {
    let start = source[..span.start.min(source.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let end = source[span.start.min(source.len())..]
        .find('\n')
        .map_or(source.len(), |i| span.start + i);
    let line = source[start..end].to_lowercase();
    ["secret", "token", "password"]
        .iter()
        .any(|w| line.contains(w))
}

/// What secret the job file holds in plain text, if any: a configured one (an app's client
/// or webhook secret, the state key: [`crate::output::never_show`]), or what looks like a Zoom
/// token (a JWT, `eyJ...`).
fn secret_in(source: &str) -> Option<String> {
    if let Some(what) = crate::output::secret_in(source) {
        return Some(format!("the job file contains the {what}"));
    }
    let line = looks_like_a_token(source)?;
    Some(format!(
        "line {line} of the job file holds what looks like a Zoom token (a JWT)"
    ))
}

/// The 1-based line of the first JWT-shaped text (`eyJ` and two dot-separated base64url
/// parts of 10 characters or more). One pass: each run of base64url characters is read once.
fn looks_like_a_token(source: &str) -> Option<usize> {
    let bytes = source.as_bytes();
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let run_from = |at: usize| bytes[at..].iter().take_while(|&&b| base64url(b)).count();
    let mut at = 0;
    while at < bytes.len() {
        let run = run_from(at);
        if run == 0 {
            at += 1;
            continue;
        }
        let next = at + run;
        let body = if bytes.get(next) == Some(&b'.') {
            run_from(next + 1)
        } else {
            0
        };
        if source[at..next].starts_with("eyJ") && run >= 10 && body >= 10 {
            return Some(source[..at].matches('\n').count() + 1);
        }
        at = next;
    }
    None
}

/// The largest job file read: a job is a page of TOML; its recipients go in `recipients.file`.
pub const MAX_JOB_FILE_BYTES: u64 = 1024 * 1024;

/// A job file's text: a regular file of at most [`MAX_JOB_FILE_BYTES`], in UTF-8.
fn read_job_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = recipients::open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_JOB_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_JOB_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "it is larger than {} KiB; put long recipient lists in `recipients.file`",
            MAX_JOB_FILE_BYTES / 1024
        )));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::other("it is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_token_shaped_text_is_found_on_its_line_in_one_pass() {
        let jwt = "eyJhbGciOiJIUzUxMiJ9.eyJ2ZXIiOjEwLCJhdWlkIjoiYWJjIn0.c2ln";
        assert_eq!(
            super::looks_like_a_token(&format!("a = 1\nb = \"{jwt}\"\n")),
            Some(2)
        );
        assert_eq!(
            super::looks_like_a_token("note = \"eyJ is how JWTs start\""),
            None
        );
        // A megabyte of `eyJ` and dots: read once, not once per `eyJ`.
        let hostile = "eyJ.".repeat(256 * 1024);
        assert_eq!(super::looks_like_a_token(&hostile), None);
    }
}
