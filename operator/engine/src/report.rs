//! A sweep's status (the CRD's status shape) and its human-readable summary, shared by `seedsweep run`,
//! `seedsweep status` and the operator.

use crate::policy::Decisions;
use crate::state::SweepState;
use seedsweep_crds::sweep::{Direction, SeedSweepStatus, SweepPhase, TrialPhase};
use std::fmt::Write;

/// The most trial records a status written to the cluster holds: about 0.4 MB, well within etcd's 1.5 MiB object
/// limit beside the statistics, and every trial of the paper's 25 × 25 grid.
pub const MAX_TRIAL_RECORDS: usize = 1000;

pub fn status(state: &SweepState, decisions: &Decisions) -> SeedSweepStatus {
    let report = state.report(decisions);
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
        trials: (report.records.into_iter())
            .filter(|r| r.phase != TrialPhase::Pending)
            .collect(),
        statistics: Some(report.statistics),
        ..SeedSweepStatus::default()
    }
}

/// Leaves at most `max` records in `status.trials` (in launch order still), counting the others in
/// `trialsOmitted`. Kept first: the trials not ended (what a user watches), then the kept trials best first (what
/// a user came for), then the latest launched.
pub fn bound_trial_records(status: &mut SeedSweepStatus, direction: Direction, max: usize) {
    if status.trials.len() <= max {
        status.trials_omitted = 0;
        return;
    }
    // (group, score to sort ascending, later launches first): a total order, also with NaN or missing scores.
    let key = |i: usize| {
        let t = &status.trials[i];
        let group = match t.phase {
            phase if !phase.is_terminal() => 0,
            TrialPhase::Succeeded => 1,
            _ => 2,
        };
        let score = match (group, t.final_score.filter(|s| s.is_finite())) {
            (1, Some(s)) if direction == Direction::Maximize => -s,
            (1, Some(s)) => s,
            _ => f64::INFINITY,
        };
        (group, score, std::cmp::Reverse(i))
    };
    let mut order: Vec<usize> = (0..status.trials.len()).collect();
    order.sort_by(|&a, &b| {
        let ((ga, sa, ia), (gb, sb, ib)) = (key(a), key(b));
        ga.cmp(&gb).then(sa.total_cmp(&sb)).then(ia.cmp(&ib))
    });
    let mut keep = vec![false; status.trials.len()];
    for &i in &order[..max] {
        keep[i] = true;
    }
    status.trials_omitted = (status.trials.len() - max) as u32;
    let mut i = 0;
    status.trials.retain(|_| {
        i += 1;
        keep[i - 1]
    });
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
    use seedsweep_crds::sweep::TrialRecord;

    fn record(i: usize, phase: TrialPhase, final_score: Option<f64>) -> TrialRecord {
        TrialRecord {
            name: format!("t{i}"),
            weight_init: i as u64,
            data_order: 1,
            phase,
            attempts: 1,
            progress: 1.0,
            steps_done: 10,
            total_steps: Some(10),
            rungs: Vec::new(),
            latest_score: final_score,
            best_score: final_score,
            final_score,
            reason: None,
        }
    }

    fn names(status: &SeedSweepStatus) -> Vec<&str> {
        status.trials.iter().map(|t| t.name.as_str()).collect()
    }

    /// Trials not ended first, then the kept ones best first (NaN and missing scores last), then the latest
    /// launched; the rest are counted, and the records stay in launch order.
    #[test]
    fn bounded_records_keep_what_a_user_watches_and_came_for() {
        use TrialPhase::*;
        let trials = vec![
            record(0, Discarded, None),
            record(1, Succeeded, Some(0.8)),
            record(2, Succeeded, Some(f64::NAN)),
            record(3, Succeeded, Some(0.9)),
            record(4, Failed, None),
            record(5, Running, None),
            record(6, Succeeded, Some(0.7)),
            record(7, AwaitingDecision, None),
            record(8, Diverged, None),
        ];
        let mut status = SeedSweepStatus {
            trials: trials.clone(),
            ..SeedSweepStatus::default()
        };
        bound_trial_records(&mut status, Direction::Maximize, 9);
        assert_eq!((status.trials.len(), status.trials_omitted), (9, 0));
        bound_trial_records(&mut status, Direction::Maximize, 5);
        assert_eq!(names(&status), ["t1", "t3", "t5", "t6", "t7"]);
        assert_eq!(status.trials_omitted, 4);
        status.trials = trials.clone();
        bound_trial_records(&mut status, Direction::Minimize, 4);
        assert_eq!(names(&status), ["t1", "t5", "t6", "t7"]);
        status.trials = trials.clone();
        bound_trial_records(&mut status, Direction::Maximize, 7);
        // After the kept ones (t2's NaN last among them): the latest launched, t8.
        assert_eq!(names(&status), ["t1", "t2", "t3", "t5", "t6", "t7", "t8"]);
        status.trials = trials;
        bound_trial_records(&mut status, Direction::Maximize, 1);
        assert_eq!((names(&status), status.trials_omitted), (vec!["t7"], 8));
    }
}
