//! A canary step's analysis: each metric of the template judged on the
//! new revision (the canary) against the revision serving the rest (the
//! baseline), from the seconds monitors and front doors published for
//! each revision since the step started — so any process, after any
//! restart, judges the same window.
//!
//! Rates are compared with Farrington–Manning's score test (does the
//! canary's rate fall short of the baseline's by more than the margin?),
//! latencies with Mann–Whitney U on the two histograms (is the canary
//! slower than the baseline plus the margin?). A step looks at the
//! figures many times; each look tests at the template's level divided
//! by the step's planned looks and the template's comparisons
//! (Bonferroni), so an A/A step aborts at most that often over its whole
//! life, not at every look.

use crate::config::analysis::{AnalysisConfig, MetricCheck, MetricName};
use crate::frontdoor::HttpSecond;
use crate::monitor::Kind;
use crate::monitor::cluster::SecondDoc;
use crate::monitor::window::{Totals, bucket_value};
use crate::stats;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// What one revision did over a window: its auth events and its answers.
#[derive(Debug, Clone)]
pub struct Figures {
    pub auth: Totals,
    pub http: HttpSecond,
}

impl Default for Figures {
    fn default() -> Self {
        Figures {
            auth: Totals::empty(0),
            http: HttpSecond::default(),
        }
    }
}

impl Figures {
    /// `revision`'s published seconds in `[from, to]`, every node's.
    pub async fn read(
        store: &Store,
        revision: &str,
        from: i64,
        to: i64,
    ) -> Result<Figures, StoreError> {
        let mut figures = Figures::default();
        for (_, second) in Figures::read_by(store, revision, from, to, to - from + 1).await? {
            figures.add(&second);
        }
        Ok(figures)
    }

    /// `revision`'s published seconds in `[from, to]` summed into slices
    /// of `slice` seconds: (the slice's first second, its figures).
    pub async fn read_by(
        store: &Store,
        revision: &str,
        from: i64,
        to: i64,
        slice: i64,
    ) -> Result<Vec<(i64, Figures)>, StoreError> {
        let rows = store
            .read(async |tx| tx.revision_seconds(revision, from, to).await)
            .await?;
        let slice = slice.max(1);
        let mut slices: std::collections::BTreeMap<i64, Figures> = Default::default();
        for (source, second, data) in rows {
            let figures = slices
                .entry(from + (second - from) / slice * slice)
                .or_default();
            match source.as_str() {
                "auth" => {
                    if let Ok(doc) = serde_json::from_str::<SecondDoc>(&data) {
                        figures.auth.add(&doc.totals());
                    }
                }
                "http" => {
                    if let Ok(doc) = serde_json::from_str::<HttpSecond>(&data) {
                        figures.http.add(&doc);
                    }
                }
                _ => {}
            }
        }
        Ok(slices.into_iter().collect())
    }

    pub fn add(&mut self, other: &Figures) {
        self.auth.add(&other.auth);
        self.http.add(&other.http);
    }

    /// A metric's value: a rate as the metric reads (success, or
    /// failure), or a latency's p99 in ms; `None` without samples.
    pub fn value(&self, metric: MetricName) -> Option<f64> {
        if metric.is_latency() {
            return p99(&self.latencies(metric));
        }
        let (good, n) = self.rate(metric);
        (n > 0).then(|| {
            let rate = good as f64 / n as f64;
            if metric.higher_is_better() {
                rate
            } else {
                1.0 - rate
            }
        })
    }

    /// (good, of) for a rate metric: good is what counts in the
    /// revision's favour (a success; anything but a failure).
    fn rate(&self, metric: MetricName) -> (u64, u64) {
        let t = &self.auth;
        let all = t.events();
        match metric {
            MetricName::LoginSuccessRate => {
                let k = Kind::AuthAttempt as usize;
                (t.ok[k], t.total[k])
            }
            MetricName::TokenRefreshFailureRate => {
                let k = Kind::TokenRefresh as usize;
                (t.ok[k], t.total[k])
            }
            MetricName::PermissionDenialRate => {
                (all - t.total[Kind::PermissionDenial as usize], all)
            }
            MetricName::ServiceErrorRate => (all - t.total[Kind::ServiceError as usize], all),
            MetricName::Http5xxRate => {
                let n = self.http.requests();
                (n - self.http.s[4], n)
            }
            MetricName::HttpLatencyMs | MetricName::AuthLatencyMs => (0, 0),
        }
    }

    /// The latency histogram of a latency metric: (ms, count).
    fn latencies(&self, metric: MetricName) -> Vec<(f64, u64)> {
        let ms = |bucket: usize| bucket_value(bucket) / 1000.0;
        match metric {
            MetricName::HttpLatencyMs => self.http.l.iter().map(|(b, c)| (ms(*b), *c)).collect(),
            MetricName::AuthLatencyMs => self
                .auth
                .latency
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(b, c)| (ms(b), *c))
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Too few samples yet.
    Inconclusive,
    /// Not required, and the traffic does not exercise it.
    Skipped,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Skipped => "skipped",
        }
    }
}

/// One line of the analysis table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub metric: String,
    /// The baseline's value (a rate, or p99 in ms).
    pub baseline: Option<f64>,
    pub canary: Option<f64>,
    pub baseline_n: u64,
    pub canary_n: u64,
    /// The comparison's one-sided p-value, when one was made.
    pub p: Option<f64>,
    /// The level this look tested at.
    pub alpha: Option<f64>,
    pub verdict: Verdict,
    pub why: String,
}

impl MetricRow {
    /// A figure as the tables show it: `99.50% (n=1200)`, `41.3 ms (n=90)`.
    pub fn shown(&self, value: Option<f64>, n: u64) -> String {
        match value {
            None => format!("- (n={n})"),
            Some(v) if self.metric.ends_with("_ms") => format!("{v:.1} ms (n={n})"),
            Some(v) => format!("{:.2}% (n={n})", v * 100.0),
        }
    }
}

/// Judges `canary` against `baseline`; the level is divided by the
/// comparisons and by `looks` (the step's planned looks, or more for a
/// held step: `steps::divisor`).
pub fn judge(
    config: &AnalysisConfig,
    baseline: &Figures,
    canary: &Figures,
    looks: u64,
) -> (Verdict, Vec<MetricRow>) {
    let comparisons = config
        .metrics
        .iter()
        .filter(|m| m.margin.is_some())
        .count()
        .max(1) as f64;
    let rows: Vec<MetricRow> = config
        .metrics
        .iter()
        .map(|m| {
            let alpha = m.significance / (comparisons * looks.max(1) as f64);
            if m.metric.is_latency() {
                latency_row(m, baseline, canary, alpha)
            } else {
                rate_row(m, baseline, canary, alpha)
            }
        })
        .collect();
    let verdict = if rows.iter().any(|r| r.verdict == Verdict::Fail) {
        Verdict::Fail
    } else if rows.iter().any(|r| r.verdict == Verdict::Inconclusive) {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    };
    (verdict, rows)
}

/// A metric's row with both figures (value, samples): passing so far,
/// to be judged — or concluded already (inconclusive, skipped) when there
/// are too few samples.
fn started(
    m: &MetricCheck,
    (baseline, baseline_n): (Option<f64>, u64),
    (canary, canary_n): (Option<f64>, u64),
    alpha: f64,
) -> MetricRow {
    let mut row = MetricRow {
        metric: m.metric.as_str().into(),
        baseline,
        canary,
        baseline_n,
        canary_n,
        p: None,
        alpha: m.margin.map(|_| alpha),
        verdict: Verdict::Pass,
        why: String::new(),
    };
    if let Some((verdict, why)) = too_few(m, baseline_n, canary_n) {
        row.verdict = verdict;
        row.why = why;
    }
    row
}

/// Too few samples: inconclusive when required, else skipped.
fn too_few(m: &MetricCheck, baseline_n: u64, canary_n: u64) -> Option<(Verdict, String)> {
    let short = canary_n < m.min_samples || (m.margin.is_some() && baseline_n < m.min_samples);
    short.then(|| {
        (
            if m.required {
                Verdict::Inconclusive
            } else {
                Verdict::Skipped
            },
            format!(
                "too few samples (baseline {baseline_n}, canary {canary_n}; {} each needed)",
                m.min_samples
            ),
        )
    })
}

fn rate_row(m: &MetricCheck, baseline: &Figures, canary: &Figures, alpha: f64) -> MetricRow {
    let (bg, bn) = baseline.rate(m.metric);
    let (cg, cn) = canary.rate(m.metric);
    let mut row = started(
        m,
        (baseline.value(m.metric), bn),
        (canary.value(m.metric), cn),
        alpha,
    );
    if row.verdict != Verdict::Pass {
        return row;
    }
    let mut reasons = Vec::new();
    if let Some(margin) = m.margin {
        // Both as successes: a failure rate rising is the success rate
        // dropping by as much.
        if let Some(tested) = stats::rate_drop(bg, bn, cg, cn, margin) {
            row.p = Some(tested.p);
            if tested.p < alpha {
                reasons.push(format!(
                    "worse than the baseline by {:.2} points (margin {:.2}, p = {:.2e} < {:.1e})",
                    tested.effect * 100.0,
                    margin * 100.0,
                    tested.p,
                    alpha
                ));
            }
        }
    }
    if let (Some(bound), Some(value)) = (m.bound, row.canary) {
        let broken = if m.metric.higher_is_better() {
            value < bound
        } else {
            value > bound
        };
        if broken {
            reasons.push(format!(
                "{:.2}% is past the bound {:.2}%",
                value * 100.0,
                bound * 100.0
            ));
        }
    }
    conclude(row, reasons)
}

fn latency_row(m: &MetricCheck, baseline: &Figures, canary: &Figures, alpha: f64) -> MetricRow {
    let b = baseline.latencies(m.metric);
    let c = canary.latencies(m.metric);
    let (bn, cn) = (count(&b), count(&c));
    let mut row = started(m, (p99(&b), bn), (p99(&c), cn), alpha);
    if row.verdict != Verdict::Pass {
        return row;
    }
    let mut reasons = Vec::new();
    if let Some(margin) = m.margin
        && let Some(tested) = stats::greater_by_counts(&b, &c, margin)
    {
        row.p = Some(tested.p);
        if tested.p < alpha {
            reasons.push(format!(
                "slower than the baseline by {:.1} ms at the median (margin {margin} ms, p = {:.2e} < {:.1e})",
                tested.effect, tested.p, alpha
            ));
        }
    }
    if let (Some(bound), Some(value)) = (m.bound, row.canary)
        && value > bound
    {
        reasons.push(format!("p99 {value:.1} ms is past the bound {bound} ms"));
    }
    conclude(row, reasons)
}

fn conclude(mut row: MetricRow, reasons: Vec<String>) -> MetricRow {
    if reasons.is_empty() {
        row.verdict = Verdict::Pass;
        row.why = "within the margin".into();
    } else {
        row.verdict = Verdict::Fail;
        row.why = reasons.join("; ");
    }
    row
}

fn count(values: &[(f64, u64)]) -> u64 {
    values.iter().map(|(_, c)| c).sum()
}

/// The 99th percentile of a (value, count) histogram sorted by value.
fn p99(values: &[(f64, u64)]) -> Option<f64> {
    let n = count(values);
    if n == 0 {
        return None;
    }
    let rank = ((n as f64) * 0.99).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (value, c) in values {
        seen += c;
        if seen >= rank {
            return Some(*value);
        }
    }
    values.last().map(|(v, _)| *v)
}

/// The rows that decided, in one line, for a reason and an alert: the
/// failing ones, or else the inconclusive ones.
pub fn summary(rows: &[MetricRow]) -> String {
    let failing = rows.iter().any(|r| r.verdict == Verdict::Fail);
    let wanted = if failing {
        Verdict::Fail
    } else {
        Verdict::Inconclusive
    };
    rows.iter()
        .filter(|r| r.verdict == wanted)
        .map(|r| format!("{}: {}", r.metric, r.why))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::analysis::auth_default;
    use std::time::Duration;

    /// `logins` login attempts with `failed` failures, and as many answers
    /// through the front door (the failures as 500s) taking `ms`.
    fn figures(logins: u64, failed: u64, ms: u64) -> Figures {
        let mut f = Figures::default();
        let k = Kind::AuthAttempt as usize;
        f.auth.total[k] = logins;
        f.auth.ok[k] = logins - failed;
        for i in 0..logins {
            let status = if i < failed { 500 } else { 200 };
            // A spread of ±10 ms around `ms`.
            f.http
                .record(status, Some(Duration::from_millis(ms - 10 + (i % 21))));
        }
        f
    }

    #[test]
    fn a_canary_failing_five_percent_of_logins_fails_and_an_equal_one_passes() {
        let baseline = figures(1900, 0, 40);
        let (verdict, rows) = judge(&auth_default(), &baseline, &figures(100, 5, 40), 30);
        assert_eq!(verdict, Verdict::Fail, "{rows:#?}");
        let login = &rows[0];
        assert_eq!(login.verdict, Verdict::Fail);
        assert!(login.p.unwrap() < login.alpha.unwrap());
        assert_eq!(rows[1].verdict, Verdict::Skipped, "no refreshes: left out");
        assert_eq!(rows[3].verdict, Verdict::Fail, "5xx share");
        let (verdict, rows) = judge(&auth_default(), &baseline, &figures(100, 0, 40), 30);
        assert_eq!(verdict, Verdict::Pass, "{rows:#?}");
    }

    #[test]
    fn a_canary_80_ms_slower_fails_on_latency_alone() {
        let (verdict, rows) = judge(
            &auth_default(),
            &figures(1900, 0, 40),
            &figures(200, 0, 120),
            30,
        );
        assert_eq!(verdict, Verdict::Fail);
        assert_eq!(rows[2].verdict, Verdict::Fail, "{rows:#?}");
        assert_eq!(rows[0].verdict, Verdict::Pass);
        assert!(rows[2].canary.unwrap() > 100.0);
    }

    #[test]
    fn too_few_samples_is_inconclusive() {
        let (verdict, rows) = judge(
            &auth_default(),
            &figures(1900, 0, 40),
            &figures(20, 1, 40),
            30,
        );
        assert_eq!(verdict, Verdict::Inconclusive, "{rows:#?}");
        assert!(summary(&rows).contains("too few samples"));
    }
}
