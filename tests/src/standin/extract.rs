//! Recorded curves from a local sweep's state directory (`seedsweep run --state-dir DIR`), read only: the engine's
//! snapshot `DIR/state.json` (through the engine, which knows the plan's trial names and seeds) gives every trial's
//! objective at each evaluation; `DIR/trials/<trial>/summary.json`, the trainer's full summary, adds all four
//! metrics and the training loss where it is readable. Only trials trained to completion are taken.

use super::curves::{CurveFile, CurveSource, FORMAT_VERSION, RecordedCurve, RecordedPoint};
use seedsweep_crds::trainer::TrialSummary;
use seedsweep_engine::policy::RunState;
use seedsweep_engine::snapshot::Snapshot;
use std::path::Path;

/// The trainer's `--output` adds the loss of every step to the summary's fields.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct FullSummary {
    #[serde(flatten)]
    summary: TrialSummary,
    #[serde(default)]
    train_loss: Vec<f64>,
}

pub fn extract(state_dir: &Path) -> Result<CurveFile, String> {
    let path = state_dir.join("state.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let snapshot: Snapshot = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a sweep's state: {e}", path.display()))?;
    let state = snapshot
        .restore()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let spec = &snapshot.spec;
    let objective = state.objective.metric;
    let mut curves = Vec::new();
    let mut left_out = Vec::new();
    for (planned, trial) in state.plan.trials.iter().zip(&state.trials) {
        let whole = trial.run == RunState::Completed
            && trial.total_steps.is_some_and(|t| t == trial.steps_done)
            && !trial.evals.is_empty();
        let (Some(total_steps), Some(baseline), true) = (trial.total_steps, trial.baseline, whole)
        else {
            left_out.push(planned.name.clone());
            continue;
        };
        let summary = read_summary(state_dir, &planned.name);
        let mut evals: Vec<_> = trial.evals.clone();
        evals.sort_by_key(|e| e.index);
        let mut previous_step = 0;
        let points = evals
            .iter()
            .map(|e| {
                let from_summary = summary.as_ref().and_then(|s| {
                    s.summary
                        .evals
                        .iter()
                        .find(|p| p.index == e.index && p.step == e.step)
                });
                let train_loss = summary.as_ref().and_then(|s| {
                    let window = s.train_loss.get(previous_step as usize..e.step as usize)?;
                    (!window.is_empty()).then(|| window.iter().sum::<f64>() / window.len() as f64)
                });
                previous_step = e.step;
                RecordedPoint {
                    step: e.step,
                    objective: e.score,
                    metrics: from_summary.map(|p| p.metrics),
                    train_loss,
                }
            })
            .collect();
        curves.push(RecordedCurve {
            trial: planned.name.clone(),
            wi_seed: planned.weight_init,
            do_seed: planned.data_order,
            total_steps,
            majority_baseline: baseline,
            evals: points,
        });
    }
    let file = CurveFile {
        format_version: FORMAT_VERSION,
        source: CurveSource {
            sweep: snapshot.sweep.clone(),
            task: spec.task.name,
            objective,
            model: spec.model.path.clone(),
            epochs: u64::from(spec.training.epochs),
            batch_size: u64::from(spec.training.batch_size),
            evals_per_epoch: u64::from(spec.training.evals_per_epoch),
            train_subset: spec.task.train_subset.map(u64::from),
            dev_subset: spec.task.dev_subset.map(u64::from),
            trials_left_out: left_out,
        },
        curves,
    };
    file.validate().map_err(|(field, message)| {
        format!("{}: the extracted {field}: {message}", path.display())
    })?;
    Ok(file)
}

/// The trial's full summary when it is there, readable and the trial's own; anything else counts as absent (its
/// metrics are then derived by the stand-in, as documented in `curves`).
fn read_summary(state_dir: &Path, trial: &str) -> Option<FullSummary> {
    let text =
        std::fs::read_to_string(state_dir.join("trials").join(trial).join("summary.json")).ok()?;
    let full: FullSummary = serde_json::from_str(&text).ok()?;
    (full.summary.trial == trial).then_some(full)
}
