//! The contract between `seedsweep-trainer` and its watchers (the local executor, the operator, dashboards):
//! Prometheus metric names and labels, the end-of-run summary, and exit codes. Changing anything here is an API
//! change: the README documents it and the Grafana dashboards query it.

use crate::task::Metrics;
use serde::{Deserialize, Serialize};

/// Prometheus metric names exported on the trainer's `/metrics`.
pub mod metric {
    /// Fraction of total training steps done, 0..=1.
    pub const PROGRESS: &str = "seedsweep_trial_progress";
    /// Current epoch (0-based, fractional epochs are not reported).
    pub const EPOCH: &str = "seedsweep_trial_epoch";
    /// Optimizer steps done.
    pub const STEP: &str = "seedsweep_trial_step";
    /// Optimizer steps the full run will take.
    pub const TOTAL_STEPS: &str = "seedsweep_trial_total_steps";
    /// Training loss of the latest step.
    pub const TRAIN_LOSS: &str = "seedsweep_trial_train_loss";
    /// Learning rate of the latest step.
    pub const LEARNING_RATE: &str = "seedsweep_trial_learning_rate";
    /// Training throughput over the latest logging window.
    pub const EXAMPLES_PER_SECOND: &str = "seedsweep_trial_examples_per_second";
    /// One series per evaluation point and metric, labels [`super::label::EVAL_INDEX`], [`super::label::EVAL_STEP`],
    /// [`super::label::EVAL_PROGRESS`], [`super::label::METRIC`]. Series are never removed, so a scraper that looks
    /// rarely still sees every evaluation.
    pub const EVAL: &str = "seedsweep_trial_eval";
    /// The dev set's majority-class baseline, label [`super::label::METRIC`].
    pub const MAJORITY_BASELINE: &str = "seedsweep_trial_majority_baseline";
    /// 1 once the run has ended (any outcome), else 0.
    pub const DONE: &str = "seedsweep_trial_done";
    /// The step this run resumed from (a checkpoint), 0 when it trained from the beginning. Steps before it were
    /// spent by an earlier attempt.
    pub const RESUMED_FROM_STEP: &str = "seedsweep_trial_resumed_from_step";
}

/// Label names. Every trainer metric carries the identity labels.
pub mod label {
    pub const SWEEP: &str = "sweep";
    pub const TRIAL: &str = "trial";
    pub const WI_SEED: &str = "wi_seed";
    pub const DO_SEED: &str = "do_seed";
    pub const METRIC: &str = "metric";
    pub const EVAL_INDEX: &str = "eval_index";
    pub const EVAL_STEP: &str = "step";
    pub const EVAL_PROGRESS: &str = "progress";
}

/// Process exit codes of `seedsweep-trainer`.
pub mod exit_code {
    /// Training ran to completion, or paused at a rung as asked (`--pause-at-rungs`; the summary's outcome says
    /// which). A pause is a success so that a Kubernetes Job does not retry it.
    pub const COMPLETED: i32 = 0;
    /// Bad input or a runtime error; the message is on stderr (and in the termination log when possible).
    pub const ERROR: i32 = 1;
    /// Command-line usage error (clap's convention).
    pub const USAGE: i32 = 2;
    /// The training loss became NaN or infinite.
    pub const DIVERGED: i32 = 3;
    /// Stopped by SIGTERM/SIGINT; the summary was still written. 128 + 15, as a shell reports it.
    pub const TERMINATED: i32 = 143;
}

/// Kubernetes truncates a container's termination message at 4096 bytes.
pub const TERMINATION_LOG_LIMIT: usize = 4096;

/// How a trainer run ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Completed,
    Diverged,
    Terminated,
    Failed,
    /// Stopped at a rung after writing its checkpoint (`--pause-at-rungs`): it waits for the rung's decision outside
    /// the process, and `--resume-from` continues it. Exit code [`exit_code::COMPLETED`].
    Paused,
}

impl Outcome {
    /// The trainer's exit code for a run that ended this way.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Completed | Outcome::Paused => exit_code::COMPLETED,
            Outcome::Diverged => exit_code::DIVERGED,
            Outcome::Terminated => exit_code::TERMINATED,
            Outcome::Failed => exit_code::ERROR,
        }
    }
}

/// One evaluation on the full dev set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EvalPoint {
    /// 0-based position among this run's evaluations.
    pub index: u32,
    pub step: u64,
    /// `step / total_steps`.
    pub progress: f64,
    pub metrics: Metrics,
}

/// What a trainer run leaves behind: written to `--output` (full) and `--termination-log` (compacted to fit
/// [`TERMINATION_LOG_LIMIT`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrialSummary {
    pub sweep: String,
    pub trial: String,
    pub wi_seed: u64,
    pub do_seed: u64,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub steps_done: u64,
    pub total_steps: u64,
    /// The metrics of always predicting the dev set's majority class.
    pub majority_baseline: Metrics,
    /// The last evaluation when training completed, else `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_metrics: Option<Metrics>,
    /// Evaluations in order. In the termination log the oldest may be dropped to fit; see `droppedEvals`.
    pub evals: Vec<EvalPoint>,
    /// How many evaluations were dropped from `evals` to fit the termination log (the oldest, rungs' last).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_evals: u32,
    /// The step this run resumed from (a checkpoint); 0 when it trained from the beginning. `stepsDone` counts
    /// from the run's beginning, so this attempt trained `stepsDone - resumedFromStep` steps.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resumed_from_step: u64,
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// Whether an evaluation at `progress` counts as reaching a rung at `fraction`, despite rounding in
/// `step / total_steps`. The engine ranks a trial at a rung by its first evaluation that does; the trainer writes its
/// rung checkpoint right after that same evaluation.
pub fn reaches(progress: f64, fraction: f64) -> bool {
    progress + 1e-9 >= fraction
}

/// The steps of `eval_at` after which a trainer checkpoints for rungs at `fractions`: each rung's first evaluation
/// that [`reaches`] it, over a run of `total_steps`.
pub fn rung_steps(eval_at: &[u64], total_steps: u64, fractions: &[f64]) -> Vec<u64> {
    let mut steps: Vec<u64> = fractions
        .iter()
        .filter_map(|&f| {
            eval_at
                .iter()
                .copied()
                .find(|&s| reaches(s as f64 / total_steps.max(1) as f64, f))
        })
        .collect();
    steps.sort_unstable();
    steps.dedup();
    steps
}

impl TrialSummary {
    /// Serializes the summary into at most `limit` bytes by dropping the oldest evaluations first (the latest ones
    /// and the final metrics matter most to a watcher that has missed them), then shortening the reason. The
    /// evaluations rungs at `rungs` (fractions of training) rank a trial by are dropped last: a watcher that saw
    /// none of the run must still rank it on them, not on a later one.
    pub fn to_compact_json(&self, limit: usize, rungs: &[f64]) -> String {
        let mut s = self.clone();
        let rung_steps: Vec<u64> = rungs
            .iter()
            .filter_map(|&f| {
                s.evals
                    .iter()
                    .find(|e| reaches(e.progress, f))
                    .map(|e| e.step)
            })
            .collect();
        loop {
            let json = serde_json::to_string(&s).expect("summary serializes");
            if json.len() <= limit {
                return json;
            }
            if !s.evals.is_empty() {
                // The oldest evaluations no rung ranks by go first; the rungs' only when nothing else is left.
                let protected = |e: &EvalPoint| rung_steps.contains(&e.step);
                let others = s.evals.iter().filter(|e| !protected(e)).count();
                let spare_rungs = others > 0;
                let pool = if spare_rungs { others } else { s.evals.len() };
                let dropped = pool.div_ceil(8);
                let mut drop = dropped;
                s.evals.retain(|e| {
                    if drop > 0 && !(spare_rungs && protected(e)) {
                        drop -= 1;
                        false
                    } else {
                        true
                    }
                });
                s.dropped_evals += dropped as u32;
            } else if let Some(reason) = s.reason.as_mut().filter(|r| r.len() > 64) {
                reason.truncate(reason.floor_char_boundary(reason.len() / 2));
                reason.push('…');
            } else {
                // Identity fields alone exceed the limit only with absurd names; fall back to a minimal record.
                s.sweep.truncate(s.sweep.len().min(253));
                s.trial.truncate(s.trial.len().min(253));
                s.reason = None;
                return serde_json::to_string(&s).expect("summary serializes");
            }
        }
    }
}

/// The steps (1-based counts of optimizer steps done) after which to evaluate: `per_epoch` evenly spaced points in
/// every epoch, the last at the epoch's end, and always the final step. The trainer evaluates there, and its
/// stand-in (tests crate) serves evaluations there too.
pub fn eval_steps(steps_per_epoch: u64, epochs: u64, per_epoch: u64) -> Vec<u64> {
    let mut steps: Vec<u64> = (0..epochs)
        .flat_map(|e| {
            (1..=per_epoch).map(move |k| {
                e * steps_per_epoch + (k * steps_per_epoch + per_epoch / 2) / per_epoch
            })
        })
        .filter(|&s| s > 0)
        .collect();
    steps.push(epochs * steps_per_epoch);
    steps.sort_unstable();
    steps.dedup();
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evals_are_evenly_spaced_and_end_at_the_last_step() {
        assert_eq!(eval_steps(10, 2, 2), vec![5, 10, 15, 20]);
        let mrpc = eval_steps(115, 3, 10);
        assert_eq!(mrpc.len(), 30);
        assert_eq!(mrpc[..3], [12, 23, 35]);
        assert_eq!(*mrpc.last().unwrap(), 345);
        assert_eq!(
            eval_steps(3, 1, 10),
            vec![1, 2, 3],
            "more points than steps collapse to every step"
        );
        assert_eq!(
            eval_steps(7, 2, 0),
            vec![14],
            "no periodic evals still evaluates at the end"
        );
        // The recorded SST-2 sweep: 1000 examples, batch 16 (63 steps an epoch), 2 epochs, 4 evaluations each.
        assert_eq!(eval_steps(63, 2, 4), vec![16, 32, 47, 63, 79, 95, 110, 126]);
    }

    fn summary(evals: u32) -> TrialSummary {
        TrialSummary {
            sweep: "mrpc".into(),
            trial: "mrpc-w1-d2".into(),
            wi_seed: 1,
            do_seed: 2,
            outcome: Outcome::Completed,
            reason: None,
            steps_done: 690,
            total_steps: 690,
            majority_baseline: Metrics {
                accuracy: 0.68,
                f1: 0.81,
                mcc: 0.0,
                acc_and_f1: 0.745,
            },
            final_metrics: Some(Metrics {
                accuracy: 0.85,
                f1: 0.89,
                mcc: 0.64,
                acc_and_f1: 0.87,
            }),
            evals: (0..evals)
                .map(|i| EvalPoint {
                    index: i,
                    step: u64::from(i) * 23,
                    progress: f64::from(i) / f64::from(evals),
                    metrics: Metrics {
                        accuracy: 0.812345678,
                        f1: 0.87654321,
                        mcc: 0.5123456,
                        acc_and_f1: 0.8441,
                    },
                })
                .collect(),
            dropped_evals: 0,
            resumed_from_step: 0,
        }
    }

    /// A watcher that missed the whole run ranks it at each rung on the evaluation the summary keeps for it.
    #[test]
    fn compact_json_keeps_the_rungs_evaluations() {
        let s = summary(31);
        let json = s.to_compact_json(TERMINATION_LOG_LIMIT, &[0.05, 0.5]);
        assert!(json.len() <= TERMINATION_LOG_LIMIT);
        let back: TrialSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(back.dropped_evals as usize + back.evals.len(), 31);
        // 0.05 of 31 evaluations: index 2 (progress 2/31) is the first to reach it, 0.5: index 16 (16/31). The four
        // oldest others go: 0, 1, 3, 4.
        let kept: Vec<u32> = back.evals.iter().map(|e| e.index).collect();
        assert_eq!(back.dropped_evals, 4);
        assert_eq!(kept[..2], [2, 5]);
        assert!(kept.contains(&16));
        assert_eq!(back.evals.last(), s.evals.last());
    }

    #[test]
    fn compact_json_keeps_everything_when_it_fits() {
        let s = summary(3);
        let json = s.to_compact_json(TERMINATION_LOG_LIMIT, &[]);
        let back: TrialSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn compact_json_drops_oldest_evals_first() {
        let s = summary(31);
        let full = serde_json::to_string(&s).unwrap();
        assert!(
            full.len() > TERMINATION_LOG_LIMIT,
            "test needs an oversized summary"
        );
        let json = s.to_compact_json(TERMINATION_LOG_LIMIT, &[]);
        assert!(json.len() <= TERMINATION_LOG_LIMIT);
        let back: TrialSummary = serde_json::from_str(&json).unwrap();
        assert!(back.dropped_evals > 0);
        assert_eq!(back.dropped_evals as usize + back.evals.len(), 31);
        assert_eq!(back.evals.last(), s.evals.last());
        assert_eq!(back.evals[0].index, back.dropped_evals);
        assert_eq!(back.final_metrics, s.final_metrics);
    }
}
