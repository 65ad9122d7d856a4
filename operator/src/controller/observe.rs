//! Reading the cluster for one sweep: its Jobs and pods, and how each trial attempt's Job stands (pure).

use super::Context;
use super::concurrent;
use super::error::Result;
use super::job::{self, sweep_selector, unrecorded_selector};
use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use seedsweep_crds::sweep::SeedSweep;
use seedsweep_crds::trainer::TrialSummary;
use std::collections::{BTreeMap, HashSet};

/// The sweep's Jobs the state has not recorded the end of (by name; only those it owns) and the pods it needs, as
/// listed at the start of a reconciliation.
pub struct Cluster {
    pub jobs: BTreeMap<String, Job>,
    pub pods: Vec<Pod>,
}

impl Cluster {
    /// Lists what one reconciliation needs, bounded by the running trials rather than by the sweep's size: Jobs
    /// without [`job::LABEL_RECORDED`], pods that have not succeeded, and the succeeded pod of each attempt
    /// `current(trial, attempt)` waits on that has ended since: its Job completed, or the Job still counts an active
    /// pod that the list no longer shows (it succeeded; the Job controller has not said so yet). The succeeded pod's
    /// termination message holds the trainer's summary. Finished Jobs and their pods stay in the cluster, with their
    /// logs, but are not read again.
    pub async fn read<F>(ctx: &Context, sweep: &SeedSweep, ns: &str, current: F) -> Result<Cluster>
    where
        F: Fn(&str, u32) -> bool + Send,
    {
        let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
        let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
        let name = sweep.name_any();
        let uid = sweep.uid();
        // Every list is served from the apiserver's watch cache (`resourceVersion=0`), as an informer would be: at
        // 10,000 trials a list read from etcd went through every Job and pod in the namespace. A list a moment
        // behind is safe: Job names are fixed per attempt, creates and deletes of what exists or is gone are
        // answered and ignored, and a trial's end is read once the cache shows it.
        let cached = || ListParams::default().match_any();
        let jobs: BTreeMap<String, Job> = jobs_api
            .list(&cached().labels(&unrecorded_selector(&name)))
            .await?
            .items
            .into_iter()
            .filter(|j| {
                j.owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == uid.as_ref())
            })
            .map(|j| (j.name_any(), j))
            .collect();
        let mut pods = pods_api
            .list(
                &cached()
                    .labels(&sweep_selector(&name))
                    .fields("status.phase!=Succeeded"),
            )
            .await?
            .items;
        let listed: HashSet<(&str, &str)> = (pods.iter())
            .filter_map(|p| {
                let l = p.labels();
                Some((
                    l.get(job::LABEL_TRIAL)?.as_str(),
                    l.get(job::LABEL_ATTEMPT)?.as_str(),
                ))
            })
            .collect();
        // Collected first: a lazy iterator over `jobs` held across the awaits makes the future not Send.
        let ended: Vec<String> = (jobs.values())
            .filter_map(|j| {
                let (trial, attempt) = job::job_identity(j)?;
                let active = j.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0;
                let pod_gone =
                    active && !listed.contains(&(trial.as_str(), attempt.to_string().as_str()));
                let ended = has_condition(j, "Complete") || (pod_gone && !is_finished(j));
                (ended && current(&trial, attempt)).then(|| {
                    format!(
                        "{},{}={trial},{}={attempt}",
                        sweep_selector(&name),
                        job::LABEL_TRIAL,
                        job::LABEL_ATTEMPT
                    )
                })
            })
            .collect();
        drop(listed);
        let pods_api = &pods_api;
        let lists = ended.into_iter().map(|selector| async move {
            let params = cached().labels(&selector).fields("status.phase=Succeeded");
            Ok(pods_api.list(&params).await?.items)
        });
        pods.extend(concurrent::each(lists).await?.into_iter().flatten());
        Ok(Cluster { jobs, pods })
    }

    /// Whether a Job's attempt is over: the Job says it finished, or its pod succeeded (with one completion the
    /// Job can only complete; the Job controller says so a moment later).
    pub fn attempt_over(&self, job: &Job) -> bool {
        is_finished(job)
            || job::job_identity(job).is_some_and(|(trial, attempt)| {
                (self.pods_of(&trial, attempt).iter()).any(|p| pod_phase(p) == Some("Succeeded"))
            })
    }

    /// The pods of one trial attempt, oldest first.
    pub fn pods_of(&self, trial: &str, attempt: u32) -> Vec<&Pod> {
        let attempt = attempt.to_string();
        let mut mine: Vec<&Pod> = self
            .pods
            .iter()
            .filter(|p| {
                let l = p.labels();
                l.get(job::LABEL_TRIAL).map(String::as_str) == Some(trial)
                    && l.get(job::LABEL_ATTEMPT) == Some(&attempt)
            })
            .collect();
        mine.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
        mine
    }
}

/// How a trial attempt's Job stands.
#[derive(Debug, PartialEq)]
pub enum JobStanding {
    /// Still running (or waiting for a node); scrape it at the URL once it has one.
    Running { metrics_url: Option<String> },
    /// Ended: the trainer's summary from the termination message when it wrote one, and how the pod ended.
    Ended {
        summary: Option<Box<TrialSummary>>,
        exit: String,
    },
}

/// How an attempt's Job stands, from the Job and its pods (oldest first). Pure.
pub fn job_standing(job: &Job, pods: &[&Pod], default_port: u16) -> JobStanding {
    let succeeded = pods
        .iter()
        .rev()
        .find(|p| pod_phase(p) == Some("Succeeded"));
    // A pod that succeeded ends the attempt before the Job says so: with one completion the Job can only complete,
    // and waiting for the Job controller's update would leave the trial's slot empty for another reconciliation.
    if has_condition(job, "Complete") || succeeded.is_some() {
        let pod = succeeded.or(pods.last());
        return match pod.and_then(|p| terminated(p)) {
            Some(t) => match read_summary(t.message) {
                Ok(summary) => JobStanding::Ended {
                    summary,
                    exit: format!("exit code {}", t.code),
                },
                // Never silently: the trial fails saying what the message was.
                Err(why) => JobStanding::Ended {
                    summary: None,
                    exit: format!("exit code {}, but {why}", t.code),
                },
            },
            None => JobStanding::Ended {
                summary: None,
                exit: "the Job completed but its pod and the trainer's summary are gone".into(),
            },
        };
    }
    if let Some(c) = true_condition(job, "Failed") {
        let why = c
            .message
            .clone()
            .or_else(|| c.reason.clone())
            .unwrap_or_else(|| "the Job failed".into());
        let last = pods.iter().rev().find_map(|p| terminated(p));
        let summary = last.as_ref().and_then(|t| parse_summary(t.message));
        // Without the trainer's summary, the container's own message is the only clue (it could not start, say).
        let exit = match &last {
            Some(t) if summary.is_none() => {
                format!("{why}; last pod: exit code {}{}", t.code, runtime_detail(t))
            }
            Some(t) => format!("{why}; last pod: exit code {}", t.code),
            None => why,
        };
        return JobStanding::Ended { summary, exit };
    }
    // A trainer that diverged will diverge again with the same seeds: do not wait for the Job's retries.
    for pod in pods {
        if let Some(t) = terminated(pod)
            && let Some(summary) = parse_summary(t.message)
            && summary.outcome == seedsweep_crds::trainer::Outcome::Diverged
        {
            return JobStanding::Ended {
                summary: Some(summary),
                exit: format!("exit code {}", t.code),
            };
        }
    }
    let metrics_url = pods
        .iter()
        .rev()
        .find(|p| pod_phase(p) == Some("Running"))
        .and_then(|p| {
            let ip = p.status.as_ref()?.pod_ip.as_ref()?;
            let port = p
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == job::CONTAINER))
                .and_then(|c| c.ports.as_ref())
                .and_then(|ports| ports.iter().find(|p| p.name.as_deref() == Some("metrics")))
                .map(|p| p.container_port)
                .unwrap_or(i32::from(default_port));
            Some(if ip.contains(':') {
                format!("http://[{ip}]:{port}/metrics")
            } else {
                format!("http://{ip}:{port}/metrics")
            })
        });
    JobStanding::Running { metrics_url }
}

fn pod_phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// How the trainer container ended.
struct Terminated<'a> {
    code: i32,
    reason: Option<&'a str>,
    message: &'a str,
}

/// The trainer container's exit code, reason and termination message, once it has ended.
fn terminated(pod: &Pod) -> Option<Terminated<'_>> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let t = statuses
        .iter()
        .find(|c| c.name == job::CONTAINER)?
        .state
        .as_ref()?
        .terminated
        .as_ref()?;
    Some(Terminated {
        code: t.exit_code,
        reason: t.reason.as_deref(),
        message: t.message.as_deref().unwrap_or(""),
    })
}

/// What the runtime said about a container that ended without the trainer's summary (it could not start, say):
/// ` (StartError: exec: "/x": no such file or directory)`, the message cut to a readable length.
fn runtime_detail(t: &Terminated) -> String {
    const LIMIT: usize = 400;
    let mut message = t.message.trim().to_string();
    if message.len() > LIMIT {
        message.truncate(message.floor_char_boundary(LIMIT));
        message.push('…');
    }
    match (t.reason, message.is_empty()) {
        (Some(reason), false) => format!(" ({reason}: {message})"),
        (Some(reason), true) => format!(" ({reason})"),
        (None, false) => format!(" ({message})"),
        (None, true) => String::new(),
    }
}

/// Container waiting reasons that mean the container cannot start until something changes (as kubelets report them).
const CANNOT_START: [&str; 8] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
];

/// Why a trial attempt's newest pod cannot start, as the scheduler or its kubelet reports it
/// (`Unschedulable: 0/3 nodes are available: ...`, `ImagePullBackOff: Back-off pulling image "x"`); `None` while it
/// is being scheduled, pulled or created normally, runs, or has ended.
pub fn why_stuck(pods: &[&Pod]) -> Option<String> {
    let status = pods.last()?.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    if let Some(c) = unschedulable {
        return Some(format!(
            "Unschedulable: {}",
            c.message.as_deref().unwrap_or("no node fits")
        ));
    }
    status
        .init_container_statuses
        .iter()
        .chain(status.container_statuses.iter())
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .find_map(|w| {
            let reason = w.reason.as_deref().filter(|r| CANNOT_START.contains(r))?;
            Some(match w.message.as_deref() {
                Some(message) if !message.is_empty() => format!("{reason}: {message}"),
                _ => reason.to_string(),
            })
        })
}

fn parse_summary(message: &str) -> Option<Box<TrialSummary>> {
    read_summary(message).ok().flatten()
}

/// The trainer's summary from a termination message: none when the message is empty, an error saying what the
/// message holds when it is not a summary (truncated, another program's output).
pub fn read_summary(message: &str) -> Result<Option<Box<TrialSummary>>, String> {
    let message = message.trim();
    if message.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(message).map(Some).map_err(|e| {
        let mut start = message.to_string();
        if start.len() > 120 {
            start.truncate(start.floor_char_boundary(120));
            start.push('…');
        }
        format!("its termination message is not a trainer summary ({e}): {start:?}")
    })
}

/// A Job that has ended, one way or the other.
pub fn is_finished(job: &Job) -> bool {
    has_condition(job, "Complete") || has_condition(job, "Failed")
}

/// Whether the Job's condition `type_` is true.
fn has_condition(job: &Job, type_: &str) -> bool {
    true_condition(job, type_).is_some()
}

/// The Job's condition `type_`, when it is true.
fn true_condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == "True"))
}
