//! When a trial evaluates: the trainer's step arithmetic, so the stand-in evaluates at exactly the steps the real
//! trainer would for the same command line.
//!
//! A copy of `trainer/src/schedule.rs` (`steps_per_epoch`, `eval_steps`): the trainer crate links libtorch, which
//! this crate must not need. The tests below pin the same cases as the trainer's own.

/// Optimizer steps of an epoch: `ceil(n_train / batch)` (the last batch may be short).
pub fn steps_per_epoch(n_train: u64, batch_size: u64) -> u64 {
    n_train.div_ceil(batch_size.max(1))
}

/// The steps (1-based counts of optimizer steps done) after which to evaluate: `per_epoch` evenly spaced points in
/// every epoch, the last at the epoch's end, and always the final step.
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
    fn the_trainers_evaluation_points() {
        assert_eq!(eval_steps(10, 2, 2), vec![5, 10, 15, 20]);
        let mrpc = eval_steps(115, 3, 10);
        assert_eq!(mrpc.len(), 30);
        assert_eq!(mrpc[..3], [12, 23, 35]);
        assert_eq!(*mrpc.last().unwrap(), 345);
        assert_eq!(eval_steps(3, 1, 10), vec![1, 2, 3]);
        assert_eq!(eval_steps(7, 2, 0), vec![14]);
        assert_eq!(steps_per_epoch(3668, 32), 115);
        // The recorded SST-2 sweep: 1000 examples, batch 16, 2 epochs, 4 evaluations per epoch.
        assert_eq!(
            eval_steps(steps_per_epoch(1000, 16), 2, 4),
            vec![16, 32, 47, 63, 79, 95, 110, 126]
        );
    }
}
