//! The statistics a canary analysis decides with: a one-sided
//! two-proportion test with a margin (did the canary's success rate drop
//! by more than the effect that matters?) and the Mann–Whitney U test
//! with a shift (are the canary's latencies greater than the baseline's
//! plus the effect that matters?), both by the normal approximation, as
//! Kayenta judges a canary against its baseline. The rate test is
//! Farrington & Manning's score test (Farrington & Manning 1990), not
//! Wald's z: it takes the variance at the rates restricted to the null
//! hypothesis instead of at the observed ones, and the observed ones are
//! where Wald's variance is unstable, near a rate of 1 (an observed 1 has
//! none at all), which is where login success rates live. The U test
//! takes samples or a histogram's (value, count) pairs. Pure functions
//! over counts and samples; nothing here knows about revisions or
//! windows. Reference values in the tests are scipy's (`mannwhitneyu`,
//! `method="asymptotic"`, `use_continuity=True`; `norm.sf`; the
//! restricted rates by maximising their likelihood numerically).

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
/// point), by Farrington & Manning's score test for non-inferiority of a
/// difference of proportions (Farrington & Manning 1990, Statistics in
/// Medicine 9:1447–1454): H0: p_baseline − p_canary = margin against
/// H1: p_baseline − p_canary > margin, with
/// z = (p̂_baseline − p̂_canary − margin) / sqrt(p̃b(1 − p̃b)/n_b +
/// p̃c(1 − p̃c)/n_c), where p̃b and p̃c = p̃b − margin are the rates of
/// greatest likelihood under H0 (`restricted_rates`). Wald's z takes
/// that variance at the observed rates instead, and it is unstable where
/// login success rates live, near 1: a baseline of 190/190 has no variance
/// of its own, so a canary fallen to 95/100 scored a weak z, and two rates
/// of 1 could not be tested at all. With a margin of 0 this is the pooled
/// two-proportion z test. `effect` is p̂_baseline − p̂_canary. Two equal
/// rates of 1 are testable with a margin > 0 (the canary's rate under H0,
/// 1 − margin, has a variance) and give z < 0, p > 0.5: no drop. `None`
/// without a sample on either side, with a count above its total, with a
/// margin that is not finite or leaves no rates possible (|margin| ≥ 1),
/// or when the restricted variance is 0 (both rates 0, or both 1, with a
/// margin of 0).
pub fn rate_drop(
    baseline: u64,
    baseline_n: u64,
    canary: u64,
    canary_n: u64,
    margin: f64,
) -> Option<Tested> {
    if baseline_n == 0
        || canary_n == 0
        || baseline > baseline_n
        || canary > canary_n
        || !margin.is_finite()
    {
        return None;
    }
    let (xb, nb, xc, nc) = (
        baseline as f64,
        baseline_n as f64,
        canary as f64,
        canary_n as f64,
    );
    let (rb, rc) = restricted_rates(xb, nb, xc, nc, margin)?;
    let variance = rb * (1.0 - rb) / nb + rc * (1.0 - rc) / nc;
    if !variance.is_finite() || variance <= 0.0 {
        return None;
    }
    let effect = xb / nb - xc / nc;
    let z = (effect - margin) / variance.sqrt();
    Some(Tested {
        effect,
        z,
        p: normal_sf(z),
    })
}

/// The baseline's and the canary's rates of greatest likelihood for
/// `xb` successes of `nb` and `xc` of `nc` under H0: p_baseline −
/// p_canary = `margin`: the p_baseline in (max(0, margin),
/// min(1, 1 + margin)) maximising xb ln pb + (nb − xb) ln(1 − pb) +
/// xc ln(pb − margin) + (nc − xc) ln(1 − pb + margin). That is concave in
/// pb, so the root of its derivative is found by bisection a hair inside
/// the interval; when the derivative keeps one sign throughout (every
/// count a success, or every one a failure) the maximum is at that end.
/// `None` when the interval is empty.
fn restricted_rates(xb: f64, nb: f64, xc: f64, nc: f64, margin: f64) -> Option<(f64, f64)> {
    let (low, high) = (margin.max(0.0), (1.0 + margin).min(1.0));
    if low >= high {
        return None;
    }
    // A count of 0 adds nothing to the derivative (not 0 × ∞ at an end).
    let term = |count: f64, rate: f64| if count == 0.0 { 0.0 } else { count / rate };
    let slope = |pb: f64| {
        let pc = pb - margin;
        term(xb, pb) - term(nb - xb, 1.0 - pb) + term(xc, pc) - term(nc - xc, 1.0 - pc)
    };
    let hair = (high - low) * 1e-12;
    let (mut below, mut above) = (low + hair, high - hair);
    let pb = if slope(below) <= 0.0 {
        low
    } else if slope(above) >= 0.0 {
        high
    } else {
        for _ in 0..200 {
            let mid = 0.5 * (below + above);
            if slope(mid) > 0.0 {
                below = mid;
            } else {
                above = mid;
            }
        }
        0.5 * (below + above)
    };
    Some((pb, pb - margin))
}

/// Whether the canary's values are greater than the baseline's shifted up
/// by `shift` (H1 of the Mann–Whitney U test on canary − shift against
/// baseline): ranks with ties averaged, the variance corrected for ties,
/// a continuity correction. `effect` is the difference of the medians.
/// `None` without a sample on either side, with a NaN, or when every
/// value ties. [`greater_by_counts`] with a count of 1 for each sample.
pub fn greater_by(baseline: &[f64], canary: &[f64], shift: f64) -> Option<Tested> {
    greater_by_counts(&once_each(baseline), &once_each(canary), shift)
}

/// [`greater_by`] over weighted values, as a latency histogram gives
/// them: each `(value, count)` stands for `count` samples of `value`. The
/// same Mann–Whitney U test (canary − `shift` against baseline, ties
/// averaged, the variance corrected for ties, a continuity correction of
/// 0.5, one-sided greater, the normal approximation) in O(k log k) for k
/// distinct values, never expanding the counts into samples. `effect` is
/// the canary's weighted median less the baseline's (before the shift),
/// each what the median of the expanded samples would be. Counts of 0
/// are ignored, as are values given more than once (their counts add).
/// `None` without a count on either side, with a NaN among the values
/// counted, or when every value ties (no variance).
pub fn greater_by_counts(
    baseline: &[(f64, u64)],
    canary: &[(f64, u64)],
    shift: f64,
) -> Option<Tested> {
    // (value, baseline count, canary count), the canary's shifted down.
    let mut all: Vec<(f64, f64, f64)> = canary
        .iter()
        .map(|&(v, c)| (v - shift, 0.0, c as f64))
        .chain(baseline.iter().map(|&(v, c)| (v, c as f64, 0.0)))
        .filter(|&(_, b, c)| b + c > 0.0)
        .collect();
    if all.iter().any(|(v, _, _)| v.is_nan()) {
        return None;
    }
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // U counts the (canary, baseline) pairs with the canary greater, a tie
    // as half (the canary's rank sum less n1(n1 + 1)/2); each run of t
    // equal values adds t³ − t to the ties.
    let (mut u, mut ties, mut n1, mut n2, mut runs) = (0.0, 0.0, 0.0, 0.0, 0);
    for run in all.chunk_by(|a, b| a.0 == b.0) {
        let b: f64 = run.iter().map(|&(_, b, _)| b).sum();
        let c: f64 = run.iter().map(|&(_, _, c)| c).sum();
        u += c * (n2 + b / 2.0);
        let t = b + c;
        ties += t * t * t - t;
        n1 += c;
        n2 += b;
        runs += 1;
    }
    if n1 == 0.0 || n2 == 0.0 || runs < 2 {
        return None;
    }
    let n = n1 + n2;
    let mean = n1 * n2 / 2.0;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if !variance.is_finite() || variance <= 0.0 {
        return None;
    }
    let z = (u - mean - 0.5) / variance.sqrt();
    Some(Tested {
        effect: weighted_median(canary) - weighted_median(baseline),
        z,
        p: normal_sf(z),
    })
}

/// Each sample as a value counted once.
fn once_each(values: &[f64]) -> Vec<(f64, u64)> {
    values.iter().map(|&v| (v, 1)).collect()
}

/// The median of the samples `values` stand for (each value `count`
/// times), as of the expanded samples: the middle one, or the mean of the
/// two middle ones when the total is even. At least one count is not 0.
fn weighted_median(values: &[(f64, u64)]) -> f64 {
    let mut sorted: Vec<(f64, u64)> = values.iter().copied().filter(|&(_, c)| c > 0).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = sorted.iter().map(|&(_, c)| c).sum();
    // The sample at (0-based) position `k` of the expanded, sorted ones.
    let at = |k: u64| {
        let mut seen = 0;
        sorted
            .iter()
            .find(|&&(_, c)| {
                seen += c;
                seen > k
            })
            .map_or(f64::NAN, |&(v, _)| v)
    };
    let mid = total / 2;
    if total.is_multiple_of(2) {
        (at(mid - 1) + at(mid)) / 2.0
    } else {
        at(mid)
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
        assert!(close(t.z, 4.918620814992956), "{t:?}");
        assert!(close(t.p, 4.3578058531900267e-07), "{t:?}");
        assert!(close(t.effect, 0.05));
        let t = rate_drop(990, 2000, 985, 2000, 0.005).unwrap();
        assert!(close(t.z, -0.15812821340932964), "{t:?}");
        assert!(close(t.p, 0.5628221153972263), "{t:?}");
        assert!(close(t.effect, 0.0025));
        // A margin of 0: the pooled test, the restricted rate 1910/2000.
        let t = rate_drop(980, 1000, 930, 1000, 0.0).unwrap();
        assert!(close(t.z, 5.39320668075477), "{t:?}");
        assert!(close(t.p, 3.4605632564823236e-08), "{t:?}");
        let t = rate_drop(45, 50, 40, 50, 0.0).unwrap();
        assert!(close(t.z, 1.4002800840280094), "{t:?}");
        assert!(close(t.p, 0.08071473118354161), "{t:?}");
        // Nothing to test.
        assert!(rate_drop(0, 0, 5, 10, 0.0).is_none());
        assert!(rate_drop(5, 10, 0, 0, 0.0).is_none());
        assert!(rate_drop(10, 10, 10, 10, 0.0).is_none());
        assert!(rate_drop(0, 10, 0, 10, 0.0).is_none());
        assert!(rate_drop(11, 10, 5, 10, 0.0).is_none());
        assert!(rate_drop(5, 10, 11, 10, 0.0).is_none());
        assert!(rate_drop(5, 10, 5, 10, f64::NAN).is_none());
        assert!(rate_drop(5, 10, 5, 10, 1.0).is_none());
    }

    #[test]
    fn a_drop_from_a_baseline_rate_of_one_is_clear() {
        // Wald: z = 2.0647, p = 0.0195, on the canary's variance alone.
        let t = rate_drop(190, 190, 95, 100, 0.005).unwrap();
        assert!(close(t.z, 2.942186892663502), "{t:?}");
        assert!(close(t.p, 0.001629515862880811), "{t:?}");
        assert!(close(t.effect, 0.05));
        assert!(t.p < 0.01);
    }

    #[test]
    fn equal_rates_are_no_drop_even_at_one() {
        // Every count a success on both sides: the maximum is at the end,
        // p̃b = 1 and p̃c = 1 − margin, z = −margin / sqrt(p̃c(1 − p̃c)/n_c).
        let t = rate_drop(1000, 1000, 1000, 1000, 0.005).unwrap();
        assert!(close(t.z, -2.241679198311101), "{t:?}");
        assert!(close(t.p, 0.9875089433783157), "{t:?}");
        assert_eq!(t.effect, 0.0);
        let t = rate_drop(10, 10, 10, 10, 0.005).unwrap();
        assert!(close(t.z, -0.22416791983111006), "{t:?}");
        assert!(close(t.p, 0.588686677728173), "{t:?}");
        // And every one a failure: p̃b = margin, p̃c = 0.
        let t = rate_drop(0, 100, 0, 80, 0.01).unwrap();
        assert!(close(t.z, -1.005037815259212), "{t:?}");
        assert!(close(t.p, 0.84256067933179), "{t:?}");
        let t = rate_drop(990, 2000, 990, 2000, 0.005).unwrap();
        assert!(close(t.z, -0.31624753052378973), "{t:?}");
        assert!(close(t.p, 0.6240926833001228), "{t:?}");
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

    fn expand(histogram: &[(f64, u64)]) -> Vec<f64> {
        histogram
            .iter()
            .flat_map(|&(v, c)| std::iter::repeat_n(v, c as usize))
            .collect()
    }

    #[test]
    fn a_histogram_tests_as_its_expanded_samples() {
        // 15 and 14 samples, ties across the sides once shifted; the
        // canary's two middle samples straddle 15 and 20.
        let baseline = [
            (10.0, 3),
            (12.0, 5),
            (15.0, 2),
            (20.0, 4),
            (25.0, 0),
            (30.0, 1),
        ];
        let canary = [
            (12.0, 2),
            (15.0, 5),
            (20.0, 4),
            (22.0, 2),
            (35.0, 1),
            (50.0, 0),
        ];
        for (shift, p) in [
            (0.0, 0.031600195209187956),
            (2.0, 0.23278441217985762),
            (5.0, 0.8893948835513721),
        ] {
            let t = greater_by_counts(&baseline, &canary, shift).unwrap();
            let e = greater_by(&expand(&baseline), &expand(&canary), shift).unwrap();
            assert!(close(t.z, e.z) && close(t.p, e.p), "{t:?} {e:?}");
            assert!(close(t.p, p), "{t:?}");
            assert_eq!(t.effect, e.effect);
            assert!(close(t.effect, 17.5 - 12.0), "{t:?}");
        }
        // Order and a value given twice don't matter.
        let mut split = vec![(15.0, 3), (15.0, 2)];
        split.extend(canary.iter().rev().filter(|&&(v, _)| v != 15.0));
        let t = greater_by_counts(&baseline, &split, 2.0).unwrap();
        assert!(close(t.p, 0.23278441217985762), "{t:?}");
        assert!(close(t.effect, 17.5 - 12.0), "{t:?}");
        // Nothing to test; a NaN counted 0 times is not there.
        assert!(greater_by_counts(&[(1.0, 0)], &canary, 0.0).is_none());
        assert!(greater_by_counts(&baseline, &[], 0.0).is_none());
        assert!(greater_by_counts(&[(1.0, 4)], &[(3.0, 2)], 2.0).is_none());
        assert!(greater_by_counts(&[(f64::NAN, 1)], &canary, 0.0).is_none());
        assert!(greater_by_counts(&baseline, &canary, f64::NAN).is_none());
        let t = greater_by_counts(&[(f64::NAN, 0), (10.0, 1), (11.0, 1)], &[(12.0, 1)], 0.0);
        assert!(t.is_some());
    }

    #[test]
    fn a_histogram_of_many_samples_is_tested_without_expanding_it() {
        // 49,925 and 50,475 logins over 50 one-millisecond buckets, the
        // canary's 3 ms later and differently spread.
        let baseline: Vec<(f64, u64)> = (0..50)
            .map(|i| (40.0 + i as f64, 500 + (i * 373) % 1000))
            .collect();
        let canary: Vec<(f64, u64)> = (0..50)
            .map(|i| (43.0 + i as f64, 500 + (i * 611) % 1000))
            .collect();
        let t = greater_by_counts(&baseline, &canary, 0.0).unwrap();
        assert!(close(t.z, 36.210872313531645), "{t:?}");
        assert_eq!(t.effect, 68.0 - 64.0);
        let t = greater_by_counts(&baseline, &canary, 3.0).unwrap();
        assert!(close(t.z, 4.132631651622774), "{t:?}");
        assert!(close(t.p, 1.7931661167765558e-05), "{t:?}");
        let t = greater_by_counts(&baseline, &canary, 5.0).unwrap();
        assert!(close(t.z, -17.545685509562066), "{t:?}");
        // A million times as many: 10¹¹ samples no expansion could hold.
        let many = |h: &[(f64, u64)]| -> Vec<(f64, u64)> {
            h.iter().map(|&(v, c)| (v, c * 1_000_000)).collect()
        };
        let t = greater_by_counts(&many(&baseline), &many(&canary), 3.0).unwrap();
        assert!(close(t.z, 4132.652341508239), "{t:?}");
        assert_eq!(t.effect, 68.0 - 64.0);
    }
}
