//! The seed statistics a sweep reports in its status (computed by the operator's engine).
//!
//! These are the analyses of Dodge et al. 2020 ("Fine-Tuning Pretrained Language Models: Weight Initializations,
//! Data Orders, and Early Stopping") over a weight-initialization (WI) seed × data-order (DO) seed grid, plus the
//! expected-maximum curve of Dodge et al. 2019 ("Show Your Work").
//!
//! Two rules hold for every type here, because they go into a Kubernetes status:
//! - **Every `f64` is finite.** JSON has no NaN or infinity, so a quantity that is undefined for the data (an F
//!   statistic whose residual variance is zero, a correlation with a constant variable, a p-value with no degrees of
//!   freedom) is an absent `Option` (the field is omitted from the JSON), never a NaN.
//! - **The size is bounded independently of the number of trials' evaluations**: nothing here is per trial; seed
//!   lists appear only for the sub-grid the grid analyses used, and the curves are capped by the engine.
//!
//! Standard deviations use `ddof = 1` (the sample standard deviation, divisor n − 1) unless a field says otherwise.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Everything the engine computes over a sweep's trials. Each part says which trials it used.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SweepStatistics {
    /// Trials given to the computation: finished or not.
    pub trials: u32,
    /// Trials with a finite final score (they trained to completion). These are the population of `scores` and
    /// `expectedMax`.
    pub finished_trials: u32,
    /// Trials that reported a final score that is not a finite number (NaN or infinite, e.g. a diverged run). They
    /// are treated as unfinished and counted here so that they do not vanish silently.
    pub invalid_final_scores: u32,
    /// Summary of the final scores of all finished trials; absent when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<ScoreSummary>,
    /// Expected maximum final score of n trials drawn with replacement from the finished trials, for increasing n:
    /// every n up to 1024 finished trials; beyond that every n up to 512, then geometrically spaced n ending at the
    /// number of finished trials. Empty when no trial finished.
    pub expected_max: Vec<ExpectedMaxPoint>,
    /// The WI × DO grid analyses (per-factor spread, two-way ANOVA, best-vs-worst seed ANOVAs), computed on the
    /// largest complete sub-grid the engine's greedy rule finds. Absent when no sub-grid of at least 2 × 2 seeds
    /// exists; `gridUnavailableReason` then says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<SeedGridStatistics>,
    /// Why `grid` is absent (absent when `grid` is present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid_unavailable_reason: Option<String>,
    /// Spearman rank correlation between the metric at an evaluation point and the final score, one entry per
    /// evaluation point (grouped by training progress) with at least 3 finished trials evaluated there, ascending
    /// progress.
    pub early_vs_final: Vec<RankCorrelationPoint>,
    /// Evaluation points with at least 3 finished trials that were left out of `earlyVsFinal` to bound the status
    /// size (the points with the fewest trials go first).
    pub early_vs_final_points_omitted: u32,
    /// Training steps the sweep spent versus what it would have spent without discarding trials early.
    pub compute: ComputeAccounting,
}

/// Summary of a set of final scores.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScoreSummary {
    /// Number of scores summarised.
    // Serialized as `trials`: a bare `n` key reads as the boolean false to YAML 1.1 parsers such as kubectl's.
    #[serde(rename = "trials")]
    pub n: u32,
    pub mean: f64,
    /// Sample standard deviation (ddof = 1); absent for a single score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    pub min: f64,
    pub max: f64,
}

/// One point of the expected-maximum curve (Dodge et al. 2019, as implemented in allentune's `samplemax`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedMaxPoint {
    /// Number of trials drawn (with replacement).
    // Serialized as `trials`: a bare `n` key reads as the boolean false to YAML 1.1 parsers such as kubectl's.
    #[serde(rename = "trials")]
    pub n: u32,
    /// Expected maximum final score over n draws.
    pub mean: f64,
    /// Variance of the maximum over n draws.
    pub variance: f64,
    /// Standard deviation of the maximum over n draws (the square root of `variance`). allentune reports this
    /// number under the key `var`.
    pub std: f64,
}

/// Grid analyses on a complete WI × DO sub-grid (one final score per cell).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SeedGridStatistics {
    /// WI seeds (rows) of the sub-grid used, ascending.
    pub wi_seeds: Vec<u64>,
    /// DO seeds (columns) of the sub-grid used, ascending.
    pub do_seeds: Vec<u64>,
    /// Distinct WI seeds among all trials (the full grid's rows, finished or not).
    pub all_wi_seeds: u32,
    /// Distinct DO seeds among all trials (the full grid's columns, finished or not).
    pub all_do_seeds: u32,
    /// Cells of the full grid (all WI seeds × all DO seeds) with no finished trial.
    pub missing_cells: u32,
    /// Finished trials whose cell is in the sub-grid.
    pub trials_used: u32,
    /// Finished trials whose cell is outside the sub-grid.
    pub finished_trials_left_out: u32,
    /// Finished trials that share their cell with an earlier finished trial (same WI and DO seed). A cell's value is
    /// the mean of its finished trials; this counts the trials beyond the first, over the whole grid.
    pub duplicate_trials: u32,
    /// Per-factor spread of the sub-grid's scores.
    pub spread: FactorSpread,
    /// Additive two-way ANOVA without replication on the sub-grid.
    pub anova: TwoWayAnova,
    /// The best and the worst WI seed (by mean over the sub-grid's DO seeds) compared by a one-way ANOVA.
    pub wi_best_vs_worst: BestVsWorst,
    /// The best and the worst DO seed (by mean over the sub-grid's WI seeds) compared by a one-way ANOVA.
    pub do_best_vs_worst: BestVsWorst,
}

/// How much of the variation comes from each factor (Dodge et al. 2020 §4).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FactorSpread {
    /// Delta degrees of freedom of every standard deviation here (1: divisor n − 1).
    pub ddof: u32,
    /// For each WI seed, the standard deviation of the scores across DO seeds; averaged over WI seeds.
    pub expected_std_due_to_do: f64,
    /// For each DO seed, the standard deviation of the scores across WI seeds; averaged over DO seeds.
    pub expected_std_due_to_wi: f64,
    /// Standard deviation of all the sub-grid's scores.
    pub std: f64,
}

/// Two-way ANOVA without replication (additive model: score = grand mean + WI effect + DO effect + residual).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TwoWayAnova {
    pub weight_init: AnovaEffect,
    pub data_order: AnovaEffect,
    pub residual: AnovaResidual,
    pub total_sum_of_squares: f64,
    pub total_df: u32,
}

/// One effect's row of an ANOVA table.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnovaEffect {
    pub sum_of_squares: f64,
    pub df: u32,
    pub mean_square: f64,
    /// The effect's mean square over the residual mean square. Absent when the residual mean square is zero (up to
    /// rounding): F is then infinite or 0/0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f: Option<f64>,
    /// P(F(df, residual df) ≥ f); absent when `f` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
}

/// The residual (within-groups) row of an ANOVA table.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnovaResidual {
    pub sum_of_squares: f64,
    pub df: u32,
    pub mean_square: f64,
}

/// One-way ANOVA over k groups.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OneWayAnova {
    /// Number of groups (k).
    pub groups: u32,
    /// Number of observations over all groups (N).
    pub observations: u32,
    /// Between-groups row: df = k − 1.
    pub between: AnovaEffect,
    /// Within-groups row: df = N − k.
    pub within: AnovaResidual,
}

/// The best and the worst seed of one factor compared by a one-way ANOVA on their scores across the other
/// factor's seeds (Dodge et al. 2020 §4.2).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BestVsWorst {
    pub best_seed: u64,
    pub best_mean: f64,
    pub worst_seed: u64,
    pub worst_mean: f64,
    pub anova: OneWayAnova,
}

/// Spearman rank correlation between the metric at one evaluation point and the final score.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RankCorrelationPoint {
    /// Training progress of the evaluation point, in (0, 1].
    pub progress: f64,
    /// Finished trials with an evaluation at this point.
    // Serialized as `trials`: a bare `n` key reads as the boolean false to YAML 1.1 parsers such as kubectl's.
    #[serde(rename = "trials")]
    pub n: u32,
    /// Spearman's rho (ties get average ranks); absent when either variable is constant over the n trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rho: Option<f64>,
    /// Two-sided p-value for rho = 0 from the t approximation with n − 2 df (0 when |rho| = 1); absent with `rho`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
}

/// Training steps spent by the sweep.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ComputeAccounting {
    /// Trials counted (all of them, finished or not).
    pub trials: u32,
    /// Sum over trials of the steps each trained.
    pub steps_spent: u64,
    /// What the same trials cost without early discarding: a full run for each trial that completed, was discarded
    /// or diverged, what it spent for each that failed or has not ended (so only discards count as savings).
    pub steps_without_discarding: u64,
    /// 1 − stepsSpent / stepsWithoutDiscarding; absent when stepsWithoutDiscarding is 0. Negative when trials
    /// trained past their total steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saving_fraction: Option<f64>,
}
