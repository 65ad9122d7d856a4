//! Step arithmetic: total steps and the warmup/decay learning-rate schedule. When to evaluate is part of the
//! trainer's contract: `seedsweep_crds::trainer::eval_steps`.

/// Optimizer steps of a run: `epochs · ceil(n_train / batch)` (the last batch of an epoch may be short).
pub fn steps_per_epoch(n_train: usize, batch_size: usize) -> u64 {
    n_train.div_ceil(batch_size) as u64
}

/// HF's `get_linear_schedule_with_warmup` with `warmup_steps = ceil(ratio · total)`: the learning rate of the
/// optimizer step with 0-based index `step`. Like HF, the first step of a warmed-up run uses a learning rate of 0.
pub struct LinearSchedule {
    pub base_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl LinearSchedule {
    pub fn new(base_lr: f64, warmup_ratio: f64, total_steps: u64) -> Self {
        LinearSchedule {
            base_lr,
            warmup_steps: (warmup_ratio * total_steps as f64).ceil() as u64,
            total_steps,
        }
    }

    pub fn lr(&self, step: u64) -> f64 {
        let factor = if step < self.warmup_steps {
            step as f64 / self.warmup_steps.max(1) as f64
        } else {
            let remaining = self.total_steps.saturating_sub(step) as f64;
            let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
            (remaining / span).max(0.0)
        };
        self.base_lr * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_linear_decay_to_zero() {
        let s = LinearSchedule::new(2e-5, 0.1, 345);
        assert_eq!(s.warmup_steps, 35);
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(7) - 2e-5 * 7.0 / 35.0).abs() < 1e-18);
        assert_eq!(s.lr(35), 2e-5);
        assert!((s.lr(190) - 2e-5 * 155.0 / 310.0).abs() < 1e-18);
        assert_eq!(s.lr(345), 0.0);
        let flat = LinearSchedule::new(1e-3, 0.0, 10);
        assert_eq!(flat.lr(0), 1e-3);
        assert!((flat.lr(5) - 5e-4).abs() < 1e-15);
    }

    #[test]
    fn an_epoch_is_the_batches_rounded_up() {
        assert_eq!(steps_per_epoch(3668, 32), 115);
    }
}
