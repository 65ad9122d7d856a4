//! What an executor observes of one trainer, in the engine's terms. The scraper fills it from `/metrics`; the
//! engine records it (see [`crate::state::SweepState::observe`]).

use seedsweep_crds::Metrics;
use seedsweep_crds::trainer::EvalPoint;

/// One scrape of one trainer: its position in training, every complete evaluation it serves, its baseline.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainerSnapshot {
    pub trial: Option<String>,
    pub step: u64,
    pub total_steps: u64,
    pub progress: f64,
    pub train_loss: Option<f64>,
    pub done: bool,
    /// Complete evaluations (all four metrics present), in index order.
    pub evals: Vec<EvalPoint>,
    pub baseline: Option<Metrics>,
    /// The step the trainer resumed from (a checkpoint), when it says.
    pub resumed_from: Option<u64>,
}
