//! Recipients: the inline `recipients.emails`, `jids` (chat users) and `channels` lists and the
//! `recipients.file` (one email per line, or CSV with an `email` column whose other columns
//! become template variables), streamed; [`dedupe_key`] lets callers de-duplicate
//! case-insensitively in constant space.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::user::ZoomUser;

/// One recipient: how it is addressed, and its CSV columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Where the message goes.
    pub address: Address,
    /// Other CSV columns of its row, by header name.
    pub columns: BTreeMap<String, String>,
}

/// How a recipient is addressed, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A person by email: the Users API gives their JID and profile.
    Email(String),
    /// A chat user by JID: sent to as is, with no lookup (and no profile).
    User(String),
    /// A channel by JID: one message to the channel, with no lookup.
    Channel(String),
    /// A channel by name, `#name` as written: its JID is found in the channels the
    /// authorizing user can see (`GET /v2/chat/users/me/channels`).
    ChannelName(String),
}

impl Address {
    /// How a key of the journal ([`Address::key`]) was addressed: a channel's or user's JID,
    /// else an email.
    pub fn from_key(key: &str) -> Self {
        if key.starts_with('#') {
            Self::ChannelName(key.to_owned())
        } else if crate::user::is_channel_jid(key) {
            Self::Channel(key.to_owned())
        } else if crate::user::is_user_jid(key) {
            Self::User(key.to_owned())
        } else {
            Self::Email(key.to_owned())
        }
    }

    /// Whether it is a person (who may opt out), not a channel.
    pub fn is_person(&self) -> bool {
        !matches!(self, Self::Channel(_) | Self::ChannelName(_))
    }

    /// The user a JID stands for, with no profile (a JID is not looked up).
    pub fn unprofiled(jid: &str) -> ZoomUser {
        ZoomUser {
            jid: jid.to_owned(),
            ..ZoomUser::default()
        }
    }

    /// What names the recipient in the run's journal and history: the email or the JID.
    pub fn key(&self) -> &str {
        match self {
            Self::Email(key) | Self::User(key) | Self::Channel(key) | Self::ChannelName(key) => key,
        }
    }
}

impl Recipient {
    /// A recipient with no columns.
    pub fn at(address: Address) -> Self {
        Self {
            address,
            columns: BTreeMap::new(),
        }
    }

    /// [`Address::key`].
    pub fn key(&self) -> &str {
        self.address.key()
    }
}

/// A problem in a recipients file, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// 1-based line (0 for the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// The longest line a recipients file may have: far beyond any CSV row of real recipients,
/// and a bound on what a file that is not a recipients file can make zoomcast hold.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// The longest email address (RFC 3696's 320 characters, as SMTP limits them).
pub const MAX_EMAIL_CHARS: usize = 320;
/// How much of a bad line an error quotes.
const QUOTED_CHARS: usize = 80;

/// A cheap plausibility check: one `@`, something on both sides, no spaces, no control or
/// bidirectional formatting characters, at most [`MAX_EMAIL_CHARS`].
pub fn is_plausible_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && email.chars().count() <= MAX_EMAIL_CHARS
                && !email
                    .chars()
                    .any(|c| c.is_whitespace() || crate::output::is_hidden(c))
        }
        None => false,
    }
}

/// Why `email` is not an address. Only what looks like an attempt at one (it has an `@` and
/// no control character) is quoted, and only its start: a file that is not a recipients file
/// (an environment, a key, a `.env`) must not end up in an error or a log.
pub fn not_an_email(email: &str) -> String {
    if email.chars().any(crate::output::is_hidden) {
        "the line has a control or invisible character, so it is not an email address (an \
         address with one would look like another recipient; is this a text file of addresses?)"
            .to_owned()
    } else if email.contains('@') {
        format!(
            "`{}` is not an email address",
            crate::output::clean(email, QUOTED_CHARS)
        )
    } else {
        "the line is not an email address (it has no @); the line is not shown, in case the \
         file is not a list of addresses"
            .to_owned()
    }
}

/// A CSV header as an error shows it: its names when they look like column names, else only
/// how many there are.
fn describe_header(headers: &[String]) -> String {
    let plain = |h: &String| {
        h.len() <= 32
            && h.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.'))
    };
    if headers.iter().all(plain) {
        format!("the CSV header ({})", headers.join(","))
    } else {
        format!("the CSV header ({} columns)", headers.len())
    }
}

/// Opens a recipients file for streaming: its column names (empty for a plain list) and an
/// iterator over its recipients, read as they are needed, so memory does not grow with the
/// file. Only a regular file is read (not a device, a pipe or a directory), and no line of it
/// may be longer than [`MAX_LINE_BYTES`].
pub fn open_file(path: &Path) -> Result<(Vec<String>, RecipientStream), FileProblem> {
    let cannot = |e: std::io::Error| FileProblem {
        line: 0,
        message: format!("cannot read {}: {e}", path.display()),
    };
    let mut file = open_regular(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidInput => FileProblem {
            line: 0,
            message: format!(
                "{}: {e}; name a text file of addresses (one per line, or CSV with an `email` \
                 column)",
                path.display()
            ),
        },
        _ => cannot(e),
    })?;
    let mut first = String::new();
    {
        let mut probe = BufReader::new(LineLimited::new(&mut file));
        while first.trim().is_empty() {
            first.clear();
            if probe.read_line(&mut first).map_err(cannot)? == 0 {
                break;
            }
        }
    }
    let first = first.trim_start_matches('\u{feff}');
    if first.trim_end().chars().any(crate::output::is_hidden) {
        return Err(FileProblem {
            line: 1,
            message: "the file's first line has a control character: it is not a text file of \
                      addresses"
                .into(),
        });
    }
    // Read again from the start, through the same open file.
    file.rewind().map_err(cannot)?;
    let file = BufReader::new(LineLimited::new(file));
    if first.contains(',') || first.trim().eq_ignore_ascii_case("email") {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(file);
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| FileProblem {
                line: 1,
                message: e.to_string(),
            })?
            .iter()
            .map(str::to_owned)
            .collect();
        let Some(email_col) = headers.iter().position(|h| h.eq_ignore_ascii_case("email")) else {
            return Err(FileProblem {
                line: 1,
                message: format!(
                    "{} has no `email` column; name the column of addresses `email`",
                    describe_header(&headers)
                ),
            });
        };
        let stream = RecipientStream::Csv {
            records: reader.into_records(),
            headers: headers.clone(),
            email_col,
        };
        Ok((headers, stream))
    } else {
        Ok((
            Vec::new(),
            RecipientStream::List {
                lines: file.lines().enumerate(),
            },
        ))
    }
}

/// Opens `path` for reading if it is a regular file; anything else (a device, a pipe, a
/// directory) is an `InvalidInput` error saying so. The open does not wait: a named pipe with
/// no writer would block the open itself, before the check. (`O_NONBLOCK` changes nothing for a
/// regular file's reads.)
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = File::options()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed())
        .open(path)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a device, a pipe or a directory)",
        ))
    }
}

/// A reader that fails once a line runs past [`MAX_LINE_BYTES`], so neither a line reader nor
/// the CSV reader buffers without bound (`/dev/zero` has no newline).
pub struct LineLimited<R> {
    inner: R,
    /// Bytes read since the last newline.
    run: usize,
}

impl<R> LineLimited<R> {
    fn new(inner: R) -> Self {
        Self { inner, run: 0 }
    }
}

impl<R: Read> Read for LineLimited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            self.run = if b == b'\n' { 0 } else { self.run + 1 };
            if self.run > MAX_LINE_BYTES {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "a line is longer than {} KiB; a recipients file holds one address (or \
                         CSV row) per line",
                        MAX_LINE_BYTES / 1024
                    ),
                ));
            }
        }
        Ok(n)
    }
}

/// The recipients of a file, one at a time.
pub enum RecipientStream {
    /// One email per line.
    List {
        /// The numbered lines.
        lines: std::iter::Enumerate<std::io::Lines<BufReader<LineLimited<File>>>>,
    },
    /// CSV with an `email` column.
    Csv {
        /// The rows.
        records: csv::StringRecordsIntoIter<BufReader<LineLimited<File>>>,
        /// The header.
        headers: Vec<String>,
        /// Which column holds the email.
        email_col: usize,
    },
}

impl Iterator for RecipientStream {
    type Item = Result<Recipient, FileProblem>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::List { lines } => loop {
                let (i, line) = lines.next()?;
                let line = match line {
                    Ok(line) => line,
                    Err(e) => {
                        return Some(Err(FileProblem {
                            line: i + 1,
                            message: e.to_string(),
                        }));
                    }
                };
                // A byte-order mark (files saved on Windows) is not part of the first email.
                let email = line.trim_start_matches('\u{feff}').trim();
                if email.is_empty() || email.starts_with('#') {
                    continue;
                }
                return Some(recipient(email, BTreeMap::new(), i + 1));
            },
            Self::Csv {
                records,
                headers,
                email_col,
            } => {
                let record = match records.next()? {
                    Ok(record) => record,
                    Err(e) => {
                        let line = e
                            .position()
                            .map_or(0, |p| usize::try_from(p.line()).unwrap_or(0));
                        return Some(Err(FileProblem {
                            line,
                            message: e.to_string(),
                        }));
                    }
                };
                let line = record
                    .position()
                    .map_or(0, |p| usize::try_from(p.line()).unwrap_or(0));
                let columns = headers
                    .iter()
                    .zip(record.iter())
                    .enumerate()
                    .filter(|(i, _)| i != email_col)
                    .map(|(_, (h, v))| (h.clone(), v.to_owned()))
                    .collect();
                Some(recipient(
                    record.get(*email_col).unwrap_or(""),
                    columns,
                    line,
                ))
            }
        }
    }
}

fn recipient(
    email: &str,
    columns: BTreeMap<String, String>,
    line: usize,
) -> Result<Recipient, FileProblem> {
    // A `--failures` file writes an address starting with `=`, `+`, `-` or `@` behind a `'`.
    let email = email
        .strip_prefix('\'')
        .filter(|e| e.starts_with(['=', '+', '-', '@']))
        .unwrap_or(email);
    if is_plausible_email(email) {
        Ok(Recipient {
            address: Address::Email(email.to_lowercase()),
            columns,
        })
    } else {
        Err(FileProblem {
            line,
            message: not_an_email(email),
        })
    }
}

/// A constant-size key for de-duplicating an email: the first 16 bytes of its SHA-256.
pub fn dedupe_key(email: &str) -> [u8; 16] {
    let digest = Sha256::digest(email.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Reads a whole recipients file: its column names and every recipient, or every problem.
    fn read_file(path: &Path) -> Result<(Vec<String>, Vec<Recipient>), Vec<FileProblem>> {
        let (headers, stream) = open_file(path).map_err(|p| vec![p])?;
        let (mut recipients, mut problems) = (Vec::new(), Vec::new());
        for item in stream {
            match item {
                Ok(r) => recipients.push(r),
                Err(p) => problems.push(p),
            }
        }
        if problems.is_empty() {
            Ok((headers, recipients))
        } else {
            Err(problems)
        }
    }

    fn file(text: &str) -> Result<(Vec<String>, Vec<Recipient>), Vec<FileProblem>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, text).unwrap();
        read_file(&path)
    }

    #[test]
    fn plain_list_and_csv() {
        let (cols, r) = file("# team\nAna@Example.com\n\nbo@example.com\n").unwrap();
        assert!(cols.is_empty());
        assert_eq!(
            r.iter().map(Recipient::key).collect::<Vec<_>>(),
            ["ana@example.com", "bo@example.com"]
        );
        let (cols, r) = file("name,Email,team\nAna,ANA@example.com,ops\n").unwrap();
        assert_eq!(cols, ["name", "Email", "team"]);
        assert_eq!(r[0].key(), "ana@example.com");
        assert_eq!(r[0].columns.get("team").map(String::as_str), Some("ops"));
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_email() {
        let (_, r) = file("\u{feff}ana@example.com\nbo@example.com\n").unwrap();
        assert_eq!(r[0].key(), "ana@example.com");
        let (cols, r) = file("\u{feff}email,team\nana@example.com,ops\n").unwrap();
        assert_eq!((cols[0].as_str(), r[0].key()), ("email", "ana@example.com"));
    }

    #[test]
    fn problems_carry_lines() {
        let problems = file("a@example.com\nnot-an@email\n").unwrap_err();
        assert_eq!(
            problems,
            [FileProblem {
                line: 2,
                message: "`not-an@email` is not an email address".into()
            }]
        );
        let problems = file("API_KEY=s3cr3t-value\n-----BEGIN KEY-----\n").unwrap_err();
        assert_eq!(problems.len(), 2);
        assert!(
            problems.iter().all(|p| !p.message.contains("s3cr3t")),
            "{problems:?}"
        );
        let problems = file("token=abc,other=s3cr3t\nx,y\n").unwrap_err();
        assert!(!problems[0].message.contains("s3cr3t"), "{problems:?}");
        let problems = file("name,mail\nx,y@z.io\n").unwrap_err();
        assert!(problems[0].message.contains("no `email` column"));
        let problems = file("name,email\nx,nope\n").unwrap_err();
        assert_eq!(problems[0].line, 2);
    }

    #[test]
    fn what_is_not_a_recipients_file_is_refused_without_being_quoted() {
        let problems = file("SECRET=abc\0HOME=/root@x.io\n").unwrap_err();
        assert!(
            problems[0].message.contains("control character"),
            "{problems:?}"
        );
        assert!(!problems[0].message.contains("SECRET"), "{problems:?}");
        let long = format!("{}@example.com\n", "a".repeat(400));
        let problems = file(&long).unwrap_err();
        assert!(problems[0].message.len() < 200, "{problems:?}");
        let endless = "x".repeat(MAX_LINE_BYTES + 10);
        let problems = file(&endless).unwrap_err();
        assert!(
            problems[0].message.contains("longer than 64 KiB"),
            "{problems:?}"
        );
        let Err(p) = open_file(Path::new("/dev/zero")) else {
            panic!("a device is read")
        };
        assert!(p.message.contains("not a regular file"), "{p:?}");
        let fifo = tempfile::tempdir().unwrap();
        let fifo = fifo.path().join("pipe");
        assert!(
            Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let Err(p) = open_file(&fifo) else {
            panic!("a pipe is read")
        };
        assert!(p.message.contains("not a regular file"), "{p:?}");
        let dir = tempfile::tempdir().unwrap();
        let Err(p) = open_file(dir.path()) else {
            panic!("a directory is read")
        };
        assert!(p.message.contains("not a regular file"), "{p:?}");
    }

    #[test]
    fn an_address_a_failures_file_guarded_reads_back() {
        let (_, r) = file("email,state\n'-ops@example.com,failed\n").unwrap();
        assert_eq!(r[0].key(), "-ops@example.com");
    }

    #[test]
    fn plausible_emails() {
        for hidden in [
            "a\u{1b}[31m@x.io",
            "a\u{7}@x.io",
            "a\0@x.io",
            "a\u{202e}moc@x.io",
        ] {
            assert!(!is_plausible_email(hidden), "{hidden:?}");
        }
        assert!(!is_plausible_email(&format!("{}@x.io", "a".repeat(320))));
        assert!(is_plausible_email("a.b+c@x.example"));
        assert!(!is_plausible_email("a@b"));
        assert!(!is_plausible_email("a @x.io"));
    }
}
