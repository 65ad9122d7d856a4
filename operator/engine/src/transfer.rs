//! Weight-init seeds that transfer between sweeps. Dodge et al. (2020, §4.2) found a weight-init seed among the
//! best on all four of their tasks; this ranks the WI seeds of several sweeps by their mean rank across them, for
//! `seedsweep report --compare`, and resolves a spec's `weightInit.fromSweeps` to the top ones. Pure: the executors
//! read the earlier sweeps (state directories, SeedSweep statuses) and pass their states in.

use crate::state::SweepState;
use crate::stats::average_ranks;
use seedsweep_crds::sweep::{Direction, SeedSweepSpec};
use serde::Serialize;
use std::collections::BTreeMap;

/// One earlier sweep, by name, with its spec and state.
pub struct SourceSweep<'a> {
    pub name: &'a str,
    pub spec: &'a SeedSweepSpec,
    pub state: &'a SweepState,
}

/// WI seeds ranked across sweeps, best first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WiRanking {
    /// The sweeps, in the order given; `SeedRank::ranks` follows it.
    pub sweeps: Vec<String>,
    pub seeds: Vec<SeedRank>,
}

/// One WI seed's standing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedRank {
    pub seed: u64,
    /// Sweeps in which the seed has a scored trial.
    pub sweeps_ranked: usize,
    /// Mean over those sweeps of the seed's relative rank, (rank − 1) / (seeds ranked − 1): 0 for the best seed
    /// of a sweep, 1 for its worst, so sweeps with different numbers of seeds weigh the same.
    pub mean_relative_rank: f64,
    /// The seed's place in each sweep (`None` where it has no scored trial).
    pub ranks: Vec<Option<RankInSweep>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RankInSweep {
    /// 1 for the best seed; ties share the mean of the ranks they span.
    pub rank: f64,
    /// Seeds ranked in that sweep.
    pub of: usize,
    /// The seed's score there: the mean over its trials of their latest objective (the final score of a trial
    /// that trained to completion, else its last evaluation: what the report's heat map shows).
    pub score: f64,
    /// Trials that score is the mean of.
    pub trials: usize,
}

/// Why a set of sweeps cannot be ranked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("sweep {sweep} has not finished ({unfinished} of its {trials} trials have not ended)")]
    Unfinished {
        sweep: String,
        unfinished: usize,
        trials: usize,
    },
    #[error("sweep {sweep} has no trial with a score to rank its weight-init seeds by")]
    NoScores { sweep: String },
    #[error(
        "spec.seeds.weightInit.fromSweeps.top asks for {top} seeds, but the sweeps rank only {ranked} ({seeds:?})"
    )]
    TooFewSeeds {
        top: usize,
        ranked: usize,
        seeds: Vec<u64>,
    },
}

/// Whether every trial of a sweep has ended, by the engine's own rule.
pub fn unfinished_trials(spec: &SeedSweepSpec, state: &SweepState) -> usize {
    let decisions = state.decide(&state.rules(spec, spec.parallelism.max(1) as usize));
    if decisions.complete {
        0
    } else {
        (decisions.verdicts.iter())
            .filter(|v| !v.phase.is_terminal())
            .count()
            .max(1)
    }
}

/// Ranks the WI seeds of `sweeps`, which must all have finished. Within a sweep the seeds are ordered by their
/// score (the sweep's objective direction); across sweeps by the mean relative rank, seeds ranked in more sweeps
/// first, then the lower seed.
pub fn rank_weight_init(sweeps: &[SourceSweep]) -> Result<WiRanking, TransferError> {
    let mut per_sweep: Vec<BTreeMap<u64, RankInSweep>> = Vec::with_capacity(sweeps.len());
    for source in sweeps {
        let unfinished = unfinished_trials(source.spec, source.state);
        if unfinished > 0 {
            return Err(TransferError::Unfinished {
                sweep: source.name.to_string(),
                unfinished,
                trials: source.state.trials.len(),
            });
        }
        let scores = wi_scores(source.state);
        if scores.is_empty() {
            return Err(TransferError::NoScores {
                sweep: source.name.to_string(),
            });
        }
        per_sweep.push(ranks_within(&scores, source.state.objective.direction));
    }
    let mut seeds: Vec<u64> = per_sweep.iter().flat_map(|m| m.keys().copied()).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let mut ranked: Vec<SeedRank> = seeds
        .into_iter()
        .map(|seed| {
            let ranks: Vec<Option<RankInSweep>> =
                per_sweep.iter().map(|m| m.get(&seed).copied()).collect();
            let relative: Vec<f64> = ranks
                .iter()
                .flatten()
                .map(|r| {
                    if r.of > 1 {
                        (r.rank - 1.0) / (r.of - 1) as f64
                    } else {
                        0.0
                    }
                })
                .collect();
            SeedRank {
                seed,
                sweeps_ranked: relative.len(),
                mean_relative_rank: relative.iter().sum::<f64>() / relative.len() as f64,
                ranks,
            }
        })
        .collect();
    ranked.sort_by(|a, b| {
        (b.sweeps_ranked.cmp(&a.sweeps_ranked))
            .then(a.mean_relative_rank.total_cmp(&b.mean_relative_rank))
            .then(a.seed.cmp(&b.seed))
    });
    Ok(WiRanking {
        sweeps: sweeps.iter().map(|s| s.name.to_string()).collect(),
        seeds: ranked,
    })
}

/// The spec a plan is made from: `weightInit.fromSweeps` resolved to the top seeds of `ranking` (kept in `values`
/// beside `fromSweeps`, which stays as written). A spec without `fromSweeps` comes back unchanged.
pub fn resolve(spec: &SeedSweepSpec, ranking: &WiRanking) -> Result<SeedSweepSpec, TransferError> {
    let mut resolved = spec.clone();
    let Some(list) = resolved.seeds.weight_init.as_mut() else {
        return Ok(resolved);
    };
    let Some(from) = &list.from_sweeps else {
        return Ok(resolved);
    };
    let top = from.top as usize;
    if ranking.seeds.len() < top {
        return Err(TransferError::TooFewSeeds {
            top,
            ranked: ranking.seeds.len(),
            seeds: ranking.seeds.iter().map(|s| s.seed).collect(),
        });
    }
    list.values = Some(ranking.seeds[..top].iter().map(|s| s.seed).collect());
    Ok(resolved)
}

/// Each WI seed's mean latest objective over its trials with a finite one.
fn wi_scores(state: &SweepState) -> BTreeMap<u64, (f64, usize)> {
    let metric = state.objective.metric;
    let mut sums: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
    for (planned, trial) in state.plan.trials.iter().zip(&state.trials) {
        let latest = (trial.final_metrics.map(|m| m.get(metric)))
            .or_else(|| trial.evals.last().map(|e| e.score))
            .filter(|s| s.is_finite());
        if let Some(score) = latest {
            let entry = sums.entry(planned.weight_init).or_insert((0.0, 0));
            entry.0 += score;
            entry.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(seed, (sum, n))| (seed, (sum / n as f64, n)))
        .collect()
}

/// Ranks 1..n within one sweep, 1 the best for its direction, ties averaged.
fn ranks_within(
    scores: &BTreeMap<u64, (f64, usize)>,
    direction: Direction,
) -> BTreeMap<u64, RankInSweep> {
    let values: Vec<f64> = scores.values().map(|(s, _)| *s).collect();
    let ascending = average_ranks(&values);
    let n = values.len();
    scores
        .iter()
        .zip(ascending)
        .map(|((&seed, &(score, trials)), r)| {
            let rank = match direction {
                Direction::Maximize => (n + 1) as f64 - r,
                Direction::Minimize => r,
            };
            (
                seed,
                RankInSweep {
                    rank,
                    of: n,
                    score,
                    trials,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whatif::lock_step::{self, EVALS};
    use seedsweep_crds::sweep::{FromSweeps, SeedList, SeedSweep};

    /// A sweep over `wi` × DO {1, 2} without rungs, objective acc_and_f1 in `direction`.
    fn spec(wi: &[u64], direction: &str) -> SeedSweepSpec {
        let text = format!(
            r#"
apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata: {{name: t}}
spec:
  task: {{name: mrpc, dataDir: /data}}
  model: {{path: /model}}
  seeds: {{weightInit: {{values: {wi:?}}}, dataOrder: {{values: [1, 2]}}}}
  objective: {{metric: acc_and_f1, direction: {direction}}}
  parallelism: 2
"#
        );
        serde_yaml::from_str::<SeedSweep>(&text).unwrap().spec
    }

    /// The sweep trained to completion through the engine, trial (wi, do) ending at `score(wi)`.
    fn finished(
        wi: &[u64],
        direction: &str,
        score: impl Fn(u64) -> f64,
    ) -> (SeedSweepSpec, SweepState) {
        let spec = spec(wi, direction);
        let plan = crate::plan::plan("t", &spec);
        let state =
            lock_step::run_sweep("t", &spec, EVALS, |i, _| score(plan.trials[i].weight_init));
        (spec, state)
    }

    fn source<'a>(name: &'a str, sweep: &'a (SeedSweepSpec, SweepState)) -> SourceSweep<'a> {
        SourceSweep {
            name,
            spec: &sweep.0,
            state: &sweep.1,
        }
    }

    #[test]
    fn ranks_by_mean_relative_rank_across_sweeps() {
        // Sweep a: 3 > 2 > 1. Sweep b: 4 > 2 > 3 > 1 (seed 4 is only in b).
        let a = finished(&[1, 2, 3], "maximize", |w| w as f64 / 10.0);
        let b = finished(&[1, 2, 3, 4], "maximize", |w| {
            [0.0, 0.1, 0.5, 0.4, 0.9][w as usize]
        });
        let ranking = rank_weight_init(&[source("a", &a), source("b", &b)]).unwrap();
        let order: Vec<u64> = ranking.seeds.iter().map(|s| s.seed).collect();
        // 3: (0 + 2/3)/2 = 1/3; 2: (1/2 + 1/3)/2 = 5/12; 1: (1 + 1)/2 = 1; 4 is ranked in one sweep only: last.
        assert_eq!(order, vec![3, 2, 1, 4]);
        let three = &ranking.seeds[0];
        assert!((three.mean_relative_rank - 1.0 / 3.0).abs() < 1e-12);
        assert!((ranking.seeds[1].mean_relative_rank - 5.0 / 12.0).abs() < 1e-12);
        let in_b = three.ranks[1].unwrap();
        assert_eq!((in_b.rank, in_b.of, in_b.trials), (3.0, 4, 2));
        assert!((in_b.score - 0.4).abs() < 1e-12);
        assert_eq!(ranking.seeds[3].ranks[0], None);
        assert_eq!(ranking.seeds[3].sweeps_ranked, 1);
        assert_eq!(ranking.sweeps, vec!["a", "b"]);
    }

    #[test]
    fn ties_share_their_ranks_and_a_minimised_objective_ranks_the_lowest_first() {
        let m = finished(&[1, 2, 3], "minimize", |w| if w == 3 { 0.2 } else { 0.5 });
        let ranking = rank_weight_init(&[source("m", &m)]).unwrap();
        let ranks: Vec<(u64, f64)> = (ranking.seeds.iter())
            .map(|s| (s.seed, s.ranks[0].unwrap().rank))
            .collect();
        assert_eq!(ranks, vec![(3, 1.0), (1, 2.5), (2, 2.5)]);
    }

    #[test]
    fn an_unfinished_sweep_or_one_without_scores_is_refused() {
        let (spec, state) = finished(&[1, 2], "maximize", |w| w as f64);
        let fresh = (spec.clone(), SweepState::new("t", &spec));
        let err = rank_weight_init(&[source("a", &fresh)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sweep a has not finished (4 of its 4 trials have not ended)"
        );
        let mut unscored = state.clone();
        for t in &mut unscored.trials {
            t.evals.clear();
            t.final_metrics = None;
        }
        let err = rank_weight_init(&[source("a", &(spec, unscored))]).unwrap_err();
        assert_eq!(err, TransferError::NoScores { sweep: "a".into() });
    }

    #[test]
    fn resolve_takes_the_top_seeds_keeps_the_spec_as_written_and_refuses_too_few() {
        let a = finished(&[5, 7, 9], "maximize", |w| -(w as f64));
        let ranking = rank_weight_init(&[source("a", &a)]).unwrap();
        let mut spec = a.0.clone();
        spec.seeds.weight_init = Some(SeedList {
            from_sweeps: Some(FromSweeps {
                sweeps: vec!["a".into()],
                top: 2,
            }),
            ..SeedList::default()
        });
        let resolved = resolve(&spec, &ranking).unwrap();
        assert_eq!(
            resolved.seeds.weight_init.as_ref().unwrap().values,
            Some(vec![5, 7])
        );
        assert_eq!(resolved.seeds.as_written(), spec.seeds);
        assert!(crate::state::plan_changes(&resolved, &spec).is_empty());
        let plan = crate::plan::plan("t", &resolved);
        assert_eq!(plan.trials.len(), 4);
        spec.seeds
            .weight_init
            .as_mut()
            .unwrap()
            .from_sweeps
            .as_mut()
            .unwrap()
            .top = 4;
        let err = resolve(&spec, &ranking).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.seeds.weightInit.fromSweeps.top asks for 4 seeds, but the sweeps rank only 3 ([5, 7, 9])"
        );
    }
}
