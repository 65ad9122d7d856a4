//! A sweep's status (the CRD's status shape) and its human-readable summary, shared by `seedsweep run`,
//! `seedsweep status` and the operator.

use crate::policy::Decisions;
use crate::state::SweepState;
use seedsweep_crds::sweep::{SeedSweepStatus, SweepPhase, TrialPhase};
use std::fmt::Write;

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
