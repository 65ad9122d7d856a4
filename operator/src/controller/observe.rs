//! Reading the cluster for one sweep: its Jobs and pods, and how each trial attempt's Job stands (pure).

use super::Context;
use super::concurrent;
use super::error::Result;
use super::job::{self, sweep_selector, unrecorded_selector};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use seedsweep_crds::sweep::SeedSweep;
use seedsweep_crds::trainer::TrialSummary;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashSet};

/// The sweep's Jobs the state has not recorded the end of (by name; only those it owns) and the pods it needs, as
/// listed at the start of a reconciliation, with only what a reconciliation reads ([`ListedJob`], [`ListedPod`]):
/// a Job here has no spec, and a pod's spec only its containers' names and ports.
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
        let client = &ctx.client;
        let jobs: BTreeMap<String, Job> = list_read::<_, ListedJob>(
            client,
            &jobs_api,
            &cached().labels(&unrecorded_selector(&name)),
        )
        .await?
        .into_iter()
        .filter(|j| {
            j.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .map(|j| (j.name_any(), j))
        .collect();
        let mut pods = list_read::<_, ListedPod>(
            client,
            &pods_api,
            &cached()
                .labels(&sweep_selector(&name))
                .fields("status.phase!=Succeeded"),
        )
        .await?;
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
            list_read::<_, ListedPod>(client, pods_api, &params).await
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

/// Lists `api`'s objects matching `params` with only what a reconciliation reads from them (see [`ListedMeta`]).
async fn list_read<K, L>(client: &Client, api: &Api<K>, params: &ListParams) -> Result<Vec<K>>
where
    K: kube::Resource,
    L: DeserializeOwned + Into<K>,
{
    let mut request = kube::core::Request::new(api.resource_url())
        .list(params)
        .map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert("list");
    let list: List<L> = client.request(request).await?;
    Ok(list.items.into_iter().map(Into::into).collect())
}

/// A list answer's items.
#[derive(Deserialize)]
struct List<L> {
    items: Vec<L>,
}

/// The metadata of a listed Job or pod, without what the operator never reads. A listed Job or pod is about 7 KB of
/// JSON, half of it `managedFields`, which k8s-openapi keeps as nested JSON values, and most of the rest the spec
/// the operator wrote. Read whole, the objects held by three sweeps' reconciliations at once were the largest part
/// of the operator's heap (16 of 42 MB at its peak, heaptrack); the fields skipped here are never allocated.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
}

impl From<ListedMeta> for ObjectMeta {
    fn from(m: ListedMeta) -> Self {
        ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            labels: m.labels,
            annotations: m.annotations,
            owner_references: m.owner_references,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            ..ObjectMeta::default()
        }
    }
}

/// A listed Job: its metadata and status. Its spec is the operator's own and is not read back.
#[derive(Deserialize)]
struct ListedJob {
    metadata: ListedMeta,
    status: Option<JobStatus>,
}

impl From<ListedJob> for Job {
    fn from(j: ListedJob) -> Self {
        Job {
            metadata: j.metadata.into(),
            spec: None,
            status: j.status,
        }
    }
}

/// A listed pod: its metadata, status, and of its spec only the containers' names and ports (the metrics port).
#[derive(Deserialize)]
struct ListedPod {
    metadata: ListedMeta,
    spec: Option<ListedPodSpec>,
    status: Option<PodStatus>,
}

#[derive(Deserialize)]
struct ListedPodSpec {
    containers: Vec<ListedContainer>,
}

#[derive(Deserialize)]
struct ListedContainer {
    name: String,
    ports: Option<Vec<ContainerPort>>,
}

impl From<ListedPod> for Pod {
    fn from(p: ListedPod) -> Self {
        Pod {
            metadata: p.metadata.into(),
            spec: p.spec.map(|s| PodSpec {
                containers: (s.containers.into_iter())
                    .map(|c| Container {
                        name: c.name,
                        ports: c.ports,
                        ..Container::default()
                    })
                    .collect(),
                ..PodSpec::default()
            }),
            status: p.status,
        }
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

/// How long the scheduler may find no node for a trial's pod before the trial counts as stuck. A pod made for a
/// freed slot often waits for the pod it replaces, deleted a moment before, to give its GPU back, and a deleted pod
/// may keep what it holds for its termination grace period: 30 s, as trial pods leave it. At 10,000 trials, 288
/// replacement pods were reported stuck for such a moment. A kubelet's reasons (an image that cannot be pulled, a
/// crash loop) count at once.
pub const UNSCHEDULABLE_GRACE_SECONDS: i64 = 30;

/// Why a trial attempt's newest pod cannot start, as the scheduler or its kubelet reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct CannotStart {
    /// The reason with its message: `Unschedulable: 0/3 nodes are available: ...`, `ImagePullBackOff: Back-off
    /// pulling image "x"`.
    pub why: String,
    /// Since when the scheduler has found no node for the pod (its `PodScheduled` condition's last transition);
    /// `None` for a kubelet's reason.
    pub unschedulable_since: Option<Timestamp>,
}

impl CannotStart {
    /// Whether the trial counts as stuck at `now`: a kubelet's reason at once, the scheduler's after
    /// [`UNSCHEDULABLE_GRACE_SECONDS`].
    pub fn is_stuck(&self, now: Timestamp) -> bool {
        self.unschedulable_since
            .is_none_or(|since| now.duration_since(since).as_secs() >= UNSCHEDULABLE_GRACE_SECONDS)
    }
}

/// Why a trial attempt's newest pod cannot start; `None` while it is being scheduled, pulled or created normally,
/// runs, or has ended.
pub fn why_cannot_start(pods: &[&Pod]) -> Option<CannotStart> {
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
        return Some(CannotStart {
            why: format!(
                "Unschedulable: {}",
                c.message.as_deref().unwrap_or("no node fits")
            ),
            // A condition without its time (no scheduler leaves it out) counts at once.
            unschedulable_since: c.last_transition_time.as_ref().map(|t| t.0),
        });
    }
    status
        .init_container_statuses
        .iter()
        .chain(status.container_statuses.iter())
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .find_map(|w| {
            let reason = w.reason.as_deref().filter(|r| CANNOT_START.contains(r))?;
            Some(CannotStart {
                why: match w.message.as_deref() {
                    Some(message) if !message.is_empty() => format!("{reason}: {message}"),
                    _ => reason.to_string(),
                },
                unschedulable_since: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A real apiserver's lists: the first Job and pod a running attempt, the second an attempt whose pod succeeded.
    const JOBS: &str = include_str!("../../tests/apiserver/jobs.json");
    const PODS: &str = include_str!("../../tests/apiserver/pods.json");

    /// Each object read whole and as a reconciliation reads it.
    fn whole_and_read<K: DeserializeOwned, L: DeserializeOwned + Into<K>>(
        text: &str,
    ) -> Vec<(K, K)> {
        let whole: List<K> = serde_json::from_str(text).unwrap();
        let read: List<L> = serde_json::from_str(text).unwrap();
        let read = read.items.into_iter().map(Into::into);
        whole.items.into_iter().zip(read).collect()
    }

    #[test]
    fn a_listed_job_and_pod_keep_all_that_a_reconciliation_reads() {
        let jobs = whole_and_read::<Job, ListedJob>(JOBS);
        let pods = whole_and_read::<Pod, ListedPod>(PODS);
        assert_eq!((jobs.len(), pods.len()), (2, 2));
        for ((whole_job, job), (whole_pod, pod)) in jobs.iter().zip(&pods) {
            // What is left out is there to leave out.
            assert!(whole_job.metadata.managed_fields.is_some() && whole_job.spec.is_some());
            assert!(job.metadata.managed_fields.is_none() && job.spec.is_none());
            assert!(pod.metadata.managed_fields.is_none());
            for (whole, read) in [
                (&whole_job.metadata, &job.metadata),
                (&whole_pod.metadata, &pod.metadata),
            ] {
                assert_eq!(read.name, whole.name);
                assert_eq!(read.namespace, whole.namespace);
                assert_eq!(read.uid, whole.uid);
                assert_eq!(read.labels, whole.labels);
                assert_eq!(read.annotations, whole.annotations);
                assert_eq!(read.owner_references, whole.owner_references);
                assert_eq!(read.creation_timestamp, whole.creation_timestamp);
                assert_eq!(read.deletion_timestamp, whole.deletion_timestamp);
            }
            assert_eq!(job.status, whole_job.status);
            assert_eq!(pod.status, whole_pod.status);
            assert_eq!(job::job_identity(job), job::job_identity(whole_job));
            // A default port no pod uses: the URL's port must come from the pod's spec.
            assert_eq!(
                job_standing(job, &[pod], 1),
                job_standing(whole_job, &[whole_pod], 1)
            );
            assert_eq!(why_cannot_start(&[pod]), why_cannot_start(&[whole_pod]));
        }
        match job_standing(&jobs[0].1, &[&pods[0].1], 1) {
            JobStanding::Running {
                metrics_url: Some(url),
            } => assert!(url.ends_with(":9090/metrics"), "{url}"),
            other => panic!("the running attempt reads as {other:?}"),
        }
        match job_standing(&jobs[1].1, &[&pods[1].1], 1) {
            JobStanding::Ended {
                summary: Some(s),
                exit,
            } => assert_eq!(
                (s.trial.as_str(), exit.as_str()),
                ("scale-w5-d3", "exit code 0")
            ),
            other => panic!("the completed attempt reads as {other:?}"),
        }
    }

    /// A pending pod with `status`.
    fn pending(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "t-a1-x", "creationTimestamp": "2026-11-30T10:00:00Z"},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn an_unschedulable_pod_counts_as_stuck_only_after_the_grace_and_a_kubelets_reason_at_once() {
        let since: Timestamp = "2026-11-30T10:00:01Z".parse().unwrap();
        let unschedulable = pending(serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/2 nodes are available: 1 Insufficient nvidia.com/gpu.",
                "lastTransitionTime": "2026-11-30T10:00:01Z"}],
        }));
        let c = why_cannot_start(&[&unschedulable]).unwrap();
        assert_eq!(
            c,
            CannotStart {
                why: "Unschedulable: 0/2 nodes are available: 1 Insufficient nvidia.com/gpu."
                    .into(),
                unschedulable_since: Some(since),
            }
        );
        let after = |s: i64| since + k8s_openapi::jiff::SignedDuration::from_secs(s);
        assert!(!c.is_stuck(since));
        assert!(!c.is_stuck(after(UNSCHEDULABLE_GRACE_SECONDS - 1)));
        assert!(c.is_stuck(after(UNSCHEDULABLE_GRACE_SECONDS)));
        // A clock behind the scheduler's does not make it stuck early.
        assert!(!c.is_stuck(after(-5)));

        let pulling = pending(serde_json::json!({
            "phase": "Pending",
            "containerStatuses": [{"name": "trainer", "image": "x", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff",
                "message": "Back-off pulling image \"x\""}}}],
        }));
        let c = why_cannot_start(&[&pulling]).unwrap();
        assert_eq!(c.why, "ImagePullBackOff: Back-off pulling image \"x\"");
        assert!(c.is_stuck(since));

        // Being created normally, or ended: nothing to report.
        let creating = pending(serde_json::json!({
            "phase": "Pending",
            "containerStatuses": [{"name": "trainer", "image": "x", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}],
        }));
        assert_eq!(why_cannot_start(&[&creating]), None);
        let mut ended = unschedulable.clone();
        ended.status.as_mut().unwrap().phase = Some("Failed".into());
        assert_eq!(why_cannot_start(&[&ended]), None);
        assert_eq!(why_cannot_start(&[]), None);
    }
}
