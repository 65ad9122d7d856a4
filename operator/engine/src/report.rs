//! A sweep's status (the CRD's status shape) and its human-readable summary, shared by `seedsweep run`,
//! `seedsweep status` and the operator.

use crate::policy::Decisions;
use crate::state::SweepState;
use seedsweep_crds::sweep::{Direction, SeedSweepStatus, SweepPhase, TrialPhase};
use std::fmt::Write;

/// The most trial records a status written to the cluster holds: about 0.4 MB, well within etcd's 1.5 MiB object
/// limit beside the statistics, and every trial of the paper's 25 × 25 grid.
pub const MAX_TRIAL_RECORDS: usize = 1000;

/// The status with a record for every launched trial (`seedsweep run`'s status file, `seedsweep report`).
pub fn status(state: &SweepState, decisions: &Decisions) -> SeedSweepStatus {
    bounded_status(state, decisions, usize::MAX)
}

/// The status with records for at most `max_records` launched trials ([`records_to_keep`] says which), the others
/// counted in `trialsOmitted`: what the operator writes to the cluster, with [`MAX_TRIAL_RECORDS`].
pub fn bounded_status(
    state: &SweepState,
    decisions: &Decisions,
    max_records: usize,
) -> SeedSweepStatus {
    let report = state.report(decisions, max_records);
    let phase = if decisions.complete {
        if report.counts.succeeded > 0 {
            SweepPhase::Succeeded
        } else {
            SweepPhase::Failed
        }
    } else if report.counts.pending == report.counts.total {
        SweepPhase::Pending
    } else {
        SweepPhase::Running
    };
    SeedSweepStatus {
        phase,
        counts: report.counts,
        best_score: report.best.as_ref().map(|b| format!("{:.4}", b.score)),
        best_trial: report.best,
        // Trials not launched yet are only counted: a 625-trial sweep's status is then small at creation.
        trials: report.records,
        trials_omitted: report.records_omitted,
        statistics: Some(report.statistics),
        ..SeedSweepStatus::default()
    }
}

/// Which trials get a record, given each one's (phase, final score) in launch order: every launched (not
/// `Pending`) trial when there are at most `max`, else `max` of them. Kept first: the trials not ended (what a user
/// watches), then the kept trials best first (what a user came for), then the latest launched.
pub fn records_to_keep(
    trials: &[(TrialPhase, Option<f64>)],
    direction: Direction,
    max: usize,
) -> Vec<bool> {
    let launched: Vec<usize> = (0..trials.len())
        .filter(|&i| trials[i].0 != TrialPhase::Pending)
        .collect();
    let mut keep = vec![false; trials.len()];
    if launched.len() <= max {
        for i in launched {
            keep[i] = true;
        }
        return keep;
    }
    // (group, score to sort ascending, later launches first): a total order, also with NaN or missing scores.
    let key = |i: usize| {
        let (phase, final_score) = trials[i];
        let group = match phase {
            phase if !phase.is_terminal() => 0,
            TrialPhase::Succeeded => 1,
            _ => 2,
        };
        let score = match (group, final_score.filter(|s| s.is_finite())) {
            (1, Some(s)) if direction == Direction::Maximize => -s,
            (1, Some(s)) => s,
            _ => f64::INFINITY,
        };
        (group, score, std::cmp::Reverse(i))
    };
    let mut order = launched;
    order.sort_by(|&a, &b| {
        let ((ga, sa, ia), (gb, sb, ib)) = (key(a), key(b));
        ga.cmp(&gb).then(sa.total_cmp(&sb)).then(ia.cmp(&ib))
    });
    for &i in &order[..max] {
        keep[i] = true;
    }
    keep
}

/// What `status.checkpoints` says: where checkpoints are kept, or that there are none (`location` `None`).
pub fn checkpoints(location: Option<&str>) -> String {
    match location {
        Some(at) => format!(
            "on, in {at}: a trial kept at an exact-mode rung, retried or interrupted continues from its checkpoint"
        ),
        None => "off: a trial kept at an exact-mode rung, retried or interrupted trains again from the beginning"
            .to_string(),
    }
}

/// The end-of-sweep summary: best trial, discards per rung, compute, and the expected-max curve at a few n.
pub fn summary(state: &SweepState, status: &SeedSweepStatus) -> String {
    let mut out = String::new();
    let c = &status.counts;
    let metric = state.objective.metric;
    let phase = format!("{:?}", status.phase);
    let _ = writeln!(out, "sweep {}: {phase}", state.name);
    let _ = writeln!(
        out,
        "  trials: {} total, {} finished, {} discarded, {} diverged, {} failed, {} running, {} paused, {} pending",
        c.total, c.succeeded, c.discarded, c.diverged, c.failed, c.running, c.paused, c.pending
    );
    match &status.best_trial {
        Some(b) => {
            let _ = writeln!(
                out,
                "  best: {} (weight-init seed {}, data-order seed {}) {metric} {:.4}",
                b.name, b.weight_init, b.data_order, b.score
            );
            if let Some(t) = status.trials.iter().find(|t| t.name == b.name)
                && let Some(i) = state.plan.trials.iter().position(|p| p.name == b.name)
                && let Some(m) = state.trials[i].final_metrics
            {
                let _ = writeln!(
                    out,
                    "        accuracy {:.4}  f1 {:.4}  mcc {:.4}  acc_and_f1 {:.4}  ({} steps)",
                    m.accuracy, m.f1, m.mcc, m.acc_and_f1, t.steps_done
                );
            }
        }
        None => {
            let _ = writeln!(out, "  best: none finished yet");
        }
    }
    for (j, rung) in state.plan.rungs.iter().enumerate() {
        let discarded = status
            .trials
            .iter()
            .filter(|t| t.phase == TrialPhase::Discarded)
            .filter(|t| {
                t.rungs.iter().any(|r| {
                    r.rung as usize == j
                        && r.decision == seedsweep_crds::sweep::RungDecision::Discard
                })
            })
            .count();
        let _ = writeln!(
            out,
            "  rung {j} at {:.0}% of training: keep {}, discarded {discarded}",
            rung.at_fraction * 100.0,
            rung.keep
        );
    }
    if let Some(stats) = &status.statistics {
        let a = &stats.compute;
        let _ = writeln!(
            out,
            "  compute: {} training steps spent, {} without early discarding{}",
            a.steps_spent,
            a.steps_without_discarding,
            a.saving_fraction
                .map(|s| format!(" (saved {:.0}%)", s * 100.0))
                .unwrap_or_default()
        );
        if let Some(note) = &status.checkpoints {
            let _ = writeln!(out, "  checkpoints: {note}");
        }
        if !stats.expected_max.is_empty() {
            let n_max = stats.expected_max.last().map(|p| p.n).unwrap_or(0);
            let shown: Vec<String> = stats
                .expected_max
                .iter()
                .filter(|p| p.n == 1 || p.n == n_max || p.n.is_power_of_two())
                .map(|p| format!("n={}: {:.4} ± {:.4}", p.n, p.mean, p.std))
                .collect();
            let _ = writeln!(
                out,
                "  expected best {metric} of n finished trials: {}",
                shown.join(", ")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SweepState;
    use seedsweep_crds::sweep::SeedSweep;

    /// The indices `records_to_keep` keeps.
    fn kept(trials: &[(TrialPhase, Option<f64>)], direction: Direction, max: usize) -> Vec<usize> {
        let keep = records_to_keep(trials, direction, max);
        (0..trials.len()).filter(|&i| keep[i]).collect()
    }

    /// Trials not ended first, then the kept ones best first (NaN and missing scores last), then the latest
    /// launched; never a trial not launched.
    #[test]
    fn bounded_records_keep_what_a_user_watches_and_came_for() {
        use TrialPhase::*;
        let trials = [
            (Discarded, None),
            (Succeeded, Some(0.8)),
            (Succeeded, Some(f64::NAN)),
            (Succeeded, Some(0.9)),
            (Failed, None),
            (Running, None),
            (Succeeded, Some(0.7)),
            (AwaitingDecision, None),
            (Diverged, None),
            (Pending, None),
        ];
        let max = Direction::Maximize;
        assert_eq!(kept(&trials, max, 9), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(kept(&trials, max, 100), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(kept(&trials, max, 5), [1, 3, 5, 6, 7]);
        assert_eq!(kept(&trials, Direction::Minimize, 4), [1, 5, 6, 7]);
        // After the kept ones (2's NaN last among them): the latest launched, 8.
        assert_eq!(kept(&trials, max, 7), [1, 2, 3, 5, 6, 7, 8]);
        assert_eq!(kept(&trials, max, 1), [7]);
        assert_eq!(kept(&trials, max, 0), Vec::<usize>::new());
    }

    /// A sweep of 36 trials: 20 launched and ended with distinct scores, 2 running, the rest pending.
    fn sweep_in_progress() -> (seedsweep_crds::sweep::SeedSweepSpec, SweepState) {
        let text = include_str!("../../../examples/mrpc-sweep.yaml");
        let mut spec = serde_yaml::from_str::<SeedSweep>(text).unwrap().spec;
        spec.early_discard = None;
        spec.seeds.weight_init.as_mut().unwrap().count = Some(6);
        spec.seeds.data_order.as_mut().unwrap().count = Some(6);
        let mut state = SweepState::new("mrpc", &spec);
        for i in 0..22 {
            state.mark_started(i);
        }
        for i in 0..20 {
            let score = 0.5 + ((i * 7) % 20) as f64 / 100.0;
            state.trials[i].final_metrics = Some(seedsweep_crds::Metrics {
                accuracy: score,
                f1: score,
                mcc: score,
                acc_and_f1: score,
            });
            state.trials[i].run = crate::policy::RunState::Completed;
        }
        (spec, state)
    }

    /// The operator's bounded status is the full status with only the picked records: same counts, best trial
    /// and statistics, the records in launch order, the rest counted.
    #[test]
    fn a_bounded_status_is_the_full_status_with_the_picked_records() {
        let (spec, state) = sweep_in_progress();
        let decisions = state.decide(&state.rules(&spec, 2));
        let full = status(&state, &decisions);
        assert_eq!((full.trials.len(), full.trials_omitted), (22, 0));
        assert_eq!(bounded_status(&state, &decisions, 22), full);
        let bounded = bounded_status(&state, &decisions, 7);
        let outcomes: Vec<_> = (full.trials.iter())
            .map(|t| (t.phase, t.final_score))
            .collect();
        let keep = records_to_keep(&outcomes, Direction::Maximize, 7);
        let expected: Vec<_> = (full.trials.iter().zip(&keep))
            .filter(|(_, k)| **k)
            .map(|(t, _)| t.clone())
            .collect();
        assert_eq!(bounded.trials, expected);
        // The two running (20, 21) and the five best (scores 0.69 down to 0.65), in launch order.
        let names: Vec<&str> = bounded.trials.iter().map(|t| t.name.as_str()).collect();
        let expected: Vec<&str> = [5, 8, 11, 14, 17, 20, 21]
            .map(|i| state.plan.trials[i].name.as_str())
            .to_vec();
        assert_eq!(names, expected);
        assert_eq!(bounded.trials_omitted, 15);
        assert_eq!(
            SeedSweepStatus {
                trials: full.trials.clone(),
                trials_omitted: 0,
                ..bounded
            },
            full
        );
    }
}
