//! The engine's memory in `status.engine`: the spec the plan was made from and every trial's recorded state. The
//! plan itself is not stored; it is a pure function of the spec.

use crate::engine::state::{SweepState, TrialState};
use seedsweep_crds::sweep::SeedSweepSpec;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Persisted {
    spec: SeedSweepSpec,
    next_seq: u64,
    trials: Vec<TrialState>,
}

pub fn save(spec: &SeedSweepSpec, state: &SweepState) -> serde_json::Value {
    let mut value = serde_json::to_value(Persisted {
        spec: spec.clone(),
        next_seq: state.next_seq,
        trials: state.trials.clone(),
    })
    .expect("the engine state is plain data");
    // An evaluation's progress is its step over the trial's total steps; not storing it keeps the paper's
    // 625 × 30 evaluations at about 0.8 MB instead of 1.1 MB.
    for eval in evals_mut(&mut value) {
        if let Some(e) = eval.as_array_mut()
            && e.len() == 5
        {
            e.remove(3);
        }
    }
    value
}

/// The plan's spec and the state recorded for `sweep`.
pub fn load(sweep: &str, value: &serde_json::Value) -> Result<(SeedSweepSpec, SweepState), String> {
    let mut value = value.clone();
    if let Some(trials) = value.get_mut("trials").and_then(|t| t.as_array_mut()) {
        for (i, trial) in trials.iter_mut().enumerate() {
            let total = trial.get("totalSteps").and_then(|t| t.as_u64());
            for eval in trial
                .get_mut("evals")
                .and_then(|e| e.as_array_mut())
                .into_iter()
                .flatten()
            {
                let Some(e) = eval.as_array_mut().filter(|e| e.len() == 4) else {
                    return Err(format!(
                        "trials[{i}].evals: expected [seq, index, step, score], got {eval}"
                    ));
                };
                let step = e[2]
                    .as_u64()
                    .ok_or(format!("trials[{i}].evals: bad step {}", e[2]))?;
                let total =
                    total.ok_or(format!("trials[{i}] has evaluations but no totalSteps"))?;
                e.insert(3, (step as f64 / total.max(1) as f64).into());
            }
        }
    }
    let p = Persisted::deserialize(&value).map_err(|e| e.to_string())?;
    let mut state = SweepState::new(sweep, &p.spec);
    if state.trials.len() != p.trials.len() {
        return Err(format!(
            "{} trials recorded for a plan of {}",
            p.trials.len(),
            state.trials.len()
        ));
    }
    state.next_seq = p.next_seq;
    state.trials = p.trials;
    Ok((p.spec, state))
}

fn evals_mut(value: &mut serde_json::Value) -> impl Iterator<Item = &mut serde_json::Value> {
    value
        .get_mut("trials")
        .and_then(|t| t.as_array_mut())
        .into_iter()
        .flatten()
        .filter_map(|t| t.get_mut("evals").and_then(|e| e.as_array_mut()))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::TrainerSnapshot;
    use seedsweep_crds::Metrics;
    use seedsweep_crds::trainer::EvalPoint;

    fn spec() -> SeedSweepSpec {
        let text = r#"
apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata: {name: s}
spec:
  task: {name: mrpc, dataDir: /data}
  model: {path: /model}
  seeds: {weightInit: {start: 1, count: 2}, dataOrder: {start: 1, count: 2}}
"#;
        crate::manifest::load(text).unwrap().spec
    }

    #[test]
    fn round_trips_through_json() {
        let spec = spec();
        let mut state = SweepState::new("s", &spec);
        state.mark_started(1);
        state.observe(
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
        );
        let json = serde_json::to_string(&save(&spec, &state)).unwrap();
        let (spec2, state2) = load("s", &serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(spec2, spec);
        assert_eq!(state2, state);
    }

    #[test]
    fn a_record_for_another_plan_is_refused() {
        let spec = spec();
        let mut value = save(&spec, &SweepState::new("s", &spec));
        value["trials"].as_array_mut().unwrap().pop();
        let e = load("s", &value).unwrap_err();
        assert_eq!(e, "3 trials recorded for a plan of 4");
        assert!(load("s", &serde_json::json!({"spec": 1})).is_err());
    }

    /// The paper's largest grid with no discarding (every trial evaluated 30 times) must fit in one object: etcd
    /// refuses objects over 1.5 MiB.
    #[test]
    fn a_625_trial_status_fits_in_etcd() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/mrpc-sweep.yaml"
        ))
        .unwrap();
        let sweep = crate::manifest::load(&text).unwrap();
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
            state.observe(
                i,
                &TrainerSnapshot {
                    step: total,
                    total_steps: total,
                    evals: evals.clone(),
                    ..TrainerSnapshot::default()
                },
            );
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
            };
            state.finish(i, Some(&summary), "exit code 0");
        }
        let rules = state.rules(&spec, 8);
        let mut status = crate::report::status(&state, &state.decide(&rules));
        status.engine = Some(save(&spec, &state));
        let bytes = serde_json::to_vec(&status).unwrap().len();
        eprintln!("625 trials × 30 evaluations: status {bytes} bytes");
        // Leaves a fifth of etcd's limit for the spec, metadata and managed fields.
        assert!(bytes < 1_250_000, "{bytes} bytes");
        let (_, restored) = load("mrpc", status.engine.as_ref().unwrap()).unwrap();
        assert_eq!(restored, state);
    }
}
