//! The run page's chart of acknowledgements over time, drawn as SVG on the server: a step line
//! of how many recipients had acknowledged, from the run's start to the last acknowledgement.
//! Only numbers and times go into it, so it needs no escaping and no script.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
/// Room for the axes' labels.
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 12.0;
const RIGHT: f64 = 12.0;

/// The chart of `times` (each acknowledgement's time) since `start`, out of `asked`
/// recipients; `None` when nobody acknowledged yet.
#[expect(
    clippy::cast_precision_loss,
    reason = "pixels: a chart needs no 53-bit precision"
)]
pub fn acknowledgements(
    start: DateTime<Utc>,
    mut times: Vec<DateTime<Utc>>,
    asked: usize,
) -> Option<String> {
    if times.is_empty() {
        return None;
    }
    times.sort_unstable();
    let last = *times.last().expect("not empty");
    let span = (last - start).num_milliseconds().max(1) as f64;
    let top = asked.max(times.len()).max(1) as f64;
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x =
        |t: DateTime<Utc>| LEFT + plot_w * ((t - start).num_milliseconds().max(0) as f64 / span);
    let y = |n: usize| TOP + plot_h * (1.0 - n as f64 / top);
    let mut points = format!("{LEFT:.1},{:.1}", y(0));
    for (i, t) in times.iter().enumerate() {
        let _ = write!(
            points,
            " {:.1},{:.1} {:.1},{:.1}",
            x(*t),
            y(i),
            x(*t),
            y(i + 1)
        );
    }
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{} of {asked} acknowledged by {}">"#,
        times.len(),
        last.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    let (x0, y0, x1, y1) = (LEFT, HEIGHT - BOTTOM, WIDTH - RIGHT, TOP);
    let _ = write!(
        svg,
        r##"<path d="M{x0},{y1} V{y0} H{x1}" fill="none" stroke="#888"/><polyline points="{points}" fill="none" stroke="#2d6cdf" stroke-width="2"/>"##
    );
    let label = |svg: &mut String, x: f64, y: f64, anchor: &str, text: &str| {
        let _ = write!(
            svg,
            r##"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" font-size="11" fill="#444">{text}</text>"##
        );
    };
    label(&mut svg, LEFT - 6.0, y(0) + 4.0, "end", "0");
    label(&mut svg, LEFT - 6.0, TOP + 8.0, "end", &format!("{top:.0}"));
    label(
        &mut svg,
        LEFT,
        HEIGHT - 6.0,
        "start",
        &start.format("%H:%M:%S").to_string(),
    );
    label(
        &mut svg,
        x1,
        HEIGHT - 6.0,
        "end",
        &last.format("%H:%M:%S").to_string(),
    );
    svg.push_str("</svg>");
    Some(svg)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn the_line_climbs_one_step_per_acknowledgement_to_the_last() {
        let start = Utc::now();
        let times = vec![
            start + TimeDelta::seconds(60),
            start + TimeDelta::seconds(30),
        ];
        let svg = acknowledgements(start, times, 4).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("2 of 4 acknowledged"));
        let points = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        // From zero: two steps up, the last at the right edge, halfway up (2 of 4).
        assert_eq!(points.split(' ').count(), 5);
        assert!(points.ends_with(&format!(
            "{:.1},{:.1}",
            WIDTH - RIGHT,
            TOP + (HEIGHT - TOP - BOTTOM) / 2.0
        )));
        assert_eq!(acknowledgements(start, vec![], 4), None);
    }
}
