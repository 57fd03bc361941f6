//! The console's plots, drawn server-side as SVG: the last hour of the
//! monitor's trend, one chart per figure, with the rules' thresholds on
//! that figure as dashed lines. No script draws them; the page only
//! swaps in fresh ones.

use super::esc;
use crate::monitor::rules::{Metric, Rule};
use crate::monitor::trend::{Point, SERIES};
use std::fmt::Write;

const W: f64 = 560.0;
const H: f64 = 150.0;
/// Left margin (axis labels), top and bottom.
const LEFT: f64 = 48.0;
const PAD: f64 = 12.0;
const COLOURS: [&str; 3] = ["#1f6feb", "#8250df", "#bf3989"];

/// A chart: a title, the series it draws (by their name in the trend)
/// and whether its values are fractions shown as percent.
pub struct Chart {
    pub id: &'static str,
    pub title: &'static str,
    pub series: &'static [&'static str],
    pub ratio: bool,
}

pub const CHARTS: [Chart; 5] = [
    Chart {
        id: "success",
        title: "Login success rate",
        series: &["success_rate"],
        ratio: true,
    },
    Chart {
        id: "errors",
        title: "Error rate",
        series: &["error_rate"],
        ratio: true,
    },
    Chart {
        id: "latency",
        title: "Latency p50 / p95 / p99 (ms)",
        series: &["latency_p50_ms", "latency_p95_ms", "latency_p99_ms"],
        ratio: false,
    },
    Chart {
        id: "events",
        title: "Events per second",
        series: &["events_per_second"],
        ratio: false,
    },
    Chart {
        id: "denials",
        title: "Permission denials (share of decisions)",
        series: &["permission_denial_rate"],
        ratio: true,
    },
];

fn index_of(series: &str) -> usize {
    SERIES
        .iter()
        .position(|s| s.name == series)
        .expect("a trend series")
}

/// The metric name a rule on this series uses.
fn metric_of(series: &str) -> &'static str {
    let metric = SERIES[index_of(series)].metric;
    metric.name()
}

/// Every chart as SVG over `points` ending at second `now`.
pub fn charts(points: &[Point], rules: &[Rule], now: u64) -> String {
    let mut out = String::new();
    for chart in &CHARTS {
        out.push_str(&svg(chart, points, rules, now));
    }
    out
}

fn svg(chart: &Chart, points: &[Point], rules: &[Rule], now: u64) -> String {
    let from = now.saturating_sub(3600);
    let columns: Vec<usize> = chart.series.iter().map(|s| index_of(s)).collect();
    let thresholds: Vec<(String, f64)> = rules
        .iter()
        // A rule on `events` counts over its window, not per second.
        .filter(|r| r.metric != Metric::Events)
        .filter(|r| chart.series.iter().any(|s| metric_of(s) == r.metric.name()))
        .map(|r| {
            (
                format!("{} {} {}", r.name, r.op.symbol(), r.threshold),
                r.threshold,
            )
        })
        .collect();
    let lines: Vec<Line> = chart
        .series
        .iter()
        .zip(&columns)
        .enumerate()
        .map(|(n, (name, &column))| Line {
            name: (*name).to_string(),
            colour: COLOURS[n % 3],
            points: points
                .iter()
                .filter(|p| p.t >= from)
                .map(|p| (p.t, p.values[column]))
                .collect(),
        })
        .collect();
    draw(&Frame {
        id: chart.id,
        title: chart.title,
        ratio: chart.ratio,
        from,
        span: 3600,
        first_label: "−60 min",
        lines: &lines,
        thresholds: &thresholds,
    })
}

/// One line of a chart: its points (a `None` breaks it).
pub struct Line {
    pub name: String,
    pub colour: &'static str,
    pub points: Vec<(u64, Option<f64>)>,
}

/// What `draw` draws: lines over `span` seconds from `from`, dashed
/// thresholds, a legend when there is more than one line.
pub struct Frame<'a> {
    pub id: &'a str,
    pub title: &'a str,
    /// Values are fractions, shown as percent on a 0–100 % axis.
    pub ratio: bool,
    pub from: u64,
    pub span: u64,
    /// The left end's label (the right one is "now").
    pub first_label: &'a str,
    pub lines: &'a [Line],
    pub thresholds: &'a [(String, f64)],
}

/// A chart as SVG in a figure.
pub fn draw(f: &Frame) -> String {
    let with_data = {
        let mut times: Vec<u64> = f
            .lines
            .iter()
            .flat_map(|l| {
                l.points
                    .iter()
                    .filter(|(_, v)| v.is_some())
                    .map(|(t, _)| *t)
            })
            .collect();
        times.sort_unstable();
        times.dedup();
        times.len()
    };
    let top = if f.ratio {
        1.0
    } else {
        f.lines
            .iter()
            .flat_map(|l| l.points.iter().filter_map(|(_, v)| *v))
            .chain(f.thresholds.iter().map(|(_, t)| *t))
            .fold(0.0f64, f64::max)
            .max(1.0)
            * 1.1
    };
    let span = f.span.max(1) as f64;
    let x = |t: u64| LEFT + (t.saturating_sub(f.from) as f64 / span) * (W - LEFT - PAD);
    let y = |v: f64| PAD + (1.0 - (v / top).clamp(0.0, 1.0)) * (H - 2.0 * PAD);
    let label = |v: f64| {
        if f.ratio {
            format!("{:.0}%", v * 100.0)
        } else if v >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "<figure class=\"plot\" id=\"plot-{id}\"><figcaption>{title}</figcaption>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" \
         role=\"img\" aria-label=\"{title}\" data-points=\"{with_data}\">\
         <rect x=\"{LEFT}\" y=\"{PAD}\" width=\"{}\" height=\"{}\" fill=\"#fafafa\" stroke=\"#ddd\"/>",
        W - LEFT - PAD,
        H - 2.0 * PAD,
        id = esc(f.id),
        title = esc(f.title),
    );
    for v in [0.0, top / 2.0, top] {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#555\">{}</text>",
            LEFT - 4.0,
            y(v) + 3.0,
            label(v)
        );
    }
    let _ = write!(
        s,
        "<text x=\"{LEFT}\" y=\"{H}\" font-size=\"10\" fill=\"#555\">{}</text>\
         <text x=\"{}\" y=\"{H}\" font-size=\"10\" text-anchor=\"end\" fill=\"#555\">now</text>",
        esc(f.first_label),
        W - PAD
    );
    for (what, threshold) in f.thresholds {
        let _ = write!(
            s,
            "<line class=\"threshold\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" \
             stroke=\"#cf222e\" stroke-dasharray=\"4 3\"><title>{}</title></line>",
            W - PAD,
            esc(what),
            y = y(*threshold),
        );
    }
    for line in f.lines {
        // A gap in the data breaks the line.
        let mut run: Vec<String> = Vec::new();
        let flush = |run: &mut Vec<String>, s: &mut String| {
            if run.len() == 1 {
                let _ = write!(
                    s,
                    "<circle cx=\"{}\" r=\"1.5\" fill=\"{}\"/>",
                    run[0].replace(',', "\" cy=\""),
                    line.colour
                );
            } else if run.len() > 1 {
                let _ = write!(
                    s,
                    "<polyline class=\"series\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"><title>{}</title></polyline>",
                    line.colour,
                    run.join(" "),
                    esc(&line.name)
                );
            }
            run.clear();
        };
        for (t, v) in &line.points {
            match v {
                Some(v) => run.push(format!("{:.1},{:.1}", x(*t), y(*v))),
                None => flush(&mut run, &mut s),
            }
        }
        flush(&mut run, &mut s);
    }
    s.push_str("</svg>");
    if f.lines.len() > 1 {
        s.push_str("<div class=\"legend\">");
        for line in f.lines {
            let _ = write!(
                s,
                "<span style=\"color:{}\">■ {}</span> ",
                line.colour,
                esc(&line.name)
            );
        }
        s.push_str("</div>");
    }
    s.push_str("</figure>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_draws_its_points_with_gaps_and_says_how_many() {
        let point = |t: u64, v: Option<f64>| Point {
            t,
            values: [v, None, None, None, None, Some(1.0), None],
        };
        let points = [
            point(1000, Some(0.9)),
            point(1010, Some(0.8)),
            point(1020, None),
            point(1030, Some(0.4)),
        ];
        let out = svg(&CHARTS[0], &points, &[], 1030);
        assert!(out.contains("data-points=\"3\""), "{out}");
        assert_eq!(out.matches("<polyline").count(), 1, "{out}");
        assert_eq!(out.matches("<circle").count(), 1, "{out}");
        assert!(out.contains("Login success rate"));
    }
}
