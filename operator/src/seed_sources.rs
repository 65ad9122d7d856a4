//! `spec.seeds.weightInit.fromSweeps` for both executors: given the earlier sweeps they read (state directories
//! locally, SeedSweep statuses in a cluster), the spec a new sweep's plan is made from. The ranking and the choice
//! are the engine's ([`crate::engine::transfer`]); this only decides what is worth waiting for and what is invalid.

use crate::engine::state::SweepState;
use crate::engine::transfer::{self, SourceSweep, TransferError};
use crate::manifest;
use seedsweep_crds::sweep::{SeedSweep, SeedSweepSpec};

/// One sweep `fromSweeps` names, as the executor found it.
pub enum Source {
    /// Its recorded state (the spec boxed: it is most of the size).
    Found {
        spec: Box<SeedSweepSpec>,
        state: SweepState,
    },
    /// Not there yet (does not exist, or has not started): why, naming it.
    Absent(String),
    /// There, but unreadable: why, naming it.
    Unreadable(String),
}

/// Why the seeds cannot be resolved now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// A named sweep is missing or still running: in a cluster the sweep waits for it.
    Waiting(Vec<String>),
    /// It never will be: the sources cannot be ranked or the seeds they give make an invalid sweep.
    Invalid(Vec<String>),
}

impl Unresolved {
    pub fn reasons(&self) -> &[String] {
        match self {
            Unresolved::Waiting(r) | Unresolved::Invalid(r) => r,
        }
    }
}

/// The names of the earlier sweeps a (validated) spec takes seeds from; empty without `fromSweeps`.
pub fn named(spec: &SeedSweepSpec) -> Vec<String> {
    (spec.seeds.weight_init.as_ref())
        .and_then(|l| l.from_sweeps.as_ref())
        .map(|f| f.sweeps.clone())
        .unwrap_or_default()
}

/// The spec to plan `sweep` from, `sources` given in the order `fromSweeps.sweeps` names them.
pub fn resolve(
    sweep: &SeedSweep,
    sources: Vec<(String, Source)>,
) -> Result<SeedSweepSpec, Unresolved> {
    let mut waiting = Vec::new();
    let mut invalid = Vec::new();
    let mut found = Vec::new();
    for (name, source) in sources {
        match source {
            Source::Found { spec, state } => {
                let unfinished = transfer::unfinished_trials(&spec, &state);
                if unfinished > 0 {
                    waiting.push(
                        TransferError::Unfinished {
                            sweep: name,
                            unfinished,
                            trials: state.trials.len(),
                        }
                        .to_string(),
                    );
                } else {
                    found.push((name, spec, state));
                }
            }
            Source::Absent(why) => waiting.push(why),
            Source::Unreadable(why) => invalid.push(why),
        }
    }
    let at = "spec.seeds.weightInit.fromSweeps";
    if !invalid.is_empty() {
        return Err(Unresolved::Invalid(
            invalid.into_iter().map(|w| format!("{at}: {w}")).collect(),
        ));
    }
    if !waiting.is_empty() {
        return Err(Unresolved::Waiting(waiting));
    }
    let sources: Vec<SourceSweep> = (found.iter())
        .map(|(name, spec, state)| SourceSweep { name, spec, state })
        .collect();
    let invalid = |e: TransferError| {
        let message = e.to_string();
        Unresolved::Invalid(vec![if message.starts_with("spec.") {
            message
        } else {
            format!("{at}: {message}")
        }])
    };
    let ranking = transfer::rank_weight_init(&sources).map_err(invalid)?;
    let resolved = transfer::resolve(&sweep.spec, &ranking).map_err(invalid)?;
    // The chosen seeds, checked as if listed (trial names must fit, for one).
    let mut as_listed = SeedSweep::new(
        &sweep.metadata.name.clone().unwrap_or_default(),
        resolved.clone(),
    );
    if let Some(list) = as_listed.spec.seeds.weight_init.as_mut() {
        list.from_sweeps = None;
    }
    let errors = manifest::validate(&as_listed);
    if !errors.is_empty() {
        return Err(Unresolved::Invalid(
            (errors.iter())
                .map(|e| format!("with the seeds {at} chose: {e}"))
                .collect(),
        ));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::whatif::lock_step::{self, EVALS};

    fn sweep(name: &str, weight_init: &str) -> SeedSweep {
        crate::manifest::load(&format!(
            r#"
apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata: {{name: {name}}}
spec:
  task: {{name: mrpc, dataDir: /data}}
  model: {{path: /model}}
  seeds: {{weightInit: {weight_init}, dataOrder: {{values: [1, 2]}}}}
"#
        ))
        .unwrap()
    }

    /// A sweep over weight-init seeds `wi`, trained `evals` evaluations per trial, trial scores rising with the seed.
    fn source(wi: &str, evals: u32) -> Source {
        let spec = sweep("src", &format!("{{values: {wi}}}")).spec;
        let plan = crate::engine::plan::plan("src", &spec);
        let state = lock_step::run_sweep("src", &spec, evals, |i, _| {
            plan.trials[i].weight_init as f64
        });
        Source::Found {
            spec: Box::new(spec),
            state,
        }
    }

    fn new_sweep(name: &str, top: u32) -> SeedSweep {
        sweep(
            name,
            &format!("{{fromSweeps: {{sweeps: [a, b], top: {top}}}}}"),
        )
    }

    #[test]
    fn missing_or_running_sweeps_are_waited_for_and_unreadable_ones_are_invalid() {
        let resolved = resolve(
            &new_sweep("new", 1),
            vec![
                (
                    "a".into(),
                    Source::Absent("SeedSweep ns/a does not exist".into()),
                ),
                ("b".into(), source("[1, 2]", EVALS - 1)),
            ],
        );
        assert_eq!(
            resolved,
            Err(Unresolved::Waiting(vec![
                "SeedSweep ns/a does not exist".into(),
                "sweep b has not finished (4 of its 4 trials have not ended)".into()
            ]))
        );
        let resolved = resolve(
            &new_sweep("new", 1),
            vec![
                (
                    "a".into(),
                    Source::Unreadable("sweep a: state.json is not a SeedSweep state file".into()),
                ),
                (
                    "b".into(),
                    Source::Absent("SeedSweep ns/b does not exist".into()),
                ),
            ],
        );
        assert_eq!(
            resolved,
            Err(Unresolved::Invalid(vec![
                "spec.seeds.weightInit.fromSweeps: sweep a: state.json is not a SeedSweep state file".into()
            ]))
        );
    }

    #[test]
    fn the_top_seeds_are_chosen_and_checked_as_if_listed() {
        let spec = resolve(
            &new_sweep("new", 2),
            vec![
                ("a".into(), source("[1, 2, 3]", EVALS)),
                ("b".into(), source("[2, 3]", EVALS)),
            ],
        )
        .unwrap();
        assert_eq!(spec.seeds.weight_init.unwrap().values, Some(vec![3, 2]));

        let too_many = resolve(
            &new_sweep("new", 4),
            vec![
                ("a".into(), source("[1, 2, 3]", EVALS)),
                ("b".into(), source("[2, 3]", EVALS)),
            ],
        );
        assert_eq!(
            too_many,
            Err(Unresolved::Invalid(vec![
                "spec.seeds.weightInit.fromSweeps.top asks for 4 seeds, but the sweeps rank only 3 ([3, 2, 1])"
                    .into()
            ]))
        );

        // A long sweep name that fits with small seeds but not with the large seed the earlier sweeps chose.
        let long = "n".repeat(50);
        let Err(Unresolved::Invalid(errors)) = resolve(
            &new_sweep(&long, 1),
            vec![
                ("a".into(), source("[123456789]", EVALS)),
                ("b".into(), source("[123456789]", EVALS)),
            ],
        ) else {
            panic!("a trial name too long was accepted");
        };
        assert!(
            errors[0].starts_with(
                "with the seeds spec.seeds.weightInit.fromSweeps chose: metadata.name: too long"
            ),
            "{errors:?}"
        );
    }
}
