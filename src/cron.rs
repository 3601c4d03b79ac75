//! [`Schedule`]: a crontab expression with crontab's meaning, built on the `cron` crate.
//!
//! The `cron` crate counts weekdays from Sunday = 1 and requires both day fields to match. Users
//! write crontab: weekdays 0-7 with 0 and 7 Sunday, and when both day-of-month and day-of-week
//! are restricted a day matches either (Vixie cron). So weekday fields are translated to names,
//! and a schedule with both day fields restricted becomes two `cron` schedules whose fire times
//! are merged. Neither convention of the crate reaches users.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike, Utc};

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A parsed schedule.
#[derive(Clone)]
pub struct Schedule {
    expr: String,
    parts: Vec<::cron::Schedule>,
    interval: bool,
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
        for (field, value, range) in [
            ("second", sec, 0..=59),
            ("minute", min, 0..=59),
            ("hour", hour, 0..=23),
            ("day of month", dom, 1..=31),
            ("month", month, 1..=12),
            ("day of week", dow, 0..=7),
        ] {
            check_range(field, value, &range)?;
        }
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
                // The crate's message quotes its own 7-field rewrite: keep only its reason.
                .map_err(|e| {
                    let text = e.to_string();
                    let reason = text.lines().last().unwrap_or_default().trim().to_owned();
                    format!("`{}` is not a valid schedule: {reason}", expr.trim())
                })
            })
            .collect::<Result<_, _>>()?;
        let interval = [sec, min, hour].iter().any(|f| f.starts_with('*'));
        let schedule = Self {
            expr: expr.trim().to_owned(),
            parts,
            interval,
        };
        if schedule
            .next_after(&Utc.timestamp_opt(0, 0).unwrap())
            .is_none()
        {
            return Err(never_fires(expr));
        }
        Ok(schedule)
    }
}

/// Refuses a number in `value` (a crontab field: lists, ranges, steps) outside `range`, in the
/// user's own terms. Names (`Mon`, `Jan`) and `*` are left to the parser.
fn check_range(
    field: &str,
    value: &str,
    range: &std::ops::RangeInclusive<u32>,
) -> Result<(), String> {
    for part in value.split(',') {
        let (span, step) = part.split_once('/').unwrap_or((part, ""));
        for number in span.split('-').filter_map(|n| n.parse::<u32>().ok()) {
            if !range.contains(&number) {
                return Err(format!(
                    "{field} `{number}` is out of range: {} {field} is {} to {}",
                    if field.starts_with('h') { "an" } else { "a" },
                    range.start(),
                    range.end()
                ));
            }
        }
        if !step.is_empty() && step.parse::<u32>().is_ok_and(|s| s == 0) {
            return Err(format!(
                "{field} step `/0` never moves: write a step of 1 or more"
            ));
        }
    }
    Ok(())
}

/// Why a schedule is refused that no time from now on matches.
pub fn never_fires(expr: &str) -> String {
    format!(
        "`{}` can never fire again (no date from now on matches it, such as 30 February or a \
         year that has passed); check the day-of-month, month and year fields",
        expr.trim()
    )
}

impl Schedule {
    /// The first fire time strictly after `after`, in `after`'s timezone.
    ///
    /// Fire times are local wall-clock times mapped to instants with the zone's rules: a time in a
    /// spring-forward gap fires once at the first instant after the gap (or not at all for an
    /// interval schedule, whose times follow elapsed time); a time in the repeated fall-back hour
    /// fires once, at its first occurrence (or at both for an interval schedule).
    pub fn next_after<Z: TimeZone>(&self, after: &DateTime<Z>) -> Option<DateTime<Z>> {
        let tz = after.timezone();
        // A fall-back within the next hours repeats wall-clock times that are earlier than
        // `after`'s but still ahead in real time: start the scan that much earlier.
        let repeat = offset_seconds(after) - offset_seconds(&(after.clone() + TimeDelta::hours(3)));
        let start = after.naive_local() - TimeDelta::seconds(repeat.max(0) + 1);
        let mut best: Option<DateTime<Z>> = None;
        for naive in self.wall_times_after(start) {
            let mapped = self.instants(&tz, naive);
            if let Some(b) = &best {
                // Only wall times inside a repeated hour can map to an earlier instant than a
                // later wall time; past them, nothing earlier can come.
                if !mapped.ambiguous && naive > b.naive_local() {
                    break;
                }
            }
            for instant in mapped.instants.into_iter().flatten() {
                if instant > *after && best.as_ref().is_none_or(|b| instant < *b) {
                    best = Some(instant);
                }
            }
        }
        best
    }

    /// The fire times after `after`, in order.
    pub fn times_after<'a, Z: TimeZone + 'a>(
        &'a self,
        after: &DateTime<Z>,
    ) -> impl Iterator<Item = DateTime<Z>> + use<'a, Z> {
        let mut cursor = after.clone();
        std::iter::from_fn(move || {
            let next = self.next_after(&cursor)?;
            cursor = next.clone();
            Some(next)
        })
    }

    /// The next `n` fire times after `after`.
    pub fn upcoming<Z: TimeZone>(&self, after: &DateTime<Z>, n: usize) -> Vec<DateTime<Z>> {
        self.times_after(after).take(n).collect()
    }

    /// Matching wall-clock times strictly after `start`, in order, merged across the parts.
    fn wall_times_after(&self, start: NaiveDateTime) -> impl Iterator<Item = NaiveDateTime> + '_ {
        let start = Utc.from_utc_datetime(&start);
        let mut heads: Vec<_> = self
            .parts
            .iter()
            .map(|p| p.after(&start).peekable())
            .collect();
        std::iter::from_fn(move || {
            let next = heads.iter_mut().filter_map(|h| h.peek().copied()).min()?;
            for head in &mut heads {
                head.next_if_eq(&next);
            }
            Some(next.naive_utc())
        })
    }

    /// The instants a wall-clock time stands for in `tz`.
    fn instants<Z: TimeZone>(&self, tz: &Z, naive: NaiveDateTime) -> Mapped<Z> {
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => Mapped::new([Some(t), None], false),
            LocalResult::Ambiguous(first, second) => {
                let second = self.interval.then_some(second);
                Mapped::new([Some(first), second], true)
            }
            LocalResult::None if self.interval => Mapped::new([None, None], false),
            LocalResult::None => Mapped::new([first_instant_after_gap(tz, naive), None], false),
        }
    }
}

/// What one wall-clock time maps to.
struct Mapped<Z: TimeZone> {
    instants: [Option<DateTime<Z>>; 2],
    ambiguous: bool,
}

impl<Z: TimeZone> Mapped<Z> {
    fn new(instants: [Option<DateTime<Z>>; 2], ambiguous: bool) -> Self {
        Self {
            instants,
            ambiguous,
        }
    }
}

fn offset_seconds<Z: TimeZone>(t: &DateTime<Z>) -> i64 {
    i64::from(t.offset().fix().local_minus_utc())
}

/// The first instant after a spring-forward gap that swallowed `naive`: the first whole minute
/// that exists (zones change offset on whole minutes).
fn first_instant_after_gap<Z: TimeZone>(tz: &Z, naive: NaiveDateTime) -> Option<DateTime<Z>> {
    let minute = naive.with_second(0)?.with_nanosecond(0)?;
    // The longest gap on record is a skipped day (Samoa, 2011).
    (1..=48 * 60).find_map(|m| {
        tz.from_local_datetime(&(minute + TimeDelta::minutes(m)))
            .earliest()
    })
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
            (
                "0 9 * * 8",
                "day of week `8` is out of range: a day of week is 0 to 7",
            ),
            ("@often", "unknown schedule macro"),
            ("0 9 * * Fri-Mon", "runs backwards"),
            (
                "61 * * * *",
                "minute `61` is out of range: a minute is 0 to 59",
            ),
            (
                "0 25 * * *",
                "hour `25` is out of range: an hour is 0 to 23",
            ),
            ("0 9 0 * *", "day of month `0` is out of range"),
            ("*/0 * * * *", "step `/0` never moves"),
            ("0 9 1-x * *", "`0 9 1-x * *` is not a valid schedule"),
        ] {
            let err = expr.parse::<Schedule>().unwrap_err();
            assert!(err.contains(needle), "{expr}: {err}");
            assert!(!err.contains("0 0 9"), "no internal rewrite: {err}");
        }
    }

    fn local(expr: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let s: Schedule = expr.parse().unwrap();
        s.upcoming(&at(from).with_timezone(&tz), n)
            .iter()
            .map(DateTime::to_rfc3339)
            .collect()
    }

    fn gaps_in_minutes(expr: &str, zone: &str, from: &str, n: usize) -> Vec<i64> {
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let s: Schedule = expr.parse().unwrap();
        let times = s.upcoming(&at(from).with_timezone(&tz), n);
        times
            .windows(2)
            .map(|w| (w[1] - w[0]).num_minutes())
            .collect()
    }

    #[test]
    fn spring_forward_gap_runs_once_at_the_first_instant_after_it() {
        // Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST.
        assert_eq!(
            local("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 3),
            [
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00",
                "2026-03-31T02:30:00+02:00"
            ]
        );
        // Several times inside the gap still run once.
        assert_eq!(
            local(
                "0,15,30,45 2 * * *",
                "Europe/Berlin",
                "2026-03-28T12:00:00Z",
                2
            ),
            ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"]
        );
        // New York 2026-03-08: 02:00 EST jumps to 03:00 EDT.
        assert_eq!(
            local("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 2),
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]
        );
        // A time right after the gap is not doubled by the gap's own fire.
        assert_eq!(
            local("30 2,3 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 3),
            [
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T03:30:00+02:00",
                "2026-03-30T02:30:00+02:00"
            ]
        );
    }

    #[test]
    fn repeated_fall_back_hour_runs_once() {
        // Berlin 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        assert_eq!(
            local("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
        );
        // Asked from inside the repeated hour, the second 02:30 is not a new fire.
        assert_eq!(
            local("30 2 * * *", "Europe/Berlin", "2026-10-25T00:45:00Z", 1),
            ["2026-10-26T02:30:00+01:00"]
        );
        // New York 2026-11-01: 02:00 EDT falls back to 01:00 EST.
        assert_eq!(
            local("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2),
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
        );
    }

    #[test]
    fn interval_schedules_follow_elapsed_time_across_both_transitions() {
        for (zone, spring, fall) in [
            (
                "Europe/Berlin",
                "2026-03-28T23:10:00Z",
                "2026-10-24T23:10:00Z",
            ),
            (
                "America/New_York",
                "2026-03-08T05:10:00Z",
                "2026-11-01T04:10:00Z",
            ),
            (
                "Australia/Sydney",
                "2026-10-03T14:10:00Z",
                "2026-04-04T14:10:00Z",
            ),
        ] {
            for from in [spring, fall] {
                assert_eq!(
                    gaps_in_minutes("*/30 * * * *", zone, from, 12),
                    [30; 11],
                    "{zone} from {from}"
                );
                assert_eq!(
                    gaps_in_minutes("@hourly", zone, from, 6),
                    [60; 5],
                    "{zone} from {from}"
                );
            }
        }
        // The repeated hour is visited twice, once per offset.
        assert_eq!(
            local("0 * * * *", "America/New_York", "2026-11-01T04:30:00Z", 3),
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T02:00:00-05:00"
            ]
        );
    }

    #[test]
    fn fixed_times_in_the_southern_hemisphere() {
        // Sydney 2026-10-04: 02:00 AEST jumps to 03:00 AEDT; 2026-04-05: 03:00 AEDT back to 02:00.
        assert_eq!(
            local("15 2 * * *", "Australia/Sydney", "2026-10-03T00:00:00Z", 2),
            ["2026-10-04T03:00:00+11:00", "2026-10-05T02:15:00+11:00"]
        );
        assert_eq!(
            local("15 2 * * *", "Australia/Sydney", "2026-04-04T00:00:00Z", 2),
            ["2026-04-05T02:15:00+11:00", "2026-04-06T02:15:00+10:00"]
        );
    }

    #[test]
    fn schedules_that_can_never_fire_are_rejected() {
        for expr in ["0 0 30 2 *", "0 0 31 4 *", "0 0 0 31 11 * 2030"] {
            let err = expr.parse::<Schedule>().unwrap_err();
            assert!(err.contains("can never fire"), "{expr}: {err}");
        }
        assert!("0 0 29 2 *".parse::<Schedule>().is_ok());
    }
}
