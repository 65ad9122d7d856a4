//! A sweep's memory: the plan and everything recorded about each trial. Both executors persist it as a
//! [`crate::snapshot::Snapshot`] (the local executor in a file, the operator in the resource's status) and replay it
//! into the same decisions.

use crate::observation::TrainerSnapshot;
use crate::plan::{Plan, plan};
use crate::policy::{
    Decisions, Rules, RunState, ScoredEval, StopReason, TrialObservations, Verdict, decide,
};
use crate::report::records_to_keep;
use crate::stats::{self, TrialScores};
use seedsweep_crds::Metrics;
use seedsweep_crds::statistics::SweepStatistics;
use seedsweep_crds::sweep::{
    BestTrial, ObjectiveSpec, SeedSweepSpec, TrialCounts, TrialPhase, TrialRecord,
};
use seedsweep_crds::trainer::{EvalPoint, Outcome, TrialSummary};
use serde::{Deserialize, Serialize};

/// The engine's state of one sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepState {
    pub name: String,
    pub plan: Plan,
    pub objective: ObjectiveSpec,
    /// Sequence number of the next recorded evaluation (arrival order, for asynchronous rungs).
    pub next_seq: u64,
    pub trials: Vec<TrialState>,
}

/// What has been recorded about one trial: where its process is, every evaluation, how far it trained. (The policy
/// sees a projection of it, [`TrialObservations`]; the statistics another, [`TrialScores`].)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialState {
    pub run: RunState,
    /// Every evaluation ever recorded, by index. A restarted trial replays the same seeds; its first recording of
    /// an evaluation stands, so decisions taken on it stand too.
    pub evals: Vec<RecordedEval>,
    pub baseline: Option<Metrics>,
    pub steps_done: u64,
    pub total_steps: Option<u64>,
    /// Steps trained by earlier attempts and not carried on by a checkpoint (an interrupted executor restarts
    /// running trials; a trial paused without a checkpoint trains again from the beginning).
    #[serde(default)]
    pub steps_abandoned: u64,
    /// The step the current attempt resumed from (its checkpoint's), 0 when it trained from the beginning:
    /// `steps_done` counts from the run's beginning, so this attempt trained `steps_done - resumed_from_step`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resumed_from_step: u64,
    pub train_loss: Option<f64>,
    pub final_metrics: Option<Metrics>,
    /// How many times the trial was launched.
    pub attempts: u32,
    /// Why the executor stopped it, as decided.
    pub stop_reason: Option<StopReason>,
    /// Why its current attempt cannot start (unschedulable, image pull, ...), while that lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck: Option<String>,
}

/// One evaluation of the objective. Stored as a `[seq, index, step, score]` tuple: the operator keeps every
/// evaluation of every trial in the sweep's status, which must stay well under etcd's object size limit (625 trials
/// × 30 evaluations ≈ 0.8 MB this way, 3.4 MB with all four metrics as named fields). Its progress is not stored:
/// it is the step over the trial's total steps ([`TrialState::progress`]), as the trainer computes it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "EvalTuple", into = "EvalTuple")]
pub struct RecordedEval {
    pub seq: u64,
    pub index: u32,
    pub step: u64,
    /// The objective's value.
    pub score: f64,
}

type EvalTuple = (u64, u32, u64, f64);

impl From<EvalTuple> for RecordedEval {
    fn from((seq, index, step, score): EvalTuple) -> Self {
        RecordedEval {
            seq,
            index,
            step,
            score,
        }
    }
}

impl From<RecordedEval> for EvalTuple {
    fn from(e: RecordedEval) -> Self {
        (e.seq, e.index, e.step, e.score)
    }
}

impl TrialState {
    pub(crate) fn new() -> Self {
        TrialState {
            run: RunState::NotStarted,
            evals: Vec::new(),
            baseline: None,
            steps_done: 0,
            total_steps: None,
            steps_abandoned: 0,
            resumed_from_step: 0,
            train_loss: None,
            final_metrics: None,
            attempts: 0,
            stop_reason: None,
            stuck: None,
        }
    }

    /// What this trial costs a sweep that discards nothing: a full run for a trial that completed, was discarded,
    /// diverged or was paused at an exact-mode rung (without discarding it would have trained on; a paused trial
    /// that is never relaunched is one the rung discarded); what it spent for one that failed or has not ended
    /// (discarding saved nothing on those, so a failed trial's unspent steps are never counted as saved).
    pub fn cost_without_discarding(&self, full_run: u64) -> u64 {
        let spent = self.steps_spent();
        match self.run {
            RunState::Completed
            | RunState::Stopped
            | RunState::Paused
            | RunState::Diverged { .. } => self.total_steps.unwrap_or(full_run),
            _ => spent,
        }
    }

    /// Records that the trainer of the current attempt is at `step`, having resumed from `resumed`. A trainer's
    /// step only grows; a smaller one, or another resumed-from step, is a new process of the same attempt (a Job's
    /// retry pod): what the last one trained stays spent.
    fn trained_to(&mut self, step: u64, resumed: u64) {
        if step < self.steps_done || resumed != self.resumed_from_step {
            if self.steps_done > 0 {
                // The previous process trained at least to its last step seen, and to the checkpoint the new one
                // resumed from when that is later: it wrote it after its last scrape.
                let reached = if resumed > self.resumed_from_step {
                    self.steps_done.max(resumed)
                } else {
                    self.steps_done
                };
                self.steps_abandoned += reached.saturating_sub(self.resumed_from_step);
            }
            self.resumed_from_step = resumed;
        }
        self.steps_done = step;
    }

    /// Optimizer steps really trained over every attempt: what the sweep spent on this trial.
    pub fn steps_spent(&self) -> u64 {
        self.steps_abandoned + self.steps_done.saturating_sub(self.resumed_from_step)
    }

    /// The fraction of training done at an evaluation: its step over the trial's total steps (an evaluation is
    /// only ever recorded together with the total, from a scrape or the trainer's summary).
    pub fn progress(&self, eval: &RecordedEval) -> f64 {
        eval.step as f64 / self.total_steps.unwrap_or(0).max(1) as f64
    }
}

/// One engine step: what an executor must do now, and how the sweep stands once it has.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Stops, pauses and launches, already recorded in the state: persist the state, then carry them out.
    pub actions: Decisions,
    /// The verdicts after those actions: what the status reports and whether the sweep is complete.
    pub outlook: Decisions,
}

impl SweepState {
    /// A fresh sweep for a validated spec.
    pub fn new(name: &str, spec: &SeedSweepSpec) -> Self {
        let plan = plan(name, spec);
        let trials = plan.trials.iter().map(|_| TrialState::new()).collect();
        SweepState {
            name: name.to_string(),
            plan,
            objective: spec.objective(),
            next_seq: 0,
            trials,
        }
    }

    pub fn rules(&self, spec: &SeedSweepSpec, parallelism: usize) -> Rules {
        Rules {
            direction: self.objective.direction,
            divergence: spec.divergence,
            parallelism,
            fail_fast: spec.fail_fast.after_failures as usize,
        }
    }

    /// A launch, first or again (after a pause or an interrupted executor): the trial trains from the beginning or,
    /// when it has a checkpoint, from there (the trainer says which: [`TrainerSnapshot::resumed_from`]).
    pub fn mark_started(&mut self, trial: usize) {
        let t = &mut self.trials[trial];
        t.run = RunState::Running;
        t.attempts += 1;
        // The steps the last attempt trained stay spent; a resumed attempt counts only what it trains itself.
        t.steps_abandoned += t.steps_done.saturating_sub(t.resumed_from_step);
        t.resumed_from_step = 0;
        t.steps_done = 0;
        t.stuck = None;
    }

    /// Records why a running trial's attempt cannot start (or that it now can: `None`). Returns whether it changed.
    pub fn mark_stuck(&mut self, trial: usize, why: Option<String>) -> bool {
        let why = why.map(bounded_reason);
        let t = &mut self.trials[trial];
        let changed = t.stuck != why;
        t.stuck = why;
        changed
    }

    pub fn mark_paused(&mut self, trial: usize) {
        self.trials[trial].run = RunState::Paused;
    }

    /// An interrupted executor's running trials start again from the beginning (same seeds); their evaluations
    /// recorded so far stand.
    pub fn requeue_running(&mut self) -> Vec<usize> {
        let mut requeued = Vec::new();
        for (i, t) in self.trials.iter_mut().enumerate() {
            if t.run == RunState::Running {
                t.run = RunState::NotStarted;
                requeued.push(i);
            }
        }
        requeued
    }

    pub fn mark_stopped(&mut self, trial: usize, reason: StopReason) {
        let t = &mut self.trials[trial];
        t.run = RunState::Stopped;
        t.stop_reason = Some(reason);
    }

    /// The step both executors take after recording their observations: decide, record the decisions as done
    /// (so what is persisted next never lags behind what the executor does), and decide again for the outlook.
    pub fn step(&mut self, rules: &Rules) -> Step {
        let actions = self.decide(rules);
        self.apply(&actions);
        let outlook = if actions.acts() {
            self.decide(rules)
        } else {
            actions.clone()
        };
        Step { actions, outlook }
    }

    /// Records what the executor is about to do for `decisions`: stops, pauses and launches.
    fn apply(&mut self, decisions: &Decisions) {
        for (i, reason) in &decisions.to_stop {
            self.mark_stopped(*i, reason.clone());
        }
        for &i in &decisions.to_pause {
            self.mark_paused(i);
        }
        for &i in &decisions.to_start {
            self.mark_started(i);
        }
    }

    /// Records a scrape. Returns whether it brought a new evaluation; refuses (recording nothing) a scrape that is
    /// not this trial's or contradicts itself or what was recorded (see [`SweepState::check_scrape`]).
    pub fn observe(&mut self, trial: usize, snap: &TrainerSnapshot) -> Result<bool, Refused> {
        self.check_scrape(trial, snap)?;
        let t = &mut self.trials[trial];
        // A trainer serves its total once it knows where it starts (from the beginning or a checkpoint); its step
        // before that says nothing.
        if snap.total_steps > 0 {
            let resumed = snap.resumed_from.unwrap_or(t.resumed_from_step);
            t.trained_to(snap.step, resumed);
        }
        if snap.total_steps > 0 {
            t.total_steps = Some(snap.total_steps);
        }
        if snap.train_loss.is_some() {
            t.train_loss = snap.train_loss;
        }
        if snap.baseline.is_some() {
            t.baseline = snap.baseline;
        }
        Ok(self.record_evals(trial, &snap.evals))
    }

    /// Why a scrape cannot be `trial`'s: it names another trial (a pod IP or port now used by another trainer), its
    /// total steps differ from the ones recorded, an evaluation lies past the end of the run, or the objective at an
    /// evaluation is not a number (a rung must never rank one).
    pub fn check_scrape(&self, trial: usize, snap: &TrainerSnapshot) -> Result<(), Refused> {
        let planned = &self.plan.trials[trial].name;
        let refuse = |why: String| Err(Refused(format!("{planned}: metrics refused: {why}")));
        if let Some(named) = snap.trial.as_deref().filter(|n| *n != planned) {
            return refuse(format!("they are trial {named:?}'s"));
        }
        let recorded = self.trials[trial].total_steps;
        if let Some(total) = recorded.filter(|&n| snap.total_steps > 0 && n != snap.total_steps) {
            return refuse(format!(
                "{} total steps, {total} recorded before",
                snap.total_steps
            ));
        }
        self.check_evals(&snap.evals, snap.total_steps)
            .or_else(refuse)
    }

    /// Evaluations within `total` steps whose objective is a finite number.
    fn check_evals(&self, evals: &[EvalPoint], total: u64) -> Result<(), String> {
        let metric = self.objective.metric;
        for e in evals {
            if e.step > total {
                return Err(format!(
                    "evaluation {} at step {} is past the run's {total} steps",
                    e.index, e.step
                ));
            }
            let score = e.metrics.get(metric);
            if !score.is_finite() {
                return Err(format!("evaluation {}: {metric} is {score}", e.index));
            }
        }
        Ok(())
    }

    /// Why a trainer's summary cannot be `trial`'s: it names another sweep, trial or seed pair, or its numbers
    /// contradict themselves.
    pub fn check_summary(&self, trial: usize, s: &TrialSummary) -> Result<(), Refused> {
        let planned = &self.plan.trials[trial];
        let refuse =
            |why: String| Err(Refused(format!("the trainer's summary was refused: {why}")));
        if s.sweep != self.name || s.trial != planned.name {
            return refuse(format!(
                "it is trial {:?} of sweep {:?}, not {:?} of {:?}",
                s.trial, s.sweep, planned.name, self.name
            ));
        }
        if (s.wi_seed, s.do_seed) != (planned.weight_init, planned.data_order) {
            return refuse(format!(
                "it reports weight-init seed {} and data-order seed {}, the trial has {} and {}",
                s.wi_seed, s.do_seed, planned.weight_init, planned.data_order
            ));
        }
        if s.total_steps == 0 || s.steps_done > s.total_steps {
            return refuse(format!(
                "{} steps done of {} in total",
                s.steps_done, s.total_steps
            ));
        }
        self.check_evals(&s.evals, s.total_steps).or_else(refuse)
    }

    fn record_evals(&mut self, trial: usize, evals: &[EvalPoint]) -> bool {
        let metric = self.objective.metric;
        let mut added = false;
        for e in evals {
            let t = &mut self.trials[trial];
            if t.evals.iter().any(|r| r.index == e.index) {
                continue;
            }
            let recorded = RecordedEval {
                seq: self.next_seq,
                index: e.index,
                step: e.step,
                score: e.metrics.get(metric),
            };
            self.next_seq += 1;
            let pos = t.evals.partition_point(|r| r.index < e.index);
            t.evals.insert(pos, recorded);
            added = true;
        }
        added
    }

    /// Records how a trial's process ended: its summary when it wrote one, else the exit description. A summary
    /// [`SweepState::check_summary`] refuses is not recorded, and the trial fails saying why.
    pub fn finish(&mut self, trial: usize, summary: Option<&TrialSummary>, exit: &str) {
        let refused = summary.and_then(|s| self.check_summary(trial, s).err());
        let summary = summary.filter(|_| refused.is_none());
        if let Some(s) = summary {
            // Evaluations a scrape missed (the trial ended between scrapes) come from the summary.
            self.trials[trial].total_steps = Some(s.total_steps);
            self.record_evals(trial, &s.evals);
            let t = &mut self.trials[trial];
            t.trained_to(s.steps_done, s.resumed_from_step);
            t.baseline = Some(s.majority_baseline);
            t.final_metrics = s.final_metrics;
        }
        let t = &mut self.trials[trial];
        t.stuck = None;
        if matches!(t.run, RunState::Stopped | RunState::Paused) {
            return;
        }
        if let Some(Refused(why)) = refused {
            t.run = RunState::Failed {
                reason: bounded_reason(format!("{why} ({exit})")),
            };
            return;
        }
        let reason = bounded_reason(
            summary
                .and_then(|s| s.reason.clone())
                .unwrap_or_else(|| exit.to_string()),
        );
        t.run = match summary.map(|s| s.outcome) {
            Some(Outcome::Completed) if t.final_metrics.is_some() => RunState::Completed,
            // It checkpointed at an exact-mode rung and waits there for the decision (`--pause-at-rungs`).
            Some(Outcome::Paused) => RunState::Paused,
            Some(Outcome::Diverged) => RunState::Diverged { reason },
            _ => RunState::Failed { reason },
        };
    }

    /// The engine's observations: the objective's value at each evaluation.
    pub fn observations(&self) -> Vec<TrialObservations> {
        let metric = self.objective.metric;
        self.trials
            .iter()
            .map(|t| TrialObservations {
                run: t.run.clone(),
                evals: t
                    .evals
                    .iter()
                    .map(|e| ScoredEval {
                        seq: e.seq,
                        step: e.step,
                        progress: t.progress(e),
                        score: e.score,
                    })
                    .collect(),
                baseline: t.baseline.map(|b| b.get(metric)),
            })
            .collect()
    }

    pub fn decide(&self, rules: &Rules) -> Decisions {
        decide(&self.plan, rules, &self.observations())
    }

    /// Per-trial records, counts, the best kept trial and the statistics, as the status reports them. Records are
    /// made for at most `max_records` launched trials ([`records_to_keep`] picks them; the others are counted in
    /// `records_omitted`), so a 10,000-trial sweep's status never builds the 9,000 records it would then drop.
    pub fn report(&self, decisions: &Decisions, max_records: usize) -> Report {
        let metric = self.objective.metric;
        let mut counts = TrialCounts {
            total: self.trials.len() as u32,
            ..TrialCounts::default()
        };
        let mut best: Option<BestTrial> = None;
        // (phase as reported, final score) of each trial, in launch order.
        let mut outcomes = Vec::with_capacity(self.trials.len());
        for ((planned, t), verdict) in self
            .plan
            .trials
            .iter()
            .zip(&self.trials)
            .zip(&decisions.verdicts)
        {
            let phase = reported_phase(t, verdict.phase);
            match phase {
                TrialPhase::Stuck => counts.stuck += 1,
                TrialPhase::Pending => counts.pending += 1,
                TrialPhase::Running => counts.running += 1,
                TrialPhase::AwaitingDecision => counts.paused += 1,
                TrialPhase::Succeeded => counts.succeeded += 1,
                TrialPhase::Discarded => counts.discarded += 1,
                TrialPhase::Diverged => counts.diverged += 1,
                TrialPhase::Failed => counts.failed += 1,
            }
            let final_score = t.final_metrics.map(|m| m.get(metric));
            if verdict.phase == TrialPhase::Succeeded
                && let Some(score) = final_score
                && best
                    .as_ref()
                    .is_none_or(|b| self.objective.direction.better(score, b.score))
            {
                best = Some(BestTrial {
                    name: planned.name.clone(),
                    weight_init: planned.weight_init,
                    data_order: planned.data_order,
                    score,
                });
            }
            outcomes.push((phase, final_score));
        }
        let keep = records_to_keep(&outcomes, self.objective.direction, max_records);
        let sweep_steps = self.total_steps();
        let records: Vec<TrialRecord> = (keep.iter().enumerate())
            .filter(|&(_, &kept)| kept)
            .map(|(i, _)| self.record(i, &decisions.verdicts[i], outcomes[i], sweep_steps))
            .collect();
        Report {
            // Every launched trial has a record or is counted here.
            records_omitted: counts.total - counts.pending - records.len() as u32,
            records,
            counts,
            best,
            statistics: self.statistics(),
        }
    }

    /// Trial `i`'s record, given its `phase` as reported, its final score, and the steps of a full run where the
    /// trial does not know its own ([`Self::total_steps`], computed once for all records).
    fn record(
        &self,
        i: usize,
        verdict: &Verdict,
        (phase, final_score): (TrialPhase, Option<f64>),
        sweep_steps: Option<u64>,
    ) -> TrialRecord {
        let (planned, t) = (&self.plan.trials[i], &self.trials[i]);
        let reason = match (&verdict.reason, &t.run) {
            (Some(r), _) => Some(r.message().to_string()),
            (None, _) if phase == TrialPhase::Stuck => t.stuck.clone(),
            (None, RunState::Failed { reason } | RunState::Diverged { reason }) => {
                Some(reason.clone())
            }
            (None, RunState::Stopped) => Some("stopped outside the sweep's decisions".into()),
            _ => None,
        };
        let total = t.total_steps.or(sweep_steps);
        let scores = t.evals.iter().map(|e| e.score);
        TrialRecord {
            name: planned.name.clone(),
            weight_init: planned.weight_init,
            data_order: planned.data_order,
            phase,
            attempts: t.attempts,
            progress: match (t.steps_done, total) {
                (_, _) if t.final_metrics.is_some() && t.run == RunState::Completed => 1.0,
                (s, Some(n)) if n > 0 => (s as f64 / n as f64).min(1.0),
                _ => 0.0,
            },
            steps_done: t.steps_done,
            total_steps: total,
            rungs: verdict.rungs.clone(),
            latest_score: t.evals.last().map(|e| e.score),
            best_score: scores.reduce(|a, b| {
                if self.objective.direction.better(b, a) {
                    b
                } else {
                    a
                }
            }),
            final_score,
            reason,
        }
    }

    /// Steps of a full run; every trial of a sweep trains on the same data with the same settings.
    pub fn total_steps(&self) -> Option<u64> {
        self.trials.iter().filter_map(|t| t.total_steps).max()
    }

    pub fn statistics(&self) -> SweepStatistics {
        let metric = self.objective.metric;
        let total = self.total_steps().unwrap_or(0);
        let outcomes: Vec<TrialScores> = self
            .plan
            .trials
            .iter()
            .zip(&self.trials)
            .map(|(p, t)| TrialScores {
                wi_seed: p.weight_init,
                do_seed: p.data_order,
                // Trials that trained to completion, whatever a rung later decided about them.
                final_score: t
                    .final_metrics
                    .filter(|_| t.run == RunState::Completed)
                    .map(|m| m.get(metric)),
                evals: t.evals.iter().map(|e| (t.progress(e), e.score)).collect(),
                steps_done: t.steps_spent(),
                total_steps: t.cost_without_discarding(total),
            })
            .collect();
        stats::compute(&outcomes)
    }
}

/// The longest reason recorded for a trial: the snapshot's chunks are sized for it
/// ([`crate::snapshot::trials_per_chunk`]).
pub const MAX_REASON_BYTES: usize = 1024;

/// `reason`, cut at a character boundary to [`MAX_REASON_BYTES`] (with "…" saying so): reasons come from trainers'
/// summaries and executors, which may say much more.
fn bounded_reason(mut reason: String) -> String {
    if reason.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES - '…'.len_utf8();
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    reason
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An observation the engine will not record, and why (naming the trial).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// A trial's phase as reported: a running trial that cannot start is `Stuck`.
fn reported_phase(t: &TrialState, decided: TrialPhase) -> TrialPhase {
    if t.stuck.is_some() && decided == TrialPhase::Running {
        TrialPhase::Stuck
    } else {
        decided
    }
}

/// What a sweep reports about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Launched trials' records, in launch order: all, or those [`records_to_keep`] picked.
    pub records: Vec<TrialRecord>,
    /// Launched trials without a record.
    pub records_omitted: u32,
    pub counts: TrialCounts,
    pub best: Option<BestTrial>,
    pub statistics: SweepStatistics,
}

/// The spec fields whose change would change a sweep's plan or its decisions (anything but parallelism,
/// backoffLimit and the pod template). Both executors keep the plan they started with when these differ.
pub fn plan_changes(planned: &SeedSweepSpec, live: &SeedSweepSpec) -> Vec<String> {
    let mut changed = Vec::new();
    let mut check = |field: &str, same: bool| {
        if !same {
            changed.push(format!("spec.{field}"));
        }
    };
    check("task", planned.task == live.task);
    check("model", planned.model == live.model);
    check("seeds", planned.seeds.as_written() == live.seeds);
    check("training", planned.training == live.training);
    check("objective", planned.objective() == live.objective());
    check("earlyDiscard", planned.early_discard == live.early_discard);
    check("divergence", planned.divergence == live.divergence);
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::StopReason;

    fn state() -> SweepState {
        SweepState::new("s", &crate::snapshot::tests::spec())
    }

    fn trained(state: &mut SweepState, trial: usize, steps: u64) {
        state.mark_started(trial);
        state
            .observe(
                trial,
                &TrainerSnapshot {
                    step: steps,
                    total_steps: 10,
                    ..TrainerSnapshot::default()
                },
            )
            .expect("a consistent scrape");
    }

    fn eval(index: u32, step: u64, score: f64) -> EvalPoint {
        let mut metrics = Metrics::default();
        metrics.set(seedsweep_crds::MetricName::AccAndF1, score);
        EvalPoint {
            index,
            step,
            progress: step as f64 / 10.0,
            metrics,
        }
    }

    fn scrape(trial: Option<&str>, total_steps: u64, evals: Vec<EvalPoint>) -> TrainerSnapshot {
        TrainerSnapshot {
            trial: trial.map(str::to_string),
            step: 5,
            total_steps,
            evals,
            ..TrainerSnapshot::default()
        }
    }

    /// What a trial spends over attempts and retry pods: a relaunch resumed from a rung checkpoint does not count
    /// the steps before it again; a retry pod of the same attempt (its step going back, or another resumed-from
    /// step) leaves what the previous pod trained spent.
    #[test]
    fn steps_spent_count_what_was_trained_whatever_resumed() {
        let mut state = state();
        let at = |step: u64, resumed: u64| TrainerSnapshot {
            step,
            total_steps: 10,
            resumed_from: Some(resumed),
            ..TrainerSnapshot::default()
        };
        state.mark_started(0);
        state.observe(0, &at(4, 0)).unwrap();
        state.mark_paused(0);
        assert_eq!(state.trials[0].steps_spent(), 4);
        // Kept: relaunched, it resumes from the rung's checkpoint at step 4; before that it serves no total.
        let loading = TrainerSnapshot::default();
        state.mark_started(0);
        state.observe(0, &loading).unwrap();
        state.observe(0, &at(6, 4)).unwrap();
        assert_eq!(state.trials[0].steps_spent(), 4 + 2);
        // Its pod is deleted after step 7 (unseen); the Job's next pod resumes from the checkpoint it wrote then.
        state.observe(0, &loading).unwrap();
        state.observe(0, &at(8, 7)).unwrap();
        assert_eq!(state.trials[0].steps_spent(), 4 + 3 + 1);
        // Killed hard this time: the next pod finds the same checkpoint and trains steps 8..=10 again.
        state.observe(0, &at(7, 7)).unwrap();
        assert_eq!(
            state.trials[0].steps_spent(),
            4 + 3 + 1,
            "step 8 again: nothing new"
        );
        let mut summary = TrialSummary {
            sweep: state.name.clone(),
            trial: state.plan.trials[0].name.clone(),
            wi_seed: state.plan.trials[0].weight_init,
            do_seed: state.plan.trials[0].data_order,
            outcome: Outcome::Completed,
            reason: None,
            steps_done: 10,
            total_steps: 10,
            majority_baseline: Metrics::default(),
            final_metrics: None,
            evals: Vec::new(),
            dropped_evals: 0,
            resumed_from_step: 7,
        };
        summary.final_metrics = Some(Metrics::default());
        state.finish(0, Some(&summary), "exit 0");
        assert_eq!(state.trials[0].run, RunState::Completed);
        assert_eq!(state.trials[0].steps_spent(), 4 + 3 + 1 + 3);
        // Without a checkpoint a relaunch trains from the beginning again, all of it spent.
        state.mark_started(1);
        state.observe(1, &at(4, 0)).unwrap();
        state.mark_paused(1);
        state.mark_started(1);
        state.observe(1, &at(6, 0)).unwrap();
        assert_eq!(state.trials[1].steps_spent(), 4 + 6);
    }

    /// Given a trial that has recorded 10 total steps, a scrape that is another trial's, changes the total, lies
    /// past the end of the run or carries a NaN objective is refused with the reason, and nothing of it is recorded.
    #[test]
    fn scrapes_that_are_not_the_trials_are_refused_and_not_recorded() {
        let mut state = state();
        trained(&mut state, 0, 2);
        let before = state.clone();
        let cases = [
            (
                scrape(Some("s-w2-d2"), 10, vec![eval(0, 5, 0.7)]),
                "s-w1-d1: metrics refused: they are trial \"s-w2-d2\"'s",
            ),
            (
                scrape(None, 12, vec![eval(0, 5, 0.7)]),
                "s-w1-d1: metrics refused: 12 total steps, 10 recorded before",
            ),
            (
                scrape(None, 10, vec![eval(0, 11, 0.7)]),
                "s-w1-d1: metrics refused: evaluation 0 at step 11 is past the run's 10 steps",
            ),
            (
                scrape(None, 10, vec![eval(0, 5, f64::NAN)]),
                "s-w1-d1: metrics refused: evaluation 0: acc_and_f1 is NaN",
            ),
        ];
        for (snap, why) in cases {
            assert_eq!(state.observe(0, &snap), Err(Refused(why.into())));
            assert_eq!(state, before);
        }
        assert_eq!(
            state.observe(0, &scrape(Some("s-w1-d1"), 10, vec![eval(0, 5, 0.7)])),
            Ok(true)
        );
    }

    /// A summary that is another trial's, reports other seeds or contradicts itself fails the trial saying why, and
    /// none of its numbers are recorded.
    #[test]
    fn summaries_that_are_not_the_trials_fail_it_and_are_not_recorded() {
        let summary = |f: &dyn Fn(&mut TrialSummary)| {
            let mut s = TrialSummary {
                sweep: "s".into(),
                trial: "s-w1-d1".into(),
                wi_seed: 1,
                do_seed: 1,
                outcome: Outcome::Completed,
                reason: None,
                steps_done: 10,
                total_steps: 10,
                majority_baseline: Metrics::default(),
                final_metrics: Some(eval(1, 10, 0.8).metrics),
                evals: vec![eval(0, 5, 0.7), eval(1, 10, 0.8)],
                dropped_evals: 0,
                resumed_from_step: 0,
            };
            f(&mut s);
            s
        };
        let cases: [(TrialSummary, &str); 4] = [
            (
                summary(&|s| s.trial = "s-w2-d1".into()),
                "it is trial \"s-w2-d1\" of sweep \"s\", not \"s-w1-d1\" of \"s\"",
            ),
            (
                summary(&|s| s.do_seed = 7),
                "it reports weight-init seed 1 and data-order seed 7, the trial has 1 and 1",
            ),
            (
                summary(&|s| s.steps_done = 11),
                "11 steps done of 10 in total",
            ),
            (
                summary(&|s| s.evals[0].step = 12),
                "evaluation 0 at step 12 is past the run's 10 steps",
            ),
        ];
        for (s, why) in cases {
            let mut state = state();
            state.mark_started(0);
            state.finish(0, Some(&s), "exit code 0");
            assert_eq!(
                state.trials[0].run,
                RunState::Failed {
                    reason: format!("the trainer's summary was refused: {why} (exit code 0)")
                }
            );
            assert!(state.trials[0].evals.is_empty() && state.trials[0].final_metrics.is_none());
        }
        let mut state = state();
        state.mark_started(0);
        state.finish(0, Some(&summary(&|_| {})), "exit code 0");
        assert_eq!(state.trials[0].run, RunState::Completed);
        assert_eq!(state.trials[0].evals.len(), 2);
    }

    /// Only what a decision stopped counts as saved: a failed trial's unspent steps, or a running trial's, were
    /// never saved by discarding.
    #[test]
    fn only_discards_count_as_savings() {
        let mut state = state();
        trained(&mut state, 0, 3);
        state.mark_stopped(
            0,
            StopReason::Discarded {
                rung: 0,
                score: 0.5,
                cutoff: 0.6,
                message: "discarded".into(),
            },
        );
        trained(&mut state, 1, 2);
        state.finish(1, None, "exit code 1");
        assert!(matches!(state.trials[1].run, RunState::Failed { .. }));
        trained(&mut state, 2, 4);
        let compute = state.statistics().compute;
        assert_eq!(compute.steps_spent, 3 + 2 + 4);
        assert_eq!(compute.steps_without_discarding, 10 + 2 + 4);
        let saving = compute.saving_fraction.unwrap();
        assert!((saving - 7.0 / 16.0).abs() < 1e-12, "{saving}");
        // Exact mode: a trial paused at the rung (and, at the end, discarded there) would have trained to the end.
        state.mark_paused(2);
        let compute = state.statistics().compute;
        assert_eq!(compute.steps_spent, 3 + 2 + 4);
        assert_eq!(compute.steps_without_discarding, 10 + 2 + 10);
    }

    /// Reasons are cut at a character boundary, so that the snapshot's chunks keep their size bound.
    #[test]
    fn long_reasons_are_cut_to_the_bound() {
        assert_eq!(bounded_reason("short".into()), "short");
        let cut = bounded_reason("é".repeat(MAX_REASON_BYTES));
        assert!(
            cut.len() <= MAX_REASON_BYTES && cut.ends_with('…'),
            "{}",
            cut.len()
        );
        assert!(cut.starts_with("éé"));
        let exact = "a".repeat(MAX_REASON_BYTES);
        assert_eq!(bounded_reason(exact.clone()), exact);
    }
}
