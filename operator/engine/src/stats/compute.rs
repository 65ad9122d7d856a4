//! Compute accounting: training steps spent against training every trial to completion.

use super::*;

/// Steps the sweep spent (Σ steps_done) against a sweep that trains every trial to completion (Σ total_steps),
/// over all trials. Sums saturate at `u64::MAX` rather than overflow.
pub fn compute_accounting(trials: &[TrialScores]) -> ComputeAccounting {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::test_support::*;

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

    #[test]
    fn compute_accounting_and_the_paper_formula() {
        let trials = [
            TrialScores {
                steps_done: 1000,
                total_steps: 1000,
                ..trial(1, 1, Some(0.9))
            },
            TrialScores {
                steps_done: 250,
                total_steps: 1000,
                ..trial(1, 2, None)
            },
            TrialScores {
                steps_done: 250,
                total_steps: 1000,
                ..trial(2, 1, None)
            },
            TrialScores {
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
            TrialScores {
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
}
