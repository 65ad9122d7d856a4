//! What a fault scenario is judged by, from the sweep's final status and what the watches saw: each trial's outcome
//! with the parts that must not depend on timing (phase, rung records, final score, reason), compared with another
//! run or with the offline cut of the served curves; Jobs created more than once for one trial attempt; rung
//! evaluations that never made it into the status.

use crate::standin::curves::CurveFile;
use crate::standin::offline::{Schedule, offline_top, rung_score, served_evals};
use seedsweep_crds::MetricName;
use seedsweep_crds::sweep::{RungRecord, SeedSweepStatus, TrialPhase};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A trial's result without what depends on when things happened (attempts, steps done when paused, the latest
/// score seen): what an interrupted sweep must reproduce exactly. A discarded trial's final score is left out too:
/// one that nobody could stop (no leader, no apiserver) trains to its end and is still discarded at its rung.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialOutcome {
    pub phase: TrialPhase,
    pub rungs: Vec<RungRecord>,
    pub final_score: Option<f64>,
    pub reason: Option<String>,
}

/// Trial name → outcome.
pub type Outcomes = BTreeMap<String, TrialOutcome>;

pub fn outcomes(status: &SeedSweepStatus) -> Outcomes {
    status
        .trials
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                TrialOutcome {
                    phase: t.phase,
                    rungs: t.rungs.clone(),
                    final_score: t.final_score.filter(|_| t.phase != TrialPhase::Discarded),
                    reason: t.reason.clone(),
                },
            )
        })
        .collect()
}

/// One line per trial whose outcome differs between `expected` and `got`, or that only one of them has.
pub fn differences(expected: &Outcomes, got: &Outcomes) -> Vec<String> {
    let names: BTreeSet<&String> = expected.keys().chain(got.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| match (expected.get(name), got.get(name)) {
            (Some(e), Some(g)) if e == g => None,
            (Some(e), Some(g)) => Some(format!("{name}: expected {e:?}, got {g:?}")),
            (Some(_), None) => Some(format!("{name}: missing from the status")),
            (None, Some(_)) => Some(format!("{name}: not in the uninterrupted run")),
            (None, None) => None,
        })
        .collect()
}

/// Job names created more than once (more than one uid seen), each with how many times.
pub fn duplicate_jobs(uids: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    uids.iter()
        .filter(|(_, u)| u.len() > 1)
        .map(|(name, u)| format!("{name} created {} times", u.len()))
        .collect()
}

/// What the served curves say each trial's rung record and final score must be, and which trials the rung keeps.
pub struct Offline {
    /// Trial name → (rung score, last evaluation's score).
    pub scores: BTreeMap<String, (f64, f64)>,
    pub kept: BTreeSet<String>,
}

impl Offline {
    pub fn of(
        status: &SeedSweepStatus,
        file: &CurveFile,
        schedule: &Schedule,
        at: f64,
        keep_fraction: f64,
    ) -> Self {
        let objective = MetricName::Accuracy;
        let scores: BTreeMap<String, (f64, f64)> = status
            .trials
            .iter()
            .map(|t| {
                let (evals, _) = served_evals(file, schedule, t.weight_init, t.data_order, 0.0);
                let rung = rung_score(&evals, at, objective).unwrap_or(f64::NAN);
                let last = evals.last().map_or(f64::NAN, |e| e.metrics.get(objective));
                (t.name.clone(), (rung, last))
            })
            .collect();
        let ranked: Vec<(String, f64)> = scores.iter().map(|(n, s)| (n.clone(), s.0)).collect();
        let keep = (keep_fraction * status.trials.len() as f64).ceil() as usize;
        Offline {
            kept: offline_top(&ranked, keep),
            scores,
        }
    }

    /// Problems with `status` against the curves: a trial without its rung record or with another score there (a
    /// lost or wrong rung observation), a kept set other than the offline cut, a kept trial's final score other
    /// than its curve's last evaluation. Also how many rung records matched.
    pub fn check(&self, status: &SeedSweepStatus) -> (usize, Vec<String>) {
        let mut problems = Vec::new();
        let mut observed = 0;
        for t in &status.trials {
            let Some(&(rung, last)) = self.scores.get(&t.name) else {
                continue;
            };
            match t.rungs.first() {
                None => problems.push(format!(
                    "{}: no rung record (lost rung observation)",
                    t.name
                )),
                Some(r) if r.score != rung => problems.push(format!(
                    "{}: rung score {} where the served curve has {rung}",
                    t.name, r.score
                )),
                Some(_) => observed += 1,
            }
            let kept = t.phase == TrialPhase::Succeeded;
            if kept != self.kept.contains(&t.name) {
                problems.push(format!(
                    "{}: {:?}, but the offline cut {} it",
                    t.name,
                    t.phase,
                    if kept { "discards" } else { "keeps" }
                ));
            }
            if kept && t.final_score != Some(last) {
                problems.push(format!(
                    "{}: final score {:?} where the served curve ends at {last}",
                    t.name, t.final_score
                ));
            }
        }
        (observed, problems)
    }
}

/// The trial names a `MetricsUnavailable` message lists (`<trial>: <error>; <trial>: <error>`).
pub fn trials_named(message: &str, sweep: &str) -> BTreeSet<String> {
    let prefix = format!("{sweep}-w");
    message
        .split("; ")
        .filter_map(|part| part.split_once(": ").map(|(t, _)| t))
        .filter(|t| t.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// A small seeded generator (splitmix64), so a scenario's "random" moments repeat with its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seedsweep_crds::sweep::{RungDecision, TrialRecord};

    fn record(name: &str, phase: TrialPhase, score: f64, attempts: u32) -> TrialRecord {
        TrialRecord {
            name: name.into(),
            weight_init: 1,
            data_order: 1,
            phase,
            attempts,
            progress: 0.3,
            steps_done: 10 * u64::from(attempts),
            total_steps: Some(100),
            rungs: vec![RungRecord {
                rung: 0,
                progress: 0.26,
                score,
                decision: RungDecision::Continue,
            }],
            latest_score: Some(score + f64::from(attempts)),
            best_score: None,
            final_score: None,
            reason: None,
        }
    }

    #[test]
    fn timing_does_not_count_but_decisions_and_scores_do() {
        let a = SeedSweepStatus {
            trials: vec![
                record("s-w1-d1", TrialPhase::Succeeded, 0.8, 2),
                record("s-w1-d2", TrialPhase::Discarded, 0.7, 1),
            ],
            ..SeedSweepStatus::default()
        };
        let mut b = a.clone();
        // Another attempt count, latest score and progress: the same outcome.
        b.trials[0] = record("s-w1-d1", TrialPhase::Succeeded, 0.8, 3);
        assert!(differences(&outcomes(&a), &outcomes(&b)).is_empty());
        b.trials[1].rungs[0].score = 0.71;
        b.trials.push(record("s-w2-d1", TrialPhase::Failed, 0.1, 1));
        let d = differences(&outcomes(&a), &outcomes(&b));
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].starts_with("s-w1-d2: expected"), "{d:?}");
        assert!(d[1].contains("not in the uninterrupted run"), "{d:?}");
    }

    #[test]
    fn a_job_name_with_two_uids_is_a_duplicate() {
        let uids = BTreeMap::from([
            ("s-w1-d1-1".to_string(), BTreeSet::from(["a".to_string()])),
            (
                "s-w1-d2-1".to_string(),
                BTreeSet::from(["b".to_string(), "c".to_string()]),
            ),
        ]);
        assert_eq!(duplicate_jobs(&uids), vec!["s-w1-d2-1 created 2 times"]);
    }

    #[test]
    fn lost_rung_records_and_wrong_cuts_are_reported() {
        let status = SeedSweepStatus {
            trials: vec![
                record("s-w1-d1", TrialPhase::Succeeded, 0.8, 2),
                TrialRecord {
                    rungs: Vec::new(),
                    ..record("s-w1-d2", TrialPhase::Discarded, 0.7, 1)
                },
            ],
            ..SeedSweepStatus::default()
        };
        let offline = Offline {
            scores: BTreeMap::from([
                ("s-w1-d1".to_string(), (0.8, 0.9)),
                ("s-w1-d2".to_string(), (0.7, 0.6)),
            ]),
            kept: BTreeSet::from(["s-w1-d2".to_string()]),
        };
        let (observed, problems) = offline.check(&status);
        assert_eq!(observed, 1);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("but the offline cut discards it"));
        assert!(problems[1].contains("final score None"));
        assert!(problems[2].contains("lost rung observation"));
        assert!(problems[3].contains("offline cut keeps it"));
    }

    #[test]
    fn unavailable_trials_are_read_from_the_message() {
        let m =
            "f-w1-d1: cannot scrape http://127.0.0.1:9090/metrics: error; x: y; f-w2-d1: refused";
        assert_eq!(
            trials_named(m, "f"),
            BTreeSet::from(["f-w1-d1".to_string(), "f-w2-d1".to_string()])
        );
    }

    #[test]
    fn the_generator_repeats_with_its_seed() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<f64> = (0..100).map(|_| a.uniform(1.0, 3.0)).collect();
        assert!(xs.iter().all(|x| (1.0..3.0).contains(x)));
        assert_eq!(
            xs,
            (0..100).map(|_| b.uniform(1.0, 3.0)).collect::<Vec<_>>()
        );
        assert_ne!(Rng::new(8).next_u64(), Rng::new(7).next_u64());
    }
}
