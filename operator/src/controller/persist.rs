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
    serde_json::to_value(Persisted {
        spec: spec.clone(),
        next_seq: state.next_seq,
        trials: state.trials.clone(),
    })
    .expect("the engine state is plain data")
}

/// The plan's spec and the state recorded for `sweep`.
pub fn load(sweep: &str, value: &serde_json::Value) -> Result<(SeedSweepSpec, SweepState), String> {
    let p = Persisted::deserialize(value).map_err(|e| e.to_string())?;
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
}
