//! The statistics a canary analysis decides with: a one-sided
//! two-proportion test with a margin (did the canary's success rate drop
//! by more than the effect that matters?) and the Mann–Whitney U test
//! with a shift (are the canary's latencies greater than the baseline's
//! plus the effect that matters?), both by the normal approximation, as
//! Kayenta judges a canary against its baseline. Pure functions over
//! counts and samples; nothing here knows about revisions or windows.
//! Reference values in the tests are scipy's (`mannwhitneyu`,
//! `method="asymptotic"`, `use_continuity=True`; `norm.sf`).

/// A test's outcome: its statistic and the one-sided p-value of the
/// alternative it was asked about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tested {
    /// The effect observed (baseline − canary rate; canary − baseline
    /// median), before the margin.
    pub effect: f64,
    pub z: f64,
    pub p: f64,
}

/// P(Z > z) for a standard normal Z.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// Whether the canary's rate (`canary` successes of `canary_n`) is lower
/// than the baseline's by more than `margin` (a fraction: 0.005 is half a
/// point): H1: p_baseline − p_canary > margin, Wald's z with each rate's
/// own variance. `None` without a sample on either side, or when both
/// rates are 0 or 1 (no variance to test against).
pub fn rate_drop(
    baseline: u64,
    baseline_n: u64,
    canary: u64,
    canary_n: u64,
    margin: f64,
) -> Option<Tested> {
    if baseline_n == 0 || canary_n == 0 || baseline > baseline_n || canary > canary_n {
        return None;
    }
    let (pb, pc) = (
        baseline as f64 / baseline_n as f64,
        canary as f64 / canary_n as f64,
    );
    let se = (pb * (1.0 - pb) / baseline_n as f64 + pc * (1.0 - pc) / canary_n as f64).sqrt();
    if se == 0.0 {
        return None;
    }
    let effect = pb - pc;
    let z = (effect - margin) / se;
    Some(Tested {
        effect,
        z,
        p: normal_sf(z),
    })
}

/// Whether the canary's values are greater than the baseline's shifted up
/// by `shift` (H1 of the Mann–Whitney U test on canary − shift against
/// baseline): ranks with ties averaged, the variance corrected for ties,
/// a continuity correction. `effect` is the difference of the medians.
/// `None` without a sample on either side, or when every value ties.
pub fn greater_by(baseline: &[f64], canary: &[f64], shift: f64) -> Option<Tested> {
    let (n1, n2) = (canary.len(), baseline.len());
    if n1 == 0 || n2 == 0 || baseline.iter().chain(canary).any(|v| v.is_nan()) {
        return None;
    }
    // (value, from the canary) sorted; equal values share their mean rank.
    let mut all: Vec<(f64, bool)> = canary
        .iter()
        .map(|&v| (v - shift, true))
        .chain(baseline.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = all.len() as f64;
    let (mut canary_ranks, mut ties) = (0.0, 0.0);
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        canary_ranks += rank * all[i..=j].iter().filter(|(_, c)| *c).count() as f64;
        i = j + 1;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let u = canary_ranks - n1f * (n1f + 1.0) / 2.0;
    let mean = n1f * n2f / 2.0;
    let variance = n1f * n2f / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if variance <= 0.0 {
        return None;
    }
    let z = (u - mean - 0.5) / variance.sqrt();
    Some(Tested {
        effect: median(canary) - median(baseline),
        z,
        p: normal_sf(z),
    })
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 + 1e-7 * b.abs()
    }

    #[test]
    fn the_normal_tail_is_scipys() {
        assert!(close(normal_sf(-1.2345), 0.8914916766373298));
        assert!(close(normal_sf(3.0), 0.0013498980316300933));
        assert!(close(normal_sf(0.0), 0.5));
    }

    #[test]
    fn a_rate_drop_beyond_the_margin_is_significant_and_one_within_is_not() {
        let t = rate_drop(980, 1000, 930, 1000, 0.005).unwrap();
        assert!(close(t.z, 4.889571583640695), "{t:?}");
        assert!(close(t.p, 5.052783491286323e-07), "{t:?}");
        assert!(close(t.effect, 0.05));
        let t = rate_drop(990, 2000, 985, 2000, 0.005).unwrap();
        assert!(close(t.z, -0.1581267313273233), "{t:?}");
        assert!(close(t.p, 0.5628215314781195), "{t:?}");
        // Nothing to test.
        assert!(rate_drop(0, 0, 5, 10, 0.0).is_none());
        assert!(rate_drop(10, 10, 10, 10, 0.0).is_none());
        assert!(rate_drop(11, 10, 5, 10, 0.0).is_none());
    }

    #[test]
    fn mann_whitney_with_ties_and_a_shift_is_scipys() {
        let canary = [12.0, 15.5, 15.5, 20.0, 22.0, 31.0, 35.0, 40.0];
        let baseline = [10.0, 11.0, 12.0, 14.0, 15.5, 16.0, 18.0, 19.0, 21.0];
        let t = greater_by(&baseline, &canary, 0.0).unwrap();
        assert!(close(t.p, 0.03333419253844203), "{t:?}");
        assert!(close(t.effect, 21.0 - 15.5));
        let t = greater_by(&baseline, &canary, 5.0).unwrap();
        assert!(close(t.p, 0.4048898853217362), "{t:?}");
        assert!(greater_by(&[], &canary, 0.0).is_none());
        assert!(greater_by(&[1.0, 1.0], &[1.0], 0.0).is_none());
        assert!(greater_by(&[f64::NAN], &[1.0], 0.0).is_none());
    }

    #[test]
    fn a_slower_canary_is_found_and_an_equal_one_is_not() {
        // 400 logins each: the canary adds 80 ms to a 40–60 ms spread.
        let baseline: Vec<f64> = (0..400).map(|i| 40.0 + (i % 21) as f64).collect();
        let slower: Vec<f64> = baseline.iter().map(|v| v + 80.0).collect();
        assert!(greater_by(&baseline, &slower, 50.0).unwrap().p < 1e-6);
        assert!(greater_by(&baseline, &baseline, 0.0).unwrap().p > 0.4);
    }
}
