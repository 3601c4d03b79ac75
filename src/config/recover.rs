//! Reading a job file past its first mistake. serde stops at the first wrong key or value, so a
//! file with four mistakes would take four rounds of `validate`. Instead each mistake that has a
//! place in the file is reported, its `key = value` blanked out (spaces, same length, so every
//! later line and column stays right), and the file read again, until it reads or a mistake has
//! no statement to blank (a missing key, a syntax error).

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table};

/// The most mistakes read past in one file.
pub const MAX_ROUNDS: usize = 50;

/// The `key = value` statement (in a table, not inside an inline table) that holds byte
/// `at` of `source`, if there is one.
pub fn statement_at(source: &str, at: usize) -> Option<Range<usize>> {
    let doc = ImDocument::parse(source).ok()?;
    let root = doc.as_item().as_table()?;
    find_in(root, at, None)
}

/// The statement holding `at` in `table`; `dotted` is where the statement starts when
/// `table` is the tail of a dotted key (`delivery.concurrency = 8` starts at `delivery`).
fn find_in(table: &Table, at: usize, dotted: Option<usize>) -> Option<Range<usize>> {
    for (name, item) in table {
        let key_start = table
            .key(name)
            .and_then(toml_edit::Key::span)
            .map(|s| s.start);
        let found = match item {
            Item::Table(inner) if inner.is_dotted() => find_in(inner, at, dotted.or(key_start)),
            Item::Table(inner) => find_in(inner, at, None),
            Item::ArrayOfTables(tables) => tables.iter().find_map(|t| find_in(t, at, None)),
            Item::Value(_) => {
                let start = dotted.or(key_start)?;
                let whole = start..item.span()?.end;
                whole.contains(&at).then_some(whole)
            }
            Item::None => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// `text` with `range` replaced by spaces, newlines kept, byte for byte.
pub fn blank(text: &str, range: Range<usize>) -> String {
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..range.start]);
    for c in text[range.clone()].chars() {
        if c == '\n' || c == '\r' {
            out.push(c);
        } else {
            out.extend(std::iter::repeat_n(' ', c.len_utf8()));
        }
    }
    out.push_str(&text[range.end..]);
    out
}

/// The known key closest to the unknown one in serde's "unknown field `x`, expected one of
/// `a`, `b`" message, if one is close enough to be a typo of it.
pub fn closest_key(message: &str) -> Option<String> {
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let (unknown, known) = quoted.split_first()?;
    if !message.starts_with("unknown field") {
        return None;
    }
    typo_of(unknown, known.iter().copied()).map(str::to_owned)
}

/// Of `known`, the one `wanted` is most likely a typo of: the closest (Damerau-Levenshtein)
/// within 2 edits, or a third of its length for a long one.
pub fn typo_of<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(wanted, k), k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_around_a_mistake_is_found_and_blanked_without_moving_anything() {
        let source = "a = 1\n[t]\nconcurrency = \"eight\"\nnote = \"é\"\n[[b]]\nx = [1,\n 2]\n";
        let at = source.find("\"eight\"").unwrap();
        let range = statement_at(source, at).unwrap();
        assert_eq!(&source[range.clone()], "concurrency = \"eight\"");
        let blanked = blank(source, range);
        assert_eq!(blanked.len(), source.len());
        assert!(blanked.contains("\n                     \nnote"));
        let multi = statement_at(source, source.find("2]").unwrap()).unwrap();
        let blanked = blank(source, multi);
        assert!(blanked.ends_with("[[b]]\n       \n   \n"), "{blanked:?}");
        let accent = statement_at(source, source.find('é').unwrap()).unwrap();
        assert_eq!(blank(source, accent).len(), source.len());
        assert_eq!(statement_at(source, source.find("[t]").unwrap()), None);
        let dotted = "[job]\ndelivery.concurrency = \"x\"\n";
        let range = statement_at(dotted, dotted.find("\"x\"").unwrap()).unwrap();
        assert_eq!(&dotted[range], "delivery.concurrency = \"x\"");
    }

    #[test]
    fn a_misspelled_key_finds_its_closest_known_one() {
        let message = "unknown field `max_atempts`, expected one of `concurrency`, `max_attempts`";
        assert_eq!(closest_key(message).as_deref(), Some("max_attempts"));
        let far = "unknown field `colour`, expected one of `concurrency`, `max_attempts`";
        assert_eq!(closest_key(far), None);
        assert_eq!(closest_key("invalid type: string"), None);
    }
}
