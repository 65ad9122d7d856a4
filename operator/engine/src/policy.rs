//! Rung decisions and divergence: a pure function of what has been observed so far.
//!
//! Executors (Kubernetes, local) record observations and act on the decisions; nothing here knows about clocks,
//! processes or pods, so a restarted executor that replays the same observations decides the same way.
//!
//! **Exact mode.** The offline algorithm of Dodge et al. ranks every trial at a rung and keeps the top `keep`; with
//! several rungs it ranks the survivors of one rung at the next. Online, trials reach a rung in waves, so for each
//! trial at each rung we ask what the *final* offline outcome can still be:
//! - out for sure when `keep` trials that are certainly ranked at this rung already beat it → `Discard` (the trial
//!   is stopped; more observations can only add such trials, so this never reverses);
//! - in for sure when it is certainly ranked here and fewer than `keep` trials that could still be ranked here
//!   (observed, or not yet arrived) beat it → `Continue`;
//! - otherwise `ContinueProvisional`: in the top so far, but later trials may still beat it. Such a trial is
//!   *paused* (stopped at the rung, freeing its slot); once its decision is final it is discarded, or relaunched
//!   from the beginning with the same seeds and trains to completion. So the trials that train to completion are
//!   exactly the offline top, whatever the parallelism. Without checkpoints a relaunched trial repeats the part
//!   before the rung: the cost is `(t·f + p)·s` rather than the paper's `(t·f + p·(1−f))·s`.
//!
//! A trial is "certainly ranked" at rung j when it reached rung j and was certainly kept at every earlier rung.
//! A trial that fails before a rung is not ranked there; one that reached a rung keeps its score there whatever
//! happens to it later (as offline). Ties go to the trial earlier in the launch order.
//!
//! **Asynchronous mode** (ASHA): a trial reaching a rung continues when fewer than `minObservations` trials have
//! reached it, or when it ranks within the top `keepFraction` of the trials that reached it before or with it. The
//! decision is final on arrival; nothing is preempted.

use crate::plan::Plan;
use seedsweep_crds::sweep::{
    Direction, DiscardMode, DivergenceSpec, RungDecision, RungRecord, TrialPhase,
};
use seedsweep_crds::trainer::reaches;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// One evaluation of the objective, as an executor observed it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoredEval {
    /// Order in which the executor recorded it (global across trials); asynchronous mode ranks by arrival.
    pub seq: u64,
    pub step: u64,
    pub progress: f64,
    pub score: f64,
}

/// Where a trial's process is, as far as the executor knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum RunState {
    NotStarted,
    Running,
    /// Trained to completion.
    Completed,
    /// Stopped by the executor because of a decision of this module.
    Stopped,
    /// Stopped at an exact-mode rung whose decision is not final yet (by the executor, or by the trainer itself after
    /// writing the rung's checkpoint); relaunched if it is kept, from that checkpoint when there is one, else from
    /// the beginning.
    Paused,
    /// The trainer reported a NaN/inf loss.
    Diverged {
        reason: String,
    },
    Failed {
        reason: String,
    },
}

/// What the policy looks at for one trial: where its process is, its scored evaluations and its baseline (a
/// projection of [`crate::state::TrialState`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialObservations {
    pub run: RunState,
    /// Evaluations in progress order.
    pub evals: Vec<ScoredEval>,
    /// The objective's value for always predicting the dev set's majority class.
    pub baseline: Option<f64>,
}

impl TrialObservations {
    pub fn not_started() -> Self {
        TrialObservations {
            run: RunState::NotStarted,
            evals: Vec::new(),
            baseline: None,
        }
    }

    /// The evaluation a rung at `fraction` ranks this trial by: its first at or after that point.
    pub fn eval_at(&self, fraction: f64) -> Option<&ScoredEval> {
        self.evals.iter().find(|e| reaches(e.progress, fraction))
    }

    fn alive(&self) -> bool {
        matches!(
            self.run,
            RunState::NotStarted | RunState::Running | RunState::Paused
        )
    }
}

/// Why a trial must stop now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum StopReason {
    Discarded {
        rung: usize,
        score: f64,
        cutoff: f64,
        message: String,
    },
    Diverged {
        progress: f64,
        score: f64,
        baseline: f64,
        message: String,
    },
    /// Never started: the first trials all failed (fail-fast).
    FailFast { message: String },
}

impl StopReason {
    /// One word for log lines.
    pub fn short(&self) -> &'static str {
        match self {
            StopReason::Discarded { .. } => "discarded",
            StopReason::Diverged { .. } => "diverged",
            StopReason::FailFast { .. } => "fail-fast",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            StopReason::Discarded { message, .. }
            | StopReason::Diverged { message, .. }
            | StopReason::FailFast { message } => message,
        }
    }
}

/// The engine's judgement of one trial: its phase, its rung records, and why it was discarded or diverged.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub phase: TrialPhase,
    pub rungs: Vec<RungRecord>,
    /// Set when the trial is discarded or diverged (whether or not it still has to be stopped).
    pub reason: Option<StopReason>,
}

/// What an executor must do now, and how every trial stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Decisions {
    pub verdicts: Vec<Verdict>,
    /// Running trials to stop, with why.
    pub to_stop: Vec<(usize, StopReason)>,
    /// Running trials to pause at a rung until its decision is final (exact mode).
    pub to_pause: Vec<usize>,
    /// Trials to launch now, in launch order, within the parallelism.
    pub to_start: Vec<usize>,
    /// Every trial has reached a terminal phase.
    pub complete: bool,
    /// Fail-fast stopped the sweep from starting trials, and why.
    pub aborted: Option<String>,
}

impl Decisions {
    /// Whether an executor has anything to do: a trial to stop, pause or launch.
    pub fn acts(&self) -> bool {
        !(self.to_stop.is_empty() && self.to_pause.is_empty() && self.to_start.is_empty())
    }
}

/// The sweep's decision rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    pub direction: Direction,
    pub divergence: Option<DivergenceSpec>,
    pub parallelism: usize,
    /// Start no more trials once this many have failed before any trial produced an evaluation; 0: never.
    pub fail_fast: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Membership {
    Certain,
    Possible,
    Out,
}

/// Decides for every trial of `plan` given `obs` (indexed like `plan.trials`).
pub fn decide(plan: &Plan, rules: &Rules, obs: &[TrialObservations]) -> Decisions {
    assert_eq!(
        plan.trials.len(),
        obs.len(),
        "one observation record per planned trial"
    );
    let n = obs.len();
    let mut rungs: Vec<Vec<RungRecord>> = vec![Vec::new(); n];
    let mut discard: Vec<Option<StopReason>> = vec![None; n];
    match plan.mode {
        DiscardMode::Exact => exact(plan, rules.direction, obs, &mut rungs, &mut discard),
        DiscardMode::Asynchronous => {
            asynchronous(plan, rules.direction, obs, &mut rungs, &mut discard)
        }
    }

    let aborted = fail_fast(rules.fail_fast, obs);
    let mut verdicts = Vec::with_capacity(n);
    let mut to_stop = Vec::new();
    let mut to_pause = Vec::new();
    let mut to_resume = Vec::new();
    for (i, o) in obs.iter().enumerate() {
        let diverged = rules
            .divergence
            .and_then(|d| divergence(&d, rules.direction, o));
        let mut reason = diverged.or_else(|| discard[i].take());
        if o.run == RunState::NotStarted
            && let Some(message) = &aborted
        {
            reason = Some(StopReason::FailFast {
                message: format!("not started: {message}"),
            });
        }
        let provisional = rungs[i]
            .iter()
            .any(|r| r.decision == RungDecision::ContinueProvisional);
        let phase = match (&o.run, &reason) {
            (_, Some(StopReason::FailFast { .. })) => TrialPhase::Failed,
            (RunState::NotStarted, _) => TrialPhase::Pending,
            (RunState::Running, Some(r)) => {
                to_stop.push((i, r.clone()));
                TrialPhase::Running
            }
            (RunState::Running, None) => {
                if provisional {
                    to_pause.push(i);
                }
                TrialPhase::Running
            }
            (RunState::Diverged { .. }, _) | (_, Some(StopReason::Diverged { .. })) => {
                TrialPhase::Diverged
            }
            (RunState::Failed { .. }, _) => TrialPhase::Failed,
            (_, Some(StopReason::Discarded { .. })) => TrialPhase::Discarded,
            (RunState::Completed | RunState::Paused, None) if provisional => {
                TrialPhase::AwaitingDecision
            }
            (RunState::Completed, None) => TrialPhase::Succeeded,
            (RunState::Paused, None) => {
                to_resume.push(i);
                TrialPhase::Pending
            }
            // Stopped with no reason this module gives: someone else stopped it (a deleted pod, a killed process).
            (RunState::Stopped, None) => TrialPhase::Failed,
        };
        verdicts.push(Verdict {
            phase,
            rungs: std::mem::take(&mut rungs[i]),
            reason,
        });
    }

    let leaving: Vec<usize> = to_stop
        .iter()
        .map(|(i, _)| *i)
        .chain(to_pause.iter().copied())
        .collect();
    let busy = obs
        .iter()
        .enumerate()
        .filter(|(i, o)| o.run == RunState::Running && !leaving.contains(i))
        .count();
    let free = rules.parallelism.saturating_sub(busy);
    // Kept trials waiting for their relaunch first: they are the sweep's results.
    let to_start = to_resume
        .into_iter()
        .chain(
            obs.iter()
                .enumerate()
                .filter(|(_, o)| o.run == RunState::NotStarted && aborted.is_none())
                .map(|(i, _)| i),
        )
        .take(free)
        .collect();
    let complete = verdicts.iter().all(|v| v.phase.is_terminal());
    Decisions {
        verdicts,
        to_stop,
        to_pause,
        to_start,
        complete,
        aborted,
    }
}

/// Fail-fast: when `after` trials have failed and no trial has produced an evaluation yet, the same fault (a wrong
/// model path, a missing image) will fail every trial; say why, naming the commonest failure.
fn fail_fast(after: usize, obs: &[TrialObservations]) -> Option<String> {
    if after == 0 {
        return None;
    }
    let worked = obs.iter().any(|o| {
        !o.evals.is_empty() || matches!(o.run, RunState::Completed | RunState::Diverged { .. })
    });
    let failed: Vec<&str> = obs
        .iter()
        .filter_map(|o| match &o.run {
            RunState::Failed { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    if worked || failed.len() < after {
        return None;
    }
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for reason in &failed {
        *counts.entry(reason).or_default() += 1;
    }
    let (common, times) = counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))?;
    Some(format!(
        "the first {} trials failed before any produced an evaluation ({times} with: {common})",
        failed.len()
    ))
}

/// Total order of "better": the better score first, then the earlier trial. NaN ranks last.
fn ranks_before(direction: Direction, (sa, ia): (f64, usize), (sb, ib): (f64, usize)) -> Ordering {
    let key = |s: f64| {
        if s.is_nan() {
            f64::NEG_INFINITY
        } else if direction == Direction::Maximize {
            s
        } else {
            -s
        }
    };
    key(sb).total_cmp(&key(sa)).then(ia.cmp(&ib))
}

fn exact(
    plan: &Plan,
    direction: Direction,
    obs: &[TrialObservations],
    rungs: &mut [Vec<RungRecord>],
    discard: &mut [Option<StopReason>],
) {
    let n = obs.len();
    // Membership in the population ranked at the current rung, from the previous rung's outcome.
    let mut member: Vec<Membership> = vec![Membership::Certain; n];
    for (j, rung) in plan.rungs.iter().enumerate() {
        let observed: Vec<Option<ScoredEval>> = obs
            .iter()
            .map(|o| o.eval_at(rung.at_fraction).copied())
            .collect();
        // Trials that might still be ranked here without having arrived yet.
        let pending = (0..n)
            .filter(|&i| member[i] != Membership::Out && observed[i].is_none() && obs[i].alive())
            .count();
        let mut ranked: Vec<usize> = (0..n)
            .filter(|&i| member[i] != Membership::Out && observed[i].is_some())
            .collect();
        ranked.sort_by(|&a, &b| {
            ranks_before(
                direction,
                (observed[a].unwrap().score, a),
                (observed[b].unwrap().score, b),
            )
        });
        // The trial whose score is the cut-off once `keep` certainly ranked trials are ahead of another.
        let cutoff_trial = ranked
            .iter()
            .copied()
            .filter(|&k| member[k] == Membership::Certain)
            .nth(rung.keep.max(1) - 1);
        let mut certain_before = 0usize;
        let mut next = vec![Membership::Out; n];
        for (pos, &i) in ranked.iter().enumerate() {
            let e = observed[i].unwrap();
            let possible_before = pos + pending;
            let decision = if certain_before >= rung.keep {
                RungDecision::Discard
            } else if member[i] == Membership::Certain && possible_before < rung.keep {
                RungDecision::Continue
            } else {
                RungDecision::ContinueProvisional
            };
            if decision == RungDecision::Discard {
                let k = cutoff_trial.expect("keep certain trials rank ahead of a discarded one");
                let cutoff = observed[k].unwrap().score;
                discard[i] = Some(StopReason::Discarded {
                    rung: j,
                    score: e.score,
                    cutoff,
                    message: format!(
                        "rung {j} (at {:.0}% of training): score {:.4} is not in the top {} (cut-off {:.4}, {})",
                        rung.at_fraction * 100.0,
                        e.score,
                        rung.keep,
                        cutoff,
                        plan.trials[k].name
                    ),
                });
            }
            if member[i] == Membership::Certain {
                certain_before += 1;
            }
            next[i] = match decision {
                RungDecision::Continue => Membership::Certain,
                RungDecision::ContinueProvisional => Membership::Possible,
                RungDecision::Discard => Membership::Out,
            };
            rungs[i].push(RungRecord {
                rung: j as u32,
                progress: e.progress,
                score: e.score,
                decision,
            });
        }
        // Not arrived yet but still alive: may be ranked at the next rung too.
        for i in 0..n {
            if member[i] != Membership::Out && observed[i].is_none() && obs[i].alive() {
                next[i] = Membership::Possible;
            }
        }
        member = next;
    }
}

fn asynchronous(
    plan: &Plan,
    direction: Direction,
    obs: &[TrialObservations],
    rungs: &mut [Vec<RungRecord>],
    discard: &mut [Option<StopReason>],
) {
    let n = obs.len();
    let mut continuing = vec![true; n];
    for (j, rung) in plan.rungs.iter().enumerate() {
        let mut arrivals: Vec<(usize, ScoredEval)> = (0..n)
            .filter(|&i| continuing[i])
            .filter_map(|i| obs[i].eval_at(rung.at_fraction).map(|e| (i, *e)))
            .collect();
        arrivals.sort_by_key(|(i, e)| (e.seq, *i));
        // Scores seen so far at this rung, kept sorted best first.
        let mut seen: Vec<(f64, usize)> = Vec::with_capacity(arrivals.len());
        for (i, e) in arrivals {
            let pos = seen.partition_point(|&other| {
                ranks_before(direction, other, (e.score, i)) == Ordering::Less
            });
            seen.insert(pos, (e.score, i));
            let keep = super::plan::keep_of(seen.len(), rung.keep_fraction);
            let decision = if seen.len() < plan.min_observations || pos < keep {
                RungDecision::Continue
            } else {
                RungDecision::Discard
            };
            if decision == RungDecision::Discard {
                continuing[i] = false;
                let cutoff = seen[keep - 1].0;
                discard[i] = Some(StopReason::Discarded {
                    rung: j,
                    score: e.score,
                    cutoff,
                    message: format!(
                        "rung {j} (at {:.0}% of training): score {:.4} is not in the top {:.0}% of the {} trials \
                         ranked so far (cut-off {cutoff:.4})",
                        rung.at_fraction * 100.0,
                        e.score,
                        rung.keep_fraction * 100.0,
                        seen.len()
                    ),
                });
            }
            rungs[i].push(RungRecord {
                rung: j as u32,
                progress: e.progress,
                score: e.score,
                decision,
            });
        }
        for (i, c) in continuing.iter_mut().enumerate() {
            // A trial that has not reached this rung cannot be ranked at the next before it does.
            if obs[i].eval_at(rung.at_fraction).is_none() {
                *c = *c && obs[i].alive();
            }
        }
    }
}

/// A trial has diverged when an evaluation at or after `afterFraction` is no better than the majority-class baseline
/// plus the margin: it has collapsed to predicting one class.
fn divergence(
    rule: &DivergenceSpec,
    direction: Direction,
    o: &TrialObservations,
) -> Option<StopReason> {
    let baseline = o.baseline?;
    let threshold = match direction {
        Direction::Maximize => baseline + rule.margin,
        Direction::Minimize => baseline - rule.margin,
    };
    o.evals
        .iter()
        .filter(|e| reaches(e.progress, rule.after_fraction))
        .find(|e| !direction.better(e.score, threshold))
        .map(|e| StopReason::Diverged {
            progress: e.progress,
            score: e.score,
            baseline,
            message: format!(
                "diverged: score {:.4} at {:.0}% of training is within {} of the majority-class baseline {:.4}",
                e.score,
                e.progress * 100.0,
                rule.margin,
                baseline
            ),
        })
}
