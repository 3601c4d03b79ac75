//! [`Schedule`]: a crontab expression with crontab's meaning, built on the `cron` crate.
//!
//! The `cron` crate counts weekdays from Sunday = 1 and requires both day fields to match. Users
//! write crontab: weekdays 0-7 with 0 and 7 Sunday, and when both day-of-month and day-of-week
//! are restricted a day matches either (Vixie cron). So weekday fields are translated to names,
//! and a schedule with both day fields restricted becomes two `cron` schedules whose fire times
//! are merged. Neither convention of the crate reaches users.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone};

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A parsed schedule.
#[derive(Clone)]
pub struct Schedule {
    expr: String,
    parts: Vec<::cron::Schedule>,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.expr)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(expr: &str) -> Result<Self, String> {
        let expanded = expand_macro(expr.trim())?;
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (sec, rest, year) = match fields.len() {
            5 => ("0", &fields[..], None),
            6 => (fields[0], &fields[1..], None),
            7 => (fields[0], &fields[1..6], Some(fields[6])),
            n => {
                return Err(format!(
                    "a schedule has 5 fields (minute hour day-of-month month day-of-week), or 6-7 \
                     with leading seconds and a trailing year; this one has {n}"
                ));
            }
        };
        let (min, hour, dom, month, dow) = (rest[0], rest[1], rest[2], rest[3], rest[4]);
        let dow = translate_weekdays(dow)?;
        let year = year.unwrap_or("*");
        let variants = if is_restricted(dom) && is_restricted(&dow) {
            vec![(dom, "*".to_owned()), ("*", dow)]
        } else {
            vec![(dom, dow)]
        };
        let parts = variants
            .into_iter()
            .map(|(dom, dow)| {
                ::cron::Schedule::from_str(&format!(
                    "{sec} {min} {hour} {dom} {month} {dow} {year}"
                ))
                .map_err(|e| format!("`{expr}` is not a valid schedule: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            expr: expr.trim().to_owned(),
            parts,
        })
    }
}

impl Schedule {
    /// The first fire time strictly after `after`, in `after`'s timezone.
    pub fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.parts
            .iter()
            .filter_map(|s| s.after(after).next())
            .min()
    }

    /// The next `n` fire times after `after`.
    pub fn upcoming<Tz: TimeZone>(&self, after: &DateTime<Tz>, n: usize) -> Vec<DateTime<Tz>> {
        let mut times = Vec::with_capacity(n);
        let mut cursor = after.clone();
        while times.len() < n {
            match self.next_after(&cursor) {
                Some(next) => {
                    cursor = next.clone();
                    times.push(next);
                }
                None => break,
            }
        }
        times
    }
}

fn expand_macro(expr: &str) -> Result<String, String> {
    Ok(match expr {
        "@yearly" | "@annually" => "0 0 1 1 *".into(),
        "@monthly" => "0 0 1 * *".into(),
        "@weekly" => "0 0 * * 0".into(),
        "@daily" | "@midnight" => "0 0 * * *".into(),
        "@hourly" => "0 * * * *".into(),
        other if other.starts_with('@') => {
            return Err(format!(
                "unknown schedule macro `{other}`; use @hourly, @daily, @weekly, @monthly or @yearly"
            ));
        }
        other => other.to_owned(),
    })
}

fn is_restricted(field: &str) -> bool {
    field != "*" && field != "?"
}

/// Crontab weekdays (0-7, 0 and 7 Sunday, names, ranges, steps) to a list of day names.
fn translate_weekdays(field: &str) -> Result<String, String> {
    if !is_restricted(field) {
        return Ok("*".into());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => (
                b,
                s.parse::<usize>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| bad_day(item))?,
            ),
            None => (item, 1),
        };
        let (first, last) = match base {
            "*" => (0, 6),
            _ => match base.split_once('-') {
                Some((a, b)) => (day(a)?, day(b)?),
                None if step > 1 => (day(base)?, 6),
                None => (day(base)?, day(base)?),
            },
        };
        if first > last {
            return Err(format!(
                "day-of-week range `{base}` runs backwards; write it as two ranges"
            ));
        }
        for d in (first..=last).step_by(step) {
            days[d % 7] = true;
        }
    }
    if days.iter().all(|d| *d) {
        return Ok("*".into());
    }
    let names: Vec<&str> = (0..7).filter(|d| days[*d]).map(|d| DAY_NAMES[d]).collect();
    Ok(names.join(","))
}

/// One weekday: 0-7 or a three-letter name. Returns 0-7 (7 is Sunday, folded later).
fn day(text: &str) -> Result<usize, String> {
    if let Ok(n) = text.parse::<usize>() {
        return if n <= 7 { Ok(n) } else { Err(bad_day(text)) };
    }
    DAY_NAMES
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
        .ok_or_else(|| bad_day(text))
}

fn bad_day(text: &str) -> String {
    format!("`{text}` is not a day of the week: use 0-7 (0 and 7 are Sunday) or Sun, Mon, ... Sat")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Utc, Weekday};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn weekdays(expr: &str) -> Vec<Weekday> {
        let s: Schedule = expr.parse().unwrap();
        // 2026-11-22 is a Sunday.
        s.upcoming(&at("2026-11-21T12:00:00Z"), 7)
            .iter()
            .map(Datelike::weekday)
            .collect()
    }

    #[test]
    fn weekday_numbers_mean_what_crontab_means() {
        use Weekday::*;
        assert_eq!(weekdays("0 9 * * 0"), [Sun; 7]);
        assert_eq!(weekdays("0 9 * * 7"), [Sun; 7]);
        assert_eq!(weekdays("0 9 * * 1-5"), [Mon, Tue, Wed, Thu, Fri, Mon, Tue]);
        assert_eq!(
            weekdays("0 9 * * Mon-Fri"),
            [Mon, Tue, Wed, Thu, Fri, Mon, Tue]
        );
        assert_eq!(weekdays("0 9 * * 5-7"), [Sun, Fri, Sat, Sun, Fri, Sat, Sun]);
        assert_eq!(weekdays("0 9 * * */3"), [Sun, Wed, Sat, Sun, Wed, Sat, Sun]);
    }

    #[test]
    fn both_day_fields_restricted_match_either() {
        let s: Schedule = "0 0 1 * Mon".parse().unwrap();
        let days: Vec<String> = s
            .upcoming(&at("2026-11-25T00:00:00Z"), 3)
            .iter()
            .map(|t| t.format("%a %d").to_string())
            .collect();
        assert_eq!(days, ["Mon 30", "Tue 01", "Mon 07"]);
    }

    #[test]
    fn macros_and_seconds() {
        let s: Schedule = "@hourly".parse().unwrap();
        assert_eq!(
            s.next_after(&at("2026-11-23T10:15:00Z")),
            Some(at("2026-11-23T11:00:00Z"))
        );
        let s: Schedule = "*/2 * * * * *".parse().unwrap();
        assert_eq!(
            s.next_after(&at("2026-11-23T10:15:00Z")),
            Some(at("2026-11-23T10:15:02Z"))
        );
    }

    #[test]
    fn bad_schedules_say_why() {
        for (expr, needle) in [
            ("* * *", "has 3"),
            ("0 9 * * 8", "not a day of the week"),
            ("@often", "unknown schedule macro"),
            ("0 9 * * Fri-Mon", "runs backwards"),
            ("61 * * * *", "not a valid schedule"),
        ] {
            let err = expr.parse::<Schedule>().unwrap_err();
            assert!(err.contains(needle), "{expr}: {err}");
        }
    }
}
