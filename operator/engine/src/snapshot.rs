//! The one persisted form of a sweep's engine state, written by both executors: the local executor as its state
//! file, the operator as `status.engine`. It holds the spec the plan was made from (the plan itself is a pure
//! function of it) and every trial's recorded state; restoring it replays into the same decisions.
//!
//! Trials are launched in plan order, so the ones never launched are a tail of untouched records: they are left
//! out, which keeps a 625-trial sweep's status a few kilobytes at creation instead of a few hundred.

use crate::state::{SweepState, TrialState};
use seedsweep_crds::sweep::SeedSweepSpec;
use serde::{Deserialize, Serialize};

/// Raised whenever the shape changes; a snapshot of another version is refused with both numbers.
pub const FORMAT_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Absent in what seedsweep 0.1's operator wrote (read as 0, and refused).
    #[serde(default)]
    pub format_version: u32,
    pub sweep: String,
    pub spec: SeedSweepSpec,
    pub next_seq: u64,
    /// Every trial's state up to the last one ever launched; the rest are as planned.
    pub trials: Vec<TrialState>,
}

/// Why a snapshot cannot be restored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SnapshotError {
    #[error("format version {found}, this seedsweep reads {FORMAT_VERSION}")]
    Version { found: u32 },
    #[error("{recorded} trials recorded for a plan of {planned}")]
    TrialCount { recorded: usize, planned: usize },
    #[error("trials[{trial}] has evaluations but no totalSteps")]
    NoTotalSteps { trial: usize },
}

impl Snapshot {
    /// The snapshot of `state`, planned from `spec`.
    pub fn of(spec: &SeedSweepSpec, state: &SweepState) -> Snapshot {
        let untouched = TrialState::new();
        let recorded = state
            .trials
            .iter()
            .rposition(|t| *t != untouched)
            .map_or(0, |last| last + 1);
        Snapshot {
            format_version: FORMAT_VERSION,
            sweep: state.name.clone(),
            spec: spec.clone(),
            next_seq: state.next_seq,
            trials: state.trials[..recorded].to_vec(),
        }
    }

    /// The state it records, with the plan made again from its spec.
    pub fn restore(&self) -> Result<SweepState, SnapshotError> {
        if self.format_version != FORMAT_VERSION {
            return Err(SnapshotError::Version {
                found: self.format_version,
            });
        }
        let mut state = SweepState::new(&self.sweep, &self.spec);
        if self.trials.len() > state.trials.len() {
            return Err(SnapshotError::TrialCount {
                recorded: self.trials.len(),
                planned: state.trials.len(),
            });
        }
        if let Some(trial) = self
            .trials
            .iter()
            .position(|t| !t.evals.is_empty() && t.total_steps.is_none())
        {
            return Err(SnapshotError::NoTotalSteps { trial });
        }
        state.next_seq = self.next_seq;
        state.trials[..self.trials.len()].clone_from_slice(&self.trials);
        Ok(state)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::observation::TrainerSnapshot;
    use seedsweep_crds::Metrics;
    use seedsweep_crds::sweep::SeedSweep;
    use seedsweep_crds::trainer::EvalPoint;

    /// A 2 × 2 MRPC sweep with every default, for the engine's unit tests.
    pub(crate) fn spec() -> SeedSweepSpec {
        let text = r#"
apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata: {name: s}
spec:
  task: {name: mrpc, dataDir: /data}
  model: {path: /model}
  seeds: {weightInit: {start: 1, count: 2}, dataOrder: {start: 1, count: 2}}
"#;
        serde_yaml::from_str::<SeedSweep>(text).unwrap().spec
    }

    #[test]
    fn round_trips_through_json() {
        let spec = spec();
        let mut state = SweepState::new("s", &spec);
        state.mark_started(1);
        state
            .observe(
                1,
                &TrainerSnapshot {
                    step: 3,
                    total_steps: 10,
                    evals: vec![EvalPoint {
                        index: 0,
                        step: 3,
                        progress: 0.3,
                        metrics: Metrics {
                            accuracy: 0.7,
                            f1: 0.8,
                            mcc: 0.1,
                            acc_and_f1: 0.75,
                        },
                    }],
                    ..TrainerSnapshot::default()
                },
            )
            .expect("a consistent scrape");
        let json = serde_json::to_string(&Snapshot::of(&spec, &state)).unwrap();
        let snapshot: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(snapshot.spec, spec);
        assert_eq!(snapshot.restore().unwrap(), state);
    }

    #[test]
    fn a_record_for_another_plan_is_refused() {
        let spec = spec();
        let mut snapshot = Snapshot::of(&spec, &SweepState::new("s", &spec));
        snapshot.trials = vec![TrialState::new(); 5];
        let e = snapshot.restore().unwrap_err();
        assert_eq!(e.to_string(), "5 trials recorded for a plan of 4");
        snapshot.format_version = 1;
        assert_eq!(
            snapshot.restore().unwrap_err().to_string(),
            "format version 1, this seedsweep reads 2"
        );
        assert!(serde_json::from_value::<Snapshot>(serde_json::json!({"spec": 1})).is_err());
    }

    /// Trials never launched are not recorded, and come back as planned.
    #[test]
    fn untouched_trials_are_left_out() {
        let spec = spec();
        let mut state = SweepState::new("s", &spec);
        assert!(Snapshot::of(&spec, &state).trials.is_empty());
        state.mark_started(0);
        state.mark_started(1);
        let snapshot = Snapshot::of(&spec, &state);
        assert_eq!(snapshot.trials.len(), 2);
        assert_eq!(snapshot.restore().unwrap(), state);
    }

    /// A 625-trial sweep's status at creation holds only the trials launched (228 KB before they were left out).
    #[test]
    fn a_625_trial_status_is_small_at_creation() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/mrpc-sweep.yaml"
        ))
        .unwrap();
        let spec = serde_yaml::from_str::<SeedSweep>(&text).unwrap().spec;
        let mut state = SweepState::new("mrpc", &spec);
        let step = state.step(&state.rules(&spec, spec.parallelism as usize));
        assert_eq!(step.actions.to_start.len(), spec.parallelism as usize);
        let mut status = crate::report::status(&state, &step.outlook);
        status.engine = Some(serde_json::to_value(Snapshot::of(&spec, &state)).unwrap());
        assert_eq!(status.counts.total, 625);
        assert_eq!(status.trials.len(), spec.parallelism as usize);
        let bytes = serde_json::to_vec(&status).unwrap().len();
        eprintln!("625 trials at creation: status {bytes} bytes");
        assert!(bytes < 16_000, "{bytes} bytes");
        let snapshot: Snapshot = serde_json::from_value(status.engine.unwrap()).unwrap();
        assert_eq!(snapshot.restore().unwrap(), state);
    }

    /// The paper's largest grid with no discarding (every trial evaluated 30 times) must fit in one object: etcd
    /// refuses objects over 1.5 MiB.
    #[test]
    fn a_625_trial_status_fits_in_etcd() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/mrpc-sweep.yaml"
        ))
        .unwrap();
        let sweep: SeedSweep = serde_yaml::from_str(&text).unwrap();
        let mut spec = sweep.spec.clone();
        spec.early_discard = None;
        spec.divergence = None;
        let mut state = SweepState::new("mrpc", &spec);
        let total = 690u64;
        let n = state.trials.len();
        for i in 0..n {
            state.mark_started(i);
            // Scores with full 17-digit precision, as real ones have.
            let score = |k: usize| 0.6 + ((i * 31 + k * 7) % 1000) as f64 / 3001.0;
            let evals: Vec<EvalPoint> = (0..30)
                .map(|k| EvalPoint {
                    index: k as u32,
                    step: (k as u64 + 1) * 23,
                    progress: (k as f64 + 1.0) * 23.0 / total as f64,
                    metrics: Metrics {
                        accuracy: score(k),
                        f1: score(k + 1),
                        mcc: score(k + 2) - 0.5,
                        acc_and_f1: score(k + 3),
                    },
                })
                .collect();
            state
                .observe(
                    i,
                    &TrainerSnapshot {
                        step: total,
                        total_steps: total,
                        evals: evals.clone(),
                        ..TrainerSnapshot::default()
                    },
                )
                .expect("a consistent scrape");
            let summary = seedsweep_crds::trainer::TrialSummary {
                sweep: "mrpc".into(),
                trial: state.plan.trials[i].name.clone(),
                wi_seed: 1,
                do_seed: 1,
                outcome: seedsweep_crds::trainer::Outcome::Completed,
                reason: None,
                steps_done: total,
                total_steps: total,
                majority_baseline: Metrics::default(),
                final_metrics: Some(evals[29].metrics),
                evals,
                dropped_evals: 0,
                resumed_from_step: 0,
            };
            state.finish(i, Some(&summary), "exit code 0");
        }
        let rules = state.rules(&spec, 8);
        let mut status = crate::report::status(&state, &state.decide(&rules));
        status.engine = Some(serde_json::to_value(Snapshot::of(&spec, &state)).unwrap());
        let bytes = serde_json::to_vec(&status).unwrap().len();
        eprintln!("625 trials × 30 evaluations: status {bytes} bytes");
        // Leaves a fifth of etcd's limit for the spec, metadata and managed fields.
        assert!(bytes < 1_250_000, "{bytes} bytes");
        let snapshot: Snapshot = serde_json::from_value(status.engine.unwrap()).unwrap();
        assert_eq!(snapshot.restore().unwrap(), state);
    }
}
