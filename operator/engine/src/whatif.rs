//! What-if discarding: a sweep's recorded evaluations replayed under another rung setting through the engine's own
//! policy, so a user can see what that setting would have found and spent on their own sweep.
//!
//! The replay is an executor without trainers. It plans the sweep again with the other setting, starts every trial
//! at once, and feeds each trial's recorded evaluations in the order the real sweep recorded them (`seq`), taking
//! one [`SweepState::step`] after each and carrying out its stops, pauses and relaunches, exactly as the local
//! executor and the operator do. So every decision is the engine's; nothing here ranks a trial.
//!
//! What it cannot know: a trial's record ends where the real sweep stopped it. A setting that would have trained a
//! trial past the end of its record (a lower cut, a later rung) meets an unknown; the replay then stops that trial
//! where its record ends and names it in [`Replay::beyond_record`], so the setting's best score and compute are
//! exact only when that list is empty. Only trials observed past a rung can be ranked there.
//!
//! Approximations: the replay stops a trial right after the evaluation that decided it (a real executor a scrape
//! later), and feeds evaluations in the real arrival order although another setting would have changed which
//! trials ran when (this matters only to asynchronous rungs, which rank by arrival).

use crate::observation::TrainerSnapshot;
use crate::policy::RunState;
use crate::report;
use crate::state::{RecordedEval, SweepState};
use seedsweep_crds::Metrics;
use seedsweep_crds::sweep::{
    BestTrial, EarlyDiscardSpec, SeedSweepSpec, SeedSweepStatus, TrialPhase,
};
use seedsweep_crds::trainer::{EvalPoint, Outcome, TrialSummary};
use serde::Serialize;

/// The reason a replayed trial is stopped where its record ends.
const END_OF_RECORD: &str = "the recorded evaluations end here";

/// A sweep replayed under one rung setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// The setting replayed; `None`: no discarding, every trial trains to completion.
    pub early_discard: Option<EarlyDiscardSpec>,
    /// The replay's own engine state, as an executor would have left it.
    pub state: SweepState,
    /// The engine's status of that state (phases, best trial, statistics).
    pub status: SeedSweepStatus,
    /// Trials (plan indices) the setting would have trained past the end of their record.
    pub beyond_record: Vec<usize>,
}

/// One thing that happened to a trial in the real sweep, in recorded order.
#[derive(Debug, Clone, Copy)]
enum Event {
    Eval(RecordedEval),
    /// The trial's record ends (after its last evaluation).
    End,
}

/// Replays `real` (planned from `spec`) under `early_discard` instead of the spec's own setting.
pub fn replay(
    spec: &SeedSweepSpec,
    real: &SweepState,
    early_discard: Option<EarlyDiscardSpec>,
) -> Replay {
    let mut spec = spec.clone();
    spec.early_discard = early_discard.clone();
    let mut replay = Replayer {
        real,
        state: SweepState::new(&real.name, &spec),
        backlog: vec![Vec::new(); real.trials.len()],
        beyond_record: Vec::new(),
    };
    // Every trial at once: the recorded order alone says when each evaluation arrives.
    let rules = replay.state.rules(&spec, real.trials.len().max(1));
    replay.state.step(&rules);
    for (trial, event) in events(real) {
        replay.feed(trial, event, &rules);
    }
    // Relaunches decided after the last event (exact mode) feed the relaunched trials' remaining record.
    for _ in 0..=real.trials.len() {
        if !replay.step(&rules) {
            break;
        }
    }
    let decisions = replay.state.decide(&rules);
    let mut beyond_record = replay.beyond_record;
    beyond_record.sort_unstable();
    Replay {
        early_discard,
        status: report::status(&replay.state, &decisions),
        state: replay.state,
        beyond_record,
    }
}

/// Every trial's recorded evaluations and the end of its record, in the order the real sweep recorded them. A
/// trial with no evaluation ends first (it failed at start, or never got that far).
fn events(real: &SweepState) -> Vec<(usize, Event)> {
    let mut keyed: Vec<((u64, u8, usize), Event)> = Vec::new();
    for (i, t) in real.trials.iter().enumerate() {
        for e in &t.evals {
            keyed.push(((e.seq, 0, i), Event::Eval(*e)));
        }
        let last = t.evals.iter().map(|e| e.seq).max();
        keyed.push(((last.unwrap_or(0), u8::from(last.is_some()), i), Event::End));
    }
    keyed.sort_by_key(|(key, _)| *key);
    keyed
        .into_iter()
        .map(|((_, _, trial), event)| (trial, event))
        .collect()
}

struct Replayer<'a> {
    real: &'a SweepState,
    state: SweepState,
    /// Events of trials paused (exact mode) until their relaunch.
    backlog: Vec<Vec<Event>>,
    beyond_record: Vec<usize>,
}

impl Replayer<'_> {
    /// Delivers one event to the trial if it is running, keeps it for a paused trial's relaunch, and drops it for
    /// a trial the replay has stopped.
    fn feed(&mut self, trial: usize, event: Event, rules: &crate::policy::Rules) {
        match self.state.trials[trial].run {
            RunState::Running => {
                self.apply(trial, event);
                self.step(rules);
            }
            RunState::Paused | RunState::NotStarted => self.backlog[trial].push(event),
            _ => {}
        }
    }

    /// One engine step; relaunched trials get their backlog. Returns whether the step did anything.
    fn step(&mut self, rules: &crate::policy::Rules) -> bool {
        let step = self.state.step(rules);
        for trial in step.actions.to_start {
            for event in std::mem::take(&mut self.backlog[trial]) {
                self.feed(trial, event, rules);
            }
        }
        step.outlook.acts()
    }

    fn apply(&mut self, trial: usize, event: Event) {
        let real = &self.real.trials[trial];
        let total_steps = real.total_steps.unwrap_or(0);
        match event {
            Event::Eval(e) => {
                let mut metrics = Metrics::default();
                metrics.set(self.real.objective.metric, e.score);
                // The record holds only evaluations the engine accepted, so the replay accepts them; one from an older
                // state file that it would refuse now stays out, as it would now.
                let _ = self.state.observe(
                    trial,
                    &TrainerSnapshot {
                        step: e.step,
                        total_steps,
                        progress: real.progress(&e),
                        evals: vec![EvalPoint {
                            index: e.index,
                            step: e.step,
                            progress: real.progress(&e),
                            metrics,
                        }],
                        baseline: real.baseline,
                        ..TrainerSnapshot::default()
                    },
                );
            }
            Event::End => {
                let outcome = match &real.run {
                    RunState::Completed => Some((Outcome::Completed, None)),
                    RunState::Diverged { reason } => {
                        Some((Outcome::Diverged, Some(reason.clone())))
                    }
                    RunState::Failed { reason } => {
                        self.state.finish(trial, None, reason);
                        return;
                    }
                    // Stopped by a decision, paused, or still running: nothing is known beyond this point.
                    _ => None,
                };
                let Some((outcome, reason)) = outcome else {
                    self.beyond_record.push(trial);
                    self.state.finish(trial, None, END_OF_RECORD);
                    return;
                };
                let summary = TrialSummary {
                    sweep: self.real.name.clone(),
                    trial: self.real.plan.trials[trial].name.clone(),
                    wi_seed: self.real.plan.trials[trial].weight_init,
                    do_seed: self.real.plan.trials[trial].data_order,
                    outcome,
                    reason,
                    steps_done: real.steps_done,
                    total_steps,
                    majority_baseline: real.baseline.unwrap_or_default(),
                    final_metrics: real.final_metrics,
                    evals: Vec::new(),
                    dropped_evals: 0,
                    resumed_from_step: 0,
                };
                self.state.finish(trial, Some(&summary), "exit code 0");
            }
        }
    }
}

/// What one setting would have done, in numbers the report shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfOutcome {
    /// The setting; `None`: no discarding.
    pub early_discard: Option<EarlyDiscardSpec>,
    /// Whether this is the sweep's own setting.
    pub own_setting: bool,
    /// The best trial the setting trains to completion (of the trials whose outcome the record tells).
    pub best: Option<BestTrial>,
    /// Training steps the setting spends on the recorded trials.
    pub steps_spent: u64,
    /// Trials it trains to completion / discards at a rung.
    pub kept: Vec<String>,
    pub discarded: Vec<String>,
    /// Trials it would have trained past the end of their record, and the progress where that record ends: their
    /// outcome is unknown, so `best` and `stepsSpent` are exact only when this is empty.
    pub beyond_record: Vec<(String, f64)>,
    /// Whether the setting discards the trial with the best recorded final score. `None` when that cannot be
    /// known: a trial it discards never trained to completion in the real sweep, or one it keeps ends unrecorded.
    pub best_lost: Option<bool>,
}

impl Replay {
    /// The summary the report shows; `own` marks the sweep's own setting.
    pub fn outcome(&self, real: &SweepState, own: bool) -> WhatIfOutcome {
        let names = |phase: TrialPhase| -> Vec<String> {
            (self.status.trials.iter())
                .filter(|t| t.phase == phase)
                .map(|t| t.name.clone())
                .collect()
        };
        let beyond_record = (self.beyond_record.iter())
            .map(|&i| {
                let t = &real.trials[i];
                let end = t.evals.last().map_or(0.0, |e| t.progress(e));
                (real.plan.trials[i].name.clone(), end)
            })
            .collect();
        WhatIfOutcome {
            early_discard: self.early_discard.clone(),
            own_setting: own,
            best: self.status.best_trial.clone(),
            steps_spent: self.state.statistics().compute.steps_spent,
            kept: names(TrialPhase::Succeeded),
            discarded: names(TrialPhase::Discarded),
            beyond_record,
            best_lost: self.best_lost(real),
        }
    }

    /// See [`WhatIfOutcome::best_lost`].
    fn best_lost(&self, real: &SweepState) -> Option<bool> {
        if !self.beyond_record.is_empty() {
            return None;
        }
        let metric = real.objective.metric;
        let recorded_final = |i: usize| {
            let t = &real.trials[i];
            t.final_metrics
                .filter(|_| t.run == RunState::Completed)
                .map(|m| m.get(metric))
        };
        let discarded = (self.status.trials.iter())
            .filter(|t| t.phase == TrialPhase::Discarded)
            .filter_map(|t| real.plan.trials.iter().position(|p| p.name == t.name));
        let mut lost_best: Option<f64> = None;
        for i in discarded {
            let score = recorded_final(i)?;
            if lost_best.is_none_or(|b| real.objective.direction.better(score, b)) {
                lost_best = Some(score);
            }
        }
        Some(match (lost_best, &self.status.best_trial) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(lost), Some(kept)) => real.objective.direction.better(lost, kept.score),
        })
    }
}

/// A synthetic sweep run through the engine, for the tests of this crate and of the report (which draws what this
/// module replays): not part of the engine's interface.
#[doc(hidden)]
pub mod lock_step {
    use crate::observation::TrainerSnapshot;
    use crate::policy::RunState;
    use crate::state::SweepState;
    use seedsweep_crds::Metrics;
    use seedsweep_crds::sweep::SeedSweepSpec;
    use seedsweep_crds::trainer::{EvalPoint, Outcome, TrialSummary};

    /// Evaluations in a trial's full run, and training steps between two of them.
    pub const EVALS: u32 = 8;
    pub const STEPS_PER_EVAL: u64 = 10;

    /// An executor in lock step: every running trial trains one evaluation interval per tick (a relaunched one from
    /// the beginning), scoring `score(trial, evaluation index)`, and the engine steps after every scrape, as both
    /// real executors do. Trials train up to their `last_eval`-th evaluation: [`EVALS`] finishes them, fewer
    /// leaves them running. Returns once no trial has anything left to train.
    pub fn run_sweep(
        name: &str,
        spec: &SeedSweepSpec,
        last_eval: u32,
        score: impl Fn(usize, u32) -> f64,
    ) -> SweepState {
        let mut state = SweepState::new(name, spec);
        let rules = state.rules(spec, spec.parallelism as usize);
        let total = u64::from(EVALS) * STEPS_PER_EVAL;
        let mut position = vec![0u32; state.trials.len()];
        let mut step = state.step(&rules);
        for _ in 0..1000 {
            for &i in &step.actions.to_start {
                position[i] = 0;
            }
            let running: Vec<usize> = (0..state.trials.len())
                .filter(|&i| state.trials[i].run == RunState::Running && position[i] < last_eval)
                .collect();
            if running.is_empty() {
                return state;
            }
            for i in running {
                if state.trials[i].run != RunState::Running {
                    continue;
                }
                let index = position[i];
                position[i] += 1;
                let mut metrics = Metrics::default();
                metrics.set(seedsweep_crds::MetricName::AccAndF1, score(i, index));
                let point = EvalPoint {
                    index,
                    step: u64::from(index + 1) * STEPS_PER_EVAL,
                    progress: f64::from(index + 1) / f64::from(EVALS),
                    metrics,
                };
                state
                    .observe(
                        i,
                        &TrainerSnapshot {
                            step: point.step,
                            total_steps: total,
                            evals: vec![point],
                            baseline: Some(Metrics::default()),
                            ..TrainerSnapshot::default()
                        },
                    )
                    .expect("a consistent scrape");
                if index + 1 == EVALS {
                    let summary = TrialSummary {
                        sweep: name.into(),
                        trial: state.plan.trials[i].name.clone(),
                        wi_seed: state.plan.trials[i].weight_init,
                        do_seed: state.plan.trials[i].data_order,
                        outcome: Outcome::Completed,
                        reason: None,
                        steps_done: total,
                        total_steps: total,
                        majority_baseline: Metrics::default(),
                        final_metrics: Some(metrics),
                        evals: Vec::new(),
                        dropped_evals: 0,
                        resumed_from_step: 0,
                    };
                    state.finish(i, Some(&summary), "exit code 0");
                }
                step = state.step(&rules);
                for &j in &step.actions.to_start {
                    position[j] = 0;
                }
            }
            step = state.step(&rules);
        }
        panic!("the synthetic sweep did not settle");
    }
}

#[cfg(test)]
mod tests {
    use super::lock_step::EVALS;
    use super::*;
    use seedsweep_crds::sweep::{DiscardMode, RungSpec, SeedSweep};

    /// A 3 × 3 sweep of 8 evaluations per trial, `rungs` as given.
    fn spec(mode: &str, rungs: &str) -> SeedSweepSpec {
        let text = format!(
            r#"
apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata: {{name: w}}
spec:
  task: {{name: mrpc, dataDir: /data}}
  model: {{path: /model}}
  seeds: {{weightInit: {{start: 1, count: 3}}, dataOrder: {{start: 1, count: 3}}}}
  earlyDiscard: {{mode: {mode}, minObservations: 2, rungs: {rungs}}}
  parallelism: 2
"#
        );
        serde_yaml::from_str::<SeedSweep>(&text).unwrap().spec
    }

    /// A made-up learning curve whose ranking changes along the way, so that the rung matters.
    fn score(trial: usize, index: u32) -> f64 {
        let t = trial as f64;
        let k = f64::from(index + 1) / f64::from(EVALS);
        0.6 + 0.02 * ((t * 7.0) % 5.0) * (1.0 - k) + 0.03 * ((t * 3.0) % 4.0) * k
    }

    fn run_sweep(spec: &SeedSweepSpec) -> SweepState {
        lock_step::run_sweep("w", spec, EVALS, score)
    }

    fn phases(status: &SeedSweepStatus, phase: TrialPhase) -> Vec<String> {
        (status.trials.iter())
            .filter(|t| t.phase == phase)
            .map(|t| t.name.clone())
            .collect()
    }

    /// Given a sweep run by the engine, when its record is replayed with its own rungs, then the replay discards
    /// and keeps exactly the trials the sweep did, at the same rungs and scores, and knows every outcome.
    #[test]
    fn the_own_setting_reproduces_the_real_decisions() {
        for (mode, rungs) in [
            ("exact", "[{atFraction: 0.25, keepCount: 3}]"),
            (
                "exact",
                "[{atFraction: 0.25, keepCount: 5}, {atFraction: 0.6, keepCount: 2}]",
            ),
            ("asynchronous", "[{atFraction: 0.5, keepFraction: 0.5}]"),
        ] {
            let spec = spec(mode, rungs);
            let real = run_sweep(&spec);
            let real_status = report::status(&real, &real.decide(&real.rules(&spec, 2)));
            let replay = replay(&spec, &real, spec.early_discard.clone());
            let what = format!("{mode} {rungs}");
            assert!(
                replay.beyond_record.is_empty(),
                "{what}: {:?}",
                replay.beyond_record
            );
            for phase in [TrialPhase::Discarded, TrialPhase::Succeeded] {
                assert_eq!(
                    phases(&replay.status, phase),
                    phases(&real_status, phase),
                    "{what}: {phase:?}"
                );
            }
            assert!(
                !phases(&real_status, TrialPhase::Discarded).is_empty(),
                "{what}"
            );
            let rung_records = |s: &SeedSweepStatus| -> Vec<_> {
                s.trials
                    .iter()
                    .map(|t| {
                        (
                            t.name.clone(),
                            t.rungs
                                .iter()
                                .map(|r| (r.rung, r.score))
                                .collect::<Vec<_>>(),
                        )
                    })
                    .collect()
            };
            assert_eq!(
                rung_records(&replay.status),
                rung_records(&real_status),
                "{what}"
            );
            assert_eq!(replay.status.best_trial, real_status.best_trial, "{what}");
            let outcome = replay.outcome(&real, true);
            // The discarded trials never finished, so whether the best was among them is unknowable.
            assert_eq!(outcome.best_lost, None, "{what}");
        }
    }

    /// Given a sweep where every trial trained to completion, any cut can be replayed exactly: the replay keeps
    /// the offline top at the rung, and says whether the best final score was lost.
    #[test]
    fn a_sweep_without_discarding_replays_any_cut() {
        let mut spec = spec("exact", "[{atFraction: 0.25, keepCount: 3}]");
        spec.early_discard = None;
        let real = run_sweep(&spec);
        assert!(real.trials.iter().all(|t| t.run == RunState::Completed));
        let setting = |f: f64, keep: u32| EarlyDiscardSpec {
            mode: DiscardMode::Exact,
            rungs: vec![RungSpec {
                at_fraction: f,
                keep_fraction: None,
                keep_count: Some(keep),
            }],
            min_observations: 2,
        };
        let at_rung = |i: usize, f: f64| {
            let t = &real.trials[i];
            t.evals
                .iter()
                .find(|e| t.progress(e) + 1e-9 >= f)
                .unwrap()
                .score
        };
        for (f, keep) in [(0.25, 3), (0.5, 2), (0.125, 1)] {
            let replay = replay(&spec, &real, Some(setting(f, keep)));
            assert!(replay.beyond_record.is_empty());
            // The offline algorithm: the best `keep` at the rung, ties to the earlier trial.
            let mut ranked: Vec<usize> = (0..real.trials.len()).collect();
            ranked.sort_by(|&a, &b| at_rung(b, f).total_cmp(&at_rung(a, f)).then(a.cmp(&b)));
            let mut top: Vec<String> = ranked[..keep as usize]
                .iter()
                .map(|&i| real.plan.trials[i].name.clone())
                .collect();
            top.sort();
            let mut kept = phases(&replay.status, TrialPhase::Succeeded);
            kept.sort();
            assert_eq!(kept, top, "rung at {f} keeping {keep}");
            let outcome = replay.outcome(&real, false);
            let best_final = (0..real.trials.len())
                .map(|i| score(i, EVALS - 1))
                .fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(
                outcome.best_lost,
                Some(outcome.best.as_ref().unwrap().score < best_final),
                "rung at {f} keeping {keep}"
            );
            // Compute: `keep` full runs, the others up to the rung (the paper's (t·f + p·(1−f))·s with relaunches
            // costing their first part again, as the module docs of the policy say).
            assert!(outcome.steps_spent < real.statistics().compute.steps_spent);
        }
        let everything = replay(&spec, &real, None);
        assert_eq!(everything.status.counts.succeeded, 9);
        assert_eq!(
            everything.state.statistics().compute.steps_spent,
            real.statistics().compute.steps_spent
        );
    }

    /// Given a sweep that discarded trials at 25 %, a cut at 75 % would train them past their record: the replay
    /// names them instead of guessing their scores.
    #[test]
    fn trials_continued_past_their_record_are_named() {
        let spec = spec("exact", "[{atFraction: 0.25, keepCount: 3}]");
        let real = run_sweep(&spec);
        let later = EarlyDiscardSpec {
            mode: DiscardMode::Exact,
            rungs: vec![RungSpec {
                at_fraction: 0.75,
                keep_fraction: None,
                keep_count: Some(3),
            }],
            min_observations: 2,
        };
        let replay = replay(&spec, &real, Some(later));
        // Stopped or paused at the rung, and never relaunched.
        let real_discarded: Vec<usize> = (0..real.trials.len())
            .filter(|&i| real.trials[i].run != RunState::Completed)
            .collect();
        assert!(!real_discarded.is_empty());
        assert_eq!(replay.beyond_record, real_discarded);
        let outcome = replay.outcome(&real, false);
        assert_eq!(outcome.best_lost, None);
        assert!(outcome.beyond_record.iter().all(|(_, end)| *end < 0.75));
    }
}
