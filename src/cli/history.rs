//! `history [JOB] [--json] [--limit N | --all] [--since WHEN] [--totals] [--run ID]`: past
//! runs (the newest 20 unless told otherwise), a job's totals, and one run's per-recipient
//! outcomes. A listing is read and printed a page at a time, so `--all` streams.

use anyhow::bail;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::state::State;
use super::{Context, Outcome};
use crate::report;
use crate::state::{RunFilter, RunId, RunRecord, Totals};

/// How many runs `history` shows unless told otherwise.
const DEFAULT_LIMIT: usize = 20;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Only this job's runs.
    job: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// One run, with every recipient's outcome.
    #[arg(long, value_name = "ID", conflicts_with_all = ["limit", "all", "since", "totals"])]
    run: Option<RunId>,
    /// Only the newest N runs [default: 20].
    #[arg(long, value_name = "N", conflicts_with = "all")]
    limit: Option<usize>,
    /// Every run kept (each job keeps its newest `keep_runs`).
    #[arg(long)]
    all: bool,
    /// Only runs started at or after WHEN: `2026-12-01`, `2026-12-01 08:00` or RFC 3339 (UTC
    /// unless it says otherwise), or a time ago (`24h`, `7d`).
    #[arg(long, value_name = "WHEN", value_parser = since)]
    since: Option<DateTime<Utc>>,
    /// Each job's totals (every run it made, older ones folded in) instead of its runs.
    #[arg(long, conflicts_with_all = ["limit", "all", "since"])]
    totals: bool,
}

pub(super) async fn run(ctx: &Context, args: &Args) -> anyhow::Result<Outcome> {
    let state = ctx.read_state().await?;
    if let Some(id) = args.run {
        return one_run(&state, id, args.json).await;
    }
    // Totals are shown for one job, or with --totals; a plain listing needs none.
    let totals = if args.job.is_some() || args.totals {
        state.totals(args.job.clone()).await?
    } else {
        Vec::new()
    };
    // A job with no runs and no file is a typo, not an empty history.
    if let Some(job) = &args.job
        && totals.is_empty()
        && let Some(missing) = ctx.no_such_job(job)
    {
        return Err(missing.into());
    }
    if args.totals {
        print_totals(&totals, args.json)?;
        return Ok(Outcome::Done);
    }
    let filter = RunFilter {
        job: args.job.clone(),
        since: args.since,
    };
    let limit = (!args.all).then(|| args.limit.unwrap_or(DEFAULT_LIMIT));
    let mut listing = Listing::new(args.json);
    let more = stream_runs(&state, filter, limit, &mut listing).await?;
    listing.end();
    if !args.json {
        let job_totals = totals.first().filter(|_| args.job.is_some());
        if let Some((job, t)) = job_totals {
            out!("{}", report::totals_text(job, t));
        }
        if more {
            outln!("older runs are not shown: --limit N shows the newest N, --all every one");
        }
    }
    Ok(Outcome::Done)
}

/// Prints the newest `limit` runs `filter` shows (all: `None`), oldest first, a page at a
/// time; whether older ones were left out.
async fn stream_runs(
    state: &State,
    filter: RunFilter,
    limit: Option<usize>,
    listing: &mut Listing,
) -> anyhow::Result<bool> {
    let start = state.view_start(filter.clone(), limit).await?;
    let Some(mut from) = start.from else {
        return Ok(false);
    };
    let mut left = limit.unwrap_or(usize::MAX);
    while left > 0 && !crate::output::stdout_closed() {
        let mut page = state.run_page(filter.clone(), from).await?;
        page.truncate(left);
        let Some(last) = page.last() else { break };
        from = RunId(last.id.0 + 1);
        left -= page.len();
        listing.page(&page)?;
    }
    Ok(start.more)
}

/// A listing being printed: text rows under a header, or one JSON array.
struct Listing {
    json: bool,
    printed: usize,
}

impl Listing {
    fn new(json: bool) -> Self {
        Self { json, printed: 0 }
    }

    fn page(&mut self, runs: &[RunRecord]) -> anyhow::Result<()> {
        let mut text = String::new();
        for run in runs {
            if self.json {
                text.push_str(if self.printed == 0 { "[\n" } else { ",\n" });
                // Each element as `to_string_pretty` indents it inside an array.
                let pretty = serde_json::to_string_pretty(&report::run_json(run))?;
                for (i, line) in pretty.lines().enumerate() {
                    text.push_str(if i == 0 { "  " } else { "\n  " });
                    text.push_str(line);
                }
            } else {
                if self.printed == 0 {
                    text.push_str(&report::runs_header());
                }
                text.push_str(&report::run_line(run));
            }
            self.printed += 1;
        }
        out!("{text}");
        Ok(())
    }

    fn end(self) {
        match (self.json, self.printed) {
            (true, 0) => outln!("[]"),
            (true, _) => outln!("\n]"),
            (false, 0) => outln!("no runs yet"),
            (false, _) => {}
        }
    }
}

fn print_totals(totals: &[(String, Totals)], json: bool) -> anyhow::Result<()> {
    if json {
        let values: Vec<_> = totals
            .iter()
            .map(|(job, t)| report::totals_json(job, t))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&values)?);
    } else if totals.is_empty() {
        outln!("no runs yet");
    } else {
        for (job, t) in totals {
            out!("{}", report::totals_text(job, t));
        }
    }
    Ok(())
}

/// `history --run ID`.
async fn one_run(state: &State, id: RunId, json: bool) -> anyhow::Result<Outcome> {
    let Some((record, deliveries)) = state.run(id).await? else {
        bail!(
            "there is no run {id}: it never started, or it was older than its job's newest \
             `keep_runs` runs and was folded into the job's totals (`zoomcast history JOB \
             --totals`); `zoomcast history` lists the runs kept"
        );
    };
    if json {
        let mut value = report::run_json(&record);
        let button = record.acknowledge.as_deref();
        value["deliveries"] = deliveries
            .iter()
            .map(|d| report::delivery_json_acknowledged(d, button))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(Outcome::Done);
    }
    out!("{}", report::runs_text(std::slice::from_ref(&record)));
    if let Some(why) = report::why_stopped(&record) {
        outln!("  {why}");
    }
    if record.details_pruned {
        outln!(
            "  (per-recipient outcomes deleted: job `{}` keeps them for its newest runs only; \
             raise [delivery] keep_details in its job file to keep more)",
            record.job
        );
    }
    out!("{}", report::deliveries_text(&deliveries));
    if let Some(button) = &record.acknowledge {
        out!("{}", report::acknowledgements_text(&deliveries, button));
    }
    Ok(Outcome::Done)
}

/// `--since`: a date, a date and time, RFC 3339, or a time ago.
fn since(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(at.and_utc());
        }
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    let ago = humantime::parse_duration(text).map_err(|_| {
        format!(
            "`{}` is neither a time nor a time ago; write a date (2026-12-01), a date and time \
             (2026-12-01 08:00, UTC), RFC 3339 (2026-12-01T08:00:00+01:00) or a time ago (24h, \
             7d)",
            crate::output::clean(text, 60)
        )
    })?;
    chrono::TimeDelta::from_std(ago)
        .ok()
        .and_then(|ago| Utc::now().checked_sub_signed(ago))
        .ok_or_else(|| format!("`{text}` ago is before any date zoomcast knows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_dates_times_and_times_ago() {
        let day = since("2026-12-01").unwrap();
        assert_eq!(day.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        let at = since("2026-12-01 08:30").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-12-01T08:30:00+00:00");
        let offset = since("2026-12-01T08:30:00+01:00").unwrap();
        assert_eq!(offset.to_rfc3339(), "2026-12-01T07:30:00+00:00");
        let ago = Utc::now() - since("7d").unwrap();
        assert!((ago.num_hours() - 7 * 24).abs() <= 1, "{ago}");
        let wrong = since("last tuesday").unwrap_err();
        assert!(
            wrong.contains("2026-12-01") && wrong.contains("24h"),
            "{wrong}"
        );
        assert!(since("600000000y").is_err());
    }
}
