//! The expected best score of n trials (Dodge et al. 2019, "Show Your Work"), and the n it is reported at.

use super::*;

/// Summary (n, mean, sample std, min, max) of the finite values among `scores`; `None` when there are none.
pub fn score_summary(scores: &[f64]) -> Option<ScoreSummary> {
    let values: Vec<f64> = scores.iter().copied().filter(|x| x.is_finite()).collect();
    let m = finite(mean(&values)?)?;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(ScoreSummary {
        n: count(values.len()),
        mean: m,
        std: sample_std(&values).and_then(finite),
        min,
        max,
    })
}

/// The expected maximum of n draws from the N finite values among `scores`, for each n in `ns` that lies in
/// 1..=N (others are skipped; [`expected_max_sizes`] gives the n that [`compute`] reports).
///
/// This follows allentune's `samplemax` (allentune/commands/plot.py, with `with_replacement=True`, its default),
/// which is the estimator of Dodge et al. 2019 ("Show Your Work"): with the scores sorted v(1) ≤ … ≤ v(N), the
/// probability that the maximum of n draws *with replacement* is v(i) is p(i) = (i/N)ⁿ − ((i−1)/N)ⁿ, so
///
/// - mean: E[max] = Σᵢ v(i)·p(i)
/// - variance: Σᵢ (v(i) − E[max])²·p(i)
///
/// allentune's `_compute_variance` returns the square root of that sum and its result calls it `var`; here the
/// sum is `variance` and its square root `std`. Tied scores need no special handling: the formula treats the N
/// scores as N distinct items, and tied items have the same value. NaN and infinite scores are ignored, and a
/// point whose variance overflows (scores near `f64::MAX`) is left out rather than reported as infinity.
pub fn expected_max_at(scores: &[f64], ns: &[usize]) -> Vec<ExpectedMaxPoint> {
    let mut sorted: Vec<f64> = scores.iter().copied().filter(|x| x.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let big_n = sorted.len();
    ns.iter()
        .filter(|&&n| (1..=big_n).contains(&n))
        .filter_map(|&n| {
            let exponent = i32::try_from(n).ok()?;
            let mut previous_cdf = 0.0;
            let probabilities: Vec<f64> = (1..=big_n)
                .map(|i| {
                    let cdf = (i as f64 / big_n as f64).powi(exponent);
                    let p = cdf - previous_cdf;
                    previous_cdf = cdf;
                    p
                })
                .collect();
            let mean: f64 = sorted.iter().zip(&probabilities).map(|(v, p)| v * p).sum();
            let variance: f64 = sorted
                .iter()
                .zip(&probabilities)
                .map(|(v, p)| (v - mean).powi(2) * p)
                .sum();
            Some(ExpectedMaxPoint {
                n: u32::try_from(n).ok()?,
                mean: finite(mean)?,
                variance: finite(variance)?,
                std: finite(variance.sqrt())?,
            })
        })
        .collect()
}

/// The n at which [`compute`] reports the expected-maximum curve for `finished` finished trials: all of 1..=N
/// when N ≤ [`MAX_EXPECTED_MAX_POINTS`], otherwise 1..=MAX/2 then geometrically spaced n ending at N.
pub fn expected_max_sizes(finished: usize) -> Vec<usize> {
    if finished <= MAX_EXPECTED_MAX_POINTS {
        return (1..=finished).collect();
    }
    let dense = MAX_EXPECTED_MAX_POINTS / 2;
    let sparse = MAX_EXPECTED_MAX_POINTS - dense;
    let mut ns: Vec<usize> = (1..=dense).collect();
    let ratio = (finished as f64 / dense as f64).powf(1.0 / sparse as f64);
    for k in 1..sparse {
        let n = ((dense as f64) * ratio.powi(k as i32)).round() as usize;
        if n > ns.last().copied().unwrap_or(0) && n < finished {
            ns.push(n);
        }
    }
    ns.push(finished);
    ns
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::test_support::*;
    use proptest::prelude::*;

    /// The whole curve, n = 1..=N.
    fn expected_max_curve(scores: &[f64]) -> Vec<ExpectedMaxPoint> {
        expected_max_at(scores, &(1..=scores.len()).collect::<Vec<_>>())
    }

    /// Mean and population variance of the maximum over all Nⁿ equally likely n-tuples drawn with replacement.
    fn brute_force_max(scores: &[f64], n: usize) -> (f64, f64) {
        let big_n = scores.len();
        let tuples = big_n.pow(u32::try_from(n).unwrap());
        let maxima: Vec<f64> = (0..tuples)
            .map(|mut code| {
                let mut max = f64::NEG_INFINITY;
                for _ in 0..n {
                    max = max.max(scores[code % big_n]);
                    code /= big_n;
                }
                max
            })
            .collect();
        let mean = maxima.iter().sum::<f64>() / tuples as f64;
        let variance = maxima.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / tuples as f64;
        (mean, variance)
    }

    proptest! {
        /// The closed form must equal enumeration of every n-tuple; integer-valued scores from a small range make
        /// ties common, which is where an off-by-one in the CDF indices would show.
        #[test]
        fn expected_max_equals_brute_force(
            raw in prop::collection::vec(-3i32..=3, 1..=6),
            scale in prop_oneof![Just(1.0), Just(0.1), 0.001f64..10.0],
        ) {
            let scores: Vec<f64> = raw.iter().map(|&v| f64::from(v) * scale).collect();
            let curve = expected_max_curve(&scores);
            prop_assert_eq!(curve.len(), scores.len());
            for point in curve.iter().take(4) {
                let (mean, variance) = brute_force_max(&scores, point.n as usize);
                prop_assert!((point.mean - mean).abs() <= 1e-9 * scale.max(1.0), "{:?} vs {}", point, mean);
                prop_assert!((point.variance - variance).abs() <= 1e-9 * scale.max(1.0).powi(2), "{:?} vs {}", point, variance);
                prop_assert!((point.std - variance.sqrt()).abs() <= 1e-6 * scale.max(1.0), "{:?}", point);
            }
        }
    }

    #[test]
    fn expected_max_hand_computed_and_degenerate() {
        // Scores 1, 2, 3 and n = 2: P(max = v(i)) = (i² − (i−1)²)/9 = 1/9, 3/9, 5/9, so E = 22/9,
        // E[max²] = 58/9 and Var = 58/9 − (22/9)² = 38/81.
        let curve = expected_max_curve(&[3.0, 1.0, 2.0]);
        assert_close(curve[1].mean, 22.0 / 9.0, 1e-12, "mean");
        assert_close(curve[1].variance, 38.0 / 81.0, 1e-12, "variance");
        assert_close(curve[0].mean, 2.0, 1e-12, "n = 1 is the plain mean");
        assert_eq!(curve.iter().map(|p| p.n).collect::<Vec<_>>(), vec![1, 2, 3]);

        assert!(expected_max_curve(&[]).is_empty());
        let single = expected_max_curve(&[0.7]);
        assert_eq!(
            single,
            vec![ExpectedMaxPoint {
                n: 1,
                mean: 0.7,
                variance: 0.0,
                std: 0.0
            }]
        );
        for point in expected_max_curve(&[0.8; 5]) {
            assert_close(point.mean, 0.8, 1e-12, "all-equal scores");
            assert!(point.variance >= 0.0 && point.variance < 1e-20, "{point:?}");
        }
        // Non-finite scores are ignored, and n outside 1..=N is skipped rather than extrapolated.
        let filtered = expected_max_at(&[f64::NAN, 1.0, f64::INFINITY, 2.0], &[0, 1, 2, 3]);
        assert_eq!(filtered.iter().map(|p| p.n).collect::<Vec<_>>(), vec![1, 2]);
        assert_close(
            filtered[1].mean,
            1.75,
            1e-12,
            "max of two draws from {1, 2}",
        );
    }

    #[test]
    fn expected_max_sizes_are_bounded_and_end_at_n() {
        assert_eq!(expected_max_sizes(0), Vec::<usize>::new());
        assert_eq!(expected_max_sizes(625), (1..=625).collect::<Vec<_>>());
        let ns = expected_max_sizes(100_000);
        assert!(ns.len() <= MAX_EXPECTED_MAX_POINTS, "{}", ns.len());
        assert_eq!(ns[..512], (1..=512).collect::<Vec<_>>()[..]);
        assert_eq!(ns.last(), Some(&100_000));
        assert!(ns.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
    }
}
