//! The report's content: every number its pages and figures show, taken from the engine (its status, statistics
//! and what-if replays), and what is missing from it. Serialized as `report.json`.

use super::source::Loaded;
use crate::engine::plan::{Rung, keep_of};
use crate::engine::policy::RunState;
use crate::engine::state::SweepState;
use crate::engine::whatif::{self, WhatIfOutcome};
use crate::report;
use seedsweep_crds::statistics::{ComputeAccounting, ExpectedMaxPoint, SweepStatistics};
use seedsweep_crds::sweep::{
    DiscardMode, EarlyDiscardSpec, ObjectiveSpec, RungSpec, SeedSweepSpec, SeedSweepStatus,
    SweepPhase, TrialPhase,
};
use serde::Serialize;

/// Raised whenever `report.json` changes shape.
pub const REPORT_FORMAT_VERSION: u32 = 1;

/// Where the what-if grid puts its single rung (fractions of training) ...
pub const WHAT_IF_FRACTIONS: [f64; 4] = [0.1, 0.25, 0.5, 0.75];
/// ... and how much it keeps there: the paper's range, from a tenth to half of the trials.
pub const WHAT_IF_KEEP_FRACTIONS: [f64; 3] = [0.1, 0.25, 0.5];

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub format_version: u32,
    pub sweep: String,
    /// Where the sweep was read from.
    pub origin: String,
    pub objective: ObjectiveSpec,
    pub mode: DiscardMode,
    /// The sweep's rungs as planned (keep counts resolved).
    pub rungs: Vec<Rung>,
    /// The engine's status of the sweep: phase, counts, best trial, every launched trial's record and the
    /// statistics (`status.statistics`).
    pub status: SeedSweepStatus,
    pub grid: HeatGrid,
    pub curves: Vec<Curve>,
    pub compute: ComputeFindings,
    pub what_if: WhatIfSection,
    /// What this report cannot show yet, and why, in plain words.
    pub missing: Vec<String>,
}

/// The WI × DO grid of every planned trial.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeatGrid {
    /// Every WI / DO seed of the plan, ascending.
    pub wi_seeds: Vec<u64>,
    pub do_seeds: Vec<u64>,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    pub weight_init: u64,
    pub data_order: u64,
    pub trial: String,
    pub phase: TrialPhase,
    /// The final score when the trial trained to completion, else its latest.
    pub score: Option<f64>,
    pub is_final: bool,
}

/// One trial's learning curve: the objective at each recorded evaluation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Curve {
    pub trial: String,
    pub weight_init: u64,
    pub data_order: u64,
    pub phase: TrialPhase,
    /// `(progress, score)` in progress order.
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeFindings {
    /// The engine's accounting (`status.statistics.compute`).
    pub accounting: ComputeAccounting,
    /// Steps of one complete training run.
    pub full_run_steps: Option<u64>,
    /// The steps spent, in complete training runs.
    pub full_runs_spent: Option<f64>,
    /// The engine's expected best score of as many trials trained to completion as the steps spent would pay for
    /// (the expected-max curve at n = full runs spent, rounded down): what training everything would have found
    /// with the same compute.
    pub expected_best_at_same_compute: Option<ExpectedMaxPoint>,
    /// Whether the sweep's own cut discarded the trial with the best final score; `None` when that cannot be
    /// known (see `bestLostExplanation`).
    pub best_lost_by_cut: Option<bool>,
    pub best_lost_explanation: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfSection {
    /// For each fraction the grid uses: how many trials were observed at or past it (only those can be ranked
    /// there).
    pub observed_past: Vec<ObservedPast>,
    /// The sweep's own setting, training everything, and the fraction × keep grid, each replayed by the engine.
    pub settings: Vec<WhatIfOutcome>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedPast {
    pub fraction: f64,
    pub trials: usize,
    /// Of them, trials with a complete record (trained to completion).
    pub complete: usize,
}

impl SweepReport {
    pub fn statistics(&self) -> &SweepStatistics {
        self.status
            .statistics
            .as_ref()
            .expect("report::status always computes statistics")
    }

    /// Whether any trial has trained to completion: without one the report is partial.
    pub fn has_finished_trial(&self) -> bool {
        self.statistics().finished_trials > 0
    }
}

/// Builds the report of a loaded sweep.
pub fn build(loaded: &Loaded) -> SweepReport {
    let (spec, state) = (&loaded.spec, &loaded.state);
    let status = engine_status(loaded);
    let statistics = status
        .statistics
        .clone()
        .unwrap_or_else(|| state.statistics());
    let phase_of = |name: &str| {
        (status.trials.iter())
            .find(|t| t.name == name)
            .map_or(TrialPhase::Pending, |t| t.phase)
    };
    let curves: Vec<Curve> = (state.plan.trials.iter().zip(&state.trials))
        .map(|(p, t)| Curve {
            trial: p.name.clone(),
            weight_init: p.weight_init,
            data_order: p.data_order,
            phase: phase_of(&p.name),
            points: t.evals.iter().map(|e| (t.progress(e), e.score)).collect(),
        })
        .collect();
    let what_if = what_if(spec, state);
    let own = what_if.settings.iter().find(|s| s.own_setting);
    let compute = compute_findings(state, &statistics, own);
    let mut report = SweepReport {
        format_version: REPORT_FORMAT_VERSION,
        sweep: state.name.clone(),
        origin: loaded.origin.clone(),
        objective: state.objective,
        mode: state.plan.mode,
        rungs: state.plan.rungs.clone(),
        grid: heat_grid(state, &status),
        curves,
        compute,
        what_if,
        missing: Vec::new(),
        status,
    };
    report.missing = missing(&report);
    report
}

/// The engine's status of a loaded sweep, statistics included: what the executors would publish for it now.
pub fn engine_status(loaded: &Loaded) -> SeedSweepStatus {
    let (spec, state) = (&loaded.spec, &loaded.state);
    let rules = state.rules(spec, spec.parallelism as usize);
    report::status(state, &state.decide(&rules))
}

fn heat_grid(state: &SweepState, status: &SeedSweepStatus) -> HeatGrid {
    let mut wi_seeds: Vec<u64> = state.plan.trials.iter().map(|t| t.weight_init).collect();
    let mut do_seeds: Vec<u64> = state.plan.trials.iter().map(|t| t.data_order).collect();
    for seeds in [&mut wi_seeds, &mut do_seeds] {
        seeds.sort_unstable();
        seeds.dedup();
    }
    let cells = (state.plan.trials.iter())
        .map(|p| {
            let record = status.trials.iter().find(|t| t.name == p.name);
            let final_score = record.and_then(|r| r.final_score);
            Cell {
                weight_init: p.weight_init,
                data_order: p.data_order,
                trial: p.name.clone(),
                phase: record.map_or(TrialPhase::Pending, |r| r.phase),
                score: final_score.or(record.and_then(|r| r.latest_score)),
                is_final: final_score.is_some(),
            }
        })
        .collect();
    HeatGrid {
        wi_seeds,
        do_seeds,
        cells,
    }
}

fn compute_findings(
    state: &SweepState,
    statistics: &SweepStatistics,
    own: Option<&WhatIfOutcome>,
) -> ComputeFindings {
    let accounting = statistics.compute.clone();
    let full_run_steps = state.total_steps().filter(|&s| s > 0);
    let full_runs_spent = full_run_steps.map(|s| accounting.steps_spent as f64 / s as f64);
    let affordable = full_runs_spent
        .map(|r| r.floor() as u32)
        .filter(|&n| n >= 1);
    let expected_best_at_same_compute =
        affordable.and_then(|n| (statistics.expected_max.iter()).find(|p| p.n == n).cloned());
    let never_finished = (state.trials.iter())
        .filter(|t| matches!(t.run, RunState::Stopped | RunState::Paused))
        .count();
    let (best_lost_by_cut, best_lost_explanation) = if state.plan.rungs.is_empty() {
        (
            None,
            "the sweep discards nothing, so no cut can lose a trial".to_string(),
        )
    } else {
        match own.and_then(|o| o.best_lost) {
            Some(true) => (
                Some(true),
                "yes: the cut discarded the trial that ends with the best score".to_string(),
            ),
            Some(false) => (
                Some(false),
                "no: the trial that ends with the best score survived the cut".to_string(),
            ),
            None => (
                None,
                format!(
                    "cannot be known: {never_finished} trial(s) the cut stopped never trained to completion, so their \
                     final scores do not exist"
                ),
            ),
        }
    };
    ComputeFindings {
        accounting,
        full_run_steps,
        full_runs_spent,
        expected_best_at_same_compute,
        best_lost_by_cut,
        best_lost_explanation,
    }
}

/// The settings the report replays: the sweep's own, no discarding, and one rung at each fraction × keep of the
/// grid (in the sweep's mode), without duplicates (a small sweep rounds several keeps to the same count).
pub fn what_if_settings(spec: &SeedSweepSpec, trials: usize) -> Vec<Option<EarlyDiscardSpec>> {
    let own = spec.early_discard.clone();
    let mode = own.as_ref().map(|e| e.mode).unwrap_or_default();
    let min_observations = own.as_ref().map_or(2, |e| e.min_observations);
    let mut settings = vec![own.clone()];
    if own.is_some() {
        settings.push(None);
    }
    let mut seen: Vec<(u64, usize)> = Vec::new();
    for fraction in WHAT_IF_FRACTIONS {
        for keep_fraction in WHAT_IF_KEEP_FRACTIONS {
            let keep = keep_of(trials, keep_fraction);
            // Exact mode ranks by the keep count alone; asynchronous mode by the fraction itself.
            let key = (
                fraction.to_bits(),
                if mode == DiscardMode::Exact {
                    keep
                } else {
                    keep_fraction.to_bits() as usize
                },
            );
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let setting = EarlyDiscardSpec {
                mode,
                rungs: vec![RungSpec {
                    at_fraction: fraction,
                    keep_fraction: Some(keep_fraction),
                    keep_count: None,
                }],
                min_observations,
            };
            if !settings
                .iter()
                .any(|s| same_rungs(s.as_ref(), &setting, trials))
            {
                settings.push(Some(setting));
            }
        }
    }
    settings
}

/// Whether an existing setting plans the same single rung as `setting` (so it need not be replayed twice).
fn same_rungs(
    existing: Option<&EarlyDiscardSpec>,
    setting: &EarlyDiscardSpec,
    trials: usize,
) -> bool {
    let Some(existing) = existing else {
        return false;
    };
    let keep = |r: &RungSpec| match (r.keep_count, r.keep_fraction) {
        (Some(k), _) => (k as usize).min(trials),
        (None, Some(q)) => keep_of(trials, q),
        (None, None) => trials,
    };
    existing.mode == setting.mode
        && existing.rungs.len() == 1
        && existing.rungs[0].at_fraction == setting.rungs[0].at_fraction
        && keep(&existing.rungs[0]) == keep(&setting.rungs[0])
}

fn what_if(spec: &SeedSweepSpec, state: &SweepState) -> WhatIfSection {
    let settings = what_if_settings(spec, state.trials.len())
        .into_iter()
        .map(|setting| {
            let own = setting == spec.early_discard;
            whatif::replay(spec, state, setting).outcome(state, own)
        })
        .collect();
    let observed_past = WHAT_IF_FRACTIONS
        .iter()
        .map(|&fraction| {
            let past: Vec<_> = (state.trials.iter())
                .filter(|t| t.evals.iter().any(|e| t.progress(e) + 1e-9 >= fraction))
                .collect();
            ObservedPast {
                fraction,
                trials: past.len(),
                complete: past.iter().filter(|t| t.run == RunState::Completed).count(),
            }
        })
        .collect();
    WhatIfSection {
        observed_past,
        settings,
    }
}

/// What the report cannot show yet, each in a sentence.
fn missing(report: &SweepReport) -> Vec<String> {
    let statistics = report.statistics();
    let mut missing = Vec::new();
    let c = &report.status.counts;
    if !ended(report.status.phase) {
        missing.push(format!(
            "The sweep is still running ({} of {} trials ended): every number covers the trials finished so far.",
            c.succeeded + c.discarded + c.diverged + c.failed,
            c.total
        ));
    }
    if statistics.finished_trials == 0 {
        missing.push(
            "No trial has trained to completion yet: there is no final score, so no expected-best curve, no seed \
             effects and no early-vs-final correlation; the heat map and the learning curves show the latest scores."
                .to_string(),
        );
    } else if let Some(reason) = &statistics.grid_unavailable_reason {
        missing.push(format!(
            "No seed-effect analysis (spreads, ANOVAs): it needs a complete grid of at least 2 × 2 finished trials \
             ({reason})."
        ));
    }
    if statistics.finished_trials > 0 && statistics.early_vs_final.is_empty() {
        missing.push(
            "No early-vs-final correlation: it needs at least 3 finished trials evaluated at the same point."
                .to_string(),
        );
    }
    if report.curves.iter().all(|c| c.points.is_empty()) {
        missing.push("No trial has been evaluated yet: there are no learning curves.".to_string());
    }
    let unknown = (report.what_if.settings.iter())
        .filter(|s| !s.beyond_record.is_empty())
        .count();
    if unknown > 0 {
        missing.push(format!(
            "{unknown} of the {} what-if settings would train trials past the end of their record; for those the \
             best score and compute shown are what the record tells (those trials are stopped where it ends).",
            report.what_if.settings.len()
        ));
    }
    missing
}

/// Whether a sweep has ended (or never will run).
pub(super) fn ended(phase: SweepPhase) -> bool {
    matches!(
        phase,
        SweepPhase::Succeeded | SweepPhase::Failed | SweepPhase::Invalid
    )
}
