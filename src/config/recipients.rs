//! Recipients: the inline `recipients.emails` list and the `recipients.file` (one email per
//! line, or CSV with an `email` column whose other columns become template variables),
//! streamed; [`dedupe_key`] lets callers de-duplicate case-insensitively in constant space.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek};
use std::path::Path;

use sha2::{Digest, Sha256};

/// One recipient: the lower-cased email and its CSV columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Lower-cased email.
    pub email: String,
    /// Other CSV columns of its row, by header name.
    pub columns: BTreeMap<String, String>,
}

/// A problem in a recipients file, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// 1-based line (0 for the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A cheap plausibility check: one `@`, something on both sides, no spaces.
pub fn is_plausible_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// Opens a recipients file for streaming: its column names (empty for a plain list) and an
/// iterator over its recipients, read as they are needed, so memory does not grow with the
/// file.
pub fn open_file(path: &Path) -> Result<(Vec<String>, RecipientStream), FileProblem> {
    let cannot = |e: std::io::Error| FileProblem {
        line: 0,
        message: format!("cannot read {}: {e}", path.display()),
    };
    let mut first = String::new();
    let mut probe = BufReader::new(File::open(path).map_err(cannot)?);
    while first.trim().is_empty() {
        first.clear();
        if probe.read_line(&mut first).map_err(cannot)? == 0 {
            break;
        }
    }
    let first = first.trim_start_matches('\u{feff}');
    // Read again from the start, through the same open file.
    probe.rewind().map_err(cannot)?;
    let file = probe;
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
                    "the CSV header ({}) has no `email` column; name the column of addresses `email`",
                    headers.join(",")
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

/// The recipients of a file, one at a time.
pub enum RecipientStream {
    /// One email per line.
    List {
        /// The numbered lines.
        lines: std::iter::Enumerate<std::io::Lines<BufReader<File>>>,
    },
    /// CSV with an `email` column.
    Csv {
        /// The rows.
        records: csv::StringRecordsIntoIter<BufReader<File>>,
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
    if is_plausible_email(email) {
        Ok(Recipient {
            email: email.to_lowercase(),
            columns,
        })
    } else {
        Err(FileProblem {
            line,
            message: format!("`{email}` is not an email address"),
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
            r.iter().map(|r| r.email.as_str()).collect::<Vec<_>>(),
            ["ana@example.com", "bo@example.com"]
        );
        let (cols, r) = file("name,Email,team\nAna,ANA@example.com,ops\n").unwrap();
        assert_eq!(cols, ["name", "Email", "team"]);
        assert_eq!(r[0].email, "ana@example.com");
        assert_eq!(r[0].columns.get("team").map(String::as_str), Some("ops"));
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_email() {
        let (_, r) = file("\u{feff}ana@example.com\nbo@example.com\n").unwrap();
        assert_eq!(r[0].email, "ana@example.com");
        let (cols, r) = file("\u{feff}email,team\nana@example.com,ops\n").unwrap();
        assert_eq!(
            (cols[0].as_str(), r[0].email.as_str()),
            ("email", "ana@example.com")
        );
    }

    #[test]
    fn problems_carry_lines() {
        let problems = file("a@example.com\nnot-an-email\n").unwrap_err();
        assert_eq!(
            problems,
            [FileProblem {
                line: 2,
                message: "`not-an-email` is not an email address".into()
            }]
        );
        let problems = file("name,mail\nx,y@z.io\n").unwrap_err();
        assert!(problems[0].message.contains("no `email` column"));
        let problems = file("name,email\nx,nope\n").unwrap_err();
        assert_eq!(problems[0].line, 2);
    }

    #[test]
    fn plausible_emails() {
        assert!(is_plausible_email("a.b+c@x.example"));
        assert!(!is_plausible_email("a@b"));
        assert!(!is_plausible_email("a @x.io"));
    }
}
