//! Seed statistics of a sweep: pure, deterministic functions of the trials' outcomes (no I/O, no clocks).
//!
//! The analyses follow Dodge et al. 2020 ("Fine-Tuning Pretrained Language Models: Weight Initializations, Data
//! Orders, and Early Stopping"), which fine-tunes once per cell of a weight-initialization (WI) seed × data-order
//! (DO) seed grid, and the expected-maximum curve of Dodge et al. 2019 ("Show Your Work").
//!
//! # Which trials each number uses
//!
//! A trial is *finished* when it has a finite final score. Trials that were discarded early, diverged, failed or
//! are still running have none; a final score that is NaN or infinite is treated as absent and counted in
//! [`SweepStatistics::invalid_final_scores`].
//!
//! - `scores`, `expected_max`: every finished trial (so with early discarding, only the survivors: the curve then
//!   describes the survivors, not what a full sweep would have found).
//! - `grid` (spread, two-way ANOVA, best-vs-worst ANOVAs): the largest complete WI × DO sub-grid that
//!   [`select_complete_grid`] finds; its seeds and how many finished trials it left out are reported.
//! - `early_vs_final`: per evaluation point, the finished trials that have an evaluation at that point.
//! - `compute`: every trial.
//!
//! # Statistical caveats (worth knowing before reading the numbers)
//!
//! - Early discarding removes the trials that looked bad early, so every analysis of final scores sees a truncated
//!   population: spreads shrink, and the early-vs-final correlation is attenuated by range restriction.
//! - Best-vs-worst ANOVAs test two seeds *chosen* as the extremes, so their p-values are optimistic (no correction
//!   for the selection), and the one-way ANOVA ignores that both groups share the other factor's seeds (the paper's
//!   choice; a paired test would have more power).
//! - Standard deviations use ddof = 1 ([`STD_DDOF`]): the sample standard deviation, consistent with the ANOVA mean
//!   squares. The paper does not state its ddof; numpy's default would be 0, which gives values smaller by a factor
//!   √((n−1)/n) (0.89 for 5 seeds per row).

use seedsweep_crds::statistics::{
    AnovaEffect, AnovaResidual, BestVsWorst, ComputeAccounting, ExpectedMaxPoint, FactorSpread,
    OneWayAnova, RankCorrelationPoint, ScoreSummary, SeedGridStatistics, SweepStatistics,
    TwoWayAnova,
};
use statrs::distribution::{ContinuousCDF, FisherSnedecor, StudentsT};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

mod anova;
mod compute;
mod expected_max;
mod grid;
mod ranks;
mod spread;

pub use anova::*;
pub use compute::*;
pub use expected_max::*;
pub use grid::*;
pub use ranks::*;
pub use spread::*;

/// Delta degrees of freedom of every standard deviation computed here (divisor n − 1).
pub const STD_DDOF: u32 = 1;

/// Evaluation points are grouped by their progress rounded to this step, so that progress values that differ only
/// by floating-point noise (0.1 + 0.2 vs 0.3) land in the same group.
pub const PROGRESS_QUANTUM: f64 = 1e-6;

/// At most this many evaluation points are reported in `early_vs_final` (the status must stay small even when
/// trials evaluate at unaligned progress values).
pub const MAX_EARLY_VS_FINAL_POINTS: usize = 256;

/// At most this many points of the expected-maximum curve are reported: all n up to this many finished trials,
/// beyond that every n up to half of it and then geometrically spaced n up to the number of finished trials.
pub const MAX_EXPECTED_MAX_POINTS: usize = 1024;

/// Minimum trials at an evaluation point for it to be reported: with fewer, rho is ±1 or undefined and has no
/// p-value.
pub const MIN_EARLY_VS_FINAL_TRIALS: usize = 3;

/// What the statistics look at for one trial: its seeds, final score, evaluation curve and steps (a projection of
/// [`crate::state::TrialState`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TrialScores {
    pub wi_seed: u64,
    pub do_seed: u64,
    /// The final score, if the trial trained to completion.
    pub final_score: Option<f64>,
    /// `(progress, metric value)` at each evaluation, progress in (0, 1]. Entries with a progress outside (0, 1] or
    /// a non-finite value are ignored; when two entries share a progress, the later one counts.
    pub evals: Vec<(f64, f64)>,
    /// Training steps this trial ran.
    pub steps_done: u64,
    /// Training steps a complete run of this trial takes.
    pub total_steps: u64,
}

impl TrialScores {
    /// The final score if it is a finite number.
    fn finite_final(&self) -> Option<f64> {
        self.final_score.filter(|s| s.is_finite())
    }
}

/// Saturating conversion of a count for the status (counts never get near `u32::MAX` in practice, but this must
/// not panic).
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Sums after sorting, so that the result does not depend on the order the values came in.
fn sorted_sum(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.iter().sum()
}

/// Arithmetic mean; `None` for no values.
fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(sorted_sum(values) / values.len() as f64)
}

/// Sample standard deviation (ddof = [`STD_DDOF`]); `None` for fewer than 2 values.
fn sample_std(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let m = mean(values)?;
    let squares: Vec<f64> = values.iter().map(|x| (x - m).powi(2)).collect();
    Some((sorted_sum(&squares) / (values.len() - STD_DDOF as usize) as f64).sqrt())
}

/// Keeps a computed value only if it is finite (JSON cannot carry NaN or infinities).
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Everything above over a sweep's trials; see the module docs for which trials each part uses.
pub fn compute(trials: &[TrialScores]) -> SweepStatistics {
    let finals: Vec<f64> = trials
        .iter()
        .filter_map(TrialScores::finite_final)
        .collect();
    let invalid_final_scores = trials
        .iter()
        .filter(|t| t.final_score.is_some_and(|s| !s.is_finite()))
        .count();
    let (grid, grid_unavailable_reason) = match select_complete_grid(trials).and_then(|selection| {
        grid_statistics(&selection).ok_or_else(|| {
            "the grid's scores overflow floating point (sums of squares are not finite)".to_owned()
        })
    }) {
        Ok(statistics) => (Some(statistics), None),
        Err(reason) => (None, Some(reason)),
    };
    let (early_vs_final, omitted) = early_vs_final(trials);
    SweepStatistics {
        trials: count(trials.len()),
        finished_trials: count(finals.len()),
        invalid_final_scores: count(invalid_final_scores),
        scores: score_summary(&finals),
        expected_max: expected_max_at(&finals, &expected_max_sizes(finals.len())),
        grid,
        grid_unavailable_reason,
        early_vs_final,
        early_vs_final_points_omitted: count(omitted),
        compute: compute_accounting(trials),
    }
}

/// The grid analyses of a selected sub-grid; `None` only when a result is not finite (astronomically large scores).
fn grid_statistics(selection: &GridSelection) -> Option<SeedGridStatistics> {
    let grid = &selection.grid;
    Some(SeedGridStatistics {
        wi_seeds: grid.wi_seeds().to_vec(),
        do_seeds: grid.do_seeds().to_vec(),
        all_wi_seeds: count(selection.all_wi_seeds),
        all_do_seeds: count(selection.all_do_seeds),
        missing_cells: count(selection.missing_cells),
        trials_used: count(selection.trials_used),
        finished_trials_left_out: count(selection.finished_trials_left_out),
        duplicate_trials: count(selection.duplicate_trials),
        spread: factor_spread(grid)?,
        anova: two_way_anova(grid)?,
        wi_best_vs_worst: best_vs_worst(grid, Factor::WeightInit)?,
        do_best_vs_worst: best_vs_worst(grid, Factor::DataOrder)?,
    })
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// |a − b| ≤ tol·max(1, |b|): relative for large references, absolute near zero.
    pub fn assert_close(actual: f64, expected: f64, tol: f64, what: &str) {
        let bound = tol * expected.abs().max(1.0);
        assert!(
            (actual - expected).abs() <= bound,
            "{what}: {actual} vs reference {expected} (tol {bound})"
        );
    }

    pub fn trial(wi_seed: u64, do_seed: u64, final_score: Option<f64>) -> TrialScores {
        TrialScores {
            wi_seed,
            do_seed,
            final_score,
            evals: Vec::new(),
            steps_done: 0,
            total_steps: 0,
        }
    }

    /// 4 WI seeds × 3 DO seeds of made-up accuracies.
    pub fn reference_grid() -> SeedGrid {
        #[rustfmt::skip]
        let scores = vec![
            0.842, 0.861, 0.853,
            0.815, 0.829, 0.840,
            0.871, 0.866, 0.880,
            0.833, 0.858, 0.845,
        ];
        SeedGrid::new(vec![11, 12, 13, 14], vec![101, 102, 103], scores).unwrap()
    }

    /// No dropped seed has a finished trial in every kept cell of its line (else the greedy wasted data).
    pub fn assert_maximal(trials: &[TrialScores], selection: &GridSelection) {
        let finished = |wi: u64, data_order: u64| {
            trials
                .iter()
                .any(|t| t.wi_seed == wi && t.do_seed == data_order && t.finite_final().is_some())
        };
        let (rows, columns) = (selection.grid.wi_seeds(), selection.grid.do_seeds());
        for t in trials {
            if !rows.contains(&t.wi_seed) {
                assert!(
                    !columns.iter().all(|&c| finished(t.wi_seed, c)),
                    "row {} could be kept",
                    t.wi_seed
                );
            }
            if !columns.contains(&t.do_seed) {
                assert!(
                    !rows.iter().all(|&r| finished(r, t.do_seed)),
                    "column {} could be kept",
                    t.do_seed
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use test_support::*;

    /// Fails on any JSON null: every Option is omitted when absent, so a null can only be a NaN or an infinity
    /// that serde_json wrote as null.
    fn assert_no_null(value: &serde_json::Value, path: &str) {
        match value {
            serde_json::Value::Null => panic!("null (a non-finite number) at {path}"),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| assert_no_null(v, &format!("{path}[{i}]"))),
            serde_json::Value::Object(map) => map
                .iter()
                .for_each(|(k, v)| assert_no_null(v, &format!("{path}.{k}"))),
            _ => {}
        }
    }

    /// The status read back from the API server must deserialize to the same statistics. serde_json's default
    /// float parser may be 1 ulp off, so numbers are compared to a relative 1e-15 rather than bit for bit.
    fn assert_round_trips(statistics: &SweepStatistics) {
        fn close(a: &serde_json::Value, b: &serde_json::Value, path: &str) {
            use serde_json::Value;
            match (a, b) {
                (Value::Number(x), Value::Number(y)) => {
                    let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                    assert!(
                        (x - y).abs() <= 1e-15 * x.abs().max(y.abs()),
                        "{path}: {x} vs {y}"
                    );
                }
                (Value::Array(xs), Value::Array(ys)) => {
                    assert_eq!(xs.len(), ys.len(), "{path}");
                    xs.iter()
                        .zip(ys)
                        .enumerate()
                        .for_each(|(i, (x, y))| close(x, y, &format!("{path}[{i}]")));
                }
                (Value::Object(xs), Value::Object(ys)) => {
                    assert_eq!(
                        xs.keys().collect::<Vec<_>>(),
                        ys.keys().collect::<Vec<_>>(),
                        "{path}"
                    );
                    xs.iter()
                        .for_each(|(k, x)| close(x, &ys[k], &format!("{path}.{k}")));
                }
                _ => assert_eq!(a, b, "{path}"),
            }
        }
        let json = serde_json::to_string(statistics).unwrap();
        let back: SweepStatistics = serde_json::from_str(&json).unwrap();
        close(
            &serde_json::to_value(statistics).unwrap(),
            &serde_json::to_value(&back).unwrap(),
            "",
        );
    }

    #[test]
    fn degenerate_sweeps() {
        let empty = compute(&[]);
        assert_eq!(
            (empty.trials, empty.finished_trials, empty.scores.clone()),
            (0, 0, None)
        );
        assert!(empty.expected_max.is_empty() && empty.early_vs_final.is_empty());
        assert_no_null(&serde_json::to_value(&empty).unwrap(), "");

        let one = compute(&[trial(1, 1, Some(0.8))]);
        assert_eq!(one.scores.as_ref().map(|s| (s.n, s.std)), Some((1, None)));
        assert_eq!(one.expected_max.len(), 1);

        // All-equal scores on a complete grid: spreads 0, F undefined, nothing NaN.
        let flat: Vec<TrialScores> = (0..3)
            .flat_map(|w| (0..3).map(move |d| trial(w, d, Some(0.75))))
            .collect();
        let statistics = compute(&flat);
        let grid = statistics.grid.clone().unwrap();
        assert_eq!(grid.spread.std, 0.0);
        assert_eq!(
            (
                grid.anova.weight_init.f,
                grid.wi_best_vs_worst.anova.between.p_value
            ),
            (None, None)
        );
        assert_no_null(&serde_json::to_value(&statistics).unwrap(), "");

        let invalid = compute(&[
            trial(1, 1, Some(f64::NAN)),
            trial(1, 2, Some(f64::INFINITY)),
            trial(2, 1, Some(0.5)),
        ]);
        assert_eq!(
            (invalid.finished_trials, invalid.invalid_final_scores),
            (1, 2)
        );
    }

    #[test]
    fn full_sweep_status_is_small() {
        // The paper's scale: 25 WI × 25 DO seeds, 10 evaluations each.
        let trials: Vec<TrialScores> = (0..25u64)
            .flat_map(|w| {
                (0..25u64).map(move |d| {
                    let score = 0.8 + 0.001 * ((w * 7 + d * 13) % 17) as f64;
                    TrialScores {
                        evals: (1..=10)
                            .map(|k| (f64::from(k) / 10.0, score - 0.01 * f64::from(10 - k)))
                            .collect(),
                        steps_done: 1000,
                        total_steps: 1000,
                        ..trial(w, d, Some(score))
                    }
                })
            })
            .collect();
        let statistics = compute(&trials);
        let json = serde_json::to_string(&statistics).unwrap();
        assert!(json.len() < 200_000, "{} bytes", json.len());
        assert_eq!(statistics.expected_max.len(), 625);
        assert_eq!(statistics.early_vs_final.len(), 10);
        let grid = statistics.grid.clone().unwrap();
        assert_eq!(
            (grid.wi_seeds.len(), grid.do_seeds.len(), grid.trials_used),
            (25, 25, 625)
        );
        assert_eq!(statistics.compute.saving_fraction, Some(0.0));
        assert_round_trips(&statistics);
    }

    fn weird_float() -> impl Strategy<Value = f64> {
        prop_oneof![
            6 => 0.0..1.0f64,
            2 => Just(0.5),
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
            1 => Just(f64::MAX),
            1 => any::<f64>(),
        ]
    }

    fn arbitrary_trial() -> impl Strategy<Value = TrialScores> {
        (
            0u64..6,
            0u64..6,
            prop::option::of(weird_float()),
            prop::collection::vec(
                (
                    prop_oneof![Just(0.5), Just(1.0), weird_float()],
                    weird_float(),
                ),
                0..4,
            ),
            prop_oneof![0u64..2000, Just(u64::MAX)],
            prop_oneof![0u64..2000, Just(u64::MAX)],
        )
            .prop_map(
                |(wi_seed, do_seed, final_score, evals, steps_done, total_steps)| TrialScores {
                    wi_seed,
                    do_seed,
                    final_score,
                    evals,
                    steps_done,
                    total_steps,
                },
            )
    }

    proptest! {
        /// Whatever the trials, compute never panics, never yields a non-finite number, survives a JSON round
        /// trip, does not depend on the trials' order, and its grid is complete, maximal and accounted for.
        #[test]
        fn compute_is_total_finite_and_order_independent(trials in prop::collection::vec(arbitrary_trial(), 0..60)) {
            let statistics = compute(&trials);
            assert_no_null(&serde_json::to_value(&statistics).unwrap(), "");
            assert_round_trips(&statistics);

            let mut reversed = trials.clone();
            reversed.reverse();
            prop_assert_eq!(&compute(&reversed), &statistics);

            if let Ok(selection) = select_complete_grid(&trials) {
                let finished = trials.iter().filter(|t| t.finite_final().is_some()).count();
                prop_assert_eq!(selection.trials_used + selection.finished_trials_left_out, finished);
                for &wi in selection.grid.wi_seeds() {
                    for &data_order in selection.grid.do_seeds() {
                        prop_assert!(trials.iter().any(|t| t.wi_seed == wi && t.do_seed == data_order && t.finite_final().is_some()));
                    }
                }
                assert_maximal(&trials, &selection);
            }
            prop_assert_eq!(statistics.grid.is_some(), statistics.grid_unavailable_reason.is_none());
        }
    }
}
