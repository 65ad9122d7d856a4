//! Conditions of a sweep, from what the reconciler found. Pure: the reconciler writes them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use seedsweep_crds::sweep::{SeedSweepStatus, SweepPhase, TrialPhase};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const INVALID: &str = "Invalid";
pub const METRICS_UNAVAILABLE: &str = "MetricsUnavailable";
pub const SPEC_CHANGE_REFUSED: &str = "SpecChangeRefused";
pub const TRIALS_STUCK: &str = "TrialsStuck";
/// The reason of Ready and Progressing while `weightInit.fromSweeps` waits for earlier sweeps.
pub const WAITING_FOR_SEED_SOURCES: &str = "WaitingForSeedSources";

/// Every trial phase, for the operator's `seedsweep_operator_trials` metric.
pub const PHASES: [TrialPhase; 8] = [
    TrialPhase::Pending,
    TrialPhase::Running,
    TrialPhase::Stuck,
    TrialPhase::AwaitingDecision,
    TrialPhase::Succeeded,
    TrialPhase::Discarded,
    TrialPhase::Diverged,
    TrialPhase::Failed,
];

/// What the conditions are computed from.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// Validation errors of the spec, when it has never been valid (nothing was created).
    pub invalid: Vec<String>,
    /// Fields changed since the plan was made that the sweep cannot take (it keeps its plan).
    pub refused_changes: Vec<String>,
    /// Running trials whose metrics endpoint does not answer, with the error.
    pub metrics_unavailable: Vec<(String, String)>,
    /// Running trials whose pod cannot start, with why.
    pub stuck: Vec<(String, String)>,
    /// Fail-fast stopped the sweep from starting trials, and why.
    pub fail_fast: Option<String>,
    /// The earlier sweeps `weightInit.fromSweeps` waits for (missing or still running), with why; nothing is
    /// created until they have finished.
    pub waiting_for_seeds: Vec<String>,
}

/// The conditions for `status` (phase and counts already set), keeping each condition's `lastTransitionTime` from
/// `previous` when its status did not change.
pub fn conditions(
    status: &SeedSweepStatus,
    findings: &Findings,
    generation: Option<i64>,
    previous: &[Condition],
    now: &Time,
) -> Vec<Condition> {
    let mut out = Vec::new();
    // The apiserver rejects an empty message (it is serialized as null).
    let mut set = |type_: &str, on: bool, reason: &str, message: String| {
        let status_str = if on { "True" } else { "False" };
        let last = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status_str)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        out.push(Condition {
            type_: type_.to_string(),
            status: status_str.to_string(),
            reason: reason.to_string(),
            message,
            observed_generation: generation,
            last_transition_time: last,
        });
    };
    if !findings.invalid.is_empty() {
        set(
            INVALID,
            true,
            "ValidationFailed",
            truncate(findings.invalid.join("; ")),
        );
        set(
            READY,
            false,
            "Invalid",
            "the spec is invalid; nothing was created".into(),
        );
        return out;
    }
    set(INVALID, false, "Valid", "the spec is valid".into());
    if !findings.waiting_for_seeds.is_empty() {
        let why = truncate(format!(
            "waiting to choose the weight-init seeds (spec.seeds.weightInit.fromSweeps): {}",
            findings.waiting_for_seeds.join("; ")
        ));
        set(READY, true, WAITING_FOR_SEED_SOURCES, why.clone());
        set(PROGRESSING, false, WAITING_FOR_SEED_SOURCES, why);
        return out;
    }
    let c = &status.counts;
    let (succeeded, failed) = (
        status.phase == SweepPhase::Succeeded,
        status.phase == SweepPhase::Failed,
    );
    let best = status
        .best_trial
        .as_ref()
        .map(|b| format!("best trial {} with score {:.4}", b.name, b.score));
    // In every phase exactly one of Progressing, Complete and Failed is True, and Ready is False only when the
    // sweep failed (as a Job's Complete and Failed conditions).
    set(
        READY,
        !failed,
        match status.phase {
            SweepPhase::Succeeded => "Succeeded",
            SweepPhase::Failed => "Failed",
            _ => "Reconciling",
        },
        match status.phase {
            SweepPhase::Succeeded => "the sweep finished".into(),
            SweepPhase::Failed => {
                "the sweep failed: no trial trained to completion and was kept".into()
            }
            _ => "the operator is running the sweep".into(),
        },
    );
    set(
        PROGRESSING,
        !(succeeded || failed),
        if succeeded || failed {
            "Finished"
        } else {
            "TrialsRunning"
        },
        format!(
            "{} running, {} pending, {} paused, {} finished, {} discarded, {} diverged, {} failed of {}",
            c.running, c.pending, c.paused, c.succeeded, c.discarded, c.diverged, c.failed, c.total
        ),
    );
    set(
        COMPLETE,
        succeeded,
        match status.phase {
            SweepPhase::Succeeded => "AllTrialsEnded",
            SweepPhase::Failed => "Failed",
            _ => "TrialsRemaining",
        },
        match (status.phase, best) {
            (SweepPhase::Failed, _) => "the sweep failed; see the Failed condition".into(),
            (SweepPhase::Succeeded, Some(best)) => best,
            (_, Some(best)) => format!("{best} so far"),
            (_, None) => "no trial has finished yet".into(),
        },
    );
    set(
        FAILED,
        failed,
        if failed {
            "NoTrialSucceeded"
        } else {
            "NotFailed"
        },
        match (failed, &findings.fail_fast) {
            (true, Some(why)) => format!("fail-fast: {why}"),
            (true, None) => "every trial ended and none trained to completion and was kept".into(),
            (false, Some(why)) => {
                format!("fail-fast, waiting for the running trials to end: {why}")
            }
            (false, None) => "no failure".into(),
        },
    );
    let stuck = &findings.stuck;
    set(
        TRIALS_STUCK,
        !stuck.is_empty(),
        if stuck.is_empty() {
            "NoneStuck"
        } else {
            "PodsCannotStart"
        },
        if stuck.is_empty() {
            "every running trial's pod has started or is starting".into()
        } else {
            truncate(
                stuck
                    .iter()
                    .map(|(t, why)| format!("{t}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        },
    );
    let unavailable = &findings.metrics_unavailable;
    let unavailable_message = if unavailable.is_empty() {
        "every running trial's metrics endpoint answers".to_string()
    } else {
        unavailable
            .iter()
            .map(|(t, e)| format!("{t}: {e}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    set(
        METRICS_UNAVAILABLE,
        !unavailable.is_empty(),
        if unavailable.is_empty() {
            "Scraped"
        } else {
            "ScrapeFailed"
        },
        truncate(unavailable_message),
    );
    set(
        SPEC_CHANGE_REFUSED,
        !findings.refused_changes.is_empty(),
        if findings.refused_changes.is_empty() {
            "NoChange"
        } else {
            "PlanIsFixed"
        },
        if findings.refused_changes.is_empty() {
            "the spec matches the plan".into()
        } else {
            truncate(format!(
                "the sweep keeps the plan it started with; these changes are ignored: {} (only parallelism, \
                 backoffLimit and trialTemplate may change after the start)",
                findings.refused_changes.join(", ")
            ))
        },
    );
    out
}

/// Condition messages are limited to 32 KiB by the API; keep them readable well below that.
fn truncate(mut s: String) -> String {
    const LIMIT: usize = 4000;
    if s.len() > LIMIT {
        s.truncate(s.floor_char_boundary(LIMIT));
        s.push_str(" …");
    }
    s
}
