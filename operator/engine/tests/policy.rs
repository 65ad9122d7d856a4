//! Property tests of the early-discard policy: a simulated executor feeds trials' evaluations to the engine in
//! arbitrary arrival orders, under arbitrary parallelism, and obeys its decisions.

use proptest::prelude::*;
use seedsweep_crds::sweep::{Direction, DiscardMode, DivergenceSpec, RungDecision, TrialPhase};
use seedsweep_engine::plan::{Plan, PlannedTrial, Rung};
use seedsweep_engine::policy::{
    Decisions, Rules, RunState, ScoredEval, StopReason, TrialObservations, decide,
};
use std::collections::BTreeSet;

/// Every simulated trial evaluates ten times, at 10 %, 20 %, …, 100 % of training.
const EVALS: usize = 10;

fn progress_of(k: usize) -> f64 {
    (k + 1) as f64 / EVALS as f64
}

#[derive(Debug, Clone)]
struct Trial {
    scores: Vec<f64>,
    /// The trial crashes instead of producing this evaluation.
    fail_at: Option<usize>,
}

fn plan(n: usize, rungs: &[(f64, usize)], mode: DiscardMode, min_observations: usize) -> Plan {
    let mut ranked = n;
    Plan {
        trials: (0..n)
            .map(|i| PlannedTrial {
                index: i,
                name: format!("t{i}"),
                weight_init: i as u64,
                data_order: 0,
            })
            .collect(),
        rungs: rungs
            .iter()
            .map(|&(at_fraction, keep)| {
                let keep = keep.min(ranked).max(1);
                let r = Rung {
                    at_fraction,
                    keep,
                    keep_fraction: keep as f64 / ranked as f64,
                };
                ranked = keep;
                r
            })
            .collect(),
        mode,
        min_observations,
    }
}

fn rules(parallelism: usize) -> Rules {
    Rules {
        direction: Direction::Maximize,
        divergence: None,
        parallelism,
        fail_fast: 0,
    }
}

/// Index of the evaluation a rung at `f` ranks by.
fn rung_eval(f: f64) -> usize {
    (0..EVALS).find(|&k| progress_of(k) + 1e-9 >= f).unwrap()
}

/// The paper's offline algorithm: rank everyone who reached the rung, keep the top, repeat; ties to the earlier
/// trial. Returns the trials that train to completion.
fn offline_finishers(plan: &Plan, trials: &[Trial]) -> BTreeSet<usize> {
    let reaches = |i: usize, k: usize| trials[i].fail_at.is_none_or(|f| f > k);
    let mut alive: Vec<usize> = (0..trials.len()).collect();
    for rung in &plan.rungs {
        let k = rung_eval(rung.at_fraction);
        let mut ranked: Vec<usize> = alive.iter().copied().filter(|&i| reaches(i, k)).collect();
        ranked.sort_by(|&a, &b| {
            trials[b].scores[k]
                .total_cmp(&trials[a].scores[k])
                .then(a.cmp(&b))
        });
        ranked.truncate(rung.keep);
        alive = ranked;
    }
    alive
        .into_iter()
        .filter(|&i| trials[i].fail_at.is_none())
        .collect()
}

struct Run {
    history: Vec<Decisions>,
    obs: Vec<TrialObservations>,
}

/// Runs the sweep to the end: each step advances one running trial (picked by `choices`) by one evaluation. A
/// relaunched trial replays its seeds from the beginning: the same evaluations again, recorded once.
fn simulate(plan: &Plan, rules: &Rules, trials: &[Trial], choices: &[usize]) -> Run {
    let mut obs: Vec<TrialObservations> = trials
        .iter()
        .map(|_| TrialObservations::not_started())
        .collect();
    let mut position = vec![0usize; trials.len()];
    let mut seq = 0u64;
    let mut history = Vec::new();
    let mut step = 0usize;
    loop {
        let d = decide(plan, rules, &obs);
        for (i, _) in &d.to_stop {
            assert_eq!(
                obs[*i].run,
                RunState::Running,
                "only running trials are stopped"
            );
            obs[*i].run = RunState::Stopped;
        }
        for &i in &d.to_pause {
            assert_eq!(
                obs[i].run,
                RunState::Running,
                "only running trials are paused"
            );
            obs[i].run = RunState::Paused;
        }
        for &i in &d.to_start {
            assert!(
                matches!(obs[i].run, RunState::NotStarted | RunState::Paused),
                "{:?}",
                obs[i].run
            );
            obs[i].run = RunState::Running;
            position[i] = 0;
        }
        let running: Vec<usize> = (0..obs.len())
            .filter(|&i| obs[i].run == RunState::Running)
            .collect();
        history.push(d);
        if running.is_empty() {
            // The stops and pauses just applied may have settled the last decisions.
            let settled = decide(plan, rules, &obs);
            let phases: Vec<_> = settled.verdicts.iter().map(|v| v.phase).collect();
            assert!(
                settled.complete,
                "stalled with nothing running: {phases:?} {:?}",
                plan.mode
            );
            break;
        }
        let i = running[choices[step % choices.len()] % running.len()];
        step += 1;
        let k = position[i];
        if trials[i].fail_at == Some(k) {
            obs[i].run = RunState::Failed {
                reason: "crashed".into(),
            };
            continue;
        }
        position[i] += 1;
        if obs[i].evals.len() == k {
            seq += 1;
            obs[i].evals.push(ScoredEval {
                seq,
                step: k as u64 + 1,
                progress: progress_of(k),
                score: trials[i].scores[k],
            });
        }
        if k + 1 == EVALS {
            obs[i].run = RunState::Completed;
        }
    }
    let last = decide(plan, rules, &obs);
    history.push(last);
    Run { history, obs }
}

fn arb_trials(max: usize, with_failures: bool) -> impl Strategy<Value = Vec<Trial>> {
    // Few distinct scores, so ties are common.
    let trial = (
        prop::collection::vec((0u8..6).prop_map(f64::from), EVALS),
        prop::option::weighted(0.2, 0..EVALS),
    )
        .prop_map(move |(scores, fail_at)| Trial {
            scores,
            fail_at: fail_at.filter(|_| with_failures),
        });
    prop::collection::vec(trial, 1..=max)
}

fn arb_rungs() -> impl Strategy<Value = Vec<(f64, usize)>> {
    prop::sample::subsequence(vec![0.15, 0.3, 0.5, 0.75], 1..=3)
        .prop_flat_map(|fs| {
            let n = fs.len();
            (Just(fs), prop::collection::vec(1usize..8, n))
        })
        .prop_map(|(fs, keeps)| fs.into_iter().zip(keeps).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Exact mode: whatever the arrival order and parallelism, the trials that finish are exactly the offline
    /// algorithm's, no trial that the offline algorithm keeps is ever stopped, and no decision is left open.
    #[test]
    fn exact_mode_finishes_exactly_the_offline_top(
        trials in arb_trials(12, true),
        rungs in arb_rungs(),
        parallelism in 1usize..6,
        choices in prop::collection::vec(0usize..1000, 1..64),
    ) {
        let plan = plan(trials.len(), &rungs, DiscardMode::Exact, 1);
        let run = simulate(&plan, &rules(parallelism), &trials, &choices);
        let last = run.history.last().unwrap();
        prop_assert!(last.complete);
        let expected = offline_finishers(&plan, &trials);
        let succeeded: BTreeSet<usize> = (0..trials.len())
            .filter(|&i| last.verdicts[i].phase == TrialPhase::Succeeded)
            .collect();
        prop_assert_eq!(&succeeded, &expected);
        // Strictly: no other trial trained to completion, not even one discarded afterwards.
        let completed: BTreeSet<usize> = (0..trials.len()).filter(|&i| run.obs[i].run == RunState::Completed).collect();
        prop_assert_eq!(&completed, &expected);
        for (i, o) in run.obs.iter().enumerate() {
            if o.run == RunState::Stopped {
                prop_assert!(!expected.contains(&i), "trial {} was stopped but the offline algorithm keeps it", i);
                prop_assert_eq!(last.verdicts[i].phase, TrialPhase::Discarded);
            }
        }
        prop_assert!(last.verdicts.iter().all(|v| v.phase != TrialPhase::AwaitingDecision));
    }

    /// A discard, once decided, stands (decisions already taken never reverse), and rungs never act on a trial
    /// before it reaches them.
    #[test]
    fn decisions_are_monotone_and_never_early(
        trials in arb_trials(10, true),
        rungs in arb_rungs(),
        parallelism in 1usize..5,
        mode in prop_oneof![Just(DiscardMode::Exact), Just(DiscardMode::Asynchronous)],
        min_obs in 1usize..4,
        choices in prop::collection::vec(0usize..1000, 1..64),
    ) {
        let plan = plan(trials.len(), &rungs, mode, min_obs);
        let run = simulate(&plan, &rules(parallelism), &trials, &choices);
        for pair in run.history.windows(2) {
            for i in 0..trials.len() {
                for (before, after) in pair[0].verdicts[i].rungs.iter().zip(&pair[1].verdicts[i].rungs) {
                    prop_assert_eq!(before.rung, after.rung);
                    if before.decision == RungDecision::Discard || before.decision == RungDecision::Continue {
                        prop_assert_eq!(before.decision, after.decision, "trial {} rung {} reversed", i, before.rung);
                    }
                }
            }
        }
        for d in &run.history {
            for (i, v) in d.verdicts.iter().enumerate() {
                for r in &v.rungs {
                    let needed = rung_eval(plan.rungs[r.rung as usize].at_fraction);
                    prop_assert!(r.progress + 1e-9 >= plan.rungs[r.rung as usize].at_fraction);
                    prop_assert!(run.obs[i].evals.len() > needed, "rung {} acted on trial {} early", r.rung, i);
                }
            }
        }
    }

    /// Asynchronous mode never preempts: a trial told to continue at a rung is never discarded there later, and the
    /// trials it stops are stopped on arrival at a rung.
    #[test]
    fn asynchronous_mode_never_preempts(
        trials in arb_trials(12, false),
        rungs in arb_rungs(),
        parallelism in 1usize..6,
        min_obs in 1usize..4,
        choices in prop::collection::vec(0usize..1000, 1..64),
    ) {
        let plan = plan(trials.len(), &rungs, DiscardMode::Asynchronous, min_obs);
        let run = simulate(&plan, &rules(parallelism), &trials, &choices);
        for pair in run.history.windows(2) {
            for i in 0..trials.len() {
                for (before, after) in pair[0].verdicts[i].rungs.iter().zip(&pair[1].verdicts[i].rungs) {
                    prop_assert!(before.decision != RungDecision::ContinueProvisional);
                    prop_assert_eq!(before.decision, after.decision);
                }
            }
        }
        for d in &run.history {
            for (i, reason) in &d.to_stop {
                let StopReason::Discarded { rung, .. } = reason else { panic!("no divergence rule here") };
                let latest = d.verdicts[*i].rungs.last().unwrap();
                prop_assert_eq!(latest.rung as usize, *rung, "stopped at a rung other than the one it just reached");
            }
        }
        prop_assert!(run.history.last().unwrap().complete);
    }
}

/// The paper's setting in miniature, worked by hand: 4 trials, parallelism 2, keep 2 at 25 %.
#[test]
fn exact_mode_pauses_provisional_trials_and_relaunches_the_kept_ones() {
    let plan = plan(4, &[(0.25, 2)], DiscardMode::Exact, 1);
    let rules = rules(2);
    let mut obs: Vec<TrialObservations> =
        (0..4).map(|_| TrialObservations::not_started()).collect();
    let at_rung = |seq, score| ScoredEval {
        seq,
        step: 3,
        progress: 0.3,
        score,
    };
    // t0 and t1 reach the rung: both in the top 2 so far, but t2 and t3 may still beat them, so both pause.
    for (i, score) in [(0, 0.70), (1, 0.80)] {
        obs[i].run = RunState::Running;
        obs[i].evals.push(at_rung(i as u64, score));
    }
    let d = decide(&plan, &rules, &obs);
    assert_eq!(
        d.verdicts[0].rungs[0].decision,
        RungDecision::ContinueProvisional
    );
    assert_eq!(
        d.verdicts[1].rungs[0].decision,
        RungDecision::ContinueProvisional
    );
    assert!(d.to_stop.is_empty());
    assert_eq!(d.to_pause, vec![0, 1]);
    assert_eq!(d.to_start, vec![2, 3], "the pauses free both slots");
    obs[0].run = RunState::Paused;
    obs[1].run = RunState::Paused;
    // t2 beats t0: t0 is out, and being paused it needs no stopping; t2 pauses in turn (t3 may beat it).
    obs[2].run = RunState::Running;
    obs[2].evals.push(at_rung(2, 0.75));
    obs[3].run = RunState::Running;
    let d = decide(&plan, &rules, &obs);
    assert!(d.to_stop.is_empty());
    assert_eq!(d.verdicts[0].phase, TrialPhase::Discarded);
    let Some(StopReason::Discarded {
        cutoff, message, ..
    }) = &d.verdicts[0].reason
    else {
        panic!()
    };
    assert_eq!(*cutoff, 0.75);
    assert!(
        message.contains("not in the top 2 (cut-off 0.7500, t2)"),
        "{message}"
    );
    assert_eq!(d.to_pause, vec![2]);
    // Only t3 is left to rank, so at most one trial can still beat t1: it is kept, and relaunched.
    assert_eq!(d.verdicts[1].rungs[0].decision, RungDecision::Continue);
    assert_eq!(d.to_start, vec![1]);
    obs[2].run = RunState::Paused;
    obs[1].run = RunState::Running;
    obs[1].evals.truncate(1);
    // t3 is worse than t2: discarded on arrival; t2 is now certain and is relaunched once t3's slot is free.
    obs[3].evals.push(at_rung(3, 0.60));
    let d = decide(&plan, &rules, &obs);
    assert_eq!(d.verdicts[3].rungs[0].decision, RungDecision::Discard);
    assert_eq!(d.verdicts[2].rungs[0].decision, RungDecision::Continue);
    assert_eq!(d.to_stop.len(), 1);
    assert_eq!(d.to_start, vec![2]);
    assert_eq!(d.verdicts[2].phase, TrialPhase::Pending);
}

#[test]
fn a_completed_trial_waits_for_its_decision() {
    let plan = plan(2, &[(0.5, 1)], DiscardMode::Exact, 1);
    let mut obs: Vec<TrialObservations> =
        (0..2).map(|_| TrialObservations::not_started()).collect();
    obs[0].run = RunState::Completed;
    obs[0].evals = vec![
        ScoredEval {
            seq: 1,
            step: 5,
            progress: 0.5,
            score: 0.5,
        },
        ScoredEval {
            seq: 2,
            step: 10,
            progress: 1.0,
            score: 0.6,
        },
    ];
    let d = decide(&plan, &rules(1), &obs);
    assert_eq!(d.verdicts[0].phase, TrialPhase::AwaitingDecision);
    assert_eq!(d.to_start, vec![1]);
    assert!(!d.complete);
    // The second trial beats it at the rung: the first, although complete, is not kept.
    obs[1].run = RunState::Running;
    obs[1].evals.push(ScoredEval {
        seq: 3,
        step: 5,
        progress: 0.5,
        score: 0.9,
    });
    let d = decide(&plan, &rules(1), &obs);
    assert_eq!(d.verdicts[0].phase, TrialPhase::Discarded);
}

#[test]
fn divergence_stops_a_trial_at_the_majority_baseline() {
    let plan = plan(1, &[], DiscardMode::Exact, 1);
    let rules = Rules {
        direction: Direction::Maximize,
        divergence: Some(DivergenceSpec {
            after_fraction: 0.3,
            margin: 0.01,
        }),
        parallelism: 1,
        fail_fast: 0,
    };
    let mut obs = vec![TrialObservations::not_started()];
    obs[0].run = RunState::Running;
    obs[0].baseline = Some(0.684);
    // Before the fraction a baseline-level score is normal (training has barely begun).
    obs[0].evals.push(ScoredEval {
        seq: 1,
        step: 2,
        progress: 0.2,
        score: 0.684,
    });
    assert!(decide(&plan, &rules, &obs).to_stop.is_empty());
    obs[0].evals.push(ScoredEval {
        seq: 2,
        step: 4,
        progress: 0.4,
        score: 0.6905,
    });
    let d = decide(&plan, &rules, &obs);
    let [(0, StopReason::Diverged { baseline, .. })] = d.to_stop.as_slice() else {
        panic!("{:?}", d.to_stop)
    };
    assert_eq!(*baseline, 0.684);
    obs[0].run = RunState::Stopped;
    assert_eq!(
        decide(&plan, &rules, &obs).verdicts[0].phase,
        TrialPhase::Diverged
    );
}

#[test]
fn a_trainer_reported_divergence_is_terminal() {
    let plan = plan(2, &[], DiscardMode::Exact, 1);
    let mut obs = vec![
        TrialObservations::not_started(),
        TrialObservations::not_started(),
    ];
    obs[0].run = RunState::Diverged {
        reason: "loss is NaN at step 17".into(),
    };
    let d = decide(&plan, &rules(1), &obs);
    assert_eq!(d.verdicts[0].phase, TrialPhase::Diverged);
    assert_eq!(d.to_start, vec![1]);
}

/// Fail-fast: three trials failed before any produced an evaluation, so the same fault would fail every trial. No
/// more start; the ones never started end as Failed with the commonest reason; a sweep where something worked goes
/// on.
#[test]
fn fail_fast_stops_launching_after_the_first_failures() {
    let plan = plan(6, &[], DiscardMode::Exact, 1);
    let rules = Rules {
        fail_fast: 3,
        ..rules(2)
    };
    let failed = |reason: &str| TrialObservations {
        run: RunState::Failed {
            reason: reason.into(),
        },
        ..TrialObservations::not_started()
    };
    let mut obs = vec![TrialObservations::not_started(); 6];
    obs[0] = failed("exit code 1: no such model");
    obs[1] = failed("exit code 1: no such model");
    obs[2] = TrialObservations {
        run: RunState::Running,
        ..TrialObservations::not_started()
    };
    let d = decide(&plan, &rules, &obs);
    assert_eq!(d.aborted, None, "two failures are not yet three");
    assert_eq!(d.to_start, vec![3]);

    obs[3] = failed("exit code 137");
    let d = decide(&plan, &rules, &obs);
    let why = d.aborted.clone().expect("aborted");
    assert!(
        why.contains("first 3 trials failed") && why.contains("2 with: exit code 1: no such model"),
        "{why}"
    );
    assert!(d.to_start.is_empty());
    assert!(!d.complete, "trial 2 still runs");
    for i in [4, 5] {
        assert_eq!(d.verdicts[i].phase, TrialPhase::Failed);
        assert!(matches!(
            d.verdicts[i].reason,
            Some(StopReason::FailFast { .. })
        ));
    }
    obs[2] = failed("exit code 1: no such model");
    assert!(decide(&plan, &rules, &obs).complete);
    let off = Rules {
        fail_fast: 0,
        ..rules
    };
    let d = decide(&plan, &off, &obs);
    assert!(
        d.aborted.is_none() && d.to_start == vec![4, 5],
        "0 turns it off"
    );

    // Something worked: the failures are the trials' own, not the sweep's.
    obs[2] = TrialObservations {
        run: RunState::Running,
        evals: vec![ScoredEval {
            seq: 0,
            step: 1,
            progress: 0.1,
            score: 0.7,
        }],
        baseline: None,
    };
    let d = decide(&plan, &rules, &obs);
    assert_eq!(d.aborted, None);
    assert_eq!(d.to_start, vec![4]);
}
