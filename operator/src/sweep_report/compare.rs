//! `seedsweep report --compare`: several sweeps side by side — a row of headline numbers each, their
//! expected-best-score curves on one axis and which is higher from which n on, and their weight-init seeds ranked
//! across them. Every number is the engine's (its status and statistics, `transfer::rank_weight_init`); this
//! module only gathers them and orders the curves. Serialized as `compare.json`.

pub mod figure;
pub mod page;

use super::findings::ALPHA;
use super::model::{self, ended};
use super::source::Loaded;
use crate::engine::transfer::{self, SourceSweep, WiRanking};
use seedsweep_crds::statistics::{
    AnovaEffect, ExpectedMaxPoint, RankCorrelationPoint, ScoreSummary, SweepStatistics,
};
use seedsweep_crds::sweep::{BestTrial, FromSweeps, ObjectiveSpec, SweepPhase, TrialCounts};
use seedsweep_crds::task::{MetricName, Task};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Raised whenever `compare.json` changes shape.
pub const COMPARE_FORMAT_VERSION: u32 = 1;

/// How many of the best weight-init seeds the suggested `fromSweeps` takes (all of them when fewer are ranked).
pub const SUGGESTED_TOP: usize = 3;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub format_version: u32,
    /// The objective metric every compared sweep uses.
    pub metric: MetricName,
    /// In the order given.
    pub sweeps: Vec<ComparedSweep>,
    /// One per pair of sweeps, in the order given (the first with the second, the first with the third, ...).
    pub curve_orders: Vec<CurveOrder>,
    /// The weight-init seeds ranked across the sweeps; absent when they cannot be (`weightInitUnavailable`).
    pub weight_init: Option<WeightInitRanking>,
    pub weight_init_unavailable: Option<String>,
    /// What this comparison cannot show yet, and why, in plain words.
    pub missing: Vec<String>,
}

/// One sweep's headline numbers, each the engine's.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComparedSweep {
    pub name: String,
    /// Where it was read from.
    pub origin: String,
    pub task: Task,
    pub objective: ObjectiveSpec,
    pub phase: SweepPhase,
    pub counts: TrialCounts,
    /// Trials with a finite final score (`statistics.finishedTrials`).
    pub finished_trials: u32,
    pub best_trial: Option<BestTrial>,
    /// The finished trials' final scores (`statistics.scores`).
    pub scores: Option<ScoreSummary>,
    /// Spreads and two-way ANOVA of the complete WI × DO sub-grid; absent with `seedEffectsUnavailable`.
    pub seed_effects: Option<SeedEffects>,
    pub seed_effects_unavailable: Option<String>,
    /// Spearman's rho between the score at the earliest evaluation point (before the end) and the final score.
    pub earliest_early_vs_final: Option<RankCorrelationPoint>,
    /// `statistics.compute.savingFraction`.
    pub saving_fraction: Option<f64>,
    /// `statistics.expectedMax`: the expected best of n finished trials.
    pub expected_max: Vec<ExpectedMaxPoint>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedEffects {
    pub expected_std_due_to_wi: f64,
    pub expected_std_due_to_do: f64,
    pub weight_init: AnovaEffect,
    pub data_order: AnovaEffect,
    /// p < [`ALPHA`]; absent where p is undefined.
    pub weight_init_significant: Option<bool>,
    pub data_order_significant: Option<bool>,
}

/// Which of two sweeps' expected-best curves is higher, over the n both have.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CurveOrder {
    pub a: String,
    pub b: String,
    /// How many n both curves have, and the first and last of them.
    pub common_points: usize,
    pub first_n: Option<u32>,
    pub last_n: Option<u32>,
    pub verdict: Verdict,
    /// How often the higher curve changes along the common n (n where the curves are equal skipped).
    pub crossings: usize,
    /// The verdict in a sentence.
    pub statement: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Verdict {
    /// A curve is empty: its sweep has no finished trial.
    NoCommonN,
    /// Equal at every common n.
    Equal,
    /// `higher` is above `lower` at every common n.
    AboveAtEveryN { higher: String, lower: String },
    /// `higher` is above `lower` for every common n ≥ `from`, and not at the common n just before it.
    AboveFrom {
        higher: String,
        lower: String,
        from: u32,
    },
    /// The curves differ somewhere but are equal for every common n ≥ `from`: they cross last there.
    EqualFrom { from: u32 },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightInitRanking {
    /// `transfer::rank_weight_init` of the sweeps, in the order given.
    pub ranking: WiRanking,
    /// The seed ranked best across the sweeps.
    pub best_seed: u64,
    /// What a new sweep's `spec.seeds.weightInit.fromSweeps` would say to reuse the top seeds.
    pub from_sweeps: FromSweeps,
}

/// Sweeps that cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompareError {
    /// Expected-best curves need one axis; `uses` says each sweep's metric.
    #[error("--compare needs sweeps on one metric: {uses}")]
    Metrics { uses: String },
    #[error(
        "--compare needs sweeps of different names: {first} and {second} both hold sweep {name} (the comparison \
         and weightInit.fromSweeps tell sweeps apart by name)"
    )]
    NamedAlike {
        name: String,
        first: String,
        second: String,
    },
}

impl Comparison {
    /// Whether a sweep has no trial trained to completion: the comparison is then partial.
    pub fn is_partial(&self) -> bool {
        self.sweeps.iter().any(|s| s.finished_trials == 0)
    }
}

/// Compares the sweeps, in the order given.
pub fn build(sweeps: &[Loaded]) -> Result<Comparison, CompareError> {
    let metric = comparable(sweeps)?;
    let compared: Vec<ComparedSweep> = sweeps.iter().map(compared).collect();
    let mut curve_orders = Vec::new();
    for (i, a) in compared.iter().enumerate() {
        for b in &compared[i + 1..] {
            curve_orders.push(curve_order(
                (&a.name, &a.expected_max),
                (&b.name, &b.expected_max),
            ));
        }
    }
    let sources: Vec<SourceSweep> = (sweeps.iter())
        .map(|l| SourceSweep {
            name: &l.state.name,
            spec: &l.spec,
            state: &l.state,
        })
        .collect();
    let (weight_init, weight_init_unavailable) = match transfer::rank_weight_init(&sources) {
        Ok(ranking) => match weight_init_ranking(ranking) {
            Some(ranked) => (Some(ranked), None),
            None => (None, Some("no weight-init seed has a score".to_string())),
        },
        Err(e) => (None, Some(e.to_string())),
    };
    let missing = missing(&compared, weight_init_unavailable.as_deref());
    Ok(Comparison {
        format_version: COMPARE_FORMAT_VERSION,
        metric,
        sweeps: compared,
        curve_orders,
        weight_init,
        weight_init_unavailable,
        missing,
    })
}

/// The common metric, when the sweeps have one and distinct names.
fn comparable(sweeps: &[Loaded]) -> Result<MetricName, CompareError> {
    for (i, a) in sweeps.iter().enumerate() {
        if let Some(b) = sweeps[i + 1..]
            .iter()
            .find(|b| b.state.name == a.state.name)
        {
            return Err(CompareError::NamedAlike {
                name: a.state.name.clone(),
                first: a.origin.clone(),
                second: b.origin.clone(),
            });
        }
    }
    let metric = sweeps
        .first()
        .map_or(MetricName::Accuracy, |s| s.state.objective.metric);
    if sweeps.iter().any(|s| s.state.objective.metric != metric) {
        let uses: Vec<String> = (sweeps.iter())
            .map(|s| format!("{} uses {}", s.state.name, s.state.objective.metric))
            .collect();
        return Err(CompareError::Metrics {
            uses: uses.join(", "),
        });
    }
    Ok(metric)
}

fn compared(loaded: &Loaded) -> ComparedSweep {
    let status = model::engine_status(loaded);
    let statistics: SweepStatistics =
        (status.statistics.clone()).unwrap_or_else(|| loaded.state.statistics());
    let significant = |e: &AnovaEffect| e.p_value.map(|p| p < ALPHA);
    let seed_effects = statistics.grid.as_ref().map(|g| SeedEffects {
        expected_std_due_to_wi: g.spread.expected_std_due_to_wi,
        expected_std_due_to_do: g.spread.expected_std_due_to_do,
        weight_init_significant: significant(&g.anova.weight_init),
        data_order_significant: significant(&g.anova.data_order),
        weight_init: g.anova.weight_init.clone(),
        data_order: g.anova.data_order.clone(),
    });
    // The final evaluation predicts itself (rho 1): the earliest point before it is the informative one.
    let earliest_early_vs_final = (statistics.early_vs_final.iter())
        .find(|p| p.progress < 1.0 - 1e-9)
        .cloned();
    ComparedSweep {
        name: loaded.state.name.clone(),
        origin: loaded.origin.clone(),
        task: loaded.spec.task.name,
        objective: loaded.state.objective,
        phase: status.phase,
        counts: status.counts,
        finished_trials: statistics.finished_trials,
        best_trial: status.best_trial.clone(),
        scores: statistics.scores.clone(),
        seed_effects,
        seed_effects_unavailable: statistics.grid_unavailable_reason.clone(),
        earliest_early_vs_final,
        saving_fraction: statistics.compute.saving_fraction,
        expected_max: statistics.expected_max,
    }
}

/// Orders two expected-best curves over the n both have (beyond 1024 finished trials the engine reports only
/// some n, so one curve may have points the other lacks).
pub fn curve_order(
    (a, a_curve): (&str, &[ExpectedMaxPoint]),
    (b, b_curve): (&str, &[ExpectedMaxPoint]),
) -> CurveOrder {
    let b_at: BTreeMap<u32, f64> = b_curve.iter().map(|p| (p.n, p.mean)).collect();
    let common: Vec<(u32, Ordering)> = (a_curve.iter())
        .filter_map(|p| b_at.get(&p.n).map(|&m| (p.n, order(p.mean, m))))
        .collect();
    let names = |o: Ordering| match o {
        Ordering::Less => (b.to_string(), a.to_string()),
        _ => (a.to_string(), b.to_string()),
    };
    let (first_n, last_n) = (common.first().map(|c| c.0), common.last().map(|c| c.0));
    let strict: Vec<Ordering> = (common.iter()).map(|c| c.1).filter(|o| o.is_ne()).collect();
    let crossings = strict.windows(2).filter(|w| w[0] != w[1]).count();
    let (verdict, statement) = match (first_n, last_n, common.last()) {
        (Some(first), Some(last), Some(&(_, end))) => {
            // The run of points at the end where the order is what it is at the last n.
            let from = (common.iter().rev())
                .take_while(|c| c.1 == end)
                .last()
                .map_or(last, |c| c.0);
            let range = |from: u32| format!("{from}..{last}");
            if end.is_eq() && from == first {
                (
                    Verdict::Equal,
                    format!("{a} and {b} are equal at every n ({})", range(first)),
                )
            } else if end.is_eq() {
                (
                    Verdict::EqualFrom { from },
                    format!(
                        "the curves of {a} and {b} cross last at n = {from} (equal from there on, {})",
                        range(from)
                    ),
                )
            } else {
                let (higher, lower) = names(end);
                if from == first {
                    let statement =
                        format!("{higher} is above {lower} at every n ({})", range(first));
                    (Verdict::AboveAtEveryN { higher, lower }, statement)
                } else {
                    let statement = format!(
                        "{higher} is above {lower} for every n ≥ {from} ({})",
                        range(from)
                    );
                    (
                        Verdict::AboveFrom {
                            higher,
                            lower,
                            from,
                        },
                        statement,
                    )
                }
            }
        }
        _ => {
            let empty: Vec<&str> = [(a, a_curve), (b, b_curve)]
                .iter()
                .filter(|(_, c)| c.is_empty())
                .map(|(name, _)| *name)
                .collect();
            (
                Verdict::NoCommonN,
                format!(
                    "{a} and {b} cannot be compared: {}",
                    match empty.as_slice() {
                        [one] => format!("{one} has no trial trained to completion"),
                        _ => "neither has a trial trained to completion".to_string(),
                    }
                ),
            )
        }
    };
    CurveOrder {
        a: a.to_string(),
        b: b.to_string(),
        common_points: common.len(),
        first_n,
        last_n,
        verdict,
        crossings,
        statement,
    }
}

/// `x` against `y`; differences within rounding of the engine's sums (relative 1e-12) are no difference.
fn order(x: f64, y: f64) -> Ordering {
    let tolerance = 1e-12 * x.abs().max(y.abs()).max(1.0);
    if (x - y).abs() <= tolerance {
        Ordering::Equal
    } else if x > y {
        Ordering::Greater
    } else {
        Ordering::Less
    }
}

fn weight_init_ranking(ranking: WiRanking) -> Option<WeightInitRanking> {
    let best_seed = ranking.seeds.first()?.seed;
    let top = ranking.seeds.len().min(SUGGESTED_TOP) as u32;
    Some(WeightInitRanking {
        from_sweeps: FromSweeps {
            sweeps: ranking.sweeps.clone(),
            top,
        },
        best_seed,
        ranking,
    })
}

/// What the comparison cannot show yet, each in a sentence.
fn missing(sweeps: &[ComparedSweep], weight_init_unavailable: Option<&str>) -> Vec<String> {
    let mut missing = Vec::new();
    for s in sweeps {
        let c = &s.counts;
        if !ended(s.phase) {
            missing.push(format!(
                "Sweep {} is still running ({} of {} trials ended): its numbers cover the trials finished so far.",
                s.name,
                c.succeeded + c.discarded + c.diverged + c.failed,
                c.total
            ));
        }
        if s.finished_trials == 0 {
            missing.push(format!(
                "Sweep {} has no trial trained to completion yet: without final scores it has no expected-best \
                 curve to compare, no mean score, no seed effects and no early-vs-final correlation.",
                s.name
            ));
        } else if let Some(reason) = &s.seed_effects_unavailable {
            missing.push(format!(
                "Sweep {} has no seed-effect analysis (spreads, ANOVAs): it needs a complete grid of at least 2 × 2 \
                 finished trials ({reason}).",
                s.name
            ));
        }
    }
    if let Some(reason) = weight_init_unavailable {
        missing.push(format!(
            "The weight-init seeds are not ranked across the sweeps: {reason}."
        ));
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A curve with `means` at n = 1, 2, ...
    fn curve(means: &[f64]) -> Vec<ExpectedMaxPoint> {
        (means.iter().enumerate())
            .map(|(i, &mean)| ExpectedMaxPoint {
                n: i as u32 + 1,
                mean,
                variance: 0.0,
                std: 0.0,
            })
            .collect()
    }

    fn order_of(a: &[f64], b: &[f64]) -> CurveOrder {
        curve_order(("a", &curve(a)), ("b", &curve(b)))
    }

    #[test]
    fn a_curve_above_at_every_n_is_named_first() {
        let o = order_of(&[0.5, 0.6, 0.7], &[0.6, 0.7, 0.8]);
        assert_eq!(o.statement, "b is above a at every n (1..3)");
        assert_eq!(
            o.verdict,
            Verdict::AboveAtEveryN {
                higher: "b".into(),
                lower: "a".into()
            }
        );
        assert_eq!((o.common_points, o.crossings), (3, 0));
    }

    #[test]
    fn the_last_crossing_says_from_which_n_on() {
        // a is above at n = 1, 2, b at 3, a again from 4 on.
        let o = order_of(&[0.7, 0.75, 0.78, 0.9, 0.95], &[0.6, 0.7, 0.8, 0.85, 0.9]);
        assert_eq!(o.statement, "a is above b for every n ≥ 4 (4..5)");
        assert_eq!(
            o.verdict,
            Verdict::AboveFrom {
                higher: "a".into(),
                lower: "b".into(),
                from: 4
            }
        );
        assert_eq!(o.crossings, 2);
        // A tie before the last run is not part of it.
        let o = order_of(&[0.5, 0.6, 0.8], &[0.6, 0.6, 0.7]);
        assert_eq!(o.statement, "a is above b for every n ≥ 3 (3..3)");
        assert_eq!(o.crossings, 1);
    }

    #[test]
    fn equal_curves_and_curves_that_end_equal() {
        let o = order_of(&[0.5, 0.6], &[0.5, 0.6 + 1e-15]);
        assert_eq!(
            (o.verdict, o.statement.as_str()),
            (Verdict::Equal, "a and b are equal at every n (1..2)")
        );
        let o = order_of(&[0.5, 0.7, 0.8], &[0.6, 0.7, 0.8]);
        assert_eq!(o.verdict, Verdict::EqualFrom { from: 2 });
        assert_eq!(
            o.statement,
            "the curves of a and b cross last at n = 2 (equal from there on, 2..3)"
        );
    }

    #[test]
    fn only_the_n_both_curves_have_are_compared() {
        // Past 1024 finished trials the engine reports some n only: b lacks n = 2 and has n = 9.
        let a = curve(&[0.5, 0.9, 0.6]);
        let mut b = curve(&[0.6, 0.1, 0.55]);
        b.remove(1);
        b.push(ExpectedMaxPoint {
            n: 9,
            mean: 0.0,
            variance: 0.0,
            std: 0.0,
        });
        let o = curve_order(("a", &a), ("b", &b));
        assert_eq!(
            (o.common_points, o.first_n, o.last_n),
            (2, Some(1), Some(3))
        );
        assert_eq!(o.statement, "a is above b for every n ≥ 3 (3..3)");
    }

    #[test]
    fn an_empty_curve_is_named() {
        let o = order_of(&[0.5], &[]);
        assert_eq!(o.verdict, Verdict::NoCommonN);
        assert_eq!(
            o.statement,
            "a and b cannot be compared: b has no trial trained to completion"
        );
        assert_eq!(
            order_of(&[], &[]).statement,
            "a and b cannot be compared: neither has a trial trained to completion"
        );
    }
}
