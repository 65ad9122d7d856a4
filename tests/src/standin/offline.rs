//! What a stand-in trial serves, computed without running it: the evaluations of a seed pair under a sweep's
//! training settings. Tests and the scale benchmark rank these offline and compare with the engine's decisions.

use super::curves::{CurveFile, ServedCurve, serve_curve};
use seedsweep_crds::MetricName;
use seedsweep_crds::trainer::EvalPoint;
use seedsweep_crds::trainer::eval_steps;
use std::collections::BTreeSet;

/// The sweep settings that decide where a trial evaluates.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub epochs: u64,
    pub batch_size: u64,
    pub evals_per_epoch: u64,
    pub train_subset: Option<u64>,
}

impl Schedule {
    /// Total steps and the steps that evaluate, exactly as the trainer computes them; without a training subset,
    /// the recorded runs' steps per epoch stand in for the dataset's size.
    pub fn steps(&self, file: &CurveFile) -> (u64, u64, Vec<u64>) {
        let per_epoch = match self.train_subset {
            // The trainer's epoch: ceil(examples / batch), the last batch short.
            Some(k) => k.div_ceil(self.batch_size.max(1)),
            None => file.steps_per_epoch(),
        };
        let evals = eval_steps(per_epoch, self.epochs, self.evals_per_epoch);
        (per_epoch, per_epoch * self.epochs, evals)
    }
}

/// Every evaluation the pair (`wi`, `do_`) serves, and the curve behind them.
pub fn served_evals(
    file: &CurveFile,
    schedule: &Schedule,
    wi: u64,
    do_: u64,
    diverge_fraction: f64,
) -> (Vec<EvalPoint>, ServedCurve) {
    let (_, total, steps) = schedule.steps(file);
    let progress: Vec<f64> = steps.iter().map(|&s| s as f64 / total as f64).collect();
    let served = serve_curve(file, wi, do_, &progress, diverge_fraction);
    let evals = steps
        .iter()
        .zip(&served.evals)
        .enumerate()
        .map(|(i, (&step, m))| EvalPoint {
            index: i as u32,
            step,
            progress: step as f64 / total as f64,
            metrics: *m,
        })
        .collect();
    (evals, served)
}

/// The score a trial is ranked by at a rung: its first evaluation at or after `at_fraction` (the engine's rule).
pub fn rung_score(evals: &[EvalPoint], at_fraction: f64, objective: MetricName) -> Option<f64> {
    evals
        .iter()
        .find(|e| e.progress + 1e-9 >= at_fraction)
        .map(|e| e.metrics.get(objective))
}

/// The paper's offline cut: the names of the `keep` best of `(name, score)` (higher is better), ties to the
/// earlier entry (pass them in launch order).
pub fn offline_top(scored: &[(String, f64)], keep: usize) -> BTreeSet<String> {
    let mut ranked: Vec<(usize, &(String, f64))> = scored.iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.1.total_cmp(&a.1.1).then(a.0.cmp(&b.0)));
    ranked
        .iter()
        .take(keep)
        .map(|(_, (n, _))| n.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standin::curves::tests::file;

    #[test]
    fn evaluations_land_on_the_trainers_steps_and_rank_at_the_rung() {
        let f = file(3);
        let s = Schedule {
            epochs: 3,
            batch_size: 16,
            evals_per_epoch: 10,
            train_subset: Some(1000),
        };
        let (evals, _) = served_evals(&f, &s, 2, 5, 0.0);
        assert_eq!(evals.len(), 30);
        assert_eq!(evals.last().unwrap().step, 189);
        let score = rung_score(&evals, 0.25, MetricName::Accuracy).unwrap();
        let at = evals.iter().find(|e| e.progress >= 0.25).unwrap();
        assert_eq!(score, at.metrics.accuracy);
        assert!(at.progress < 0.3);
    }

    #[test]
    fn the_offline_cut_keeps_the_best_and_breaks_ties_by_order() {
        let scored: Vec<(String, f64)> = [("a", 0.5), ("b", 0.7), ("c", 0.7), ("d", 0.9)]
            .iter()
            .map(|(n, s)| (n.to_string(), *s))
            .collect();
        let top = offline_top(&scored, 2);
        assert_eq!(top, ["b", "d"].iter().map(|s| s.to_string()).collect());
    }
}
