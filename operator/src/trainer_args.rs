//! The trainer's command line for one trial, derived from the spec. Both executors use this, so a trial trains the
//! same way in a pod and on this machine.

use crate::engine::plan::PlannedTrial;
use seedsweep_crds::sweep::{DiscardMode, Precision, SeedSweepSpec};

/// Where a trial's trainer finds its inputs and puts its outputs; differs between a pod and this machine.
#[derive(Debug, Clone)]
pub struct TrialPaths {
    pub data_dir: String,
    pub model_dir: String,
    pub metrics_addr: String,
    pub termination_log: String,
    pub output: Option<String>,
    /// The trial's checkpoint directory, when the sweep keeps checkpoints.
    pub checkpoint_dir: Option<String>,
}

pub fn trainer_args(
    sweep: &str,
    spec: &SeedSweepSpec,
    trial: &PlannedTrial,
    paths: &TrialPaths,
) -> Vec<String> {
    let t = &spec.training;
    let mut args: Vec<String> = vec![
        "--task".into(),
        spec.task.name.as_str().into(),
        "--data-dir".into(),
        paths.data_dir.clone(),
        "--model-dir".into(),
        paths.model_dir.clone(),
        "--sweep".into(),
        sweep.into(),
        "--trial".into(),
        trial.name.clone(),
        "--wi-seed".into(),
        trial.weight_init.to_string(),
        "--do-seed".into(),
        trial.data_order.to_string(),
        "--dropout-seed-from".into(),
        t.dropout_seed.as_trainer_arg().into(),
        "--epochs".into(),
        t.epochs.to_string(),
        "--batch-size".into(),
        t.batch_size.to_string(),
        "--learning-rate".into(),
        t.learning_rate.to_string(),
        "--max-seq-length".into(),
        t.max_seq_length.to_string(),
        "--warmup-ratio".into(),
        t.warmup_ratio.to_string(),
        "--weight-decay".into(),
        t.weight_decay.to_string(),
        "--evals-per-epoch".into(),
        t.evals_per_epoch.to_string(),
        "--metrics-addr".into(),
        paths.metrics_addr.clone(),
        "--termination-log".into(),
        paths.termination_log.clone(),
    ];
    // Only when not the default: an fp32 sweep keeps the command line (and the Job) it had before precision existed,
    // so trainer images without the flag still run it.
    if t.precision != Precision::default() {
        args.extend(["--precision".into(), t.precision.as_str().into()]);
    }
    if let Some(k) = spec.task.train_subset {
        args.extend(["--train-subset".into(), k.to_string()]);
    }
    if let Some(k) = spec.task.dev_subset {
        args.extend(["--dev-subset".into(), k.to_string()]);
    }
    if let Some(output) = &paths.output {
        args.extend(["--output".into(), output.clone()]);
    }
    let rungs: Vec<String> = (spec.early_discard.iter())
        .flat_map(|d| &d.rungs)
        .map(|r| r.at_fraction.to_string())
        .collect();
    if !rungs.is_empty() {
        args.extend(["--rungs".into(), rungs.join(",")]);
    }
    if let Some(dir) = &paths.checkpoint_dir {
        args.extend(checkpoint_args(spec, dir));
    }
    args.extend(spec.trial_template.extra_args.iter().cloned());
    args
}

/// With checkpoints, every attempt resumes from the trial's newest checkpoint if it has one (a retried pod, a
/// relaunch after a pause or an interrupted executor), checkpoints when stopped, and at each rung (`--rungs`); in
/// exact mode it then exits as paused, so that it waits at the rung without training past it.
fn checkpoint_args(spec: &SeedSweepSpec, dir: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--checkpoint-dir".into(),
        dir.into(),
        "--resume-from".into(),
        dir.into(),
        "--checkpoint-on-stop".into(),
    ];
    if let Some(discard) = &spec.early_discard
        && !discard.rungs.is_empty()
        && discard.mode == DiscardMode::Exact
    {
        args.push("--pause-at-rungs".into());
    }
    args
}
