//! Rank correlation: Spearman's rho, and how well the score at each evaluation point predicts the final score.

use super::*;
use statrs::statistics::{Data, OrderStatistics, RankTieBreaker};

/// 1-based ranks of `values`, ties getting the average of the ranks they span (scipy's `rankdata` "average").
/// Callers pass finite values (statrs panics on NaN).
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    Data::new(values.to_vec()).ranks(RankTieBreaker::Average)
}

/// Spearman's rank correlation of paired samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spearman {
    pub n: usize,
    /// `None` when either sample is constant (its ranks have no variance).
    pub rho: Option<f64>,
    /// Two-sided p-value for rho = 0 from t = rho·√((n−2)/(1−rho²)) against Student's t with n−2 df (what
    /// scipy.stats.spearmanr reports); 0 when |rho| = 1; `None` when rho is or when n < 3.
    pub p_value: Option<f64>,
}

/// Spearman's rho as the Pearson correlation of average ranks (the definition that handles ties; the
/// 1 − 6Σd²/(n(n²−1)) shortcut is only exact without ties). `None` when the lengths differ or a value is not finite.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<Spearman> {
    if x.len() != y.len() || !x.iter().chain(y).all(|v| v.is_finite()) {
        return None;
    }
    let n = x.len();
    let (rx, ry) = (average_ranks(x), average_ranks(y));
    let center = (n as f64 + 1.0) / 2.0; // the mean of any n average ranks
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        let (dx, dy) = (a - center, b - center);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    let rho = (sxx > 0.0 && syy > 0.0)
        .then(|| (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
        .and_then(finite);
    let p_value = rho.filter(|_| n >= 3).and_then(|rho| {
        let df = (n - 2) as f64;
        let one_minus = 1.0 - rho * rho;
        if one_minus <= 0.0 {
            return Some(0.0);
        }
        let t = finite(rho * (df / one_minus).sqrt())?;
        let distribution = StudentsT::new(0.0, 1.0, df).ok()?;
        finite(2.0 * distribution.sf(t.abs())).map(|p| p.clamp(0.0, 1.0))
    });
    Some(Spearman { n, rho, p_value })
}

/// Spearman correlation between the metric at each evaluation point and the final score (how well early
/// performance predicts final performance).
///
/// Evaluation points are grouped by progress rounded to [`PROGRESS_QUANTUM`] (not by evaluation index, so that a
/// trial's k-th evaluation lines up with the others' at the same progress even if it skipped one). A point uses
/// the finished trials (finite final score) that have an evaluation at it; only points with at least
/// [`MIN_EARLY_VS_FINAL_TRIALS`] such trials are reported, ascending progress. When more than
/// [`MAX_EARLY_VS_FINAL_POINTS`] qualify, the ones with the most trials are kept (ties: earlier progress) and the
/// number dropped is returned alongside.
pub fn early_vs_final(trials: &[TrialScores]) -> (Vec<RankCorrelationPoint>, usize) {
    let mut groups: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    for trial in trials {
        let Some(final_score) = trial.finite_final() else {
            continue;
        };
        let mut at: BTreeMap<u64, f64> = BTreeMap::new();
        for &(progress, value) in &trial.evals {
            if progress.is_finite() && progress > 0.0 && progress <= 1.0 && value.is_finite() {
                // progress ≤ 1, so the key is at most 1/PROGRESS_QUANTUM: the cast cannot saturate.
                at.insert((progress / PROGRESS_QUANTUM).round() as u64, value);
            }
        }
        for (key, value) in at {
            groups.entry(key).or_default().push((value, final_score));
        }
    }
    let mut qualifying: Vec<(u64, Vec<(f64, f64)>)> = groups
        .into_iter()
        .filter(|(_, pairs)| pairs.len() >= MIN_EARLY_VS_FINAL_TRIALS)
        .collect();
    let omitted = qualifying.len().saturating_sub(MAX_EARLY_VS_FINAL_POINTS);
    if omitted > 0 {
        qualifying.sort_by_key(|(key, pairs)| (Reverse(pairs.len()), *key));
        qualifying.truncate(MAX_EARLY_VS_FINAL_POINTS);
        qualifying.sort_by_key(|(key, _)| *key);
    }
    let points = qualifying
        .into_iter()
        .filter_map(|(key, mut pairs)| {
            // Sorting makes the floating-point sums independent of the trials' order.
            pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            let (x, y): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
            let result = spearman(&x, &y)?;
            Some(RankCorrelationPoint {
                progress: key as f64 * PROGRESS_QUANTUM,
                n: count(result.n),
                rho: result.rho,
                p_value: result.p_value,
            })
        })
        .collect();
    (points, omitted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::test_support::*;

    #[test]
    fn spearman_matches_scipy_with_ties() {
        // scipy 1.17.1 spearmanr(x, y) = (0.8978715458702518, p 0.00042006990887630404);
        // rankdata(x) = [3.5, 7, 7, 1, 10, 3.5, 5, 9, 7, 2], rankdata(y) = [4, 6.5, 8, 2.5, 10, 1, 6.5, 9, 5, 2.5].
        let x = [0.61, 0.70, 0.70, 0.55, 0.80, 0.61, 0.66, 0.72, 0.70, 0.58];
        let y = [0.81, 0.84, 0.86, 0.80, 0.90, 0.79, 0.84, 0.88, 0.83, 0.80];
        assert_eq!(
            average_ranks(&x),
            vec![3.5, 7.0, 7.0, 1.0, 10.0, 3.5, 5.0, 9.0, 7.0, 2.0]
        );
        assert_eq!(
            average_ranks(&y),
            vec![4.0, 6.5, 8.0, 2.5, 10.0, 1.0, 6.5, 9.0, 5.0, 2.5]
        );
        let result = spearman(&x, &y).unwrap();
        assert_eq!(result.n, 10);
        assert_close(result.rho.unwrap(), 0.8978715458702518, 1e-12, "rho");
        assert_close(result.p_value.unwrap(), 0.00042006990887630404, 1e-9, "p");
        // scipy: spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) = (0.8207826816681233, p 0.08858700531354384).
        let small = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]).unwrap();
        assert_close(small.rho.unwrap(), 0.8207826816681233, 1e-12, "rho");
        assert_close(small.p_value.unwrap(), 0.08858700531354384, 1e-9, "p");
    }

    #[test]
    fn spearman_degenerate_inputs() {
        let constant = spearman(&[1.0, 2.0, 3.0], &[0.5, 0.5, 0.5]).unwrap();
        assert_eq!((constant.rho, constant.p_value), (None, None));
        let two = spearman(&[1.0, 2.0], &[4.0, 3.0]).unwrap();
        assert_eq!(
            (two.rho, two.p_value),
            (Some(-1.0), None),
            "n = 2: rho is ±1, no df for a p-value"
        );
        let perfect = spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 45.0]).unwrap();
        assert_eq!((perfect.rho, perfect.p_value), (Some(1.0), Some(0.0)));
        assert!(spearman(&[1.0, 2.0], &[1.0]).is_none(), "length mismatch");
        assert!(
            spearman(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]).is_none(),
            "NaN"
        );
        let empty = spearman(&[], &[]).unwrap();
        assert_eq!((empty.n, empty.rho), (0, None));
    }

    #[test]
    fn early_vs_final_groups_by_progress_and_uses_finished_trials() {
        let finals = [0.70, 0.80, 0.75, 0.90];
        let mut trials: Vec<TrialScores> = finals
            .iter()
            .enumerate()
            .map(|(i, &score)| {
                let i = i as f64;
                // 0.1 + 0.2 is 0.30000000000000004 in floating point: it must group with 0.3.
                let early = if i < 2.0 { 0.1 + 0.2 } else { 0.3 };
                TrialScores {
                    evals: vec![
                        (early, score - 0.2),
                        (0.5, 1.0 - score),
                        (1.0, 0.4),
                        (1.5, 0.0),
                        (0.9, f64::NAN),
                    ],
                    ..trial(i as u64, 0, Some(score))
                }
            })
            .collect();
        // Unfinished trials have no final score to correlate with, whatever their evaluations.
        trials.push(TrialScores {
            evals: vec![(0.3, 100.0)],
            ..trial(9, 0, None)
        });
        // Only one finished trial evaluates at 0.2: too few for a correlation.
        trials[0].evals.push((0.2, 0.1));
        let (points, omitted) = early_vs_final(&trials);
        assert_eq!(omitted, 0);
        assert_eq!(
            points.iter().map(|p| (p.progress, p.n)).collect::<Vec<_>>(),
            vec![(0.3, 4), (0.5, 4), (1.0, 4)]
        );
        assert_eq!(
            (points[0].rho, points[0].p_value),
            (Some(1.0), Some(0.0)),
            "same order as the finals"
        );
        assert_eq!(points[1].rho, Some(-1.0), "reversed order");
        assert_eq!(
            (points[2].rho, points[2].p_value),
            (None, None),
            "constant metric"
        );
    }

    #[test]
    fn early_vs_final_is_capped() {
        // 300 groups of 3 trials each evaluate at 3 progress values of their own: 900 points with n = 3, more than
        // the cap. 4 more trials share progress 0.95, the only point with n = 4, which the cap must keep.
        let mut trials: Vec<TrialScores> = (0..900u64)
            .map(|i| TrialScores {
                evals: (0..3)
                    .map(|k| ((1 + (i / 3) * 3 + k) as f64 / 1000.0, i as f64))
                    .collect(),
                ..trial(i, i, Some(i as f64))
            })
            .collect();
        trials.extend((0..4u64).map(|i| TrialScores {
            evals: vec![(0.95, i as f64)],
            ..trial(1000 + i, 0, Some(i as f64))
        }));
        let (points, omitted) = early_vs_final(&trials);
        assert_eq!(points.len(), MAX_EARLY_VS_FINAL_POINTS);
        assert_eq!(omitted, 901 - MAX_EARLY_VS_FINAL_POINTS);
        assert!(points.windows(2).all(|w| w[0].progress < w[1].progress));
        assert_eq!(points.last().map(|p| (p.progress, p.n)), Some((0.95, 4)));
        // Among the n = 3 points, the earliest progress values are kept.
        assert_eq!(points[0].progress, 0.001);
        assert_eq!(points[254].progress, 0.255);
    }
}
