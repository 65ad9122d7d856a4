//! The sweep's Kubernetes Events, one type per thing a person wants to hear about, each derived from typed engine
//! data (stop reasons, run states), never from strings.

use super::Context;
use crate::engine::policy::{RunState, StopReason};
use crate::engine::state::SweepState;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use seedsweep_crds::MetricName;
use seedsweep_crds::sweep::{BestTrial, SeedSweep, UnpublishedEvent};

/// Notes longer than this are cut (the API limits them to 1 KiB).
const NOTE_LIMIT: usize = 1000;

/// Something that happened to a sweep or one of its trials. Trial events name the trial's Job as the related
/// object: the events API aggregates by reason and related object, so each trial's news needs its own.
#[derive(Debug, Clone, PartialEq)]
pub enum SweepEvent {
    TrialStarted {
        trial: String,
        weight_init: u64,
        data_order: u64,
        job: String,
        attempt: u32,
    },
    TrialPaused {
        trial: String,
        job: String,
    },
    TrialDiscarded {
        trial: String,
        job: String,
        message: String,
    },
    TrialDiverged {
        trial: String,
        job: String,
        message: String,
    },
    TrialFailed {
        trial: String,
        job: String,
        message: String,
    },
    /// Its pod cannot start (unschedulable, image pull, container config, crash loop).
    TrialStuck {
        trial: String,
        job: String,
        message: String,
    },
    TrialCompleted {
        trial: String,
        job: String,
        metric: MetricName,
        score: Option<f64>,
    },
    SweepComplete {
        trials: usize,
        metric: MetricName,
        best: Option<BestTrial>,
    },
    /// Every trial ended and none trained to completion and was kept.
    SweepFailed {
        trials: usize,
    },
    InvalidSpec {
        errors: Vec<String>,
    },
    /// `weightInit.fromSweeps` names sweeps that are missing or still running.
    WaitingForSeedSources {
        reasons: Vec<String>,
    },
    /// `weightInit.fromSweeps` chose these seeds, best first.
    SeedsChosen {
        seeds: Vec<u64>,
        sweeps: Vec<String>,
    },
    /// A deleted sweep's checkpoints could not be removed.
    CheckpointsLeft {
        note: String,
    },
}

impl SweepEvent {
    /// The event for a trial the engine stops.
    pub fn stopped(trial: &str, job: String, reason: &StopReason) -> SweepEvent {
        let (trial, message) = (trial.to_string(), reason.message().to_string());
        match reason {
            StopReason::Discarded { .. } => SweepEvent::TrialDiscarded {
                trial,
                job,
                message,
            },
            StopReason::Diverged { .. } => SweepEvent::TrialDiverged {
                trial,
                job,
                message,
            },
            StopReason::FailFast { .. } => SweepEvent::TrialFailed {
                trial,
                job,
                message,
            },
        }
    }

    /// The event for a trial whose attempt has just ended, by how it ended; `None` while it has not.
    pub fn ended(state: &SweepState, i: usize, job: String) -> Option<SweepEvent> {
        let t = &state.trials[i];
        let trial = state.plan.trials[i].name.clone();
        let metric = state.objective.metric;
        Some(match &t.run {
            RunState::Completed => SweepEvent::TrialCompleted {
                trial,
                job,
                metric,
                score: t.final_metrics.map(|m| m.get(metric)),
            },
            RunState::Diverged { reason } => SweepEvent::TrialDiverged {
                trial,
                job,
                message: reason.clone(),
            },
            RunState::Failed { reason } => SweepEvent::TrialFailed {
                trial,
                job,
                message: reason.clone(),
            },
            _ => return None,
        })
    }

    /// The event's reason (also its action).
    pub fn reason(&self) -> &'static str {
        match self {
            SweepEvent::TrialStarted { .. } => "TrialStarted",
            SweepEvent::TrialPaused { .. } => "TrialPaused",
            SweepEvent::TrialDiscarded { .. } => "TrialDiscarded",
            SweepEvent::TrialDiverged { .. } => "TrialDiverged",
            SweepEvent::TrialFailed { .. } => "TrialFailed",
            SweepEvent::TrialStuck { .. } => "TrialStuck",
            SweepEvent::TrialCompleted { .. } => "TrialCompleted",
            SweepEvent::SweepComplete { .. } => "SweepComplete",
            SweepEvent::SweepFailed { .. } => "SweepFailed",
            SweepEvent::InvalidSpec { .. } => "InvalidSpec",
            SweepEvent::WaitingForSeedSources { .. } => "WaitingForSeedSources",
            SweepEvent::SeedsChosen { .. } => "SeedsChosen",
            SweepEvent::CheckpointsLeft { .. } => "CheckpointsLeft",
        }
    }

    pub fn type_(&self) -> EventType {
        match self {
            SweepEvent::TrialDiverged { .. }
            | SweepEvent::TrialFailed { .. }
            | SweepEvent::TrialStuck { .. }
            | SweepEvent::SweepFailed { .. }
            | SweepEvent::InvalidSpec { .. }
            | SweepEvent::CheckpointsLeft { .. } => EventType::Warning,
            _ => EventType::Normal,
        }
    }

    /// The trial's Job, for trial events.
    pub fn job(&self) -> Option<&str> {
        match self {
            SweepEvent::TrialStarted { job, .. }
            | SweepEvent::TrialPaused { job, .. }
            | SweepEvent::TrialDiscarded { job, .. }
            | SweepEvent::TrialDiverged { job, .. }
            | SweepEvent::TrialFailed { job, .. }
            | SweepEvent::TrialStuck { job, .. }
            | SweepEvent::TrialCompleted { job, .. } => Some(job),
            SweepEvent::SweepComplete { .. }
            | SweepEvent::SweepFailed { .. }
            | SweepEvent::InvalidSpec { .. }
            | SweepEvent::WaitingForSeedSources { .. }
            | SweepEvent::SeedsChosen { .. }
            | SweepEvent::CheckpointsLeft { .. } => None,
        }
    }

    pub fn note(&self) -> String {
        let mut note = match self {
            SweepEvent::TrialStarted {
                trial,
                weight_init,
                data_order,
                job,
                attempt,
            } => {
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                format!(
                    "{trial}: weight-init seed {weight_init}, data-order seed {data_order}, Job {job}{again}"
                )
            }
            SweepEvent::TrialPaused { trial, .. } => {
                format!(
                    "{trial}: paused at the rung; in the top so far, trials still to come may beat it"
                )
            }
            SweepEvent::TrialDiscarded { trial, message, .. }
            | SweepEvent::TrialDiverged { trial, message, .. }
            | SweepEvent::TrialFailed { trial, message, .. } => format!("{trial}: {message}"),
            SweepEvent::TrialStuck { trial, message, .. } => {
                format!("{trial}: cannot start: {message}")
            }
            SweepEvent::TrialCompleted {
                trial,
                metric,
                score,
                ..
            } => match score {
                Some(s) => format!("{trial}: {metric} {s:.4}"),
                None => format!("{trial}: completed"),
            },
            SweepEvent::SweepComplete {
                trials,
                metric,
                best,
            } => match best {
                Some(b) => format!(
                    "all {trials} trials ended; best {} ({metric} {:.4})",
                    b.name, b.score
                ),
                None => {
                    format!("all {trials} trials ended; none trained to completion and was kept")
                }
            },
            SweepEvent::SweepFailed { trials } => {
                format!("all {trials} trials ended; none trained to completion and was kept")
            }
            SweepEvent::InvalidSpec { errors } => errors.join("; "),
            SweepEvent::WaitingForSeedSources { reasons } => {
                format!(
                    "waiting to choose the weight-init seeds: {}",
                    reasons.join("; ")
                )
            }
            SweepEvent::SeedsChosen { seeds, sweeps } => format!(
                "weight-init seeds {} chosen from sweeps {} (best mean rank first)",
                seeds
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                sweeps.join(", ")
            ),
            SweepEvent::CheckpointsLeft { note } => note.clone(),
        };
        note.truncate(note.floor_char_boundary(NOTE_LIMIT));
        note
    }

    /// The event as it is recorded in the status until published.
    pub fn render(&self) -> UnpublishedEvent {
        UnpublishedEvent {
            reason: self.reason().into(),
            warning: self.type_() == EventType::Warning,
            note: self.note(),
            job: self.job().map(str::to_string),
        }
    }
}

/// Events are for people; failing to publish one never fails a reconciliation.
pub async fn publish(ctx: &Context, sweep: &SeedSweep, event: &UnpublishedEvent) {
    let (name, reason, note) = (sweep.name_any(), &event.reason, &event.note);
    // Every event is a log line too, so the operator's log tells the sweep's story at INFO.
    if event.warning {
        tracing::warn!(sweep = %name, reason = %reason, "{note}");
    } else {
        tracing::info!(sweep = %name, reason = %reason, "{note}");
    }
    let kube_event = Event {
        type_: if event.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.clone(),
        note: Some(note.clone()),
        action: reason.clone(),
        secondary: event.job.as_ref().map(|name| ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: Some(name.clone()),
            namespace: sweep.metadata.namespace.clone(),
            ..ObjectReference::default()
        }),
    };
    if let Err(e) = ctx
        .recorder()
        .publish(&kube_event, &sweep.object_ref(&()))
        .await
    {
        tracing::warn!(sweep = %sweep.name_any(), "publishing event {reason}: {e}");
    }
}
