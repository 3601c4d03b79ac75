//! Recipients: the inline `recipients.emails` list and the `recipients.file` (one email per
//! line, or CSV with an `email` column whose other columns become template variables),
//! de-duplicated case-insensitively, first occurrence wins.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

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

/// Reads a recipients file: its column names (empty for a plain list) and its recipients.
pub fn read_file(path: &Path) -> Result<(Vec<String>, Vec<Recipient>), Vec<FileProblem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![FileProblem {
            line: 0,
            message: format!("cannot read {}: {e}", path.display()),
        }]
    })?;
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if first.contains(',') || first.trim().eq_ignore_ascii_case("email") {
        read_csv(&text)
    } else {
        read_list(&text).map(|r| (Vec::new(), r))
    }
}

fn read_list(text: &str) -> Result<Vec<Recipient>, Vec<FileProblem>> {
    let mut problems = Vec::new();
    let mut recipients = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let email = line.trim();
        if email.is_empty() || email.starts_with('#') {
            continue;
        }
        if is_plausible_email(email) {
            recipients.push(Recipient {
                email: email.to_lowercase(),
                columns: BTreeMap::new(),
            });
        } else {
            problems.push(FileProblem {
                line: i + 1,
                message: format!("`{email}` is not an email address"),
            });
        }
    }
    if problems.is_empty() {
        Ok(recipients)
    } else {
        Err(problems)
    }
}

fn read_csv(text: &str) -> Result<(Vec<String>, Vec<Recipient>), Vec<FileProblem>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| {
            vec![FileProblem {
                line: 1,
                message: e.to_string(),
            }]
        })?
        .iter()
        .map(str::to_owned)
        .collect();
    let Some(email_col) = headers.iter().position(|h| h.eq_ignore_ascii_case("email")) else {
        return Err(vec![FileProblem {
            line: 1,
            message: format!(
                "the CSV header ({}) has no `email` column; name the column of addresses `email`",
                headers.join(",")
            ),
        }]);
    };
    let mut problems = Vec::new();
    let mut recipients = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e
                    .position()
                    .map_or(0, |p| usize::try_from(p.line()).unwrap_or(0));
                problems.push(FileProblem {
                    line,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let line = record
            .position()
            .map_or(0, |p| usize::try_from(p.line()).unwrap_or(0));
        let email = record.get(email_col).unwrap_or("");
        if !is_plausible_email(email) {
            problems.push(FileProblem {
                line,
                message: format!("`{email}` is not an email address"),
            });
            continue;
        }
        let columns = headers
            .iter()
            .zip(record.iter())
            .enumerate()
            .filter(|(i, _)| *i != email_col)
            .map(|(_, (h, v))| (h.clone(), v.to_owned()))
            .collect();
        recipients.push(Recipient {
            email: email.to_lowercase(),
            columns,
        });
    }
    if problems.is_empty() {
        Ok((headers, recipients))
    } else {
        Err(problems)
    }
}

/// Removes later duplicates (emails are already lower-cased), keeping the order.
pub fn dedupe(recipients: Vec<Recipient>) -> Vec<Recipient> {
    let mut seen = HashSet::new();
    recipients
        .into_iter()
        .filter(|r| seen.insert(r.email.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn dedupe_keeps_first() {
        let r = |e: &str| Recipient {
            email: e.into(),
            columns: BTreeMap::new(),
        };
        let out = dedupe(vec![r("a@x.io"), r("b@x.io"), r("a@x.io")]);
        assert_eq!(out, [r("a@x.io"), r("b@x.io")]);
        assert!(is_plausible_email("a.b+c@x.example"));
        assert!(!is_plausible_email("a@b"));
        assert!(!is_plausible_email("a @x.io"));
    }
}
