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

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet};

use seedsweep_crds::statistics::{
    AnovaEffect, AnovaResidual, BestVsWorst, ComputeAccounting, ExpectedMaxPoint, FactorSpread,
    OneWayAnova, RankCorrelationPoint, ScoreSummary, SeedGridStatistics, SweepStatistics,
    TwoWayAnova,
};
use statrs::distribution::{ContinuousCDF, FisherSnedecor, StudentsT};

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

/// What the engine knows about one trial.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialOutcome {
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

impl TrialOutcome {
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

/// A complete WI × DO grid of scores: one finite score per cell, `scores[row * do_seeds.len() + column]`.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedGrid {
    wi_seeds: Vec<u64>,
    do_seeds: Vec<u64>,
    scores: Vec<f64>,
}

impl SeedGrid {
    /// `None` unless there is a finite score for every cell (row-major) and at least one seed on each axis.
    pub fn new(wi_seeds: Vec<u64>, do_seeds: Vec<u64>, scores: Vec<f64>) -> Option<Self> {
        let cells = wi_seeds.len().checked_mul(do_seeds.len())?;
        if cells == 0 || scores.len() != cells || !scores.iter().all(|s| s.is_finite()) {
            return None;
        }
        Some(SeedGrid {
            wi_seeds,
            do_seeds,
            scores,
        })
    }

    pub fn wi_seeds(&self) -> &[u64] {
        &self.wi_seeds
    }

    pub fn do_seeds(&self) -> &[u64] {
        &self.do_seeds
    }

    /// Scores of one WI seed across the DO seeds.
    pub fn row(&self, row: usize) -> &[f64] {
        let width = self.do_seeds.len();
        self.scores
            .get(row * width..(row + 1) * width)
            .unwrap_or(&[])
    }

    /// Scores of one DO seed across the WI seeds.
    pub fn column(&self, column: usize) -> Vec<f64> {
        (0..self.wi_seeds.len())
            .filter_map(|row| self.row(row).get(column).copied())
            .collect()
    }

    pub fn scores(&self) -> &[f64] {
        &self.scores
    }
}

/// The complete sub-grid [`select_complete_grid`] chose, with the bookkeeping the status reports.
#[derive(Clone, Debug, PartialEq)]
pub struct GridSelection {
    pub grid: SeedGrid,
    /// Distinct WI / DO seeds among all trials.
    pub all_wi_seeds: usize,
    pub all_do_seeds: usize,
    /// Cells of the full grid with no finished trial.
    pub missing_cells: usize,
    /// Finished trials inside / outside the sub-grid.
    pub trials_used: usize,
    pub finished_trials_left_out: usize,
    /// Finished trials beyond the first in their cell (over the whole grid).
    pub duplicate_trials: usize,
}

/// Sort key of a line in [`select_complete_grid`]'s greedy phase: (missing cells, fewer present cells, is a row,
/// seed); the line with the largest key is dropped.
type DropKey = (usize, Reverse<usize>, bool, u64);

/// Which line of the grid the greedy rule considers dropping.
#[derive(Clone, Copy)]
enum Line {
    Row(usize),
    Column(usize),
}

/// Chooses the complete WI × DO sub-grid the grid analyses run on.
///
/// The full grid's axes are the distinct WI and DO seeds of *all* trials (finished or not); a cell is present when
/// at least one finished trial has its seeds, and its value is the mean of those trials' final scores (summed in
/// sorted order, so the value does not depend on the trials' order). ANOVA needs every cell, so this greedy rule
/// repeatedly drops the row or column with the most missing cells among the remaining lines, breaking ties by
/// (1) the line that still holds fewer present cells (less data lost), (2) a WI row before a DO column, (3) the
/// larger seed; it stops when no remaining line misses a cell, then adds back every dropped line that is complete
/// over the kept lines (its missing cells were all in lines dropped later). The result is deterministic; it is the largest
/// complete sub-grid when the missing cells are confined to few lines, but greedy in general (finding the maximum
/// complete sub-grid is the NP-hard maximum edge biclique problem).
///
/// Errors with a reason when no finished trial exists or fewer than 2 rows or 2 columns remain.
pub fn select_complete_grid(trials: &[TrialOutcome]) -> Result<GridSelection, String> {
    let rows: Vec<u64> = trials
        .iter()
        .map(|t| t.wi_seed)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let columns: Vec<u64> = trials
        .iter()
        .map(|t| t.do_seed)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut cells: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    for trial in trials {
        let (Some(score), Ok(row), Ok(column)) = (
            trial.finite_final(),
            rows.binary_search(&trial.wi_seed),
            columns.binary_search(&trial.do_seed),
        ) else {
            continue;
        };
        cells.entry((row, column)).or_default().push(score);
    }
    let finished: usize = cells.values().map(Vec::len).sum();
    if finished == 0 {
        return Err("no trial has a finite final score".to_owned());
    }

    // Present cells per line, counted over the lines still active; updated as lines are dropped so each step costs
    // O(rows + columns) instead of rescanning the grid.
    let mut row_cells: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
    let mut column_cells: Vec<Vec<usize>> = vec![Vec::new(); columns.len()];
    for &(row, column) in cells.keys() {
        row_cells[row].push(column);
        column_cells[column].push(row);
    }
    let mut row_present: Vec<usize> = row_cells.iter().map(Vec::len).collect();
    let mut column_present: Vec<usize> = column_cells.iter().map(Vec::len).collect();
    let mut row_active = vec![true; rows.len()];
    let mut column_active = vec![true; columns.len()];
    let (mut active_rows, mut active_columns) = (rows.len(), columns.len());
    loop {
        // Key of a line: larger is dropped first (see the tie-breaking rules above).
        let mut worst: Option<(DropKey, Line)> = None;
        let mut consider = |key: DropKey, line: Line| {
            if key.0 > 0 && worst.as_ref().is_none_or(|(best, _)| key > *best) {
                worst = Some((key, line));
            }
        };
        for (row, &seed) in rows.iter().enumerate().filter(|(row, _)| row_active[*row]) {
            let present = row_present[row];
            consider(
                (
                    active_columns.saturating_sub(present),
                    Reverse(present),
                    true,
                    seed,
                ),
                Line::Row(row),
            );
        }
        for (column, &seed) in columns
            .iter()
            .enumerate()
            .filter(|(column, _)| column_active[*column])
        {
            let present = column_present[column];
            consider(
                (
                    active_rows.saturating_sub(present),
                    Reverse(present),
                    false,
                    seed,
                ),
                Line::Column(column),
            );
        }
        match worst {
            None => break,
            Some((_, Line::Row(row))) => {
                row_active[row] = false;
                active_rows -= 1;
                for &column in &row_cells[row] {
                    column_present[column] = column_present[column].saturating_sub(1);
                }
            }
            Some((_, Line::Column(column))) => {
                column_active[column] = false;
                active_columns -= 1;
                for &row in &column_cells[column] {
                    row_present[row] = row_present[row].saturating_sub(1);
                }
            }
        }
    }

    // A line dropped early may have missed cells only in lines dropped later; such a line is now complete over the
    // kept lines, so adding it back is pure gain (ascending seed, rows first, until nothing changes).
    let present = |row: usize, column: usize| cells.contains_key(&(row, column));
    let mut changed = active_rows > 0 && active_columns > 0;
    while changed {
        changed = false;
        for (row, active) in row_active.iter_mut().enumerate() {
            if !*active && (0..columns.len()).all(|c| !column_active[c] || present(row, c)) {
                *active = true;
                changed = true;
            }
        }
        for (column, active) in column_active.iter_mut().enumerate() {
            if !*active && (0..rows.len()).all(|r| !row_active[r] || present(r, column)) {
                *active = true;
                changed = true;
            }
        }
    }

    let kept_rows: Vec<usize> = (0..rows.len()).filter(|&r| row_active[r]).collect();
    let kept_columns: Vec<usize> = (0..columns.len()).filter(|&c| column_active[c]).collect();
    let missing_cells = rows
        .len()
        .saturating_mul(columns.len())
        .saturating_sub(cells.len());
    if kept_rows.len() < 2 || kept_columns.len() < 2 {
        return Err(format!(
            "the largest complete sub-grid found has {} WI x {} DO seeds, fewer than the 2 x 2 the grid analyses \
             need ({} finished trials on a {} x {} grid with {} missing cells)",
            kept_rows.len(),
            kept_columns.len(),
            finished,
            rows.len(),
            columns.len(),
            missing_cells
        ));
    }
    let mut scores = Vec::with_capacity(kept_rows.len() * kept_columns.len());
    let mut trials_used = 0;
    for &row in &kept_rows {
        for &column in &kept_columns {
            let cell = cells.get(&(row, column)).map(Vec::as_slice).unwrap_or(&[]);
            trials_used += cell.len();
            scores.push(mean(cell).unwrap_or(f64::NAN));
        }
    }
    let grid = SeedGrid::new(
        kept_rows.iter().map(|&r| rows[r]).collect(),
        kept_columns.iter().map(|&c| columns[c]).collect(),
        scores,
    )
    .ok_or_else(|| {
        "a cell mean of the selected sub-grid is not finite (scores too large to average)"
            .to_owned()
    })?;
    Ok(GridSelection {
        grid,
        all_wi_seeds: rows.len(),
        all_do_seeds: columns.len(),
        missing_cells,
        trials_used,
        finished_trials_left_out: finished - trials_used,
        duplicate_trials: finished - cells.len(),
    })
}

/// Per-factor spread of a complete grid (Dodge et al. 2020 §4), standard deviations with ddof = [`STD_DDOF`]:
/// the expected std due to DO is the mean over WI seeds of the std across DO seeds, and vice versa. `None` unless
/// the grid has at least 2 × 2 seeds.
pub fn factor_spread(grid: &SeedGrid) -> Option<FactorSpread> {
    let (rows, columns) = (grid.wi_seeds.len(), grid.do_seeds.len());
    if rows < 2 || columns < 2 {
        return None;
    }
    let row_stds: Vec<f64> = (0..rows).filter_map(|r| sample_std(grid.row(r))).collect();
    let column_stds: Vec<f64> = (0..columns)
        .filter_map(|c| sample_std(&grid.column(c)))
        .collect();
    Some(FactorSpread {
        ddof: STD_DDOF,
        expected_std_due_to_do: finite(mean(&row_stds)?)?,
        expected_std_due_to_wi: finite(mean(&column_stds)?)?,
        std: finite(sample_std(grid.scores())?)?,
    })
}

/// Whether a residual sum of squares is zero up to rounding: each residual carries an error of a few ulps of the
/// largest |value|, so anything below that floor is noise, and an F computed from it would be meaningless.
fn negligible(sum_of_squares: f64, observations: usize, scale: f64) -> bool {
    sum_of_squares <= observations as f64 * (8.0 * f64::EPSILON * scale).powi(2)
}

/// Builds an ANOVA effect row, with F and its p-value when the residual mean square is usable.
fn effect(
    sum_of_squares: f64,
    df: usize,
    residual: &AnovaResidual,
    residual_is_zero: bool,
) -> Option<AnovaEffect> {
    let mean_square = finite(sum_of_squares / df as f64)?;
    let f = if residual_is_zero || df == 0 || residual.df == 0 {
        None
    } else {
        finite(mean_square / residual.mean_square).filter(|f| *f >= 0.0)
    };
    let p_value = f.and_then(|f| {
        // statrs evaluates the tail at d1·f / (d1·f + d2), which is NaN (and panics inside statrs) once d1·f
        // overflows; the tail is 0 to double precision long before that.
        if !(df as f64 * f).is_finite() {
            return Some(0.0);
        }
        let distribution = FisherSnedecor::new(df as f64, f64::from(residual.df)).ok()?;
        finite(distribution.sf(f)).map(|p| p.clamp(0.0, 1.0))
    });
    Some(AnovaEffect {
        sum_of_squares,
        df: count(df),
        mean_square,
        f,
        p_value,
    })
}

/// Two-way ANOVA without replication on a complete grid (additive model, no interaction term: with one
/// observation per cell the interaction is the residual). With r WI seeds, c DO seeds, grand mean g, row means
/// rᵢ and column means cⱼ: SS_WI = c·Σ(rᵢ−g)², SS_DO = r·Σ(cⱼ−g)², SS_residual = Σ(xᵢⱼ−rᵢ−cⱼ+g)², with df r−1,
/// c−1 and (r−1)(c−1); F = MS_effect / MS_residual against F(df_effect, df_residual). F and p are `None` when the
/// residual is zero up to rounding. `None` unless the grid has at least 2 × 2 seeds.
pub fn two_way_anova(grid: &SeedGrid) -> Option<TwoWayAnova> {
    let (rows, columns) = (grid.wi_seeds.len(), grid.do_seeds.len());
    if rows < 2 || columns < 2 {
        return None;
    }
    let grand = mean(grid.scores())?;
    let row_means: Vec<f64> = (0..rows)
        .map(|r| mean(grid.row(r)))
        .collect::<Option<_>>()?;
    let column_means: Vec<f64> = (0..columns)
        .map(|c| mean(&grid.column(c)))
        .collect::<Option<_>>()?;
    let squares = |values: &mut dyn Iterator<Item = f64>| {
        sorted_sum(&values.map(|d| d * d).collect::<Vec<_>>())
    };
    let ss_wi = columns as f64 * squares(&mut row_means.iter().map(|m| m - grand));
    let ss_do = rows as f64 * squares(&mut column_means.iter().map(|m| m - grand));
    let ss_total = squares(&mut grid.scores().iter().map(|x| x - grand));
    let ss_residual = squares(&mut (0..rows * columns).map(|i| {
        let (r, c) = (i / columns, i % columns);
        grid.scores[i] - row_means[r] - column_means[c] + grand
    }));
    let residual_df = (rows - 1) * (columns - 1);
    let residual = AnovaResidual {
        sum_of_squares: finite(ss_residual)?,
        df: count(residual_df),
        mean_square: finite(ss_residual / residual_df as f64)?,
    };
    let scale = grid.scores().iter().fold(0.0_f64, |a, x| a.max(x.abs()));
    let residual_is_zero = negligible(ss_residual, rows * columns, scale);
    Some(TwoWayAnova {
        weight_init: effect(finite(ss_wi)?, rows - 1, &residual, residual_is_zero)?,
        data_order: effect(finite(ss_do)?, columns - 1, &residual, residual_is_zero)?,
        residual,
        total_sum_of_squares: finite(ss_total)?,
        total_df: count(rows * columns - 1),
    })
}

/// One-way ANOVA over k groups: SS_between = Σ nⱼ(mⱼ−g)² with k−1 df, SS_within = ΣΣ(x−mⱼ)² with N−k df,
/// F = MS_between / MS_within against F(k−1, N−k). `None` unless there are at least 2 groups, none empty, all
/// values finite and N > k. F and p are `None` when the within-groups variation is zero up to rounding.
pub fn one_way_anova(groups: &[&[f64]]) -> Option<OneWayAnova> {
    let k = groups.len();
    let observations: usize = groups.iter().map(|g| g.len()).sum();
    if k < 2
        || observations <= k
        || groups
            .iter()
            .any(|g| g.is_empty() || !g.iter().all(|x| x.is_finite()))
    {
        return None;
    }
    let all: Vec<f64> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    let grand = mean(&all)?;
    let means: Vec<f64> = groups.iter().map(|g| mean(g)).collect::<Option<_>>()?;
    let between: Vec<f64> = groups
        .iter()
        .zip(&means)
        .map(|(g, m)| g.len() as f64 * (m - grand).powi(2))
        .collect();
    let within: Vec<f64> = groups
        .iter()
        .zip(&means)
        .flat_map(|(g, m)| g.iter().map(move |x| (x - m).powi(2)))
        .collect();
    let (ss_between, ss_within) = (sorted_sum(&between), sorted_sum(&within));
    let within_df = observations - k;
    let residual = AnovaResidual {
        sum_of_squares: finite(ss_within)?,
        df: count(within_df),
        mean_square: finite(ss_within / within_df as f64)?,
    };
    let scale = all.iter().fold(0.0_f64, |a, x| a.max(x.abs()));
    let residual_is_zero = negligible(ss_within, observations, scale);
    Some(OneWayAnova {
        groups: count(k),
        observations: count(observations),
        between: effect(finite(ss_between)?, k - 1, &residual, residual_is_zero)?,
        within: residual,
    })
}

/// A factor of the seed grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Factor {
    WeightInit,
    DataOrder,
}

/// Dodge et al. 2020 §4.2: the seed of `factor` with the best mean score over the grid's other-factor seeds and
/// the one with the worst, compared by [`one_way_anova`] on their scores across the other factor's seeds. Ties:
/// the smaller seed is the best; the worst is the smaller seed among the rest. `None` unless the grid has at least
/// 2 × 2 seeds. See the module docs for why the p-value is optimistic.
pub fn best_vs_worst(grid: &SeedGrid, factor: Factor) -> Option<BestVsWorst> {
    let (seeds, lines): (&[u64], Vec<Vec<f64>>) = match factor {
        Factor::WeightInit => (
            &grid.wi_seeds,
            (0..grid.wi_seeds.len())
                .map(|r| grid.row(r).to_vec())
                .collect(),
        ),
        Factor::DataOrder => (
            &grid.do_seeds,
            (0..grid.do_seeds.len()).map(|c| grid.column(c)).collect(),
        ),
    };
    if grid.wi_seeds.len() < 2 || grid.do_seeds.len() < 2 {
        return None;
    }
    let means: Vec<f64> = lines.iter().map(|l| mean(l)).collect::<Option<_>>()?;
    // Seeds are ascending, so the first extreme in index order is the smaller seed.
    let best = (0..means.len()).reduce(|a, b| if means[b] > means[a] { b } else { a })?;
    let worst = (0..means.len())
        .filter(|&i| i != best)
        .reduce(|a, b| if means[b] < means[a] { b } else { a })?;
    Some(BestVsWorst {
        best_seed: seeds[best],
        best_mean: finite(means[best])?,
        worst_seed: seeds[worst],
        worst_mean: finite(means[worst])?,
        anova: one_way_anova(&[&lines[best], &lines[worst]])?,
    })
}

/// 1-based ranks of `values`, ties getting the average of the ranks they span (scipy's `rankdata` "average").
/// NaN sorts above every number (IEEE total order); callers pass finite values.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len()
            && values[order[end]].total_cmp(&values[order[start]]) == Ordering::Equal
        {
            end += 1;
        }
        // Positions start..end hold ranks start+1..=end; their average:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
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
pub fn early_vs_final(trials: &[TrialOutcome]) -> (Vec<RankCorrelationPoint>, usize) {
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

/// Steps the sweep spent (Σ steps_done) against a sweep that trains every trial to completion (Σ total_steps),
/// over all trials. Sums saturate at `u64::MAX` rather than overflow.
pub fn compute_accounting(trials: &[TrialOutcome]) -> ComputeAccounting {
    let steps_spent = trials
        .iter()
        .fold(0_u64, |a, t| a.saturating_add(t.steps_done));
    let steps_without_discarding = trials
        .iter()
        .fold(0_u64, |a, t| a.saturating_add(t.total_steps));
    let saving_fraction = (steps_without_discarding > 0)
        .then(|| 1.0 - steps_spent as f64 / steps_without_discarding as f64);
    ComputeAccounting {
        trials: count(trials.len()),
        steps_spent,
        steps_without_discarding,
        saving_fraction,
    }
}

/// Cost of one early-stopping rung (Dodge et al. 2020's budget formula).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RungCost {
    /// (t·f + p·(1−f))·s: t trials trained to fraction f, then p of them trained to completion.
    pub with_early_stopping: f64,
    /// t·s: all t trials trained to completion.
    pub without_early_stopping: f64,
    /// 1 − with / without; `None` when without is 0.
    pub saving_fraction: Option<f64>,
}

/// The paper's budget for "start many, stop early, continue some": `started` trials (t) each train
/// `decision_fraction` (f) of `steps_per_trial` (s) steps, then the best `continued` (p) train the remaining
/// (1−f)·s. `None` when f is not in [0, 1] or p > t.
pub fn rung_cost(
    started: u64,
    decision_fraction: f64,
    continued: u64,
    steps_per_trial: u64,
) -> Option<RungCost> {
    if !(0.0..=1.0).contains(&decision_fraction) || continued > started {
        return None;
    }
    let (t, p, s, f) = (
        started as f64,
        continued as f64,
        steps_per_trial as f64,
        decision_fraction,
    );
    let with_early_stopping = (t * f + p * (1.0 - f)) * s;
    let without_early_stopping = t * s;
    Some(RungCost {
        with_early_stopping,
        without_early_stopping,
        saving_fraction: (without_early_stopping > 0.0)
            .then(|| 1.0 - with_early_stopping / without_early_stopping),
    })
}

/// Everything above over a sweep's trials; see the module docs for which trials each part uses.
pub fn compute(trials: &[TrialOutcome]) -> SweepStatistics {
    let finals: Vec<f64> = trials
        .iter()
        .filter_map(TrialOutcome::finite_final)
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// |a − b| ≤ tol·max(1, |b|): relative for large references, absolute near zero.
    fn assert_close(actual: f64, expected: f64, tol: f64, what: &str) {
        let bound = tol * expected.abs().max(1.0);
        assert!(
            (actual - expected).abs() <= bound,
            "{what}: {actual} vs reference {expected} (tol {bound})"
        );
    }

    fn trial(wi_seed: u64, do_seed: u64, final_score: Option<f64>) -> TrialOutcome {
        TrialOutcome {
            wi_seed,
            do_seed,
            final_score,
            evals: Vec::new(),
            steps_done: 0,
            total_steps: 0,
        }
    }

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

    #[test]
    fn one_way_anova_matches_scipy_mussel_example() {
        // McDonald, Handbook of Biological Statistics: shell measurements of Mytilus trossulus at five locations,
        // the example in scipy.stats.f_oneway's documentation. Reference (scipy 1.17.1):
        // F = 7.121019471642449, p = 0.00028122423145345433, df = (4, 39).
        let tillamook = [
            0.0571, 0.0813, 0.0831, 0.0976, 0.0817, 0.0859, 0.0735, 0.0659, 0.0923, 0.0836,
        ];
        let newport = [
            0.0873, 0.0662, 0.0672, 0.0819, 0.0749, 0.0649, 0.0835, 0.0725,
        ];
        let petersburg = [0.0974, 0.1352, 0.0817, 0.1016, 0.0968, 0.1064, 0.105];
        let magadan = [
            0.1033, 0.0915, 0.0781, 0.0685, 0.0677, 0.0697, 0.0764, 0.0689,
        ];
        let tvarminne = [0.0703, 0.1026, 0.0956, 0.0973, 0.1039, 0.1045];
        let anova =
            one_way_anova(&[&tillamook, &newport, &petersburg, &magadan, &tvarminne]).unwrap();
        assert_eq!(
            (
                anova.groups,
                anova.observations,
                anova.between.df,
                anova.within.df
            ),
            (5, 39, 4, 34)
        );
        assert_close(anova.between.f.unwrap(), 7.121019471642449, 1e-10, "F");
        assert_close(
            anova.between.p_value.unwrap(),
            0.00028122423145345433,
            1e-9,
            "p",
        );
    }

    #[test]
    fn one_way_anova_degenerate_inputs() {
        assert!(one_way_anova(&[]).is_none());
        assert!(one_way_anova(&[&[1.0, 2.0]]).is_none(), "one group");
        assert!(
            one_way_anova(&[&[1.0], &[2.0]]).is_none(),
            "N = k: no within df"
        );
        assert!(one_way_anova(&[&[1.0, 2.0], &[]]).is_none(), "empty group");
        assert!(
            one_way_anova(&[&[1.0, f64::NAN], &[2.0, 3.0]]).is_none(),
            "NaN"
        );
        // No within-group variation: F is infinite (or 0/0 when the groups are equal too), so it is absent.
        let separated = one_way_anova(&[&[1.0, 1.0], &[2.0, 2.0]]).unwrap();
        assert_eq!(
            (separated.between.f, separated.between.p_value),
            (None, None)
        );
        assert_close(separated.between.sum_of_squares, 1.0, 1e-12, "SS between");
        let equal = one_way_anova(&[&[0.9, 0.9], &[0.9, 0.9]]).unwrap();
        assert_eq!((equal.between.f, equal.between.p_value), (None, None));
    }

    #[test]
    fn huge_f_does_not_reach_statrs_overflow() {
        // F = 8e307 is finite but d1·F overflows, which would make statrs evaluate its beta function at NaN and
        // panic; the tail probability is 0 at that F anyway.
        let residual = AnovaResidual {
            sum_of_squares: 5.0,
            df: 10,
            mean_square: 0.5,
        };
        let row = effect(1.6e308, 4, &residual, false).unwrap();
        assert_eq!((row.f, row.p_value), (Some(8e307), Some(0.0)));
    }

    /// 4 WI seeds × 3 DO seeds of made-up accuracies.
    fn reference_grid() -> SeedGrid {
        #[rustfmt::skip]
        let scores = vec![
            0.842, 0.861, 0.853,
            0.815, 0.829, 0.840,
            0.871, 0.866, 0.880,
            0.833, 0.858, 0.845,
        ];
        SeedGrid::new(vec![11, 12, 13, 14], vec![101, 102, 103], scores).unwrap()
    }

    #[test]
    fn two_way_anova_matches_statsmodels() {
        // Reference: statsmodels 0.15.0, anova_lm(ols("y ~ C(wi) + C(do)")) on reference_grid():
        //   C(wi)    df 3  SS 0.003021583333333339  F 14.989251756924348  p 0.003407295416076139
        //   C(do)    df 2  SS 0.0005061666666666658 F 3.7664324100867996  p 0.08715343728786293
        //   Residual df 6  SS 0.0004031666666666674 MS 6.719444444444457e-05
        // and numpy: total SS 0.003930916666666675.
        let anova = two_way_anova(&reference_grid()).unwrap();
        assert_eq!(
            (
                anova.weight_init.df,
                anova.data_order.df,
                anova.residual.df,
                anova.total_df
            ),
            (3, 2, 6, 11)
        );
        assert_close(
            anova.weight_init.sum_of_squares,
            0.003021583333333339,
            1e-12,
            "SS WI",
        );
        assert_close(
            anova.data_order.sum_of_squares,
            0.0005061666666666658,
            1e-12,
            "SS DO",
        );
        assert_close(
            anova.residual.sum_of_squares,
            0.0004031666666666674,
            1e-12,
            "SS residual",
        );
        assert_close(
            anova.residual.mean_square,
            6.719444444444457e-05,
            1e-12,
            "MS residual",
        );
        assert_close(
            anova.total_sum_of_squares,
            0.003930916666666675,
            1e-12,
            "SS total",
        );
        assert_close(
            anova.weight_init.f.unwrap(),
            14.989251756924348,
            1e-9,
            "F WI",
        );
        assert_close(
            anova.weight_init.p_value.unwrap(),
            0.003407295416076139,
            1e-9,
            "p WI",
        );
        assert_close(
            anova.data_order.f.unwrap(),
            3.7664324100867996,
            1e-9,
            "F DO",
        );
        assert_close(
            anova.data_order.p_value.unwrap(),
            0.08715343728786293,
            1e-9,
            "p DO",
        );
    }

    #[test]
    fn two_way_anova_degenerate_grids() {
        // Exactly additive data (row effect + column effect): the residual is zero up to rounding, so F would be
        // a ratio of rounding noise; it must be absent while the effects' sums of squares stay.
        let additive: Vec<f64> = (0..3)
            .flat_map(|r| (0..4).map(move |c| 0.5 + 0.1 * f64::from(r) + 0.01 * f64::from(c)))
            .collect();
        let anova =
            two_way_anova(&SeedGrid::new(vec![1, 2, 3], vec![1, 2, 3, 4], additive).unwrap())
                .unwrap();
        assert_eq!(
            (anova.weight_init.f, anova.data_order.p_value),
            (None, None)
        );
        assert_close(
            anova.weight_init.sum_of_squares,
            4.0 * 0.02,
            1e-12,
            "SS WI of the additive grid",
        );
        // All-equal scores: every sum of squares is 0 and nothing is NaN.
        let flat =
            two_way_anova(&SeedGrid::new(vec![1, 2], vec![1, 2], vec![0.9; 4]).unwrap()).unwrap();
        assert_eq!(flat.weight_init.f, None);
        assert_eq!(flat.total_sum_of_squares, 0.0);
        // A single row or column has no ANOVA.
        assert!(
            two_way_anova(&SeedGrid::new(vec![1], vec![1, 2], vec![0.1, 0.2]).unwrap()).is_none()
        );
        assert!(
            SeedGrid::new(vec![1, 2], vec![1], vec![0.1]).is_none(),
            "wrong number of scores"
        );
        assert!(
            SeedGrid::new(vec![1], vec![1], vec![f64::NAN]).is_none(),
            "NaN cell"
        );
    }

    #[test]
    fn factor_spread_matches_numpy() {
        // numpy, ddof=1: mean(grid.std(axis=1)) = 0.01041682196847903 (across DO seeds per WI seed),
        // mean(grid.std(axis=0)) = 0.01928617687734455, grid.std() = 0.01890386364228385.
        let spread = factor_spread(&reference_grid()).unwrap();
        assert_eq!(spread.ddof, 1);
        assert_close(
            spread.expected_std_due_to_do,
            0.01041682196847903,
            1e-12,
            "std due to DO",
        );
        assert_close(
            spread.expected_std_due_to_wi,
            0.01928617687734455,
            1e-12,
            "std due to WI",
        );
        assert_close(spread.std, 0.01890386364228385, 1e-12, "overall std");
    }

    #[test]
    fn best_vs_worst_matches_scipy() {
        // WI: best row 13 (mean 0.8723), worst row 12 (0.8280); scipy f_oneway(row 13, row 12):
        // F = 28.43890675241158, p = 0.005953979142033827.
        let wi = best_vs_worst(&reference_grid(), Factor::WeightInit).unwrap();
        assert_eq!((wi.best_seed, wi.worst_seed), (13, 12));
        assert_close(
            wi.best_mean,
            (0.871 + 0.866 + 0.880) / 3.0,
            1e-12,
            "best mean",
        );
        assert_eq!((wi.anova.between.df, wi.anova.within.df), (1, 4));
        assert_close(wi.anova.between.f.unwrap(), 28.43890675241158, 1e-9, "F WI");
        assert_close(
            wi.anova.between.p_value.unwrap(),
            0.005953979142033827,
            1e-9,
            "p WI",
        );
        // DO: column means 0.84025, 0.8535, 0.8545 → best 103, worst 101;
        // F = 0.9401948490402238, p = 0.36967475744837075.
        let data_order = best_vs_worst(&reference_grid(), Factor::DataOrder).unwrap();
        assert_eq!((data_order.best_seed, data_order.worst_seed), (103, 101));
        assert_eq!(
            (data_order.anova.between.df, data_order.anova.within.df),
            (1, 6)
        );
        assert_close(
            data_order.anova.between.f.unwrap(),
            0.9401948490402238,
            1e-9,
            "F DO",
        );
        assert_close(
            data_order.anova.between.p_value.unwrap(),
            0.36967475744837075,
            1e-9,
            "p DO",
        );
    }

    #[test]
    fn best_vs_worst_ties_pick_the_smaller_seeds() {
        // All rows have the same mean: best is the smallest seed, worst the smallest of the others.
        let grid = SeedGrid::new(
            vec![7, 5, 9],
            vec![1, 2],
            vec![0.5, 0.7, 0.7, 0.5, 0.6, 0.6],
        )
        .unwrap();
        let result = best_vs_worst(&grid, Factor::WeightInit).unwrap();
        assert_eq!((result.best_seed, result.worst_seed), (7, 5));
    }

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

    fn finished_grid(rows: &[u64], columns: &[u64], missing: &[(u64, u64)]) -> Vec<TrialOutcome> {
        let mut trials = Vec::new();
        for &wi in rows {
            for &data_order in columns {
                let score = (!missing.contains(&(wi, data_order)))
                    .then(|| 0.5 + 0.01 * (wi + 3 * data_order) as f64);
                trials.push(trial(wi, data_order, score));
            }
        }
        trials
    }

    #[test]
    fn incomplete_grid_drops_the_most_missing_line_first() {
        // Row 4 misses two cells and goes first; then row 2 and column 30 each miss one cell, and column 30 is
        // dropped because it holds fewer present cells (2 vs 3), which keeps a 3 × 3 grid.
        let trials = finished_grid(
            &[1, 2, 3, 4],
            &[10, 20, 30, 40],
            &[(4, 10), (4, 20), (2, 30)],
        );
        let selection = select_complete_grid(&trials).unwrap();
        assert_eq!(selection.grid.wi_seeds(), &[1, 2, 3]);
        assert_eq!(selection.grid.do_seeds(), &[10, 20, 40]);
        assert_eq!(
            (
                selection.all_wi_seeds,
                selection.all_do_seeds,
                selection.missing_cells
            ),
            (4, 4, 3)
        );
        assert_eq!(
            (
                selection.trials_used,
                selection.finished_trials_left_out,
                selection.duplicate_trials
            ),
            (9, 4, 0)
        );
        // The order of the trials must not matter.
        let mut reversed = trials.clone();
        reversed.reverse();
        assert_eq!(select_complete_grid(&reversed).unwrap(), selection);
    }

    #[test]
    fn incomplete_grid_tie_breaks() {
        // One missing cell (2, 20): row 2 and column 20 tie on missing (1) and present (2) cells: the row goes.
        let selection =
            select_complete_grid(&finished_grid(&[1, 2, 3], &[10, 20, 30], &[(2, 20)])).unwrap();
        assert_eq!(
            (selection.grid.wi_seeds(), selection.grid.do_seeds()),
            (&[1, 3][..], &[10, 20, 30][..])
        );
        // Missing (1, 10) and (3, 30): rows 1 and 3 tie completely and the larger seed (3) goes; then column 10
        // (1 present cell) goes before row 1 (2 present cells).
        let selection = select_complete_grid(&finished_grid(
            &[1, 2, 3],
            &[10, 20, 30],
            &[(1, 10), (3, 30)],
        ))
        .unwrap();
        assert_eq!(
            (selection.grid.wi_seeds(), selection.grid.do_seeds()),
            (&[1, 2][..], &[20, 30][..])
        );
        assert_eq!(
            (selection.trials_used, selection.finished_trials_left_out),
            (4, 3)
        );
    }

    #[test]
    fn incomplete_grid_adds_back_lines_that_became_complete() {
        // Found by a randomized search over small grids: the greedy phase ends with WI {3, 5} × DO {10, 20, 60},
        // having dropped DO 50 early for its missing cells in WI rows 1 and 4, which were dropped later. DO 50 is
        // then complete over the kept rows, and the add-back pass must restore it (8 cells instead of 6).
        let missing = [
            (0, 0),
            (0, 3),
            (0, 4),
            (1, 0),
            (1, 2),
            (1, 5),
            (2, 2),
            (3, 1),
            (3, 3),
            (3, 4),
            (4, 3),
        ];
        let missing: Vec<(u64, u64)> = missing
            .iter()
            .map(|&(r, c)| (r + 1, (c + 1) * 10))
            .collect();
        let trials = finished_grid(&[1, 2, 3, 4, 5], &[10, 20, 30, 40, 50, 60], &missing);
        let selection = select_complete_grid(&trials).unwrap();
        assert_eq!(selection.grid.wi_seeds(), &[3, 5]);
        assert_eq!(selection.grid.do_seeds(), &[10, 20, 50, 60]);
        assert_maximal(&trials, &selection);
    }

    /// No dropped seed has a finished trial in every kept cell of its line (else the greedy wasted data).
    fn assert_maximal(trials: &[TrialOutcome], selection: &GridSelection) {
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

    #[test]
    fn incomplete_grid_errors_say_why() {
        let reason =
            select_complete_grid(&[trial(1, 1, None), trial(1, 2, Some(f64::NAN))]).unwrap_err();
        assert!(
            reason.contains("no trial has a finite final score"),
            "{reason}"
        );
        let one_row = [
            trial(1, 1, Some(0.5)),
            trial(1, 2, Some(0.6)),
            trial(2, 1, None),
        ];
        let reason = select_complete_grid(&one_row).unwrap_err();
        assert!(reason.contains("1 WI x 2 DO"), "{reason}");
        let statistics = compute(&one_row);
        assert_eq!(
            (statistics.grid, statistics.grid_unavailable_reason),
            (None, Some(reason))
        );
    }

    #[test]
    fn duplicate_cells_are_averaged_and_counted() {
        let mut trials = finished_grid(&[1, 2], &[1, 2], &[]);
        trials.push(trial(1, 1, Some(0.0)));
        trials.push(trial(1, 1, Some(1.0)));
        let selection = select_complete_grid(&trials).unwrap();
        let first = 0.5 + 0.01 * 4.0;
        assert_close(
            selection.grid.row(0)[0],
            (first + 0.0 + 1.0) / 3.0,
            1e-12,
            "cell mean",
        );
        assert_eq!(
            (
                selection.trials_used,
                selection.duplicate_trials,
                selection.finished_trials_left_out
            ),
            (6, 2, 0)
        );
    }

    #[test]
    fn early_vs_final_groups_by_progress_and_uses_finished_trials() {
        let finals = [0.70, 0.80, 0.75, 0.90];
        let mut trials: Vec<TrialOutcome> = finals
            .iter()
            .enumerate()
            .map(|(i, &score)| {
                let i = i as f64;
                // 0.1 + 0.2 is 0.30000000000000004 in floating point: it must group with 0.3.
                let early = if i < 2.0 { 0.1 + 0.2 } else { 0.3 };
                TrialOutcome {
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
        trials.push(TrialOutcome {
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
        let mut trials: Vec<TrialOutcome> = (0..900u64)
            .map(|i| TrialOutcome {
                evals: (0..3)
                    .map(|k| ((1 + (i / 3) * 3 + k) as f64 / 1000.0, i as f64))
                    .collect(),
                ..trial(i, i, Some(i as f64))
            })
            .collect();
        trials.extend((0..4u64).map(|i| TrialOutcome {
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

    #[test]
    fn compute_accounting_and_the_paper_formula() {
        let trials = [
            TrialOutcome {
                steps_done: 1000,
                total_steps: 1000,
                ..trial(1, 1, Some(0.9))
            },
            TrialOutcome {
                steps_done: 250,
                total_steps: 1000,
                ..trial(1, 2, None)
            },
            TrialOutcome {
                steps_done: 250,
                total_steps: 1000,
                ..trial(2, 1, None)
            },
            TrialOutcome {
                steps_done: 500,
                total_steps: 1000,
                ..trial(2, 2, None)
            },
        ];
        let accounting = compute_accounting(&trials);
        assert_eq!(
            (
                accounting.trials,
                accounting.steps_spent,
                accounting.steps_without_discarding
            ),
            (4, 2000, 4000)
        );
        assert_eq!(accounting.saving_fraction, Some(0.5));
        assert_eq!(compute_accounting(&[]).saving_fraction, None);
        let huge = vec![
            TrialOutcome {
                steps_done: u64::MAX,
                total_steps: u64::MAX,
                ..trial(1, 1, None)
            };
            2
        ];
        assert_eq!(
            compute_accounting(&huge).steps_spent,
            u64::MAX,
            "saturates instead of overflowing"
        );

        // t = 10 trials started, decision at f = 0.25 of s = 1000 steps, p = 2 continued:
        // (10·0.25 + 2·0.75)·1000 = 4000 steps vs 10·1000 = 10000.
        let cost = rung_cost(10, 0.25, 2, 1000).unwrap();
        assert_eq!(
            (cost.with_early_stopping, cost.without_early_stopping),
            (4000.0, 10000.0)
        );
        assert_close(cost.saving_fraction.unwrap(), 0.6, 1e-12, "saving");
        assert_eq!(
            rung_cost(10, 1.0, 3, 1000).unwrap().saving_fraction,
            Some(0.0),
            "f = 1 stops nothing early"
        );
        assert!(rung_cost(10, 1.5, 2, 1000).is_none());
        assert!(rung_cost(10, f64::NAN, 2, 1000).is_none());
        assert!(
            rung_cost(2, 0.5, 3, 1000).is_none(),
            "cannot continue more than started"
        );
        assert_eq!(rung_cost(0, 0.5, 0, 1000).unwrap().saving_fraction, None);
    }

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
        let flat: Vec<TrialOutcome> = (0..3)
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
        let trials: Vec<TrialOutcome> = (0..25u64)
            .flat_map(|w| {
                (0..25u64).map(move |d| {
                    let score = 0.8 + 0.001 * ((w * 7 + d * 13) % 17) as f64;
                    TrialOutcome {
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

    fn arbitrary_trial() -> impl Strategy<Value = TrialOutcome> {
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
                |(wi_seed, do_seed, final_score, evals, steps_done, total_steps)| TrialOutcome {
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
