//! The console's canary panel, for each service whose last rollout ran
//! in steps: each step (weight, state, verdict), the analysis table of the
//! newest step judged (baseline against canary, p-value, verdict), and the
//! two revisions plotted side by side over the rollout — login success,
//! 5xx share and p99 through the front door, in ten-second slices, from
//! the per-revision seconds the analysis itself reads.

use super::esc;
use super::plot::{Frame, Line, draw};
use crate::clock::now_ms;
use crate::config::analysis::MetricName;
use crate::rollout::analysis::Figures;
use crate::rollout::steps::Progress;
use crate::rollout::{ServiceStatus, short_id};
use crate::store::Store;
use std::fmt::Write;

/// Seconds one plotted point covers.
const SLICE: i64 = 10;
/// The longest stretch plotted: the last hour of the rollout.
const SPAN: i64 = 3600;

const CHARTS: [(&str, &str, MetricName, bool); 3] = [
    (
        "login",
        "Login success rate",
        MetricName::LoginSuccessRate,
        true,
    ),
    ("5xx", "5xx share", MetricName::Http5xxRate, true),
    (
        "p99",
        "p99 through the front door (ms)",
        MetricName::HttpLatencyMs,
        false,
    ),
];

/// Every service's canary panel (empty when none ran in steps).
pub async fn panels(store: &Store, services: &[ServiceStatus]) -> String {
    let mut out = String::new();
    for svc in services {
        let (Some(progress), Some(last)) = (&svc.steps, &svc.last_rollout) else {
            continue;
        };
        out.push_str(&panel(store, svc, progress, last.started_ms, last.finished_ms).await);
    }
    if !out.is_empty() {
        out.insert_str(0, "<h2>Canary</h2>");
    }
    out
}

async fn panel(
    store: &Store,
    svc: &ServiceStatus,
    p: &Progress,
    started_ms: i64,
    finished_ms: Option<i64>,
) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<div class=\"canary\" id=\"canary-{service}\"><p><b>{service}</b>: canary {canary} against baseline {baseline}{paused} — {outcome}{split}</p>",
        service = esc(&svc.service),
        canary = esc(short_id(&p.canary)),
        baseline = esc(short_id(&p.baseline)),
        paused = if p.paused { " (paused)" } else { "" },
        outcome = esc(p.outcome.as_deref().unwrap_or("under way")),
        split = if svc.weights.is_empty() {
            String::new()
        } else {
            format!(
                "; requests now {}",
                esc(&svc
                    .weights
                    .iter()
                    .map(|(r, w)| format!("{} {w}%", short_id(r)))
                    .collect::<Vec<_>>()
                    .join(", "))
            )
        },
    );
    out.push_str(
        "<table class=\"steps\"><tr><th>step</th><th>weight</th><th>pause</th><th>analysis</th>\
         <th>state</th><th>verdict</th><th>note</th></tr>",
    );
    for (i, step) in p.steps.iter().enumerate() {
        let state = p.step_state(i);
        let verdict = step.verdict.map(|v| v.as_str()).unwrap_or("-");
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}%</td><td>{:.0} s</td><td>{}</td><td>{state}</td>\
             <td class=\"{}\">{verdict}</td><td>{}</td></tr>",
            i + 1,
            step.weight,
            step.pause_seconds,
            esc(step.analysis.as_deref().unwrap_or("-")),
            match verdict {
                "pass" => "ok",
                "fail" => "bad",
                _ => "muted",
            },
            esc(step.note.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</table>");
    if let Some((i, step)) = p
        .steps
        .iter()
        .enumerate()
        .rev()
        .find(|(_, s)| !s.table.is_empty())
    {
        let _ = write!(
            out,
            "<table class=\"analysis\"><caption>analysis of step {} ({} looks)</caption>\
             <tr><th>metric</th><th>baseline</th><th>canary</th><th>p</th><th>level</th>\
             <th>verdict</th><th>why</th></tr>",
            i + 1,
            step.looks
        );
        for r in &step.table {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                esc(&r.metric),
                esc(&r.shown(r.baseline, r.baseline_n)),
                esc(&r.shown(r.canary, r.canary_n)),
                r.p.map(|p| format!("{p:.2e}"))
                    .unwrap_or_else(|| "-".into()),
                r.alpha
                    .map(|a| format!("{a:.1e}"))
                    .unwrap_or_else(|| "-".into()),
                match r.verdict.as_str() {
                    "pass" => "ok",
                    "fail" => "bad",
                    _ => "muted",
                },
                r.verdict.as_str(),
                esc(&r.why),
            );
        }
        out.push_str("</table>");
    }
    // Both revisions over the rollout, side by side.
    let to = finished_ms.unwrap_or_else(now_ms) / 1000;
    let from = (started_ms / 1000).max(to - SPAN);
    let read = |revision: String| async move {
        Figures::read_by(store, &revision, from, to, SLICE)
            .await
            .unwrap_or_default()
    };
    let baseline = read(p.baseline.clone()).await;
    let canary = read(p.canary.clone()).await;
    out.push_str("<div class=\"plots\">");
    for (id, title, metric, ratio) in CHARTS {
        let line = |name: String, colour, slices: &[(i64, Figures)]| Line {
            name,
            colour,
            points: slices
                .iter()
                .map(|(t, f)| (*t as u64, f.value(metric)))
                .collect(),
        };
        let lines = [
            line(
                format!("baseline {}", short_id(&p.baseline)),
                "#1f6feb",
                &baseline,
            ),
            line(
                format!("canary {}", short_id(&p.canary)),
                "#bf3989",
                &canary,
            ),
        ];
        out.push_str(&draw(&Frame {
            id: &format!("canary-{}-{id}", svc.service),
            title,
            ratio,
            from: from as u64,
            span: (to - from).max(SLICE) as u64,
            first_label: "rollout start",
            lines: &lines,
            thresholds: &[],
        }));
    }
    out.push_str("</div></div>");
    out
}
